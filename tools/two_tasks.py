"""The CIFAR notebooks' experiment, superclasses to subclasses, as README "Results" measured it.

    python -m tools.two_tasks a                # task A: the small convnet on animal vs. vehicle
    python -m tools.two_tasks b [RATE]         # task B: the ten classes on task A's network
    python -m tools.two_tasks random [RATE]    # task B on the same layers untrained (base.weights: random)

Run in a clone of the repository with ../shared beside it. Each step sets its params in
params.yaml (so `git diff params.yaml` shows them) and runs `dvc repro` up to what it needs;
task A's model goes into bases/ with `dvc add`, where load_base sees its versions. RATE is the
learning rate of the three transfer stages (default 1e-4); task B's test metrics are copied
to metrics/two_tasks/<step>-<rate>.json.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

BASE_FILE = "bases/cifar10_animal_vehicle.keras"
SUPERCLASSES = {
    "animal": ["bird", "cat", "deer", "dog", "frog", "horse"],
    "vehicle": ["airplane", "automobile", "ship", "truck"],
}
BOTH_TASKS = {  # 32x32 images as they are; validation carved out of train (10%); light augmentation
    "data.raw_dir": "../shared/datasets/cifar10",
    "data.image_size": 32,
    "data.split": {"train": 0.8, "validation": 0.1, "test": 0.1},
    "augmentation.rotation_degrees": 15,
    "augmentation.width_shift": 0.1,
    "augmentation.height_shift": 0.1,
    "augmentation.shear": 0.1,
    "augmentation.zoom": 0.1,
    "train_scratch.epochs": 15,
    "train_scratch.batch_size": 64,
    "train_scratch.learning_rate": 5.0e-4,
    "train_scratch.dropout": 0.5,
}


def set_params(changes: dict) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        place = params
        for section in sections:
            place = place[section]
        place[key] = value
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run(*command: str) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def task_b(weights: str | None, rate: float) -> dict:
    """Task B's params: equal epochs for every base (5 on the head alone, then 10 of the whole network)."""
    return {
        "data.class_groups": None,
        "base.name": BASE_FILE,
        "base.weights": weights,
        "base.fine_tune_from": "conv2d",
        "lr": rate,
        "train_classifier.epochs": 15,
        "train_classifier.batch_size": 64,
        "train_classifier.learning_rate": rate,
        "train_frozen.epochs": 5,
        "train_frozen.batch_size": 64,
        "train_frozen.learning_rate": rate,
        "fine_tune.epochs": 10,
        "fine_tune.batch_size": 64,
        "train_scratch_augmented.epochs": 15,
        "train_scratch_augmented.batch_size": 64,
        "train_scratch_augmented.learning_rate": 5.0e-4,
    }


def main(step: str, rate: float) -> None:
    if step == "a":
        set_params({**BOTH_TASKS, "data.class_groups": SUPERCLASSES})
        run("dvc", "repro", "train_scratch")
        shutil.copy2("models/scratch.keras", BASE_FILE)
        run("dvc", "add", BASE_FILE)
        return
    set_params({**BOTH_TASKS, **task_b(None if step == "b" else "random", rate)})
    run("dvc", "repro", "evaluate")
    Path("metrics/two_tasks").mkdir(exist_ok=True)
    shutil.copy2("metrics/evaluate.json", f"metrics/two_tasks/{step}-{rate:g}.json")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("a", "b", "random"):
        sys.exit(__doc__)
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1.0e-4)

"""The dvc row: `dvc repro` with nothing to do against `dvc status`, on a finished tiny pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.harness import Row, best_of
from benchmarks.images import CLASSES
from tools.scratch_repo import Repo, make_repo

TRAINING_STAGES = ("train_classifier", "train_frozen", "fine_tune", "train_scratch", "train_scratch_augmented")
TINY_PARAMS = {
    ("data", "image_size"): 48,
    ("data", "split"): {"train": [0, 12], "validation": [12, 18], "test": [18, 24]},
    ("base", "weights"): None,
    **{(stage, key): value for stage in TRAINING_STAGES for key, value in (("epochs", 1), ("batch_size", 8))},
}


def finished_repo(folder: Path, raw_images: Path, raw_count: int) -> Repo:
    """The project with `raw_count` images per class in data/raw, reproduced on a few of them and committed."""
    def fill_raw(raw: Path) -> None:
        for label in CLASSES:
            for index in range(raw_count):
                shutil.copy2(raw_images / f"{label}.{index}.jpg", raw)

    repo = make_repo(folder, TINY_PARAMS, fill_raw)
    repo.repro()
    repo.commit("finished pipeline")
    return repo


def bench_dvc(repo: Repo, rounds: int) -> Row:
    seconds = best_of(rounds, {"status": lambda: repo.dvc("status"), "repro": lambda: repo.dvc("repro")})
    return Row(
        "dvc repro, nothing to do", f"{seconds['repro']:.2f} s", f"{seconds['status']:.2f} s (dvc status)",
        seconds["status"] / seconds["repro"], None, f"best of {rounds}, on the finished tiny pipeline",
    )

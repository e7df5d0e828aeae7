"""Where the stages read and write. dvc.yaml declares the same paths (tests/e2e/test_dvc_deps_e2e.py watches)."""

import os
from pathlib import Path

# The repository this package lies in: where the commands find params.yaml, recipes/ and models/
# from any folder (stages run in it, and use the relative paths below).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "validation", "test")  # in this order everywhere: files, metrics, tables
BASES_DIR = Path("bases")  # .keras bases and weights files named by base.name / base.weights (rules.py)
SPLIT_DIR = Path("data/split")  # <split>/<label>/<image>, plus manifest.csv
SPLIT_MANIFEST = SPLIT_DIR / "manifest.csv"
CLASSES_FILE = Path("data/classes.json")  # the class names in label order, written by split
PREPARED_DIR = Path("data/prepared")  # <split>_images.npy (uint8), <split>_labels.npy, manifest.csv
FEATURES_DIR = Path("data/features")  # <split>_features.npy (float32), <split>_labels.npy
MODELS_DIR = Path("models")
BASE_MODEL = MODELS_DIR / "base.keras"  # the convolutional base, weights loaded, no head
METRICS_DIR = Path("metrics")
EVALUATION_METRICS = METRICS_DIR / "evaluate.json"  # {model: {accuracy, loss, auc, ...}, best_model: name}
HEADLINE = METRICS_DIR / "headline.json"  # the DVC metric: the best model, its test and val accuracy
EVALUATION_DIR = METRICS_DIR / "evaluate"  # predictions/ (and roc/ for two classes) per model; pictures
REPORT = METRICS_DIR / "report.md"
EXPLAIN_DIR = METRICS_DIR / "explain"  # activations.png, filters.png, gradcam.png
EXPORT_DIR = MODELS_DIR / "export"  # saved_model/, model.tflite, model.onnx, README.md
# Per-epoch training checkpoints (training.resume). Inside DVC's own scratch folder: not an
# output (DVC deletes outputs before a stage reruns, which would defeat resuming), and
# removed by the stage once it finishes.
CHECKPOINTS_DIR = Path(".dvc/tmp/checkpoints")
# Where the stages write: every output in dvc.yaml lies in one of these (checked by
# tests/hostile/test_raw_folder_outputs_and_duplicates.py), and the checkpoints. DVC deletes a stage's
# outputs before it runs it and split replaces data/split, so data.raw_dir must lie outside all of them
# (classifier.core.rules).
WRITTEN = (SPLIT_DIR, CLASSES_FILE, PREPARED_DIR, FEATURES_DIR, MODELS_DIR, METRICS_DIR, CHECKPOINTS_DIR)


# Each model and the stage that trains it, in the book's order.
MODEL_STAGES = {
    "scratch": "train_scratch",
    "scratch_augmented": "train_scratch_augmented",
    "feature_extraction": "train_classifier",
    "frozen_augmented": "train_frozen",
    "fine_tuned": "fine_tune",
}


BEST = "best"  # models/best.keras: a copy of the model with the best validation accuracy (stage evaluate)


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.keras"


def stage_metrics_dir(stage: str) -> Path:
    """dvclive's folder for a training stage: metrics.json plus per-epoch plots."""
    return METRICS_DIR / stage


def training_summary(stage: str) -> Path:
    """A training stage's metrics at its best epoch: best_epoch, epochs_run, train and val loss and accuracy."""
    return stage_metrics_dir(stage) / "metrics.json"


# DVC's caches: a link into one is followed as DVC's own (`cache.type: symlink`). Read from DVC's config
# files as text, without importing DVC (seconds).
def dvc_cache_dirs(start: Path) -> list[Path]:
    """The caches (resolved) of the DVC project around `start`: its .dvc/cache, and each `cache.dir`
    set in its .dvc/config or .dvc/config.local, or in the user's or the system's DVC config."""
    project = next((folder / ".dvc" for folder in (start, *start.parents) if (folder / ".dvc").is_dir()), None)
    user = Path(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")) / "dvc"
    configs = [Path("/etc/xdg/dvc/config"), user / "config"]
    caches = []
    if project is not None:
        configs += [project / "config", project / "config.local"]
        caches.append(project / "cache")
    for config in configs:
        value = config_value(config, "cache", "dir")
        if value:
            caches.append(config.parent / Path(value).expanduser())  # a relative dir is relative to its config
    return [Path(os.path.realpath(cache)) for cache in caches]


def config_value(config: Path, section: str, key: str) -> str | None:
    """`key` in `[section]` of a DVC config file (configobj's INI: indented keys, optional quotes)."""
    try:
        lines = config.read_text(errors="replace").splitlines()
    except OSError:
        return None
    current, found = None, None
    for line in map(str.strip, lines):
        if line.startswith("["):
            current = line.strip("[]").strip().strip("'\"")
        elif current == section and "=" in line and not line.startswith("#"):
            name, value = (part.strip() for part in line.split("=", 1))
            if name == key:
                found = value.strip("'\"")
    return found

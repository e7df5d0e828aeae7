"""Scratch repositories for the end-to-end tests: the tiny pipeline (24 real Kaggle images a class,
tools.scratch_repo's TINY_PARAMS), the ten-class one (CIFAR-10 at 32x32), every stage's name, and the
observation of what stage processes touch."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.support.paths import CIFAR10, KAGGLE_IMAGES, ROOT, copy_of, needs
from tools.scratch_repo import TINY_PARAMS, Repo, kaggle_images, make_repo

RAW_IMAGES_PER_CLASS = 24
ALL_STAGES = {
    "check_params",
    "split",
    "prepare",
    "load_base",
    "extract_features",
    "train_classifier",
    "train_frozen",
    "fine_tune",
    "train_scratch",
    "train_scratch_augmented",
    "evaluate",
    "explain",
    "export",
}
OBSERVE = ROOT / "tests/observe"  # its sitecustomize logs what each stage process touches


def new_tiny_repo(path: Path) -> Repo:
    """A new copy of the project in `path` with the tiny params and images, not yet reproduced."""
    needs(KAGGLE_IMAGES / "cat.0.jpg")
    path.mkdir(parents=True)
    return make_repo(path, TINY_PARAMS, kaggle_images(KAGGLE_IMAGES, RAW_IMAGES_PER_CLASS))


@contextlib.contextmanager
def observed(repo: Repo, logs: Path):
    """Stage processes run in `repo` inside this log what they touch into `logs` (tests/observe)."""
    logs.mkdir(parents=True, exist_ok=True)
    saved = {name: repo.env.get(name) for name in ("PYTHONPATH", "OBSERVE_DIR")}
    repo.env.update(PYTHONPATH=str(OBSERVE), OBSERVE_DIR=str(logs))
    try:
        yield logs
    finally:
        for name, value in saved.items():
            if value is None:
                repo.env.pop(name, None)
            else:
                repo.env[name] = value


# The ten-class pipeline: a folder per class of CIFAR-10 (../shared), 32x32, one epoch a training stage.
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_PER_CLASS = 24  # of each class's training images, 0000-0023
CIFAR_TOP_K = 3
CIFAR_PARAMS = {
    ("data", "image_size"): 32,
    ("data", "split"): {"train": 0.5, "validation": 0.25, "test": 0.25},
    ("base", "weights"): None,
    ("training", "class_weight"): "balanced",
    ("evaluate", "top_k"): CIFAR_TOP_K,
    ("explain", "filter_steps"): 2,
    **{
        (stage, key): value
        for stage in ("train_classifier", "train_frozen", "fine_tune", "train_scratch", "train_scratch_augmented")
        for key, value in (("epochs", 1), ("batch_size", 16))
    },
}


def copy_cifar(raw: Path, first: int = 0, count: int = CIFAR_PER_CLASS) -> None:
    """A `fill_raw` for make_repo: a folder per class, raw/<class>/NNNN.jpg, copies of CIFAR-10's training
    images first to first + count - 1."""
    for name in CIFAR10_CLASSES:
        (raw / name).mkdir(exist_ok=True)
        for index in range(first, first + count):
            copy_of(CIFAR10 / "train" / name / f"{index:04d}.jpg", raw / name)


# --- `classifier own` (`make own`) in a scratch copy -----------------------------------------------------------

OWN_RECIPE = "tiny"  # recipes/tiny.yaml of own_repo: nothing downloaded, a third of each class to each split
OWN_RECIPE_TEXT = (
    "base:\n  weights: null\n  fine_tune_from: null\ndata:\n  split: {train: 0.34, validation: 0.33, test: 0.33}\n"
)
OWN_PER_CLASS = 12  # with these PNGs' bytes, every split gets an image of each class


def own_repo(path: Path) -> Repo:
    """A scratch copy of the project (git, DVC, no images) with recipes/tiny.yaml committed, where `make own`
    and `classifier own` can run without the network."""
    path.mkdir(parents=True, exist_ok=True)
    repo = make_repo(path, {}, lambda raw: None)
    (path / "recipes" / f"{OWN_RECIPE}.yaml").write_text(OWN_RECIPE_TEXT)
    repo.commit("a tiny recipe for classifier own")
    return repo


def own_photos(folder: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = OWN_PER_CLASS) -> Path:
    """`folder` with a folder per class of tiny PNGs, each its own colour: photos stage split takes."""
    from tests.support.files import png, write_files

    files = {
        f"{name}/{index}.png": png(1000 * number + index)
        for number, name in enumerate(classes)
        for index in range(per_class)
    }
    return write_files(folder, files)


def workspace_state(path: Path) -> tuple[dict, str]:
    """What a refused command must leave as it was in the repository `path`: every file but git's own (the
    workspace, DVC's cache and .dvc/tmp included: tests.support.files.snapshot) and `git status`."""
    import subprocess

    from tests.support.files import snapshot

    files = {name: value for name, value in snapshot(path).items() if name.split("/")[0] != ".git"}
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return files, status

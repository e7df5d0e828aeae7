"""Where things are: this repository, and the real data of ../shared (which may be a link, or missing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
KAGGLE_IMAGES = SHARED / "datasets/dogs-vs-cats/train"
CIFAR10 = SHARED / "datasets/cifar10"
FLOWERS = SHARED / "datasets/flowers"
LITE0_BASE = SHARED / "models/efficientnet_lite0_notop.keras"


def needs(path: Path) -> Path:
    """`path` of ../shared, or the test skipped, naming it."""
    if not path.exists():
        pytest.skip(f"needs {path} (../shared)")
    return path


def copy_of(path: Path, folder: Path) -> Path:
    """A copy of `path` (of ../shared) in `folder`, as a user copies what they give the pipeline: the copy
    is a plain file or folder, whatever links ../shared is made of."""
    target = folder / needs(path).name
    if path.is_dir():
        shutil.copytree(path, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return target

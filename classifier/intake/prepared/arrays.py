"""What every stage after `split` reads: the class list, data/classes.json (label i of every array
and model output is the i-th name; with `data.class_groups` the groups' names), and the prepared
arrays: per split, data/prepared/<split>/ with the images as shards (images-00000.npy, ...: (rows, S,
S, 3) uint8, classifier.intake.prepared.shards) and labels.npy (classifier.intake.preparation writes
them; classifier.intake.tables, the shards' tables).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from classifier.core.errors import StageError
from classifier.core.paths import CLASSES_FILE, PREPARED_DIR
from classifier.intake.prepared.shards import Shards, shard_ends, shard_name

MEGABYTE = 1024 * 1024


def read_classes() -> list[str]:
    """The class names in label order, as stage split wrote them."""
    if not CLASSES_FILE.is_file():
        raise StageError(f"{CLASSES_FILE} is missing: run `dvc repro split` first")
    return json.loads(CLASSES_FILE.read_text())


def split_folder(split: str, folder: Path = PREPARED_DIR) -> Path:
    return folder / split


def labels_path(split: str, folder: Path = PREPARED_DIR) -> Path:
    return split_folder(split, folder) / "labels.npy"


def load_prepared(split: str, folder: Path = PREPARED_DIR) -> tuple[Shards, np.ndarray]:
    """(images uint8 (N, S, S, 3) as `Shards`, integer labels (N,)), memory-mapped so a large split costs no RAM."""
    if not labels_path(split, folder).is_file():
        raise FileNotFoundError(f"{labels_path(split, folder)} is missing: run `dvc repro prepare` first")
    return Shards(split_folder(split, folder)), np.load(labels_path(split, folder))


def save_prepared(
    split: str, images: np.ndarray, labels: np.ndarray, folder: Path = PREPARED_DIR, shard_bytes: int = 1024 * MEGABYTE
) -> None:
    """A split's prepared arrays from arrays in memory, cut into shards as `prepare` cuts them (rows by number)."""
    target = split_folder(split, folder)
    target.mkdir(parents=True, exist_ok=True)
    start = 0
    for index, end in enumerate(shard_ends([str(row) for row in range(len(images))], images[:1].nbytes, shard_bytes)):
        np.save(target / shard_name(index), images[start:end])
        start = end
    np.save(labels_path(split, folder), labels)

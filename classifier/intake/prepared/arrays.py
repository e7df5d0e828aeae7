"""What every stage after `split` reads: the class list, data/classes.json (label i of every array
and model output is the i-th name; with `data.class_groups` the groups' names), and the prepared
arrays: per split, data/prepared/<split>/ with the images as shards (images-00000.npy, ...: (rows, S,
S, 3) uint8, classifier.intake.prepared.shards), each with its table images-00000.csv, ..., and
labels.npy (classifier.intake.preparation writes them; classifier.intake.tables, the shards' tables),
checked where they are read (classifier.intake.prepared.checks); and the features extract_features caches.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from classifier.core.errors import StageError
from classifier.core.paths import CLASSES_FILE, FEATURES_DIR, PREPARED_DIR
from classifier.intake.prepared.checks import FEATURES_FIX, checked_shards, npy_header, shape_text
from classifier.intake.prepared.shards import Shards, shard_ends, shard_name

MEGABYTE = 1024 * 1024
TABLE_COLUMNS = ("label", "class", "path", "source")  # a shard's table (classifier.intake.tables writes prepare's)


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
    """(images uint8 (N, S, S, 3) as `Shards`, integer labels (N,)), memory-mapped so a large split costs no RAM;
    the shards checked first against each other, their tables and the labels (classifier.intake.prepared.checks)."""
    files = checked_shards(split_folder(split, folder))
    return Shards(split_folder(split, folder), files), np.load(labels_path(split, folder))


def load_features(split: str, folder: Path = FEATURES_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, ...) memory-mapped, labels (N,)) of a split as extract_features wrote them, checked first:
    each a whole .npy file, as many labels as rows of features."""
    features_file, labels_file = folder / f"{split}_features.npy", folder / f"{split}_labels.npy"
    features, labels = npy_header(features_file, FEATURES_FIX), npy_header(labels_file, FEATURES_FIX)
    if not features.shape or len(labels.shape) != 1 or features.shape[0] != labels.shape[0]:
        raise StageError(
            f"{features_file} holds {shape_text(features.shape)} features, {labels_file.name} "
            f"{shape_text(labels.shape)} labels, not one label per row: {FEATURES_FIX}"
        )
    return np.load(features_file, mmap_mode="r"), np.load(labels_file)


def save_prepared(
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    folder: Path = PREPARED_DIR,
    shard_bytes: int = 1024 * MEGABYTE,
    rows: list[dict] | None = None,
) -> None:
    """A split's prepared arrays from arrays in memory, cut into shards as `prepare` cuts them (rows by number),
    each with its table: `rows` (label, class, path, source of each image), or rows made up from the labels."""
    target = split_folder(split, folder)
    target.mkdir(parents=True, exist_ok=True)
    if rows is None:
        rows = [
            {"label": str(label), "class": str(label), "path": f"{split}/{label}/{row}.png"}
            for row, label in enumerate(np.asarray(labels).tolist())
        ]
    start = 0
    for index, end in enumerate(shard_ends([str(row) for row in range(len(images))], images[:1].nbytes, shard_bytes)):
        np.save(target / shard_name(index), images[start:end])
        with open((target / shard_name(index)).with_suffix(".csv"), "w", newline="") as table:
            writer = csv.writer(table)
            writer.writerow(TABLE_COLUMNS)
            writer.writerows([row.get(column, "") for column in TABLE_COLUMNS] for row in rows[start:end])
        start = end
    np.save(labels_path(split, folder), labels)

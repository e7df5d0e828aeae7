"""The prepared arrays every stage after `prepare` reads: per split, <split>_images.npy (N, S, S, 3)
uint8 and <split>_labels.npy, memory-mapped, and manifest.csv, which maps each row back to its image
(classifier.intake.preparation writes them).
"""

from __future__ import annotations

import csv
import mmap
from pathlib import Path

import numpy as np

from classifier.core.cli import StageError
from classifier.core.layout import PREPARED_DIR


def prepared_paths(split: str, folder: Path = PREPARED_DIR) -> tuple[Path, Path]:
    return folder / f"{split}_images.npy", folder / f"{split}_labels.npy"


def release(array: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from this process's resident memory.

    The pages stay in the OS page cache, written ones included (the maps are shared, so
    nothing is lost and nothing needs a slow msync): reading them again is cheap, only what
    the process holds on to shrinks. No-op for arrays that are not memory maps.
    """
    mapping = getattr(array, "_mmap", None)  # numpy.memmap's mmap object, shared by its slices
    if mapping is not None:
        mapping.madvise(mmap.MADV_DONTNEED)


def load_prepared(split: str, folder: Path = PREPARED_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, S, S, 3), integer labels (N,)), memory-mapped so a large split costs no RAM."""
    images_path, labels_path = prepared_paths(split, folder)
    if not images_path.is_file():
        raise FileNotFoundError(f"{images_path} is missing: run `dvc repro prepare` first")
    return np.load(images_path, mmap_mode="r"), np.load(labels_path)


def manifest_test_paths(count: int) -> list[str]:
    """The test images' paths (as under data/split), in the order of test_images.npy."""
    manifest = PREPARED_DIR / "manifest.csv"
    with open(manifest, newline="") as file:
        # As written: row numbers, and paths (each starts with its split's name), never get csv_cell's apostrophe.
        rows = sorted((int(row["row"]), row["path"]) for row in csv.DictReader(file) if row["split"] == "test")
    if len(rows) != count:
        raise StageError(
            f"{manifest} lists {len(rows)} test images but the test arrays hold {count}: run `dvc repro prepare`"
        )
    return [path for _, path in rows]

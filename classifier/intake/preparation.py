"""How stage `prepare` writes the prepared arrays: the split's manifest read a split at a time, each
shard's images (classifier.intake.prepared.shards) decoded on all cores straight into their rows of the
shard's memory-mapped .npy file, then its table written, so that memory stays bounded by a shard,
not by the data set; an image that cannot be decoded, or has more than data.max_pixels, is left
out, with its error, and counted per class.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from classifier.core.errors import StageError
from classifier.core.outputs import reserve
from classifier.core.paths import PREPARED_DIR, SPLIT_DIR, SPLIT_MANIFEST, SPLITS
from classifier.intake.decoding import DEFAULT_MAX_PIXELS, BadImage, decode_image
from classifier.intake.escaping import csv_dict_rows, write_csv_file
from classifier.intake.prepared.arrays import MEGABYTE, labels_path, split_folder
from classifier.intake.prepared.shards import shard_name, shard_runs
from classifier.intake.tables import write_table

CHUNK = 16  # images per task given to a worker process
MANIFEST_COLUMNS = ("split", "label", "class", "path", "source")  # what prepare needs of the split's manifest


def check_split_manifest() -> None:
    if not SPLIT_MANIFEST.is_file():
        raise StageError(f"{SPLIT_MANIFEST} is missing: run `dvc repro split` first")


def split_manifest_rows(split: str) -> Iterator[dict]:
    """The split manifest's rows of one split, in order, read as they are needed: a large collection's
    manifest is never held in memory."""
    with open(SPLIT_MANIFEST, newline="") as manifest:
        for row in csv_dict_rows(manifest):
            if row["split"] == split:
                yield {column: row[column] for column in MANIFEST_COLUMNS}


def prepared_bytes(size: int) -> int:
    """About what the prepared arrays of every split take at `size`: what a full disk must have room for."""
    with open(SPLIT_MANIFEST, newline="") as manifest:
        images = sum(1 for row in csv_dict_rows(manifest) if row["split"] in SPLITS)
    return images * (size * size * 3 + 4)  # pixels and a label each (tables and headers are small)


def _decode_into(task: tuple[str, int, int, list[str], int, int]) -> list[tuple[int, str]]:
    """In a worker process: decode a run of images and write each straight into its row of
    its shard's .npy file (no pixels travel between processes; plain writes measured faster
    than a memory map here); return (shard row, error) for each image that cannot be decoded."""
    shard_path, data_offset, first_row, paths, size, max_pixels = task
    row_bytes = size * size * 3
    errors = []
    descriptor = os.open(shard_path, os.O_WRONLY)
    try:
        for row, path in enumerate(paths, start=first_row):
            try:
                with open(path, "rb") as file:
                    pixels = decode_image(file, size, max_pixels)
            except (OSError, BadImage) as err:
                errors.append((row, str(err)))
                continue
            os.pwrite(descriptor, pixels.tobytes(), data_offset + row * row_bytes)
    finally:
        os.close(descriptor)
    return errors


def decode_shard(path: Path, rows: list[dict], size: int, pool, max_pixels: int) -> dict[int, str]:
    """One shard of `rows`, decoded on all cores into `path`; {row: error} of the images left out."""
    created = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(rows), size, size, 3))
    data_offset = created.offset  # the .npy header's length: where row 0 starts
    del created
    reserve(path)  # a full disk fails here, not in the workers' writes
    images = [str(SPLIT_DIR / row["path"]) for row in rows]
    tasks = [
        (str(path), data_offset, first, images[first : first + CHUNK], size, max_pixels)
        for first in range(0, len(rows), CHUNK)
    ]
    errors = dict(error for errors in pool.map(_decode_into, tasks) for error in errors)
    if errors:
        keep_rows(path, [row for row in range(len(rows)) if row not in errors])
    return errors


def prepare_split(
    split: str,
    rows: Iterable[dict],
    size: int,
    class_names: list[str],
    pool,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    shard_bytes: int = 1024 * MEGABYTE,
    prepared: Path = PREPARED_DIR,
) -> tuple[int, list[dict], Counter]:
    """Decode `rows` into the split's shards under `prepared`, a shard at a time, each with its table; return
    (images kept, bad rows with their error, images per label)."""
    folder = split_folder(split, prepared)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("images-*"):  # an earlier run's shards and their tables
        old.unlink()
    label_of = {name: label for label, name in enumerate(class_names)}
    labels, bad, per_label, kept = [], [], Counter(), 0
    for index, run in enumerate(shard_runs(rows, lambda row: row["path"], size * size * 3, shard_bytes)):
        path = folder / shard_name(index)
        errors = decode_shard(path, run, size, pool, max_pixels)
        good = [row for row in range(len(run)) if row not in errors]
        write_table(path, [run[row] for row in good])
        labels.append(np.array([label_of[run[row]["label"]] for row in good], dtype=np.int32))
        bad += [{**run[row], "error": error} for row, error in sorted(errors.items())]
        per_label.update(row["label"] for row in run)
        kept += len(good)
    np.save(labels_path(split, prepared), np.concatenate(labels) if labels else np.zeros(0, np.int32))
    return kept, bad, per_label


def prepare_splits(size: int, class_names: list[str], max_pixels: int, shard_bytes: int, prepared: Path = PREPARED_DIR):
    """Every split's shards under `prepared` from the split manifest: (images kept, {split: {images, skipped[,
    skipped_by_class]}}, the rows that could not be decoded with their error, images per (split, label))."""
    report, bad, totals, kept = {}, [], Counter(), 0
    # Ctrl-C reaches the workers too (the terminal signals the whole process group): they leave it
    # to this process, which ends the stage with one line instead of a traceback per worker.
    ignore_interrupts = {"initializer": signal.signal, "initargs": (signal.SIGINT, signal.SIG_IGN)}
    with ProcessPoolExecutor(max_workers=os.cpu_count(), **ignore_interrupts) as pool:
        for split in SPLITS:
            rows = split_manifest_rows(split)
            images, skipped, per_label = prepare_split(
                split, rows, size, class_names, pool, max_pixels, shard_bytes, prepared
            )
            kept += images
            totals.update({(split, label): count for label, count in per_label.items()})
            report[split] = {"images": images, "skipped": len(skipped)}
            if skipped:
                lost = Counter(row["label"] for row in skipped)
                report[split]["skipped_by_class"] = {name: lost[name] for name in class_names if lost[name]}
            bad += skipped
    return kept, report, bad, totals


def emptied_classes(totals: Counter, bad: list[dict], class_names: list[str]) -> list[str]:
    """`'cat' in validation (all 4 skipped)` for each class that skipping left without an image in a split."""
    lost = Counter((row["split"], row["label"]) for row in bad)
    return [
        f"{name!r} in {split} (all {totals[split, name]} skipped)"
        for split in SPLITS
        for name in class_names
        if totals[split, name] and lost[split, name] == totals[split, name]
    ]


def skipped_per_class(report: dict, class_names: list[str]) -> str:
    """`cat 2 (train 1, validation 1), dog 1 (test 1)`: the images skipped, per class and split, as
    prepare_splits counted them in its report."""
    lost = {split: report[split].get("skipped_by_class", {}) for split in SPLITS}
    parts = []
    for name in class_names:
        splits = [f"{split} {lost[split][name]}" for split in SPLITS if lost[split].get(name)]
        if splits:
            parts.append(f"{name} {sum(lost[split].get(name, 0) for split in SPLITS)} ({', '.join(splits)})")
    return ", ".join(parts)


def keep_rows(path, rows: list[int]) -> None:
    """Rewrite a .npy array with only `rows`, a chunk at a time (memory stays bounded)."""
    source = np.load(path, mmap_mode="r")
    target = np.lib.format.open_memmap(
        f"{path}.tmp", mode="w+", dtype=source.dtype, shape=(len(rows), *source.shape[1:])
    )
    reserve(f"{path}.tmp")
    for start in range(0, len(rows), 256):
        target[start : start + 256] = source[rows[start : start + 256]]
    target.flush()
    del source, target
    os.replace(f"{path}.tmp", path)


def write_csv(path, columns, rows) -> None:
    """`columns` of each row (a dict); a class, path or error that would start a spreadsheet formula starts with an
    apostrophe, as in the split's manifest."""
    write_csv_file(path, columns, ([row.get(column, "") for column in columns] for row in rows))

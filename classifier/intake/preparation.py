"""How stage `prepare` writes the prepared arrays: every image of data/split decoded on all cores
straight into its row of the split's memory-mapped .npy file, so memory stays bounded by a batch,
not by the data set; an image that cannot be decoded, or has more than data.max_pixels, is left out,
with its error, and counted per class.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from classifier.core.cli import StageError
from classifier.core.layout import SPLIT_DIR, SPLIT_MANIFEST, SPLITS
from classifier.intake.images import DEFAULT_MAX_PIXELS, BadImage, decode_image
from classifier.intake.names import csv_dict_rows, write_csv_file
from classifier.intake.prepared import prepared_paths

CHUNK = 16  # images per task given to a worker process


def read_split_manifest() -> dict[str, list[dict]]:
    if not SPLIT_MANIFEST.is_file():
        raise StageError(f"{SPLIT_MANIFEST} is missing: run `dvc repro split` first")
    rows = {split: [] for split in SPLITS}
    with open(SPLIT_MANIFEST, newline="") as manifest:
        for row in csv_dict_rows(manifest):
            rows[row["split"]].append(row)
    return rows


def _decode_into(task: tuple[str, int, int, list[str], int, int]) -> list[tuple[int, str]]:
    """In a worker process: decode a run of images and write each straight into its row of
    the split's .npy file (no pixels travel between processes; plain writes measured faster
    than a memory map here); return (row, error) for each image that cannot be decoded."""
    images_path, data_offset, first_row, paths, size, max_pixels = task
    row_bytes = size * size * 3
    errors = []
    descriptor = os.open(images_path, os.O_WRONLY)
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


def prepare_split(
    split: str, rows: list[dict], size: int, class_names: list[str], pool, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[list[dict], list[dict]]:
    """Decode `rows` into the split's .npy files; return (kept rows, bad rows with their error)."""
    images_path, labels_path = prepared_paths(split)
    created = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=(len(rows), size, size, 3))
    data_offset = created.offset  # the .npy header's length: where row 0 starts
    del created
    paths = [str(SPLIT_DIR / row["path"]) for row in rows]
    tasks = [
        (str(images_path), data_offset, start, paths[start : start + CHUNK], size, max_pixels)
        for start in range(0, len(rows), CHUNK)
    ]
    errors = dict(error for errors in pool.map(_decode_into, tasks) for error in errors)
    kept = [row for i, row in enumerate(rows) if i not in errors]
    bad = [{**row, "error": errors[i]} for i, row in enumerate(rows) if i in errors]
    if bad:
        keep_rows(images_path, [i for i in range(len(rows)) if i not in errors])
    label_of = {name: label for label, name in enumerate(class_names)}
    labels = np.array([label_of[row["label"]] for row in kept], dtype=np.int32)
    np.save(labels_path, labels)
    return kept, bad


def prepare_splits(rows: dict[str, list[dict]], size: int, class_names: list[str], max_pixels: int):
    """Every split's arrays from the split manifest's rows: (manifest rows with their array row,
    {split: {images, skipped[, skipped_by_class]}}, the rows that could not be decoded with their error)."""
    report, manifest, bad = {}, [], []
    # Ctrl-C reaches the workers too (the terminal signals the whole process group): they leave it
    # to this process, which ends the stage with one line instead of a traceback per worker.
    ignore_interrupts = {"initializer": signal.signal, "initargs": (signal.SIGINT, signal.SIG_IGN)}
    with ProcessPoolExecutor(max_workers=os.cpu_count(), **ignore_interrupts) as pool:
        for split in SPLITS:
            kept, skipped = prepare_split(split, rows[split], size, class_names, pool, max_pixels)
            manifest += [{**row, "row": i} for i, row in enumerate(kept)]
            report[split] = {"images": len(kept), "skipped": len(skipped)}
            if skipped:
                lost = Counter(row["label"] for row in skipped)
                report[split]["skipped_by_class"] = {name: lost[name] for name in class_names if lost[name]}
            bad += skipped
    return manifest, report, bad


def emptied_classes(rows: dict[str, list[dict]], bad: list[dict], class_names: list[str]) -> list[str]:
    """`'cat' in validation (all 4 skipped)` for each class that skipping left without an image in a split."""
    total = Counter((split, row["label"]) for split in SPLITS for row in rows[split])
    lost = Counter((row["split"], row["label"]) for row in bad)
    return [
        f"{name!r} in {split} (all {total[split, name]} skipped)"
        for split in SPLITS
        for name in class_names
        if total[split, name] and lost[split, name] == total[split, name]
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
    for start in range(0, len(rows), 256):
        target[start : start + 256] = source[rows[start : start + 256]]
    target.flush()
    del source, target
    os.replace(f"{path}.tmp", path)


def write_csv(path, columns, rows) -> None:
    """`columns` of each row (a dict); a class, path or error that would start a spreadsheet formula starts with an
    apostrophe, as in the split's manifest."""
    write_csv_file(path, columns, ([row.get(column, "") for column in columns] for row in rows))

"""The prepared arrays checked where they are read, before any row is used: a split's shards against
each other, against their tables and against labels.npy, from the files' .npy headers and sizes and
the tables' row counts (no pixel is read). A shard missing (a gap in the numbering, a table without
its shard, a shard without its table), cut short or grown, of another shape or type than the first,
or a count that differs between shards, tables and labels, is refused in one line naming the file and
the fix: the stages would otherwise train on, or write features for, rows that are not the labels'.

Also: whether arrays hold numbers that are not finite (NaN, infinity), a chunk at a time.
Imports NumPy, classifier.core and classifier.intake.prepared.shards.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.core.errors import StageError
from classifier.intake.prepared.shards import release, shard_name

SHARD_NAME = re.compile(r"images-(\d{5})\.(npy|csv)")
FIX = "run `dvc checkout data/prepared` to restore the arrays DVC recorded, or `dvc repro prepare` to make them again"
FEATURES_FIX = (
    "run `dvc checkout data/features` to restore the features DVC recorded, or `dvc repro extract_features` "
    "to make them again"
)


@dataclass(frozen=True)
class Header:
    """What a .npy file's header says: the array's shape and type, where its data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def npy_header(path: Path, fix: str = FIX) -> Header:
    """The header of the .npy file at `path`, checked against the file's size (a file cut short or grown);
    StageError naming the file and `fix` for anything that is not a whole .npy file."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read(file)
            header = Header(tuple(shape), np.dtype(dtype), fortran_order, file.tell())
    except FileNotFoundError:
        raise StageError(f"{path} is missing: {fix}") from None
    except OSError as err:
        raise StageError(f"{path} cannot be read ({err.strerror or err}): {fix}") from None
    except ValueError as err:  # not the magic string, a header that does not parse
        raise StageError(f"{path} is not a NumPy array file ({' '.join(str(err).split())}): {fix}") from None
    if header.dtype.hasobject:
        raise StageError(f"{path} holds Python objects, not numbers: {fix}")
    size, expected = os.path.getsize(path), header.offset + header.data_bytes
    if size != expected:
        state = "cut short" if size < expected else "longer than its header says"
        raise StageError(
            f"{path} is {state}: its header says {shape_text(header.shape)} {header.dtype} ({expected:,} bytes "
            f"with the header), the file holds {size:,} bytes: {fix}"
        )
    return header


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(side) for side in shape) if shape else "a scalar"


def table_rows(path: Path) -> int:
    """The rows of a shard's table (a CSV file with a header), as the csv module reads them."""
    try:
        with open(path, newline="") as file:
            return max(sum(1 for _ in csv.reader(file)) - 1, 0)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise StageError(f"{path} cannot be read as a table ({err}): {FIX}") from None


def checked_shards(folder: Path) -> list[Path]:
    """The shard files of a split's folder in row order, each checked against the first (shape, type),
    its size against its header, and each against its table (images-NNNNN.csv, its rows); the shards'
    rows together against labels.npy."""
    labels_file = folder / "labels.npy"
    if not labels_file.is_file():
        raise StageError(f"{labels_file} is missing: run `dvc repro prepare` first")
    numbered: dict[str, dict[int, Path]] = {"npy": {}, "csv": {}}
    for path in sorted(folder.glob("images-*")):
        found = SHARD_NAME.fullmatch(path.name)
        if found:
            numbered[found.group(2)][int(found.group(1))] = path
        elif path.suffix == ".npy":
            raise StageError(f"{path} is not a shard that prepare writes (images-00000.npy, ...): {FIX}")
    shards, tables = numbered["npy"], numbered["csv"]
    if not shards:
        raise StageError(f"{folder} holds no image shards: run `dvc repro prepare` first")
    for index in range(max(shards) + 1):
        if index not in shards:
            raise StageError(f"{folder / shard_name(index)} is missing (the shards go up to {max(shards):05d}): {FIX}")
    for index, table in tables.items():
        if index not in shards:
            raise StageError(f"{folder / shard_name(index)} is missing ({table.name} lists its rows): {FIX}")
    first, rows = None, 0
    for index in sorted(shards):
        path = shards[index]
        header = npy_header(path)
        if header.dtype != np.uint8 or len(header.shape) != 4 or header.shape[-1] != 3 or header.fortran_order:
            raise StageError(
                f"{path} holds {shape_text(header.shape)} {header.dtype}, not images as prepare writes them "
                f"(rows x size x size x 3, uint8): {FIX}"
            )
        first = first or (path, header)
        if header.shape[1:] != first[1].shape[1:]:
            raise StageError(
                f"{path} holds images of {shape_text(header.shape[1:])}, {first[0].name} of "
                f"{shape_text(first[1].shape[1:])}: {FIX}"
            )
        if index not in tables:
            raise StageError(f"{path.with_suffix('.csv')} is missing (the table of {path.name}): {FIX}")
        listed = table_rows(tables[index])
        if listed != header.shape[0]:
            raise StageError(f"{tables[index]} lists {listed} images, {path.name} holds {header.shape[0]}: {FIX}")
        rows += header.shape[0]
    labels = npy_header(labels_file)
    if len(labels.shape) != 1 or labels.dtype.kind not in "iu":
        raise StageError(f"{labels_file} holds {shape_text(labels.shape)} {labels.dtype}, not integer labels: {FIX}")
    if labels.shape[0] != rows:
        raise StageError(f"{labels_file} holds {labels.shape[0]} labels, the shards of {folder} {rows} images: {FIX}")
    return [shards[index] for index in sorted(shards)]


def non_finite_rows(array, chunk_bytes: int = 64 * 1024 * 1024) -> int:
    """How many rows of `array` (an array, memory map or anything indexed by row slices) hold a value that
    is not a finite number (NaN, infinity); 0 at once for integers. Read a chunk of rows at a time."""
    if not np.issubdtype(np.dtype(array.dtype), np.inexact):
        return 0
    row_bytes = max(int(np.prod(array.shape[1:], dtype=np.int64)) * np.dtype(array.dtype).itemsize, 1)
    step = max(1, chunk_bytes // row_bytes)
    bad = 0
    for start in range(0, len(array), step):
        bad += rows_not_finite(np.asarray(array[start : start + step]))
        release(array)  # a memory map's pages read: out of this process's memory again
    return bad


def rows_not_finite(rows: np.ndarray) -> int:
    """How many rows (along the first axis) of an array in memory hold a value that is not a finite number."""
    return int((~np.isfinite(rows.reshape(len(rows), -1))).any(axis=1).sum())

"""Prepared images in shards: a split's (N, S, S, 3) uint8 array as a folder of .npy files of at
most data.shard_mb megabytes each, and `Shards`, which reads such a folder as one array.

Where a shard ends is decided by the images themselves (content-defined, as in rsync or a
deduplicating backup): after an image whose path hashes to a cut mark, once the shard holds a
quarter of its most, or when it is full. So adding images to a collection changes only the shards
they fall into (and the row numbers after them), never where the others end: DVC hashes, pushes
and pulls only those. Imports NumPy only.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate
from pathlib import Path

import numpy as np

SHARD_GLOB = "images-*.npy"


def shard_name(index: int) -> str:
    return f"images-{index:05d}.npy"


def shard_runs(items: Iterable, key: Callable, row_bytes: int, shard_bytes: int) -> Iterator[list]:
    """`items` (in the split's order) cut into shards, each a list, as they come: a shard ends after an item
    whose `key` (its path) hashes to a cut mark once it holds a quarter of its most, or when it is full."""
    most = max(1, shard_bytes // row_bytes)
    least = divisor = max(1, most // 4)  # shards average about half their most
    run = []
    for item in items:
        run.append(item)
        if len(run) >= most or (len(run) >= least and cut_mark(key(item)) % divisor == 0):
            yield run
            run = []
    if run:
        yield run


def shard_ends(keys: Sequence[str], row_bytes: int, shard_bytes: int) -> list[int]:
    """The end row of each shard of rows named `keys`; at least one shard."""
    ends = list(accumulate(len(run) for run in shard_runs(keys, str, row_bytes, shard_bytes)))
    return ends or [0]


def cut_mark(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def release(array) -> None:
    """Drop a memory-mapped array's pages (or a `Shards`' pages) from this process's resident memory.

    The pages stay in the OS page cache, written ones included (the maps are shared, so
    nothing is lost and nothing needs a slow msync): reading them again is cheap, only what
    the process holds on to shrinks. No-op for arrays that are not memory maps.
    """
    if isinstance(array, Shards):
        for part in array.parts:
            release(part)
        return
    mapping = getattr(array, "_mmap", None)  # numpy.memmap's mmap object, shared by its slices
    if mapping is not None:
        mapping.madvise(mmap.MADV_DONTNEED)


def take_rows(array, rows: np.ndarray) -> np.ndarray:
    """array[rows], for rows of a memory-mapped file or `Shards`: read from the file, not through the map.
    A read through the map brings the page cache's whole large folio around each row (up to 2 MiB on
    current kernels) into the process, and on a shuffled pass soon the whole file; a file read brings
    in nothing but the rows. Other arrays are indexed as they are."""
    if isinstance(array, Shards):
        return array.take(rows)
    if not whole_file_map(array):
        return array[rows]
    return read_rows(array.filename, array.offset, rows, array.shape[1:], array.dtype)


def whole_file_map(array) -> bool:
    """A numpy.memmap of a whole .npy file's data (not a slice of one), C-ordered."""
    filename, offset = getattr(array, "filename", None), getattr(array, "offset", None)
    return (
        isinstance(array, np.memmap)
        and filename is not None
        and array.flags.c_contiguous
        and offset + array.nbytes == os.path.getsize(filename)
    )


def read_rows(path, data_offset: int, rows: np.ndarray, row_shape: tuple, dtype) -> np.ndarray:
    """Rows of the (rows, *row_shape) array stored at data_offset in a file, each read straight into its place."""
    out = np.empty((len(rows), *row_shape), dtype)
    if not len(rows):
        return out
    flat = out.reshape(len(rows), -1).view(np.uint8)
    row_bytes = flat.shape[1]
    descriptor = os.open(path, os.O_RDONLY)
    try:
        for place, row in enumerate(rows):
            os.preadv(descriptor, [flat[place]], data_offset + int(row) * row_bytes)
    finally:
        os.close(descriptor)
    return out


class Shards:
    """A folder of image shards read as one array: len(), shape, dtype, and indexing by a row, a slice or
    an array of rows, each giving a NumPy array. Memory-mapped: only the rows read take memory."""

    def __init__(self, folder: Path, files: list[Path] | None = None):
        """The shards in `folder`, or `files` in row order (as classifier.intake.prepared.checks found them)."""
        self.files = sorted(Path(folder).glob(SHARD_GLOB)) if files is None else list(files)
        if not self.files:
            raise FileNotFoundError(f"{folder} holds no image shards: run `dvc repro prepare` first")
        self.parts = [np.load(path, mmap_mode="r") for path in self.files]
        lengths = np.array([len(part) for part in self.parts], dtype=np.int64)
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths
        self.shape = (int(self.ends[-1]), *self.parts[0].shape[1:])
        self.dtype = self.parts[0].dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """np.asarray(shards): every row in memory, at once (for a split known to be small)."""
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            row = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= row < len(self):
                raise IndexError(f"row {index} of {len(self)}")
            shard = self.shard_of(np.array([row]))[0]
            return np.asarray(self.parts[shard][row - self.starts[shard]])
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:  # a run of rows: one slice of each shard it crosses
                return self._run(start, max(start, stop))
            index = np.arange(start, stop, step)
        rows = np.asarray(index, dtype=np.int64)
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows beyond the {len(self)} of these shards")
        return self.take(rows)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """self[rows], read from the shards' files (take_rows says why)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        shards = self.shard_of(rows)
        for shard in np.unique(shards):
            taken, part = shards == shard, self.parts[shard]
            out[taken] = read_rows(
                part.filename, part.offset, rows[taken] - self.starts[shard], self.shape[1:], self.dtype
            )
        return out

    def shard_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.ends, rows, side="right")

    def _run(self, start: int, stop: int) -> np.ndarray:
        pieces = [
            self.parts[shard][max(start - first, 0) : stop - first]
            for shard, (first, end) in enumerate(zip(self.starts, self.ends, strict=True))
            if first < stop and end > start
        ]
        return np.concatenate(pieces) if pieces else np.empty((0, *self.shape[1:]), self.dtype)

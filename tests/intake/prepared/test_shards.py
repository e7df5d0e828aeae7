"""Prepared images in shards (classifier.intake.prepared.shards): where shards end, adding images changing
only the shards they fall into, reading them as one array, and memory bounded by a batch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from classifier.intake.prepared.arrays import load_prepared, save_prepared
from classifier.intake.prepared.shards import Shards, shard_ends, take_rows, whole_file_map
from tests.support.paths import ROOT

SIZE = 8
ROW = SIZE * SIZE * 3


def keys(count: int, prefix: str = "train/cat/cat") -> list[str]:
    return [f"{prefix}.{index:05d}.jpg" for index in range(count)]


def shards_of(names: list[str], ends: list[int]) -> list[tuple[str, ...]]:
    return [tuple(names[start:end]) for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def test_shards_hold_at_most_their_size_and_at_least_a_quarter_but_the_last():
    names = keys(5000)
    ends = shard_ends(names, ROW, 40 * ROW)  # at most 40 rows a shard
    lengths = np.diff([0, *ends])
    assert ends[-1] == 5000 and lengths.max() <= 40 and lengths[:-1].min() >= 10
    assert 15 <= lengths.mean() <= 30  # about half their most, on average
    assert shard_ends(names, ROW, 40 * ROW) == ends  # the same names: the same cuts
    assert shard_ends([], ROW, 40 * ROW) == [0]  # an empty split: one empty shard
    assert shard_ends(names[:3], ROW, 10**9) == [3]


@pytest.mark.parametrize("where", ["middle", "end"])
def test_adding_images_changes_only_the_shards_they_fall_into(where):
    names = keys(4000)
    added = keys(40, "train/cat/cat.02000a") if where == "middle" else keys(40, "train/cat/zz")
    grown = sorted([*names, *added])
    before = set(shards_of(names, shard_ends(names, ROW, 200 * ROW)))
    after = shards_of(grown, shard_ends(grown, ROW, 200 * ROW))
    changed = [shard for shard in after if shard not in before]
    assert len(after) > 30
    assert 1 <= len(changed) <= 3, len(changed)  # 1% more images: at most a few of the 30-odd shards
    assert {name for shard in changed for name in shard} >= set(added)


def test_shards_read_as_one_array_by_row_slice_and_rows(tmp_path):
    array = np.arange(23 * 2 * 2 * 3, dtype=np.uint8).reshape(23, 2, 2, 3)
    save_prepared("train", array, np.arange(23) % 2, tmp_path, shard_bytes=4 * 12)
    images, labels = load_prepared("train", tmp_path)
    assert len(images.files) > 3 and len(images) == 23 and images.shape == array.shape and images.dtype == np.uint8
    assert all(isinstance(part, np.memmap) for part in images.parts)
    np.testing.assert_array_equal(images[:], array)
    np.testing.assert_array_equal(np.asarray(images, dtype=np.float32), array.astype(np.float32))
    np.testing.assert_array_equal(images[5], array[5])
    np.testing.assert_array_equal(images[-1], array[-1])
    np.testing.assert_array_equal(images[3:17], array[3:17])
    np.testing.assert_array_equal(images[20:40], array[20:40])
    np.testing.assert_array_equal(images[1:20:3], array[1:20:3])
    rows = np.array([22, 0, 7, 7, 13])
    np.testing.assert_array_equal(images[rows], array[rows])
    np.testing.assert_array_equal(images[[4, 3]], array[[4, 3]])
    assert images[10:10].shape == (0, 2, 2, 3)
    np.testing.assert_array_equal(images.take(np.array([22, 0, 7])), array[[22, 0, 7]])  # read from the files
    assert images.take(np.array([], dtype=np.int64)).shape == (0, 2, 2, 3)
    with pytest.raises(IndexError):
        images[23]
    with pytest.raises(IndexError):
        images[np.array([1, 30])]
    with pytest.raises(FileNotFoundError, match="run `dvc repro prepare` first"):
        Shards(tmp_path / "nothing")


def test_rows_of_a_memory_mapped_file_are_read_from_the_file_and_other_arrays_indexed(tmp_path):
    features = np.random.default_rng(0).normal(size=(50, 3, 4)).astype(np.float32)
    np.save(tmp_path / "features.npy", features)
    mapped = np.load(tmp_path / "features.npy", mmap_mode="r")
    rows = np.array([1, 4, 4, 49])
    assert whole_file_map(mapped) and not whole_file_map(mapped[10:]) and not whole_file_map(features)
    np.testing.assert_array_equal(take_rows(mapped, rows), features[rows])
    np.testing.assert_array_equal(take_rows(mapped[10:], rows[:3]), features[10:][rows[:3]])
    np.testing.assert_array_equal(take_rows(features, rows), features[rows])


MEASURE = """
import sys
from pathlib import Path
from classifier.intake.prepared.arrays import load_prepared
from classifier.intake.prepared.shards import release
def peak_kib():  # this process's own peak (ru_maxrss would carry the parent's over fork)
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])
images, labels = load_prepared("train", Path(sys.argv[1]))
start = peak_kib()
for first in range(0, len(images), 256):  # as extract_features reads a split: in order, released every 1,024 images
    batch = images[first : first + 256].astype("float32")
    if first % 1024 == 768:
        release(images)
print((peak_kib() - start) // 1024, len(images.files))
"""


def test_reading_a_sharded_split_keeps_memory_bounded_by_batches(tmp_path):
    count, size = 12000, 64  # 141 MiB of pixels in shards of at most 8 MiB
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    save_prepared("train", images, np.arange(count) % 2, tmp_path, shard_bytes=8 * 2**20)
    del images
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    grown_mib, shards = map(int, result.stdout.split())
    assert shards >= 18
    assert grown_mib < 70, f"peak memory grew {grown_mib} MiB reading a 141 MiB split"  # without release: 170

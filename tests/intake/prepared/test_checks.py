"""classifier/intake/prepared/checks.py: .npy headers against file sizes, a split's shards against their tables
and labels (the hostile cases: tests/hostile/test_shards_checked_where_read.py), and rows that are not finite."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from classifier.core.errors import StageError
from classifier.intake.prepared.arrays import save_prepared
from classifier.intake.prepared.checks import FIX, checked_shards, non_finite_rows, npy_header
from tests.support.files import save_array


def test_a_header_of_either_version_gives_shape_type_and_data_offset(tmp_path):
    array = np.zeros((3, 2, 2, 3), np.uint8)
    for version in ((1, 0), (2, 0)):
        path = tmp_path / f"v{version[0]}.npy"
        with open(path, "wb") as file:
            np.lib.format.write_array(file, array, version=version)
        header = npy_header(path)
        assert (header.shape, header.dtype, header.fortran_order) == ((3, 2, 2, 3), np.uint8, False)
        assert header.offset + header.data_bytes == path.stat().st_size


def test_a_missing_file_and_an_array_of_objects_are_refused(tmp_path):
    with pytest.raises(StageError, match=f"^{tmp_path}/none.npy is missing: {FIX}"):
        npy_header(tmp_path / "none.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(StageError, match="holds Python objects, not numbers"):
        npy_header(tmp_path / "objects.npy")


def test_a_shard_left_empty_and_tables_whose_fields_hold_line_breaks_pass(tmp_path):
    images = np.zeros((5, 2, 2, 3), np.uint8)
    save_prepared("train", images, np.zeros(5, np.int32), tmp_path, shard_bytes=8 * 12)
    folder = tmp_path / "train"
    shards = sorted(folder.glob("images-*.npy"))
    table = shards[0].with_suffix(".csv")
    rows = list(csv.reader(open(table, newline="")))
    rows[1][2] = "a path\nover two lines"  # as csv writes a quoted field
    with open(table, "w", newline="") as file:
        csv.writer(file).writerows(rows)
    save_array(folder / f"images-{len(shards):05d}.npy", np.zeros((0, 2, 2, 3), np.uint8))  # every image skipped
    (folder / f"images-{len(shards):05d}.csv").write_text("label,class,path,source\n")
    assert checked_shards(folder) == [*shards, folder / f"images-{len(shards):05d}.npy"]


def test_a_shard_in_fortran_order_is_refused(tmp_path):
    save_prepared("train", np.zeros((2, 2, 2, 3), np.uint8), np.zeros(2, np.int32), tmp_path)
    save_array(tmp_path / "train/images-00000.npy", np.asfortranarray(np.zeros((2, 2, 2, 3), np.uint8)))
    with pytest.raises(StageError, match="not images as prepare writes them"):
        checked_shards(tmp_path / "train")


def test_rows_that_are_not_finite_are_counted_a_chunk_at_a_time(tmp_path):
    assert non_finite_rows(np.full((4, 3), 255, np.uint8)) == 0
    features = np.zeros((50, 2, 3), np.float32)
    features[[3, 17, 49], 1, 2] = [np.nan, np.inf, -np.inf]
    features[17, 0, 0] = np.nan  # two in one row: one row
    np.save(tmp_path / "f.npy", features)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    assert non_finite_rows(features) == non_finite_rows(mapped, chunk_bytes=7 * 24) == 3

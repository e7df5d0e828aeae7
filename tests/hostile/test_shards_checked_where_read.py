"""Prepared shards read without checking them: every stage that reads data/prepared checks a split's shards
against each other, their tables (images-NNNNN.csv) and labels.npy, from headers and sizes, before any row
is used, and refuses a mismatch in one line naming the file and the fix (`dvc checkout data/prepared`, or
`dvc repro prepare`), writing nothing. Each case damages one split of a tiny workspace whose training split is
cut into several shards (tests.support.features), then runs the stage's main() as its script runs it.

 1. a shard missing in the middle (a gap in the numbering)                  -> refused, naming it
 2. the last shard missing, its table left                                   -> refused, naming it
 3. the last shard and its table missing, labels.npy as it was: the case
    that wrote 18 feature rows beside 21 labels and exited 0                -> refused: the labels' count against
                                                                               the shards'
 4. a shard cut short (a copy that stopped), a shard with bytes after its
    data (another run's, longer, under this header)                          -> refused: its size against its header
 5. a shard of another image size, a shard of float32 pixels                -> refused, naming it and the first
 6. a table missing, a table listing one row fewer than its shard           -> refused, naming the table
 7. labels.npy cut short, labels.npy of floats, labels of another run
    (a label more)                                                           -> refused, naming labels.npy
 8. a shard that is not an .npy file, a stray images-0001.npy              -> refused, naming it
 9. each reader (extract_features, train_frozen, fine_tune, train_scratch,
    evaluate, explain) on a split whose labels outnumber its shards         -> the same one line, nothing written
10. good shards, of several files                                            -> extract_features writes as many
                                                                                feature rows as labels
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.intake.prepared.arrays import save_prepared
from stages import evaluate, explain, extract_features, fine_tune, train_frozen, train_scratch
from tests.support.features import COUNTS, SIZE, features_workspace
from tests.support.files import save_array
from tests.support.stages import refused

FIX = "run `dvc checkout data/prepared` to restore the arrays DVC recorded, or `dvc repro prepare` to make them again"
TRAIN = Path("data/prepared/train")
ROW = SIZE * SIZE * 3


@pytest.fixture
def workspace(work) -> Path:
    """The tiny features workspace, its training split (10 images) re-cut into shards of 2 to 8 rows."""
    features_workspace(work)
    images = np.concatenate([np.load(path) for path in sorted(TRAIN.glob("images-*.npy"))])
    labels = np.load(TRAIN / "labels.npy")
    for path in TRAIN.iterdir():
        path.unlink()
    save_prepared("train", images, labels, shard_bytes=8 * ROW)
    assert len(shards()) >= 3
    return work


def shards() -> list[Path]:
    return sorted(TRAIN.glob("images-*.npy"))


def extract_error(work: Path) -> str:
    """extract_features' one line, once it is checked that nothing in the workspace changed."""
    return refused(extract_features.main, "stages/extract_features.py", work)


def rows(path: Path) -> int:
    return len(np.load(path, mmap_mode="r"))


# --- 1-3: a shard missing ----------------------------------------------------------------------------------------


def test_a_shard_missing_in_the_middle(workspace):
    shards()[1].unlink()
    assert extract_error(workspace) == (
        f"data/prepared/train/images-00001.npy is missing (the shards go up to {len(shards()):05d}): {FIX}"
    )


def test_the_last_shard_missing_with_its_table_left(workspace):
    last = shards()[-1]
    last.unlink()
    assert extract_error(workspace) == f"{last} is missing ({last.with_suffix('.csv').name} lists its rows): {FIX}"


def test_the_last_shard_and_its_table_missing(workspace):
    last = shards()[-1]
    held = COUNTS["train"] - rows(last)
    last.unlink()
    last.with_suffix(".csv").unlink()
    assert extract_error(workspace) == (
        f"data/prepared/train/labels.npy holds 10 labels, the shards of data/prepared/train {held} images: {FIX}"
    )


# --- 4-5: a shard damaged ------------------------------------------------------------------------------------------


def test_a_shard_cut_short(workspace):
    shard = shards()[0]
    count, data = rows(shard), shard.read_bytes()
    shard.write_bytes(data[:-100])
    assert extract_error(workspace) == (
        f"{shard} is cut short: its header says {count}x{SIZE}x{SIZE}x3 uint8 ({len(data):,} bytes with the "
        f"header), the file holds {len(data) - 100:,} bytes: {FIX}"
    )


def test_a_shard_with_bytes_after_its_data(workspace):
    shard = shards()[1]
    with open(shard, "ab") as file:
        file.write(bytes(ROW))
    assert extract_error(workspace).startswith(f"{shard} is longer than its header says: ")


def test_a_shard_of_another_image_size(workspace):
    shard = shards()[1]
    save_array(shard, np.zeros((rows(shard), 16, 16, 3), np.uint8))
    assert extract_error(workspace) == (f"{shard} holds images of 16x16x3, images-00000.npy of {SIZE}x{SIZE}x3: {FIX}")


def test_a_shard_of_float_pixels(workspace):
    shard = shards()[0]
    save_array(shard, np.load(shard).astype(np.float32))
    assert extract_error(workspace) == (
        f"{shard} holds {rows(shard)}x{SIZE}x{SIZE}x3 float32, not images as prepare writes them "
        f"(rows x size x size x 3, uint8): {FIX}"
    )


# --- 6: tables ---------------------------------------------------------------------------------------------------


def test_a_table_missing(workspace):
    table = shards()[1].with_suffix(".csv")
    table.unlink()
    assert extract_error(workspace) == f"{table} is missing (the table of {shards()[1].name}): {FIX}"


def test_a_table_listing_a_row_fewer_than_its_shard(workspace):
    shard = shards()[2]
    table = shard.with_suffix(".csv")
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(lines[:-1]))
    assert extract_error(workspace) == (
        f"{table} lists {rows(shard) - 1} images, {shard.name} holds {rows(shard)}: {FIX}"
    )


# --- 7: labels ---------------------------------------------------------------------------------------------------


def test_labels_cut_short(workspace):
    labels = TRAIN / "labels.npy"
    labels.write_bytes(labels.read_bytes()[:-4])
    assert extract_error(workspace).startswith(f"{labels} is cut short: its header says 10 ")


def test_labels_of_floats(workspace):
    save_array(TRAIN / "labels.npy", np.arange(10) % 2 * 1.0)
    assert extract_error(workspace) == f"{TRAIN / 'labels.npy'} holds 10 float64, not integer labels: {FIX}"


def test_labels_of_another_run(workspace):
    save_array(TRAIN / "labels.npy", np.arange(11) % 2)
    assert extract_error(workspace) == (
        f"data/prepared/train/labels.npy holds 11 labels, the shards of data/prepared/train 10 images: {FIX}"
    )


# --- 8: files that are not shards --------------------------------------------------------------------------------


def test_a_shard_that_is_not_an_npy_file(workspace):
    shards()[1].write_text("not an array\n")
    message = extract_error(workspace)
    assert message.startswith(f"{shards()[1]} is not a NumPy array file (") and message.endswith(f"): {FIX}")


def test_a_stray_file_named_like_a_shard(workspace):
    save_array(TRAIN / "images-0001.npy", np.zeros((1, SIZE, SIZE, 3), np.uint8))
    assert extract_error(workspace) == (
        f"{TRAIN / 'images-0001.npy'} is not a shard that prepare writes (images-00000.npy, ...): {FIX}"
    )


# --- 9: every reader ---------------------------------------------------------------------------------------------

READERS = {  # stage: (its main, the split it reads first)
    "extract_features": (extract_features.main, "train"),
    "train_frozen": (train_frozen.main, "train"),
    "fine_tune": (fine_tune.main, "train"),
    "train_scratch": (train_scratch.main, "train"),
    "evaluate": (evaluate.main, "test"),
    "explain": (explain.main, "test"),
}


@pytest.mark.parametrize("stage", READERS)
def test_every_reader_checks_the_shards(workspace, stage, monkeypatch):
    main, split = READERS[stage]
    monkeypatch.setattr(sys, "argv", [f"{stage}.py"])  # train_scratch reads its arguments
    for name, count in COUNTS.items():
        save_array(Path(f"data/prepared/{name}/labels.npy"), np.arange(count + 1) % 2)
    assert refused(main, f"stages/{stage}.py", workspace) == (
        f"data/prepared/{split}/labels.npy holds {COUNTS[split] + 1} labels, the shards of data/prepared/{split} "
        f"{COUNTS[split]} images: {FIX}"
    )


# --- 10: good shards -----------------------------------------------------------------------------------------------


def test_good_shards_give_as_many_feature_rows_as_labels(workspace):
    extract_features.main()
    for split, count in COUNTS.items():
        features = np.load(f"data/features/{split}_features.npy", mmap_mode="r")
        assert len(features) == len(np.load(f"data/features/{split}_labels.npy")) == count

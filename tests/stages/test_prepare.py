"""Stage `prepare` (stages/prepare.py): every split decoded into shards of arrays with their tables,
bad images failing the stage or skipped (data.on_bad_image), and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.core.errors import StageError
from classifier.intake.decoding import decode_image
from classifier.intake.prepared.arrays import load_prepared, read_classes
from classifier.intake.tables import prepared_rows
from stages import prepare, split
from tests.support.files import encode, jpeg, noise_jpeg, read_csv
from tests.support.params import write_params

RED, BLUE = (220, 20, 20), (20, 20, 220)
SIZE = 48
RANGES = {"train": [0, 4], "validation": [4, 6], "test": [6, 8]}
CLASSES = ("cat", "dog")


def setup_project(work: Path, raw: Path, on_bad_image="fail", corrupt=()) -> Path:
    """Raw cats (red) and dogs (blue) 0-7 of assorted sizes, some replaced by `corrupt`, params.yaml for
    them in the workspace (the current folder), `split` run; the workspace."""
    for label, color in zip(CLASSES, (RED, BLUE)):
        for i in range(8):
            (raw / f"{label}.{i}.jpg").write_bytes(jpeg(size=(40 + 3 * i, 30 + i), color=color))
    for name, data in dict(corrupt).items():
        (raw / name).write_bytes(data)
    changes = {
        "data.raw_dir": str(raw),
        "data.image_size": SIZE,
        "data.on_bad_image": on_bad_image,
        "data.split": RANGES,
    }
    write_params(work, changes)
    split.main()
    return work


def check_manifest_maps_to_arrays(work: Path) -> list[dict]:
    """Every split's shard tables, row by row beside its arrays; all their rows."""
    rows = []
    for name in ("train", "validation", "test"):
        images, labels = load_prepared(name)
        mine = prepared_rows(name)
        assert len(mine) == len(images)
        for index, row in enumerate(mine):
            expected = decode_image((work / "data" / "split" / row["path"]).read_bytes(), SIZE)
            assert np.array_equal(images[index], expected), row
            assert labels[index] == read_classes().index(row["label"])
        rows += mine
    return rows


def test_prepare_writes_arrays_labels_and_manifest(work, raw):
    setup_project(work, raw)
    prepare.main()

    expected_counts = {"train": 8, "validation": 4, "test": 4}
    for name, n in expected_counts.items():
        images, labels = load_prepared(name)
        assert [path.name for path in images.files] == ["images-00000.npy"]  # data.shard_mb: one shard at this size
        images = images[:]
        assert images.shape == (n, SIZE, SIZE, 3)
        assert images.dtype == np.uint8
        assert labels.dtype == np.int32
        split_rows = [row for row in read_csv(work / "data" / "split" / "manifest.csv") if row["split"] == name]
        assert labels.tolist() == [read_classes().index(row["label"]) for row in split_rows]
        assert labels.tolist() == [0] * (n // 2) + [1] * (n // 2)
        means = images.reshape(n, -1, 3).mean(axis=1)
        assert ((means[:, 0] > means[:, 2]) == (labels == 0)).all()  # cats red, dogs blue

    rows = check_manifest_maps_to_arrays(work)
    assert len(rows) == 16
    assert list(rows[0]) == ["label", "class", "path", "source"]
    assert sorted(path.name for path in (work / "data/prepared/train").iterdir()) == [
        "images-00000.csv",
        "images-00000.npy",
        "labels.npy",
    ]
    assert read_csv(work / "data" / "prepared" / "skipped.csv") == []
    report = json.loads((work / "metrics" / "prepare.json").read_text())
    assert report == {name: {"images": n, "skipped": 0} for name, n in expected_counts.items()}


def test_prepare_fails_on_a_bad_image_by_default(work, raw):
    setup_project(work, raw, corrupt={"cat.2.jpg": b"\x00not a jpeg" * 50, "dog.5.jpg": noise_jpeg()[:600]})
    with pytest.raises(StageError) as info:
        prepare.main()
    message = str(info.value)
    assert "2 images cannot be decoded" in message
    assert "data/split/train/cat/cat.2.jpg" in message
    assert "data/split/validation/dog/dog.5.jpg" in message
    assert "cat.1.jpg" not in message
    assert "on_bad_image: skip" in message
    assert not (work / "metrics" / "prepare.json").exists()
    assert not list((work / "data" / "prepared").rglob("images-*.csv"))  # no shard tables: no record of the arrays


def test_prepare_skips_a_bad_image_when_asked(work, raw):
    setup_project(work, raw, on_bad_image="skip", corrupt={"cat.2.jpg": b"\x00not a jpeg" * 50})
    prepare.main()

    images, labels = load_prepared("train")
    assert images.shape == (7, SIZE, SIZE, 3)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    rows = check_manifest_maps_to_arrays(work)
    assert len(rows) == 15
    assert not any(row["path"] == "train/cat/cat.2.jpg" for row in rows)

    skipped = read_csv(work / "data" / "prepared" / "skipped.csv")
    assert len(skipped) == 1
    assert skipped[0]["path"] == "train/cat/cat.2.jpg"
    assert (skipped[0]["split"], skipped[0]["label"], Path(skipped[0]["source"]).name) == ("train", "cat", "cat.2.jpg")
    assert skipped[0]["error"]

    report = json.loads((work / "metrics" / "prepare.json").read_text())
    assert report["train"] == {"images": 7, "skipped": 1, "skipped_by_class": {"cat": 1}}
    assert report["validation"] == {"images": 4, "skipped": 0}
    assert report["test"] == {"images": 4, "skipped": 0}


def test_prepare_without_a_split(work):
    write_params(work)
    with pytest.raises(StageError, match=r"data/split/manifest.csv is missing: run `dvc repro split` first"):
        prepare.main()


def test_prepare_refuses_a_split_left_empty_by_skipping(work, raw):
    broken = {f"{label}.{i}.jpg": b"\x00not a jpeg" for label in CLASSES for i in (6, 7)}  # the whole test split
    setup_project(work, raw, on_bad_image="skip", corrupt=broken)
    with pytest.raises(StageError, match=r"no decodable image left in split\(s\) test; see data/prepared/skipped.csv"):
        prepare.main()
    assert len(read_csv(work / "data" / "prepared" / "skipped.csv")) == 4


def test_prepare_lists_a_float_image_with_its_message(work, raw):
    depth = encode(Image.fromarray(np.full((8, 8), 0.5, np.float32)), "TIFF")
    setup_project(work, raw, corrupt={"cat.3.jpg": depth})
    with pytest.raises(StageError) as info:
        prepare.main()
    assert "data/split/train/cat/cat.3.jpg: 32-bit float image (mode F): convert it to 8-bit RGB" in str(info.value)


def test_a_new_run_replaces_the_earlier_arrays_whole(work, raw):
    setup_project(work, raw)
    earlier = {"data/prepared/train/images-00007.npy": b"an earlier run's shard", "data/prepared/extra.txt": b"x"}
    for name, data in earlier.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_bytes(data)
    prepare.main()
    assert sorted(path.name for path in (work / "data/prepared").iterdir()) == [
        "skipped.csv",
        "test",
        "train",
        "validation",
    ]
    assert sorted(path.name for path in (work / "data/prepared/train").iterdir()) == [
        "images-00000.csv",
        "images-00000.npy",
        "labels.npy",
    ]
    assert sorted(path.name for path in (work / "data").iterdir()) == ["classes.json", "prepared", "split"]
    assert sorted(path.name for path in (work / "metrics").iterdir()) == ["prepare.json", "split.json"]

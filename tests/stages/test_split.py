"""Stage `split` (stages/split.py): choosing classes and splits in every layout of data.raw_dir, copying
them under data/split/ with a manifest, data/classes.json and metrics/split.json, and the one line it
stops with. How the split is chosen: tests/intake/raw/test_split.py."""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.core.errors import ParamsError, RawDataError
from classifier.core.paths import CLASSES_FILE, SPLIT_DIR, SPLIT_MANIFEST
from stages import split
from tests.support.files import kaggle_jpeg, png, read_csv, save_array, write_files, zip_bytes
from tests.support.params import split_params, write_params
from tests.support.stages import stage_error

RANGES = {"train": [0, 3], "validation": [3, 5], "test": [5, 6]}
FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}
FLOWERS = ("daisy", "roses", "tulips")
TINY = (2, 2)  # the side of the PNGs here: their bytes decide their split, where data.split gives fractions


def make_raw(folder: Path, indices, labels=("cat", "dog")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"{label}.{index}.jpg": kaggle_jpeg(label, index) for label in labels for index in indices}
    return write_files(folder, files)


def make_folders(folder: Path, counts: dict[str, range]) -> Path:
    """A folder per class, <class>/<i>.png, every image distinct."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_files(folder, {
        f"{name}/{i}.png": png(1000 * number + i, size=TINY)
        for number, (name, indices) in enumerate(counts.items())
        for i in indices
    })  # fmt: skip


def splits_of(rows: list[dict]) -> dict[str, str]:
    return {row["source"]: row["split"] for row in rows}


def run_split(work: Path, raw: Path, shares=RANGES, **data) -> list[dict]:
    write_params(work, split_params(raw, shares, **data))
    split.main()
    return read_csv(SPLIT_MANIFEST)


def fails(work: Path, raw: Path, shares=RANGES, **data) -> str:
    """The stage's one-line error; nothing was written."""
    write_params(work, split_params(raw, shares, **data))
    message = stage_error(split.main, "stages/split.py")
    assert not (work / "data").exists() and not (work / "metrics").exists()
    return message


def written(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work / SPLIT_DIR)): p.read_bytes() for p in (work / SPLIT_DIR).rglob("*") if p.is_file()}


# --- Kaggle's naming with index ranges ---------------------------------------------------------------------


def test_kaggle_end_to_end(work, raw):
    make_raw(raw, range(8))
    rows = run_split(work, raw)

    assert json.loads((work / "metrics" / "split.json").read_text()) == {
        "train": {"cat": 3, "dog": 3},
        "validation": {"cat": 2, "dog": 2},
        "test": {"cat": 1, "dog": 1},
    }
    assert json.loads(CLASSES_FILE.read_text()) == ["cat", "dog"]
    with open(SPLIT_MANIFEST, newline="") as file:
        assert next(csv.reader(file)) == ["split", "label", "class", "path", "source", "sha256"]
    assert [(row["split"], row["source"]) for row in rows[:4]] == [
        ("train", "cat.0.jpg"), ("train", "cat.1.jpg"), ("train", "cat.2.jpg"), ("train", "dog.0.jpg"),
    ]  # fmt: skip
    for row in rows:
        assert row["label"] == row["class"]
        assert row["path"] == f"{row['split']}/{row['label']}/{row['source']}"
        data = (SPLIT_DIR / row["path"]).read_bytes()
        assert data == (raw / row["source"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert {(r["split"], r["source"]) for r in rows} == {
        (name, f"{label}.{i}.jpg") for name, (a, b) in RANGES.items() for label in ("cat", "dog") for i in range(a, b)
    }
    assert set(written(work)) == {row["path"] for row in rows} | {"manifest.csv"}


def test_kaggle_from_a_zip(work, raw):
    members = {f"train/{label}.{i}.jpg": kaggle_jpeg(label, i) for label in ("cat", "dog") for i in range(6)}
    write_files(raw, {"train.zip": zip_bytes(members)})
    for row in run_split(work, raw):
        data = (SPLIT_DIR / row["path"]).read_bytes()
        assert row["source"].startswith("train.zip:train/")
        assert data == members[row["source"].removeprefix("train.zip:")]
        assert row["sha256"] == hashlib.sha256(data).hexdigest()


def test_extra_raw_images_change_nothing(work, raw):
    make_raw(raw, range(6))

    def run() -> tuple[bytes, dict[str, bytes]]:
        split.main()
        return SPLIT_MANIFEST.read_bytes(), written(work)

    write_params(work, split_params(raw, RANGES))
    first = run()
    make_raw(raw / "more", range(6, 40))  # beyond every range, in a subfolder
    with zipfile.ZipFile(raw / "extra.zip", "w") as archive:
        archive.writestr("train/cat.100.jpg", kaggle_jpeg("cat", 100))
    assert run() == first


def test_split_removes_stale_outputs(work, raw):
    stale = work / "data" / "split" / "train" / "cat" / "cat.999.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    run_split(work, make_raw(raw, range(6)))
    assert not stale.exists()
    assert (work / "data" / "split" / "train" / "cat" / "cat.0.jpg").exists()


def test_kaggle_with_fractions(work, raw):
    rows = run_split(work, make_raw(raw, range(40)), shares=FRACTIONS)
    assert len(rows) == 80
    assert {row["split"] for row in rows} == {"train", "validation", "test"}


def test_main_with_a_relative_raw_dir(work):
    make_raw(work / "data" / "raw", range(6))
    assert len(run_split(work, Path("data/raw"))) == 12


def test_main_with_too_few_images(work, raw):
    message = fails(work, make_raw(raw, range(4)))
    assert f"not in {raw}" in message


def test_only_one_kaggle_class(work, raw):
    message = fails(work, make_raw(raw, range(6), labels=("cat",)))
    assert "data.raw_dir holds 1 class (cat); a classifier needs at least 2" in message


def test_main_reports_a_missing_raw_dir_in_one_line(tmp_path, work):
    assert fails(work, tmp_path / "absent").startswith("data.raw_dir ")


def test_main_without_params_yaml(work):
    with pytest.raises(ParamsError, match="params.yaml not found"):
        split.main()


# --- fractions: by content, stable -------------------------------------------------------------------------


def test_a_folder_per_class_end_to_end(work, raw, capsys):
    make_folders(raw, {name: range(20) for name in FLOWERS})
    write_files(raw, {"LICENSE.txt": b"", "daisy/sub/x.png": png(9999, size=TINY)})
    rows = run_split(work, raw, shares=FRACTIONS)

    assert len(rows) == 61
    assert json.loads(CLASSES_FILE.read_text()) == list(FLOWERS)
    counts = json.loads((work / "metrics" / "split.json").read_text())
    assert list(counts) == ["train", "validation", "test"] and all(list(c) == list(FLOWERS) for c in counts.values())
    assert sum(n for c in counts.values() for n in c.values()) == 61
    for row in rows:
        assert row["label"] == row["class"] == row["source"].split("/")[0]
        assert row["path"] == f"{row['split']}/{row['label']}/{row['source'].split('/', 1)[1].replace('/', '__')}"
        assert (SPLIT_DIR / row["path"]).read_bytes() == (raw / row["source"]).read_bytes()
        assert row["sha256"] == hashlib.sha256((raw / row["source"]).read_bytes()).hexdigest()
    assert [row["path"].split("/", 1)[1] for row in rows if row["source"] == "daisy/sub/x.png"] == ["daisy/sub__x.png"]
    output = capsys.readouterr().out.splitlines()
    assert output[0] == (
        f"split: ignored 1 files in {raw} that are not images (.jpg .jpeg .png .bmp .gif .webp): LICENSE.txt"
    )
    per_split = ", ".join(f"{name} {sum(counts[name].values())}" for name in counts)
    assert output[1] == f"split: a folder per class: 61 images of 3 classes into data/split/ ({per_split})"
    assert output[2].startswith("split: warning: under 10 images of a class to judge it by (validation: daisy ")
    assert len(output) == 3


def test_fractions_are_roughly_respected(work, raw):
    rows = run_split(work, make_folders(raw, {"a": range(100), "b": range(100)}), shares=FRACTIONS)
    for name in ("a", "b"):
        per_split = {s: sum(1 for row in rows if row["class"] == name and row["split"] == s) for s in FRACTIONS}
        assert abs(per_split["train"] - 60) <= 15, per_split  # 3.1 standard deviations
        assert abs(per_split["validation"] - 20) <= 12, per_split
        assert abs(per_split["test"] - 20) <= 12, per_split


def test_adding_or_removing_images_moves_no_other_image(work, raw):
    make_folders(raw, {"a": range(60), "b": range(60)})
    before = splits_of(run_split(work, raw, shares=FRACTIONS))

    make_folders(raw / "a" / "new", {"more": range(5000, 5040)})  # 40 more images of class a
    after_adding = splits_of(run_split(work, raw, shares=FRACTIONS))
    assert len(after_adding) == 160
    assert {source: after_adding[source] for source in before} == before

    removed = [f"b/{i}.png" for i in range(0, 60, 3)]
    for source in removed:
        (raw / source).unlink()
    after_removing = splits_of(run_split(work, raw, shares=FRACTIONS))
    assert set(after_removing) == set(after_adding) - set(removed)
    assert {source: after_adding[source] for source in after_removing} == after_removing


def test_identical_images_share_a_split(work, raw):
    make_folders(raw, {"a": range(30), "b": range(30)})
    write_files(raw, {f"a/copy{i}.png": png(i, size=TINY) for i in range(30)})  # the same bytes as a/<i>.png
    splits = splits_of(run_split(work, raw, shares=FRACTIONS))
    assert all(splits[f"a/copy{i}.png"] == splits[f"a/{i}.png"] for i in range(30))


def test_a_class_too_small_for_a_split(work, raw):
    make_folders(raw, {"a": range(40), "b": range(2)})
    message = fails(work, raw, shares=FRACTIONS)
    assert "class 'b' has too few images for a train, validation and test split (train " in message
    assert "add images of it, or leave it out with data.classes" in message


def test_index_ranges_need_kaggle_naming(work, raw):
    message = fails(work, make_folders(raw, {"a": range(5), "b": range(5)}), shares=RANGES)
    assert "data.split gives index ranges [start, end), which only Kaggle's cat.N.jpg naming has" in message
    assert "give fractions of each class instead, e.g. train: 0.8, validation: 0.1, test: 0.1" in message


def test_nothing_is_written_before_every_check_passed(work, raw):
    run_split(work, make_folders(raw, {"a": range(30), "b": range(30)}), shares=FRACTIONS)
    before = written(work)
    make_folders(raw, {"c": range(1)})
    write_params(work, split_params(raw, FRACTIONS))
    with pytest.raises(RawDataError, match="class 'c' has too few images"):
        split.main()
    assert written(work) == before


# --- split folders and arrays ------------------------------------------------------------------------------


def test_missing_validation_is_carved_out_of_train(work, raw):
    make_folders(raw / "train", {"a": range(50), "b": range(50)})
    make_folders(raw / "test", {"a": range(500, 505), "b": range(500, 505)})
    rows = run_split(work, raw, shares=FRACTIONS)
    by_split = {s: {row["source"] for row in rows if row["split"] == s} for s in FRACTIONS}
    assert by_split["test"] == {f"test/{name}/{i}.png" for name in "ab" for i in range(500, 505)}
    assert by_split["validation"] and all(source.startswith("train/") for source in by_split["validation"])
    assert 10 <= len(by_split["validation"]) <= 35  # 0.2 of 100, only out of train
    assert len(by_split["train"]) + len(by_split["validation"]) == 100


def test_a_complete_split_is_kept_whatever_data_split_says(work, raw):
    for number, name in enumerate(("train", "val", "test")):  # other images in each split: no copy leaks
        make_folders(raw / name, {"a": range(10 * number, 10 * number + 2), "b": range(10 * number, 10 * number + 2)})
    rows = run_split(work, raw, shares=RANGES)
    assert {(row["split"], row["source"].split("/")[0]) for row in rows} == {
        ("train", "train"), ("validation", "val"), ("test", "test"),
    }  # fmt: skip
    assert {row["path"] for row in rows if row["split"] == "validation"} == {
        f"validation/{c}/{i}.png" for c in "ab" for i in range(10, 12)
    }


def test_a_class_missing_from_a_given_split(work, raw):
    for name in ("train", "validation", "test"):
        make_folders(raw / name, {"a": range(2), **({"b": range(2)} if name != "test" else {})})
    message = fails(work, raw, shares=FRACTIONS)
    assert (
        "class 'b' has too few images for a train, validation and test split (train 2, validation 2, test 0)" in message
    )


def test_arrays_end_to_end(work, raw):
    train = np.random.default_rng(0).integers(0, 256, (60, 4, 4, 3), dtype=np.uint8)
    save_array(raw / "x_train.npy", train)
    labels = [str(i % 3 * 5) for i in range(60)]  # 0, 5, 10: sorted as numbers
    (raw / "y_train.csv").write_text("fine_labels\n" + "\n".join(labels) + "\n")
    rows = run_split(work, raw, shares=FRACTIONS, label_column="fine_labels")

    assert json.loads(CLASSES_FILE.read_text()) == ["0", "5", "10"]
    assert len(rows) == 60
    for row in rows:
        number = int(row["source"].removeprefix("x_train.npy:"))
        assert row["class"] == labels[number]
        assert row["path"] == f"{row['split']}/{row['class']}/{row['class']}.{number}.png"
        assert np.array_equal(np.asarray(Image.open(SPLIT_DIR / row["path"])), train[number])


def test_an_unsafe_class_name_from_a_labels_table(work, raw):
    save_array(raw / "images.npy", np.zeros((4, 2, 2), np.uint8))
    (raw / "labels.csv").write_text("label\na/b\nc\na/b\nc\n")
    assert "the class or group name 'a/b' cannot be a folder name" in fails(work, raw, shares=FRACTIONS)


# --- classes and groups ------------------------------------------------------------------------------------


def test_data_classes_picks_and_orders(work, raw):
    make_folders(raw, {name: range(30) for name in FLOWERS})
    rows = run_split(work, raw, shares=FRACTIONS, classes=["tulips", "daisy"])
    assert json.loads(CLASSES_FILE.read_text()) == ["tulips", "daisy"]
    assert {row["class"] for row in rows} == {"tulips", "daisy"}
    assert [row["label"] for row in rows if row["split"] == "train"][:1] == ["tulips"]  # label order
    assert all(list(c) == ["tulips", "daisy"] for c in json.loads(Path("metrics/split.json").read_text()).values())


def test_an_unknown_class_in_data_classes(work, raw):
    make_folders(raw, {name: range(9) for name in FLOWERS})
    message = fails(work, raw, shares=FRACTIONS, classes=["daisy", "rose"])
    assert message == (
        "data.classes names 'rose', which data.raw_dir does not hold; the classes found are: daisy, roses, tulips"
    )


def test_class_groups_become_the_labels(work, raw, capsys):
    make_folders(raw, {name: range(30) for name in (*FLOWERS, "sunflowers")})
    groups = {"red": ["roses", "tulips"], "white": ["daisy"]}
    rows = run_split(work, raw, shares=FRACTIONS, class_groups=groups)

    assert json.loads(CLASSES_FILE.read_text()) == ["red", "white"]
    assert "split: data.class_groups leaves out 1 classes: sunflowers" in capsys.readouterr().out
    assert {row["class"] for row in rows} == set(FLOWERS)
    for row in rows:
        assert row["label"] == ("white" if row["class"] == "daisy" else "red")
        name = row["source"].split("/")[1]
        assert row["path"] == f"{row['split']}/{row['label']}/{row['class']}__{name}"  # 0.png of roses and of tulips
    counts = json.loads(Path("metrics/split.json").read_text())
    assert sum(counts[s]["red"] for s in counts) == 60


def test_an_unknown_class_in_a_group(work, raw):
    make_folders(raw, {name: range(9) for name in FLOWERS})
    message = fails(work, raw, shares=FRACTIONS, class_groups={"red": ["roses", "poppies"], "white": ["daisy"]})
    assert "data.class_groups.red names 'poppies', which data.raw_dir does not hold" in message
    assert "the classes found are: daisy, roses, tulips" in message


def test_a_single_class_found(work, raw):
    make_folders(raw, {"daisy": range(9)})
    assert "data.raw_dir holds 1 class (daisy); a classifier needs at least 2" in fails(work, raw, shares=FRACTIONS)


def test_names_that_collide_in_a_group_are_told_apart(work, raw):
    write_files(
        raw, {"a/b__c.png": png(1, size=TINY), "a__b/c.png": png(2, size=TINY), "z/1.png": png(3, size=TINY)}
    )  # both a__b__c.png
    write_files(
        raw,
        {f"{c}/{i}.png": png(100 * n + i, size=TINY) for n, c in enumerate(("a", "a__b", "z"), 1) for i in range(40)},
    )
    rows = run_split(work, raw, shares=FRACTIONS, class_groups={"g": ["a", "a__b"], "h": ["z"]})
    first, second = (next(row for row in rows if row["source"] == source) for source in ("a/b__c.png", "a__b/c.png"))
    assert first["path"] != second["path"]
    assert len({row["path"] for row in rows}) == len(rows)

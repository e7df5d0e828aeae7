"""Stage `split`: choosing classes and splits, and copying them under data/split/ with a manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from test_raw_images import jpeg, png, write_files, zip_bytes

from classifier.core.cli import run_stage
from classifier.core.layout import CLASSES_FILE, SPLIT_DIR, SPLIT_MANIFEST, SPLITS
from classifier.core.params import ParamsError
from classifier.intake.collection import RawImage
from classifier.intake.raw_files import RawDataError
from classifier.intake.split import balance_warnings, select_ranges, unique_path
from stages import split

REPO = Path(__file__).resolve().parents[2]
RANGES = {"train": (0, 3), "validation": (3, 5), "test": (5, 6)}
FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}
FLOWERS = ("daisy", "roses", "tulips")


def kaggle_jpeg(label: str, index: int) -> bytes:
    """A distinct tiny JPEG per image, so copies can be told apart by their bytes."""
    return jpeg((index * 20 % 256, 40 if label == "cat" else 200, 90))


def make_raw(folder: Path, indices, labels=("cat", "dog")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"{label}.{index}.jpg": kaggle_jpeg(label, index) for label in labels for index in indices}
    return write_files(folder, files)


def make_folders(folder: Path, counts: dict[str, range]) -> Path:
    """A folder per class, <class>/<i>.png, every image distinct."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_files(folder, {
        f"{name}/{i}.png": png(1000 * number + i)
        for number, (name, indices) in enumerate(counts.items())
        for i in indices
    })  # fmt: skip


def fake_images(counts: dict[str, int]) -> list[RawImage]:
    def image(label, i):
        read = lambda: kaggle_jpeg(label, i)  # noqa: E731
        return RawImage(label, f"{label}.{i}.jpg", f"{label}.{i}.jpg", f"{label}.{i}.jpg", read, read, index=i)

    return [image(label, i) for label, n in counts.items() for i in range(n)]


def read_manifest(path: Path = SPLIT_MANIFEST) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def splits_of(rows: list[dict]) -> dict[str, str]:
    return {row["source"]: row["split"] for row in rows}


def write_params(folder: Path, raw_dir: Path, shares=RANGES, classes=None, groups=None, label_column="label") -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["raw_dir"] = str(raw_dir)
    params["data"]["split"] = {
        name: list(share) if isinstance(share, tuple) else share for name, share in shares.items()
    }
    params["data"]["classes"] = classes
    params["data"]["class_groups"] = groups
    params["data"]["label_column"] = label_column
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_split(workdir: Path, raw_dir: Path, **params) -> list[dict]:
    write_params(workdir, raw_dir, **params)
    split.main()
    return read_manifest()


def fails(workdir: Path, raw_dir: Path, **params) -> str:
    """The stage's one-line error; nothing was written."""
    write_params(workdir, raw_dir, **params)
    with pytest.raises(SystemExit) as info:
        run_stage(split.main, "stages/split.py")
    message = str(info.value.code)
    assert message.startswith("split: error: ") and "\n" not in message
    assert not (workdir / "data").exists() and not (workdir / "metrics").exists()
    return message.removeprefix("split: error: ")


def written(workdir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(workdir / SPLIT_DIR)): p.read_bytes() for p in (workdir / SPLIT_DIR).rglob("*") if p.is_file()
    }


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    return tmp_path / "raw"


# --- Kaggle's naming with index ranges ----------------------------------------------------------------------


def test_select_ranges_takes_exactly_each_range_per_class():
    images = fake_images({"cat": 10, "dog": 10})
    selected = select_ranges(images, RANGES, "raw")

    chosen = {}
    for name, image in selected:
        chosen.setdefault(name, {}).setdefault(image.class_name, []).append(image.index)
    assert chosen == {
        "train": {"cat": [0, 1, 2], "dog": [0, 1, 2]},
        "validation": {"cat": [3, 4], "dog": [3, 4]},
        "test": {"cat": [5], "dog": [5]},
    }
    assert len(selected) == 12
    assert all(image in images for _, image in selected)


def test_select_ranges_with_ranges_that_skip_indices():
    ranges = {"train": (10, 12), "validation": (0, 1), "test": (20, 21)}
    selected = select_ranges(fake_images({"cat": 30, "dog": 30}), ranges, "raw")
    assert sorted((name, image.class_name, image.index) for name, image in selected) == sorted(
        [("train", label, i) for label in ("cat", "dog") for i in (10, 11)]
        + [("validation", label, 0) for label in ("cat", "dog")]
        + [("test", label, 20) for label in ("cat", "dog")]
    )


def test_missing_images_are_listed_with_what_is_there():
    images = fake_images({"cat": 4, "dog": 6})  # cats 0-3, dogs 0-5; ranges need 0-5
    with pytest.raises(RawDataError) as info:
        select_ranges(images, RANGES, "data/raw")
    message = str(info.value)
    assert "2 images that data.split asks for are not in data/raw" in message
    assert "cat.4.jpg (data.split.validation)" in message
    assert "cat.5.jpg (data.split.test)" in message
    assert "dog." not in message.split("It has")[0]  # every dog is there
    assert "4 cats (highest index 3)" in message
    assert "6 dogs (highest index 5)" in message
    assert "Narrow data.split in params.yaml" in message
    assert "kaggle competitions download" in message


def test_many_missing_images_are_summarised():
    with pytest.raises(RawDataError) as info:
        select_ranges(fake_images({"cat": 1, "dog": 1}), RANGES, "raw")
    message = str(info.value)
    assert "10 images" in message
    assert "and 5 more" in message
    assert message.count("(data.split.") == 5


def test_kaggle_end_to_end(workdir, raw_dir):
    make_raw(raw_dir, range(8))
    rows = run_split(workdir, raw_dir)

    assert json.loads((workdir / "metrics" / "split.json").read_text()) == {
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
        assert data == (raw_dir / row["source"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert {(r["split"], r["source"]) for r in rows} == {
        (name, f"{label}.{i}.jpg") for name, (a, b) in RANGES.items() for label in ("cat", "dog") for i in range(a, b)
    }
    assert set(written(workdir)) == {row["path"] for row in rows} | {"manifest.csv"}


def test_kaggle_from_a_zip(workdir, raw_dir):
    members = {f"train/{label}.{i}.jpg": kaggle_jpeg(label, i) for label in ("cat", "dog") for i in range(6)}
    write_files(raw_dir, {"train.zip": zip_bytes(members)})
    for row in run_split(workdir, raw_dir):
        data = (SPLIT_DIR / row["path"]).read_bytes()
        assert row["source"].startswith("train.zip:train/")
        assert data == members[row["source"].removeprefix("train.zip:")]
        assert row["sha256"] == hashlib.sha256(data).hexdigest()


def test_extra_raw_images_change_nothing(workdir, raw_dir):
    make_raw(raw_dir, range(6))

    def run() -> tuple[bytes, dict[str, bytes]]:
        split.main()
        return SPLIT_MANIFEST.read_bytes(), written(workdir)

    write_params(workdir, raw_dir)
    first = run()
    make_raw(raw_dir / "more", range(6, 40))  # beyond every range, in a subfolder
    with zipfile.ZipFile(raw_dir / "extra.zip", "w") as archive:
        archive.writestr("train/cat.100.jpg", kaggle_jpeg("cat", 100))
    assert run() == first


def test_split_removes_stale_outputs(workdir, raw_dir):
    stale = workdir / "data" / "split" / "train" / "cat" / "cat.999.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    run_split(workdir, make_raw(raw_dir, range(6)))
    assert not stale.exists()
    assert (workdir / "data" / "split" / "train" / "cat" / "cat.0.jpg").exists()


def test_kaggle_with_fractions(workdir, raw_dir):
    rows = run_split(workdir, make_raw(raw_dir, range(40)), shares=FRACTIONS)
    assert len(rows) == 80
    assert {row["split"] for row in rows} == {"train", "validation", "test"}


def test_main_with_a_relative_raw_dir(workdir):
    make_raw(workdir / "data" / "raw", range(6))
    assert len(run_split(workdir, Path("data/raw"))) == 12


def test_main_with_too_few_images(workdir, raw_dir):
    message = fails(workdir, make_raw(raw_dir, range(4)))
    assert f"not in {raw_dir}" in message


def test_only_one_kaggle_class(workdir, raw_dir):
    message = fails(workdir, make_raw(raw_dir, range(6), labels=("cat",)))
    assert "data.raw_dir holds 1 class (cat); a classifier needs at least 2" in message


def test_main_reports_a_missing_raw_dir_in_one_line(tmp_path, workdir):
    assert fails(workdir, tmp_path / "absent").startswith("data.raw_dir ")


def test_main_without_params_yaml(workdir):
    with pytest.raises(ParamsError, match="params.yaml not found"):
        split.main()


# --- fractions: by content, stable ----------------------------------------------------------------------------


def test_a_folder_per_class_end_to_end(workdir, raw_dir, capsys):
    make_folders(raw_dir, {name: range(20) for name in FLOWERS})
    write_files(raw_dir, {"LICENSE.txt": b"", "daisy/sub/x.png": png(9999)})
    rows = run_split(workdir, raw_dir, shares=FRACTIONS)

    assert len(rows) == 61
    assert json.loads(CLASSES_FILE.read_text()) == list(FLOWERS)
    counts = json.loads((workdir / "metrics" / "split.json").read_text())
    assert list(counts) == ["train", "validation", "test"] and all(list(c) == list(FLOWERS) for c in counts.values())
    assert sum(n for c in counts.values() for n in c.values()) == 61
    for row in rows:
        assert row["label"] == row["class"] == row["source"].split("/")[0]
        assert row["path"] == f"{row['split']}/{row['label']}/{row['source'].split('/', 1)[1].replace('/', '__')}"
        assert (SPLIT_DIR / row["path"]).read_bytes() == (raw_dir / row["source"]).read_bytes()
        assert row["sha256"] == hashlib.sha256((raw_dir / row["source"]).read_bytes()).hexdigest()
    assert [row["path"].split("/", 1)[1] for row in rows if row["source"] == "daisy/sub/x.png"] == ["daisy/sub__x.png"]
    output = capsys.readouterr().out.splitlines()
    assert output[0] == (
        f"split: ignored 1 files in {raw_dir} that are not images (.jpg .jpeg .png .bmp .gif .webp): LICENSE.txt"
    )
    per_split = ", ".join(f"{name} {sum(counts[name].values())}" for name in counts)
    assert output[1] == f"split: a folder per class: 61 images of 3 classes into data/split/ ({per_split})"
    assert output[2].startswith("split: warning: under 10 images of a class to judge it by (validation: daisy ")
    assert len(output) == 3


def test_fractions_are_roughly_respected(workdir, raw_dir):
    rows = run_split(workdir, make_folders(raw_dir, {"a": range(100), "b": range(100)}), shares=FRACTIONS)
    for name in ("a", "b"):
        per_split = {s: sum(1 for row in rows if row["class"] == name and row["split"] == s) for s in FRACTIONS}
        assert abs(per_split["train"] - 60) <= 15, per_split  # 3.1 standard deviations
        assert abs(per_split["validation"] - 20) <= 12, per_split
        assert abs(per_split["test"] - 20) <= 12, per_split


def test_adding_or_removing_images_moves_no_other_image(workdir, raw_dir):
    make_folders(raw_dir, {"a": range(60), "b": range(60)})
    before = splits_of(run_split(workdir, raw_dir, shares=FRACTIONS))

    make_folders(raw_dir / "a" / "new", {"more": range(5000, 5040)})  # 40 more images of class a
    after_adding = splits_of(run_split(workdir, raw_dir, shares=FRACTIONS))
    assert len(after_adding) == 160
    assert {source: after_adding[source] for source in before} == before

    removed = [f"b/{i}.png" for i in range(0, 60, 3)]
    for source in removed:
        (raw_dir / source).unlink()
    after_removing = splits_of(run_split(workdir, raw_dir, shares=FRACTIONS))
    assert set(after_removing) == set(after_adding) - set(removed)
    assert {source: after_adding[source] for source in after_removing} == after_removing


def test_identical_images_share_a_split(workdir, raw_dir):
    make_folders(raw_dir, {"a": range(30), "b": range(30)})
    write_files(raw_dir, {f"a/copy{i}.png": png(i) for i in range(30)})  # the same bytes as a/<i>.png
    splits = splits_of(run_split(workdir, raw_dir, shares=FRACTIONS))
    assert all(splits[f"a/copy{i}.png"] == splits[f"a/{i}.png"] for i in range(30))


def test_a_class_too_small_for_a_split(workdir, raw_dir):
    make_folders(raw_dir, {"a": range(40), "b": range(2)})
    message = fails(workdir, raw_dir, shares=FRACTIONS)
    assert "class 'b' has too few images for a train, validation and test split (train " in message
    assert "add images of it, or leave it out with data.classes" in message


def test_index_ranges_need_kaggle_naming(workdir, raw_dir):
    message = fails(workdir, make_folders(raw_dir, {"a": range(5), "b": range(5)}), shares=RANGES)
    assert "data.split gives index ranges [start, end), which only Kaggle's cat.N.jpg naming has" in message
    assert "give fractions of each class instead, e.g. train: 0.8, validation: 0.1, test: 0.1" in message


def test_nothing_is_written_before_every_check_passed(workdir, raw_dir):
    run_split(workdir, make_folders(raw_dir, {"a": range(30), "b": range(30)}), shares=FRACTIONS)
    before = written(workdir)
    make_folders(raw_dir, {"c": range(1)})
    write_params(workdir, raw_dir, shares=FRACTIONS)
    with pytest.raises(RawDataError, match="class 'c' has too few images"):
        split.main()
    assert written(workdir) == before


# --- split folders and arrays ------------------------------------------------------------------------------


def test_missing_validation_is_carved_out_of_train(workdir, raw_dir):
    make_folders(raw_dir / "train", {"a": range(50), "b": range(50)})
    make_folders(raw_dir / "test", {"a": range(500, 505), "b": range(500, 505)})
    rows = run_split(workdir, raw_dir, shares=FRACTIONS)
    by_split = {s: {row["source"] for row in rows if row["split"] == s} for s in FRACTIONS}
    assert by_split["test"] == {f"test/{name}/{i}.png" for name in "ab" for i in range(500, 505)}
    assert by_split["validation"] and all(source.startswith("train/") for source in by_split["validation"])
    assert 10 <= len(by_split["validation"]) <= 35  # 0.2 of 100, only out of train
    assert len(by_split["train"]) + len(by_split["validation"]) == 100


def test_a_complete_split_is_kept_whatever_data_split_says(workdir, raw_dir):
    for number, name in enumerate(("train", "val", "test")):  # other images in each split: no copy leaks
        make_folders(
            raw_dir / name, {"a": range(10 * number, 10 * number + 2), "b": range(10 * number, 10 * number + 2)}
        )
    rows = run_split(workdir, raw_dir, shares=RANGES)
    assert {(row["split"], row["source"].split("/")[0]) for row in rows} == {
        ("train", "train"), ("validation", "val"), ("test", "test"),
    }  # fmt: skip
    assert {row["path"] for row in rows if row["split"] == "validation"} == {
        f"validation/{c}/{i}.png" for c in "ab" for i in range(10, 12)
    }


def test_a_class_missing_from_a_given_split(workdir, raw_dir):
    for name in ("train", "validation", "test"):
        make_folders(raw_dir / name, {"a": range(2), **({"b": range(2)} if name != "test" else {})})
    message = fails(workdir, raw_dir, shares=FRACTIONS)
    assert (
        "class 'b' has too few images for a train, validation and test split (train 2, validation 2, test 0)" in message
    )


def save_array(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    path.write_bytes(buffer.getvalue())


def test_arrays_end_to_end(workdir, raw_dir):
    raw_dir.mkdir()
    train = np.random.default_rng(0).integers(0, 256, (60, 4, 4, 3), dtype=np.uint8)
    save_array(raw_dir / "x_train.npy", train)
    labels = [str(i % 3 * 5) for i in range(60)]  # 0, 5, 10: sorted as numbers
    (raw_dir / "y_train.csv").write_text("fine_labels\n" + "\n".join(labels) + "\n")
    rows = run_split(workdir, raw_dir, shares=FRACTIONS, label_column="fine_labels")

    assert json.loads(CLASSES_FILE.read_text()) == ["0", "5", "10"]
    assert len(rows) == 60
    for row in rows:
        number = int(row["source"].removeprefix("x_train.npy:"))
        assert row["class"] == labels[number]
        assert row["path"] == f"{row['split']}/{row['class']}/{row['class']}.{number}.png"
        assert np.array_equal(np.asarray(Image.open(SPLIT_DIR / row["path"])), train[number])


def test_an_unsafe_class_name_from_a_labels_table(workdir, raw_dir):
    raw_dir.mkdir()
    save_array(raw_dir / "images.npy", np.zeros((4, 2, 2), np.uint8))
    (raw_dir / "labels.csv").write_text("label\na/b\nc\na/b\nc\n")
    assert "the class or group name 'a/b' cannot be a folder name" in fails(workdir, raw_dir, shares=FRACTIONS)


# --- classes and groups ---------------------------------------------------------------------------------------


def test_data_classes_picks_and_orders(workdir, raw_dir):
    make_folders(raw_dir, {name: range(30) for name in FLOWERS})
    rows = run_split(workdir, raw_dir, shares=FRACTIONS, classes=["tulips", "daisy"])
    assert json.loads(CLASSES_FILE.read_text()) == ["tulips", "daisy"]
    assert {row["class"] for row in rows} == {"tulips", "daisy"}
    assert [row["label"] for row in rows if row["split"] == "train"][:1] == ["tulips"]  # label order
    assert all(list(c) == ["tulips", "daisy"] for c in json.loads(Path("metrics/split.json").read_text()).values())


def test_an_unknown_class_in_data_classes(workdir, raw_dir):
    make_folders(raw_dir, {name: range(9) for name in FLOWERS})
    message = fails(workdir, raw_dir, shares=FRACTIONS, classes=["daisy", "rose"])
    assert message == (
        "data.classes names 'rose', which data.raw_dir does not hold; the classes found are: daisy, roses, tulips"
    )


def test_class_groups_become_the_labels(workdir, raw_dir, capsys):
    make_folders(raw_dir, {name: range(30) for name in (*FLOWERS, "sunflowers")})
    groups = {"red": ["roses", "tulips"], "white": ["daisy"]}
    rows = run_split(workdir, raw_dir, shares=FRACTIONS, groups=groups)

    assert json.loads(CLASSES_FILE.read_text()) == ["red", "white"]
    assert "split: data.class_groups leaves out 1 classes: sunflowers" in capsys.readouterr().out
    assert {row["class"] for row in rows} == set(FLOWERS)
    for row in rows:
        assert row["label"] == ("white" if row["class"] == "daisy" else "red")
        name = row["source"].split("/")[1]
        assert row["path"] == f"{row['split']}/{row['label']}/{row['class']}__{name}"  # 0.png of roses and of tulips
    counts = json.loads(Path("metrics/split.json").read_text())
    assert sum(counts[s]["red"] for s in counts) == 60


def test_an_unknown_class_in_a_group(workdir, raw_dir):
    make_folders(raw_dir, {name: range(9) for name in FLOWERS})
    message = fails(workdir, raw_dir, shares=FRACTIONS, groups={"red": ["roses", "poppies"], "white": ["daisy"]})
    assert "data.class_groups.red names 'poppies', which data.raw_dir does not hold" in message
    assert "the classes found are: daisy, roses, tulips" in message


def test_a_single_class_found(workdir, raw_dir):
    make_folders(raw_dir, {"daisy": range(9)})
    assert "data.raw_dir holds 1 class (daisy); a classifier needs at least 2" in fails(
        workdir, raw_dir, shares=FRACTIONS
    )


def test_names_that_collide_in_a_group_are_told_apart(workdir, raw_dir):
    write_files(raw_dir, {"a/b__c.png": png(1), "a__b/c.png": png(2), "z/1.png": png(3)})  # both a__b__c.png
    write_files(
        raw_dir, {f"{c}/{i}.png": png(100 * n + i) for n, c in enumerate(("a", "a__b", "z"), 1) for i in range(40)}
    )
    rows = run_split(workdir, raw_dir, shares=FRACTIONS, groups={"g": ["a", "a__b"], "h": ["z"]})
    first, second = (next(row for row in rows if row["source"] == source) for source in ("a/b__c.png", "a__b/c.png"))
    assert first["path"] != second["path"]
    assert len({row["path"] for row in rows}) == len(rows)


def test_unique_path_ignores_letter_case():
    taken: set[str] = set()
    assert unique_path("train/a", "X.jpg", "0123456789", taken) == "train/a/X.jpg"
    assert unique_path("train/a", "x.jpg", "abcdef0123", taken) == "train/a/x.abcdef01.jpg"
    assert unique_path("train/a", "x.jpg", "abcdef0123", taken) == "train/a/x.abcdef01-2.jpg"
    assert unique_path("train/b", "x.jpg", "abcdef0123", taken) == "train/b/x.jpg"


# --- warnings on the split's balance ----------------------------------------------------------------------


def split_counts(per_class: dict[str, tuple[int, int, int]]) -> dict[str, dict[str, int]]:
    return {split: {label: n[i] for label, n in per_class.items()} for i, split in enumerate(SPLITS)}


def test_a_balanced_split_with_enough_images_warns_nothing():
    assert balance_warnings(split_counts({"cat": (80, 10, 10), "dog": (240, 30, 30)})) == []


def test_classes_with_under_ten_validation_or_test_images_get_one_line():
    (line,) = balance_warnings(split_counts({"a": (40, 5, 12), "b": (40, 12, 4), "c": (40, 10, 10)}))
    assert line.startswith("split: warning: under 10 images of a class to judge it by (validation: a 5; test: b 4)")
    assert "data.split" in line


def test_a_class_over_three_times_another_suggests_balanced_class_weights():
    (line,) = balance_warnings(split_counts({"cat": (24, 10, 10), "dog": (112, 14, 14), "fox": (60, 10, 10)}))
    assert line == (
        "split: warning: the classes are unequal: dog has 140 images, cat 44 (over 3 times fewer); "
        "`training.class_weight: balanced` weighs them evenly"
    )

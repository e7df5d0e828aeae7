"""A raw folder among the outputs, names the file system cannot hold, a write that fails half-way, and
identical images: what `split` (and the params check) does with each, one test per case.

Each case runs a stage's main() in a temporary workspace where an earlier run of split left a good
data/split. A refused case stops with one line (`<stage>: error: ...`, naming the key or the file and
the fix) and leaves every file of the workspace as it was: data/split above all.

The raw folder and the outputs (data.raw_dir; the outputs are paths.WRITTEN)
 1. data.raw_dir is, contains or lies inside an output: data/split, data/split/train, `.`, `data`,
    `..`, data/prepared, data/features, models, models/export, metrics, .dvc/tmp/checkpoints,
    ./data/../data/split, data/split as an absolute path, a link to data/split
                                                       -> split and check_params refuse it, naming data.raw_dir
 2. beside the outputs: data/raw, data/splits (a prefix of data/split by name only), ../raw
                                                       -> runs
 3. every output in dvc.yaml lies in one of paths.WRITTEN, and split declares the new key
                                                       -> the rule covers every stage's outputs
Names and writing (every name is checked before anything is written; a new data/split replaces the
old one once it is complete)
 4. a 250-character class (a labels table): its files' names are 256 bytes and more
                                                       -> refused, naming the row and the limit
 5. a class name of 260 bytes (130 x 'é')             -> refused, naming the class
 6. nested folders whose joined name (`a__b.png`) is over the limit
                                                       -> refused, naming the file
 7. the disk fills half-way (OSError on the 3rd file); Ctrl-C half-way
                                                       -> one line / exit 130; the old data/split intact,
                                                          no hidden folder left in data/
 8. a rerun                                            -> data/split replaced whole, nothing left beside it
Identical images (the same bytes; for an array row the same pixels)
 9. the same image in train/ and test/ of split folders -> refused, naming both copies
10. the same in two splits with data.on_duplicate_across_splits: warn
                                                       -> runs, one warning line naming them
11. the same pixels in train.npy and test.npy          -> refused
12. Kaggle's index ranges: cat.1.jpg and cat.4.jpg identical, in train and validation
                                                       -> refused
13. the same image in two classes                      -> runs, one warning line naming both with their class
14. the same in two classes of one group (data.class_groups)
                                                       -> no conflict: a copy within the group
15. copies within a class (5 images, 12 files)         -> runs, one warning line: a few names and the count
16. a copy within a class, split by fractions          -> both in one split (no leak), the same warning
17. data.on_duplicate_across_splits: ignore            -> params.yaml refused: must be one of fail, warn
"""

from __future__ import annotations

import errno
import pathlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from classifier.core import paths
from classifier.core.paths import SPLIT_DIR, SPLIT_MANIFEST
from classifier.core.startup import run_stage
from classifier.intake.raw.writing import name_max
from stages import check_params, split
from tests.support.files import png, read_csv, save_array, snapshot, write_files
from tests.support.params import split_params, write_params
from tests.support.paths import ROOT
from tests.support.stages import refused

FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}
RANGES = {"train": [0, 3], "validation": [3, 5], "test": [5, 6]}
GIVEN = ("train", "validation", "test")


# --- building raw data -------------------------------------------------------------------------------------------


def split_folders(folder: Path, classes=("cat", "dog"), per_split: int = 2, first: int = 0) -> Path:
    """train/, validation/, test/ of class folders, every image different."""
    return write_files(folder, {
        f"{name}/{label}/{i}.png": png(first + 1000 * c + 100 * s + i)
        for s, name in enumerate(GIVEN)
        for c, label in enumerate(classes)
        for i in range(per_split)
    })  # fmt: skip


def arrays(folder: Path, labels_per_split: dict[str, list[str]], first: int = 0) -> Path:
    """Per split an .npy of 2x2 RGB images (all different) and a labels .csv."""
    folder.mkdir(parents=True, exist_ok=True)
    for s, (name, labels) in enumerate(labels_per_split.items()):
        rows = np.array([np.full((2, 2, 3), first + 50 * s + i, np.uint8) for i in range(len(labels))])
        save_array(folder / f"{name}.npy", rows)
        (folder / f"{name}.csv").write_text("label\n" + "\n".join(labels) + "\n", encoding="utf-8")
    return folder


# --- running the stages ------------------------------------------------------------------------------------------


def stage_refused(work: Path, stage=split) -> str:
    """The stage's one-line error, once it is checked that the workspace is as it was."""
    return refused(stage.main, stage.__file__, work)


def warnings(capsys) -> list[str]:
    """The warnings about copies (not those about small or unequal classes)."""
    lines = capsys.readouterr().out.splitlines()
    return [line for line in lines if line.startswith("split: warning: ") and ("copies" in line or "more than" in line)]


@pytest.fixture
def split_work(work) -> Path:
    """The workspace (the current folder), with data/split from a good run on data/raw."""
    split_folders(work / "data/raw", first=20000)
    write_params(work, split_params("data/raw", FRACTIONS))
    split.main()
    assert len(read_csv(SPLIT_MANIFEST)) == 12
    return work


# --- 1-3: the raw folder and the outputs -------------------------------------------------------------------------

AMONG_OUTPUTS = {
    "data/split": "is data/split",
    "data/split/train": "lies inside data/split",
    ".": "contains data/split",
    "data": "contains data/split",
    "..": "contains data/split",
    "data/prepared": "is data/prepared",
    "data/features": "is data/features",
    "models": "is models",
    "models/export": "lies inside models",
    "metrics": "is metrics",
    ".dvc/tmp/checkpoints": "is .dvc/tmp/checkpoints",
    "./data/../data/split": "is data/split",
}


@pytest.mark.parametrize("stage", [split, check_params], ids=["split", "check_params"])
@pytest.mark.parametrize("raw_dir", list(AMONG_OUTPUTS))
def test_a_raw_folder_among_the_outputs_is_refused(split_work, raw_dir, stage):
    split_folders(split_work / "models", first=30000)  # images there too: the folder is a layout split can read
    write_params(split_work, split_params(raw_dir, FRACTIONS))
    message = stage_refused(split_work, stage)
    assert message.startswith(f"params.yaml: data.raw_dir {raw_dir!r} {AMONG_OUTPUTS[raw_dir]}, which the stages write")
    assert message.endswith(
        "point data.raw_dir at a folder of its own outside data/split, data/classes.json, "
        "data/prepared, data/features, models, metrics, .dvc/tmp/checkpoints, such as data/raw"
    )


@pytest.mark.parametrize("how", ["absolute", "link"])
def test_data_split_by_another_path_is_refused(split_work, how):
    if how == "link":
        (split_work / "raw_link").symlink_to(split_work / SPLIT_DIR)
    raw_dir = str(split_work / SPLIT_DIR) if how == "absolute" else "raw_link"
    write_params(split_work, split_params(raw_dir, FRACTIONS))
    assert stage_refused(split_work).startswith(
        f"params.yaml: data.raw_dir {raw_dir!r} is data/split, which the stages write"
    )


@pytest.mark.parametrize("raw_dir", ["data/raw", "data/splits", "../raw"])
def test_a_raw_folder_beside_the_outputs_runs(split_work, raw_dir):
    split_folders(split_work / raw_dir, first=40000)
    write_params(split_work, split_params(raw_dir, FRACTIONS))
    split.main()
    rows = read_csv(SPLIT_MANIFEST)
    assert {row["source"].split("/")[1] for row in rows} == {"cat", "dog"} and len(rows) == 12


def test_every_output_lies_in_a_written_place_and_split_declares_the_new_key():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = [
        out if isinstance(out, str) else next(iter(out)) for stage in stages.values() for out in stage.get("outs", [])
    ]
    assert outs
    for out in outs:
        assert any(Path(out) == place or place in Path(out).parents for place in paths.WRITTEN), out
    assert "data.on_duplicate_across_splits" in stages["split"]["params"]


# --- 4-8: names and writing --------------------------------------------------------------------------------------


def test_a_250_character_class_is_refused_by_its_file_names(split_work, tmp_path):
    long = "a" * 250
    arrays(tmp_path / "raw", {split: [long, "b", long, "b"] for split in GIVEN})
    write_params(split_work, split_params(tmp_path / "raw", FRACTIONS))
    message = stage_refused(split_work)
    assert message.startswith(f"train.npy:0 (and 5 more) would be written under data/split/train/ as '{'a' * 60}'... ")
    assert f"bytes, over the {name_max()} bytes a file name can have on this file system" in message


def test_a_class_name_over_the_limit_is_refused_by_name(split_work, tmp_path):
    long = "é" * 130  # 260 bytes in UTF-8
    arrays(tmp_path / "raw", {split: [long, "b"] for split in GIVEN})
    write_params(split_work, split_params(tmp_path / "raw", FRACTIONS))
    message = stage_refused(split_work)
    assert message.startswith(f"the class or group name '{'é' * 60}'... cannot be a folder name: it is 260 bytes")
    assert "rename it in data.raw_dir" in message


def test_nested_folders_joined_over_the_limit_are_refused(split_work, tmp_path):
    raw = split_folders(tmp_path / "raw")
    deep = f"train/cat/{'d' * 200}/{'f' * 100}.png"
    write_files(raw, {deep: png(999)})
    write_params(split_work, split_params(raw, FRACTIONS))
    message = stage_refused(split_work)
    assert message.startswith(f"{deep} would be written under data/split/train/ as '{'d' * 60}'... ")
    assert "shorten the names in data.raw_dir it is made of" in message


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EACCES, "Permission denied"), KeyboardInterrupt()],
)
def test_a_write_that_fails_half_way_leaves_the_old_split(split_work, tmp_path, monkeypatch, failure):
    split_folders(tmp_path / "raw", first=50000)
    write_params(split_work, split_params(tmp_path / "raw", FRACTIONS))
    before = snapshot(split_work)
    written = []
    real_write = pathlib.Path.write_bytes

    def write_bytes(self, data):
        written.append(self)
        if len(written) == 3:
            raise failure
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    with pytest.raises(SystemExit) as info:
        run_stage(split.main, split.__file__)
    if isinstance(failure, OSError) and failure.errno == errno.EACCES:
        assert str(info.value.code) == (
            "split: error: data/split is unchanged: writing the new one failed ([Errno 13] Permission denied); "
            "fix that and run split again"
        )
    elif isinstance(failure, OSError):
        assert str(info.value.code).startswith("split: error: no space left on the device writing data/split: ")
        assert str(info.value.code).endswith("free; free some space and run it again (data/split is unchanged)")
    else:
        assert info.value.code == 130
    assert snapshot(split_work) == before  # the old data/split, and nothing beside it in data/


def test_a_rerun_replaces_data_split_whole(split_work, tmp_path):
    (split_work / SPLIT_DIR / "train/cat/stale.png").write_bytes(png(1))
    split_folders(tmp_path / "raw", first=60000)
    write_params(split_work, split_params(tmp_path / "raw", FRACTIONS))
    split.main()
    files = {
        str(path.relative_to(split_work / SPLIT_DIR)) for path in (split_work / SPLIT_DIR).rglob("*") if path.is_file()
    }
    assert files == {"manifest.csv"} | {row["path"] for row in read_csv(SPLIT_MANIFEST)} and len(files) == 13
    assert sorted(path.name for path in (split_work / "data").iterdir()) == ["classes.json", "raw", "split"]


# --- 9-16: identical images --------------------------------------------------------------------------------------


def test_the_same_image_in_train_and_test_is_refused(split_work, tmp_path):
    raw = split_folders(tmp_path / "raw")
    write_files(raw, {"test/cat/copy.png": (raw / "train/cat/0.png").read_bytes()})
    write_params(split_work, split_params(raw, FRACTIONS))
    message = stage_refused(split_work)
    assert message.startswith(
        "1 image is in more than one split (train/cat/0.png (train) = test/cat/copy.png (test)): the model would be "
        "validated or tested on images it trained on, which inflates its accuracy"
    )
    assert message.endswith("or set data.on_duplicate_across_splits: warn to keep them")


def test_copies_across_splits_are_kept_with_a_warning_when_allowed(split_work, tmp_path, capsys):
    raw = split_folders(tmp_path / "raw")
    write_files(raw, {"test/cat/copy.png": (raw / "train/cat/0.png").read_bytes()})
    write_files(raw, {"validation/dog/copy.png": (raw / "train/dog/1.png").read_bytes()})
    write_params(split_work, split_params(raw, FRACTIONS, on_duplicate_across_splits="warn"))
    capsys.readouterr()
    split.main()
    assert len(read_csv(SPLIT_MANIFEST)) == 14
    assert warnings(capsys) == [
        "split: warning: 2 images are in more than one split (train/cat/0.png (train) = test/cat/copy.png (test); "
        "train/dog/1.png (train) = validation/dog/copy.png (validation)): they inflate the validation and test "
        "accuracy (data.on_duplicate_across_splits: warn); remove the copies from data.raw_dir"
    ]


def test_the_same_pixels_in_two_split_arrays_are_refused(split_work, tmp_path):
    raw = arrays(tmp_path / "raw", {split: ["cat", "dog", "cat", "dog"] for split in GIVEN})
    train, test = np.load(raw / "train.npy"), np.load(raw / "test.npy")
    test[3] = train[1]  # a dog of train, again in test
    save_array(raw / "test.npy", test)
    write_params(split_work, split_params(raw, FRACTIONS))
    assert stage_refused(split_work).startswith(
        "1 image is in more than one split (train.npy:1 (train) = test.npy:3 (test))"
    )


def test_identical_images_in_two_index_ranges_are_refused(split_work, tmp_path):
    raw = write_files(tmp_path / "raw", {f"{label}.{i}.jpg": png(10 * c + i) for c, label in enumerate(("cat", "dog"))
                                         for i in range(6)})  # fmt: skip
    (raw / "cat.4.jpg").write_bytes((raw / "cat.1.jpg").read_bytes())
    write_params(split_work, split_params(raw, shares=RANGES))
    assert stage_refused(split_work).startswith(
        "1 image is in more than one split (cat.1.jpg (train) = cat.4.jpg (validation))"
    )


def test_the_same_image_in_two_classes_is_a_warning(split_work, tmp_path, capsys):
    raw = split_folders(tmp_path / "raw", classes=("cat", "dog", "fox"))
    write_files(raw, {"train/dog/copy.png": (raw / "train/cat/0.png").read_bytes()})
    write_params(split_work, split_params(raw, FRACTIONS))
    capsys.readouterr()
    split.main()
    assert len(read_csv(SPLIT_MANIFEST)) == 19
    assert warnings(capsys) == [
        "split: warning: 1 image is in more than one class (train/cat/0.png (cat) = train/dog/copy.png (dog)): the "
        "copies teach opposite answers and one of them is always wrong; keep each image in its own class only"
    ]


def test_the_same_image_in_two_classes_of_one_group_is_a_copy_within_it(split_work, tmp_path, capsys):
    raw = split_folders(tmp_path / "raw", classes=("cat", "dog", "fox"))
    write_files(raw, {"train/dog/copy.png": (raw / "train/cat/0.png").read_bytes()})
    write_params(split_work, split_params(raw, FRACTIONS, class_groups={"pet": ["cat", "dog"], "wild": ["fox"]}))
    capsys.readouterr()
    split.main()
    assert warnings(capsys) == [
        "split: warning: identical copies within a group: 1 image, 2 files (train/cat/0.png = train/dog/copy.png): "
        "each copy counts again in training and in the metrics; remove the copies from data.raw_dir"
    ]


def test_copies_within_a_class_are_a_warning_with_a_few_names_and_the_count(split_work, tmp_path, capsys):
    raw = split_folders(tmp_path / "raw", per_split=4)
    copies = {f"train/cat/copy{n}.png": "train/cat/0.png" for n in range(3)}
    copies |= {f"train/dog/again{n}.png": f"train/dog/{n}.png" for n in range(2)}
    copies |= {"validation/cat/again.png": "validation/cat/1.png", "test/dog/again.png": "test/dog/2.png"}
    write_files(raw, {copy: (raw / original).read_bytes() for copy, original in copies.items()})
    write_params(split_work, split_params(raw, FRACTIONS))
    capsys.readouterr()
    split.main()
    assert len(read_csv(SPLIT_MANIFEST)) == 24 + 7
    assert warnings(capsys) == [
        "split: warning: identical copies within a class: 5 images, 12 files (train/cat/0.png = train/cat/copy0.png "
        "= train/cat/copy1.png = ... (4 copies); train/dog/0.png = train/dog/again0.png; train/dog/1.png = "
        "train/dog/again1.png; and 2 more): each copy counts again in training and in the metrics; remove the copies "
        "from data.raw_dir"
    ]


def test_fractions_put_copies_in_one_split_and_warn_of_them(split_work, tmp_path, capsys):
    raw = write_files(tmp_path / "raw", {f"{label}/{i}.png": png(100 * c + i) for c, label in enumerate("ab")
                                         for i in range(30)})  # fmt: skip
    write_files(raw, {"a/copy.png": (raw / "a/3.png").read_bytes()})
    write_params(split_work, split_params(raw, FRACTIONS))
    capsys.readouterr()
    split.main()
    assert len({row["split"] for row in read_csv(SPLIT_MANIFEST) if row["source"] in ("a/3.png", "a/copy.png")}) == 1
    assert warnings(capsys) == [
        "split: warning: identical copies within a class: 1 image, 2 files (a/3.png = a/copy.png): each copy counts "
        "again in training and in the metrics; remove the copies from data.raw_dir"
    ]


def test_an_unknown_choice_for_copies_across_splits_is_refused(split_work, tmp_path):
    write_params(split_work, split_params(tmp_path / "raw", FRACTIONS, on_duplicate_across_splits="ignore"))
    assert (
        stage_refused(split_work)
        == "params.yaml: data.on_duplicate_across_splits must be one of fail, warn; got 'ignore'"
    )

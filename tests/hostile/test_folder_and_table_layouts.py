"""Hostile and careless raw data in the folder and table layouts: split folders, class folders and labels
tables that were read wrongly without a word, and `data.on_bad_image: skip` emptying a class. One test per case.

A refused case runs the stage through its CLI wrapper and checks its one line (`split: error: ...` or
`prepare: error: ...`, naming the folder, file line, column or class, and the fix) and that nothing
was written that records a run: for `split` nothing at all under the test's temporary folder, for
`prepare` no manifest.csv and no metrics/prepare.json (as when a bad image fails it).

Split folders
 1. Train/ and Test/; train/ valid/ test/; TRAIN/ VAL/ TEST/; train/ Validation/ test/ -> read as the splits (any
                                                   letter case; valid/ is validation), not as classes Train and Test
 2. two folders for one split: train/ and Train/, val/ and valid/            -> refused, naming both
 3. top folders that only look like splits: training_set/ and test_set/
    (Kaggle's cat-and-dog download), training/ and testing/                  -> refused, naming them
Class folders
 4. Cat/ beside cat/ (a folder per class, or in two splits)                  -> refused, naming both
 5. hidden folders and files (.cache/ beside the class folders, ._1.jpg,
    .DS_Store, a zip's __MACOSX/)                                            -> left out; split's log counts and
                                                                                names them, folders first
Labels tables (the arrays layout)
 6. an empty line between rows (several columns, or the label column alone) -> refused, naming the line
 7. a quote that is never closed, or closes lines later                     -> refused, naming the line
 8. labels NaN, None, NA, null                                               -> classes of those names
 9. an empty label ("", spaces, a row of commas)                             -> refused, naming the line
10. two columns named as data.label_column                                   -> refused, naming the column
11. a row with more values than the header (an unquoted comma in a label)    -> refused, naming the line
12. empty lines at the table's end, fewer rows than images                   -> the count mismatch names them
13. a header with spaces after its commas (`id, label`)                      -> the column is found
data.on_bad_image: skip
14. every image of a class in one split undecodable                          -> prepare refuses, naming class and
                                                                                split; no manifest, no metrics
                                                                                (an earlier run's removed)
15. some images skipped                                                      -> one line counts them per class
                                                                                and split; metrics/prepare.json too
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.core.paths import SPLIT_MANIFEST
from classifier.intake.raw.collection import split_name
from stages import prepare, split
from tests.support.files import jpeg, read_csv, save_array, write_files, zip_bytes
from tests.support.params import split_params, write_params
from tests.support.stages import split_refused, stage_error

FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}


# --- building raw data -------------------------------------------------------------------------------------------


def class_folders(counts: dict[str, int], prefix: str = "", first: int = 0) -> dict[str, bytes]:
    """`<prefix><class>/<i>.jpg` for each class, every image distinct."""
    return {
        f"{prefix}{name}/{i}.jpg": jpeg(first + 100 * number + i)
        for number, (name, count) in enumerate(counts.items())
        for i in range(count)
    }


def split_folders(names: dict[str, int], classes=("cat", "dog")) -> dict[str, bytes]:
    """{split folder: images per class} -> `<split folder>/<class>/<i>.jpg`."""
    files = {}
    for number, (folder, count) in enumerate(names.items()):
        files |= class_folders(dict.fromkeys(classes, count), f"{folder}/", first=1000 * number)
    return files


def random_images(count: int, seed: int = 0) -> np.ndarray:
    """`count` 4x4 RGB images of random pixels, different for every count and seed."""
    return np.random.default_rng([count, seed]).integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)


def arrays(raw: Path, table: str, images: int, name: str = "images") -> Path:
    """An unsplit pair: `<name>.npy` with `images` rows and `labels.csv` holding `table`."""
    save_array(raw / f"{name}.npy", random_images(images))
    (raw / "labels.csv").write_text(table)
    return raw


# --- running the stages ------------------------------------------------------------------------------------------


def runs(work: Path, raw_dir: Path, **data) -> list[dict]:
    """Runs split; the manifest's rows."""
    write_params(work, split_params(raw_dir, FRACTIONS, **data))
    split.main()
    return read_csv(SPLIT_MANIFEST)


# --- 1-3: split folders ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [{"Train": 30, "Test": 3}, {"train": 3, "valid": 2, "test": 2}, {"TRAIN": 3, "VAL": 2, "TEST": 2},
     {"train": 3, "Validation": 2, "test": 2}],
    ids=["Train-Test", "valid", "upper-case", "Validation"],
)  # fmt: skip
def test_split_folders_in_any_letter_case(work, raw, names):
    write_files(raw, split_folders(names))
    rows = runs(work, raw)
    assert {row["class"] for row in rows} == {"cat", "dog"}
    for folder in names:
        splits = {row["split"] for row in rows if row["source"].startswith(f"{folder}/")}
        expected = {"train", "validation"} if folder == "Train" else {split_name(folder)}  # carved out of train
        assert splits == expected, folder
    assert len(rows) == 2 * sum(names.values())


@pytest.mark.parametrize(
    ("folders", "both", "split_read"),
    [(("Train", "train", "test"), "Train/ and train/", "train"),
     (("train", "val", "valid", "test"), "val/ and valid/", "validation")],
)  # fmt: skip
def test_two_folders_for_one_split(work, raw, folders, both, split_read):
    write_files(raw, split_folders(dict.fromkeys(folders, 2)))
    message = split_refused(work, raw, FRACTIONS)
    assert message == (
        f"data.raw_dir {str(raw)!r} has both {both}, each read as the {split_read} split; merge them into one"
    )


@pytest.mark.parametrize("names", [("training_set", "test_set"), ("training", "testing")])
def test_folders_that_only_look_like_splits(work, raw, names):
    """Kaggle's cat-and-dog download: training_set/{cats,dogs}/..., test_set/{cats,dogs}/..."""
    write_files(raw, split_folders(dict.fromkeys(names, 20), classes=("cats", "dogs")))
    message = split_refused(work, raw, FRACTIONS)
    listed = ", ".join(f"{name}/" for name in sorted(names))
    assert message.startswith(f"data.raw_dir {str(raw)!r}: its top folders ({listed}) look like splits, but would be")
    assert "rename them train/, validation/ (or valid/, val/) and test/ (any letter case)" in message


# --- 4-5: class folders ------------------------------------------------------------------------------------------


def test_class_folders_differing_only_in_letter_case(work, raw):
    write_files(raw, class_folders({"Cat": 20, "cat": 20, "dog": 20}))
    message = split_refused(work, raw, FRACTIONS)
    assert message.startswith(
        f"the classes 'Cat' and 'cat' differ only in letter case (e.g. {raw / 'Cat' / '0.jpg'} and "
        f"{raw / 'cat' / '0.jpg'}); they would share one folder where letter case is ignored"
    )


def test_class_folders_differing_in_letter_case_across_splits(work, raw):
    write_files(raw, {**split_folders({"train": 3, "validation": 2}), **class_folders({"Cat": 2, "dog": 2}, "test/")})
    message = split_refused(work, raw, FRACTIONS)
    assert message.startswith("the classes 'Cat' and 'cat' differ only in letter case")
    assert str(raw / "test" / "Cat" / "0.jpg") in message and str(raw / "train" / "cat") in message


def test_hidden_folders_and_files_are_named_in_the_log(work, raw, capsys):
    write_files(raw, split_folders({"train": 3, "validation": 2, "test": 2}))
    write_files(raw, {
        "train/.cache/0.jpg": jpeg(900), "validation/.cache/1.jpg": jpeg(901), "test/cat/._1.jpg": b"\0\5\26\7",
        ".DS_Store": b"\0\0\0\1Bud1",
        "more.zip": zip_bytes({"train/cat/9.jpg": jpeg(902), "__MACOSX/train/cat/._9.jpg": b"\0\5\26\7"}),
    })  # fmt: skip
    rows = runs(work, raw)
    assert {row["class"] for row in rows} == {"cat", "dog"} and len(rows) == 15
    lines = [line for line in capsys.readouterr().out.splitlines() if "hidden" in line]
    assert lines == [
        f"split: left out 5 hidden files and folders in {raw} (their names start with '.', or are macOS's __MACOSX; "
        f"nothing in them is read): more.zip:__MACOSX/, train/.cache/, validation/.cache/ ..."
    ]


def test_a_hidden_file_alone_is_named(work, raw, capsys):
    write_files(raw, {**split_folders({"train": 3, "validation": 2, "test": 2}), "train/dog/.thumb.jpg": jpeg(7)})
    runs(work, raw)
    assert "(their names start with '.', or are macOS's __MACOSX; nothing in them is read): train/dog/.thumb.jpg\n" in (
        capsys.readouterr().out
    )


# --- 6-13: labels tables -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "line"),
    [("id,label\n0,cat\n\n1,dog\n2,cat\n", 3), ("label\ncat\ndog\n\ncat\n", 4)],
    ids=["columns", "label column alone"],
)
def test_an_empty_line_between_rows(work, raw, table, line):
    message = split_refused(work, arrays(raw, table, images=4), FRACTIONS)
    assert message.startswith(
        f"{raw / 'labels.csv'}: line {line} is empty; give each image one row, in the array's order"
    )


@pytest.mark.parametrize(
    ("table", "says"),
    [('id,label\n0,"cat\n1,dog\n2,cat\n', "line 2 is not valid CSV (a quote (\") that is never closed)"),
     ('id,label\n0,cat\n1,"dog\n2,cat"\n3,dog\n', "line 3 has a quoted value that runs on to line 4")],
    ids=["never closed", "closed lines later"],
)  # fmt: skip
def test_a_quote_left_open(work, raw, table, says):
    message = split_refused(work, arrays(raw, table, images=3), FRACTIONS)
    assert message.startswith(f"{raw / 'labels.csv'}: {says}")


def test_labels_that_look_missing_are_labels(work, raw):
    """pandas would read NaN, None, NA and null as missing values: here they are labels as written."""
    for seed, name in enumerate(("train", "validation", "test")):
        save_array(raw / f"{name}.npy", random_images(4, seed))  # other pixels in each split: the same would be a leak
        (raw / f"{name}.csv").write_text("label\nNaN\nNone\nNA\nnull\n")
    rows = runs(work, raw)
    assert sorted({row["class"] for row in rows}) == ["NA", "NaN", "None", "null"]
    assert json.loads((work / "data" / "classes.json").read_text()) == ["NA", "NaN", "None", "null"]


@pytest.mark.parametrize("empty", ['0,""', "0,  ", "0,", ",,"])
def test_an_empty_label(work, raw, empty):
    message = split_refused(work, arrays(raw, f"id,label,note\n{empty}\n1,dog,x\n", images=2), FRACTIONS)
    assert message.startswith(f"{raw / 'labels.csv'}: line 2 has no 'label' value; give every image a label")


def test_two_label_columns(work, raw):
    message = split_refused(work, arrays(raw, "id,label,label\n0,cat,dog\n1,dog,cat\n", images=2), FRACTIONS)
    assert message.startswith(f"{raw / 'labels.csv'} has 2 columns named 'label' (columns 2 and 3): it is not clear")


def test_more_values_than_columns(work, raw):
    message = split_refused(work, arrays(raw, "id,label\n0,cat\n1,tabby, cat\n", images=2), FRACTIONS)
    assert message.startswith(f"{raw / 'labels.csv'}: line 3 has 3 values but the header names 2 columns; quote")


def test_empty_lines_at_the_end_and_too_few_rows(work, raw):
    message = split_refused(work, arrays(raw, "id,label\n0,cat\n1,dog\n\n\n", images=3), FRACTIONS)
    assert message.startswith(
        f"{raw / 'labels.csv'} has 2 label rows (and empty lines at its end: 4, 5) but {raw / 'images.npy'} holds 3"
    )


def test_a_header_with_spaces(work, raw):
    for seed, name in enumerate(("train", "validation", "test")):
        save_array(raw / f"{name}.npy", random_images(2, seed))
        (raw / f"{name}.csv").write_text("id, label\n0, cat\n1, dog\n")
    assert {row["class"] for row in runs(work, raw)} == {"cat", "dog"}


# --- 14-15: data.on_bad_image: skip --------------------------------------------------------------------------------


def prepared(work: Path, raw: Path, bad: list[str]) -> None:
    """split on given train/validation/test folders (cat 3, 2, 2; dog the same), the `bad` ones not images."""
    write_files(
        raw,
        {
            **split_folders({"train": 3, "validation": 2, "test": 2}),
            **{name: b"not a jpeg: " + name.encode() for name in bad},
        },
    )
    runs(work, raw, on_bad_image="skip", image_size=16)


def test_skipping_every_image_of_a_class_in_a_split(work, raw):
    prepared(work, raw, bad=["validation/cat/0.jpg", "validation/cat/1.jpg", "train/dog/2.jpg"])
    write_files(work, {"data/prepared/validation/images-00000.csv": b"an earlier run's", "metrics/prepare.json": b"{}"})
    message = stage_error(prepare.main, "stages/prepare.py")
    assert message == (
        "data.on_bad_image: skip left no image of class 'cat' in validation (all 2 skipped); every class needs "
        "images in every split: replace the bad images in data.raw_dir (listed in data/prepared/skipped.csv), or "
        "leave the class out with data.classes"
    )
    assert not list((work / "data" / "prepared").rglob("images-*.csv"))  # no shard tables: no record of the arrays
    assert not (work / "metrics" / "prepare.json").exists()
    assert len(read_csv(work / "data" / "prepared" / "skipped.csv")) == 3


def test_skipped_images_are_counted_per_class(work, raw, capsys):
    prepared(work, raw, bad=["train/cat/0.jpg", "train/dog/1.jpg", "train/dog/2.jpg", "test/dog/0.jpg"])
    prepare.main()
    assert (
        "prepare: warning: skipped 4 images that cannot be decoded (data.on_bad_image: skip), per class: "
        "cat 1 (train 1), dog 3 (train 2, test 1); listed in data/prepared/skipped.csv"
    ) in capsys.readouterr().out.splitlines()
    report = json.loads((work / "metrics" / "prepare.json").read_text())
    assert report == {
        "train": {"images": 3, "skipped": 3, "skipped_by_class": {"cat": 1, "dog": 2}},
        "validation": {"images": 4, "skipped": 0},
        "test": {"images": 3, "skipped": 1, "skipped_by_class": {"dog": 1}},
    }

"""Kaggle's cat.N.jpg / dog.N.jpg naming in data.raw_dir (classifier.intake.raw.kaggle): at any depth, by
integer index, in class then index order, once each; and when class folders say the class instead."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from classifier.intake.raw.collection import KAGGLE, SPLIT_FOLDERS
from classifier.intake.raw.files import RawFile
from classifier.intake.raw.kaggle import class_folder, is_kaggle_test_folder, kaggle_folder_label, left_out_folders
from classifier.intake.raw.layouts import raw_collection
from tests.support.files import jpeg, write_files, zip_bytes
from tests.support.intake import by_source, kaggle_keys, raises_raw_data_error


def test_loose_files_at_top_level_and_in_subfolders(raw):
    cat0, dog7, cat12 = jpeg(color=(10, 0, 0)), jpeg(color=(0, 0, 10)), jpeg(color=(30, 0, 0))
    write_files(raw, {"cat.0.jpg": cat0, "train/dog.7.jpg": dog7, "train/deeper/cat.12.jpg": cat12})
    ignored = ("1.jpg", "cat.x.jpg", "notes.txt", "cat.3.png", "Cat.4.jpg", "bird.5.jpg", "cat.6.jpg.bak")
    write_files(raw, {name: jpeg() for name in ignored})

    with raw_collection(raw, "label") as collection:
        assert collection.layout == KAGGLE
        assert kaggle_keys(collection) == {("cat", 0), ("dog", 7), ("cat", 12)}
        assert sorted(collection.ignored) == sorted(ignored)
        image = by_source(collection)["train/dog.7.jpg"]
        assert (image.class_name, image.index, image.name, image.name_in_group) == ("dog", 7, "dog.7.jpg", "dog.7.jpg")
        assert image.split is None and collection.given_splits == set()
        assert image.read() == image.content() == dog7
        assert by_source(collection)["cat.0.jpg"].read() == cat0
        assert by_source(collection)["train/deeper/cat.12.jpg"].read() == cat12


def test_indices_are_integers(raw):
    (raw / "cat.1234.jpg").write_bytes(jpeg())
    (raw / "dog.007.jpg").write_bytes(jpeg())
    with raw_collection(raw, "label") as collection:
        assert kaggle_keys(collection) == {("cat", 1234), ("dog", 7)}
        assert by_source(collection)["dog.007.jpg"].name == "dog.7.jpg"


def test_images_are_in_class_then_index_order(raw):
    write_files(raw, {f"{label}.{i}.jpg": jpeg() for label in ("dog", "cat") for i in (10, 2, 1)})
    with raw_collection(raw, "label") as collection:
        assert [image.name for image in collection.images] == [
            "cat.1.jpg", "cat.2.jpg", "cat.10.jpg", "dog.1.jpg", "dog.2.jpg", "dog.10.jpg",
        ]  # fmt: skip


@pytest.mark.parametrize("folder", ["cat", "cats"])
def test_kaggle_names_sorted_into_class_folders_are_a_folder_layout(raw, folder):
    """The book's own copies (cats_and_dogs_small/train/cats/cat.0.jpg): the folders say the class."""
    dogs = folder.replace("cat", "dog")
    for split in ("train", "validation", "test"):
        write_files(raw, {f"{split}/{folder}/cat.{i}.jpg": jpeg() for i in range(2)})
        write_files(raw, {f"{split}/{dogs}/dog.{i}.jpg": jpeg() for i in range(2)})
    with raw_collection(raw, "label") as collection:
        assert collection.layout == SPLIT_FOLDERS
        assert {image.class_name for image in collection.images} == {folder, dogs}


def test_one_kaggle_name_outside_its_class_folder_means_kaggle(raw):
    write_files(raw, {"cat/cat.0.jpg": jpeg(), "dog/dog.0.jpg": jpeg(), "dog/cat.1.jpg": jpeg()})
    with raw_collection(raw, "label") as collection:
        assert collection.layout == KAGGLE
        assert kaggle_keys(collection) == {("cat", 0), ("dog", 0), ("cat", 1)}


def test_loose_test1_zip_is_ignored(raw):
    (raw / "test1.zip").write_bytes(zip_bytes({"test1/1.jpg": jpeg()}))
    (raw / "dog.3.jpg").write_bytes(jpeg())
    with raw_collection(raw, "label") as collection:
        assert kaggle_keys(collection) == {("dog", 3)}
        assert collection.ignored == ["test1.zip:test1/1.jpg"]


def test_the_same_image_in_two_folders(raw):
    """Read by Kaggle's names (cat.0.jpg is in no folder: no folder can say its class), dog.5.jpg is there twice;
    were every image in a folder, a/ and b/ would be classes (tests/hostile/test_one_reading_of_a_layout.py)."""
    (raw / "cat.0.jpg").write_bytes(jpeg(1))
    for folder in ("a", "b"):
        (raw / folder).mkdir()
        (raw / folder / "dog.5.jpg").write_bytes(jpeg())
    message = raises_raw_data_error(raw)
    assert str(raw / "a" / "dog.5.jpg") in message
    assert str(raw / "b" / "dog.5.jpg") in message


def test_folders_of_kaggle_s_own_sorting_and_its_unlabelled_test_images():
    assert [kaggle_folder_label(name) for name in ("cat", "Cats", "DOGS", "dog", "kittens", "cat.0.jpg")] == [
        "cat", "cat", "dog", "dog", None, None,
    ]  # fmt: skip
    assert [is_kaggle_test_folder(name) for name in ("test1", "test", "test12", "tests", "my_test1")] == [
        True, True, True, False, False,
    ]  # fmt: skip


# --- Kaggle's names or the folders (the cases: tests/hostile/test_one_reading_of_a_layout.py) ---------------


@pytest.mark.parametrize(
    ("path", "folder"),
    [("cat.0.jpg", None), ("train/cat.0.jpg", None), ("train/train/cat.0.jpg", None), ("Val/x.jpg", None),
     ("good/cat.0.jpg", "good"), ("good/deeper/x.jpg", "good"), ("train/good/cat.0.jpg", "train/good"),
     ("TEST/other/a/b.jpg", "TEST/other"), ("training_set/cats/cat.1.jpg", "training_set")],
)  # fmt: skip
def test_the_class_folder_an_image_is_in(path, folder):
    found = class_folder(PurePosixPath(path))
    assert (found.as_posix() if found else None) == folder


def test_the_folders_kaggle_s_names_would_leave_out(tmp_path):
    names = ["cat.0.jpg", "good/a.jpg", "good/b.jpg", "mixed/cat.1.jpg", "mixed/c.jpg", "test1/1.jpg",
             "near/Cat.2.jpg", "train/other/d.jpg"]  # fmt: skip
    files = [RawFile(PurePosixPath(name), name, open) for name in names]
    left_out = left_out_folders(files)
    assert {folder.as_posix(): [file.source for file in found] for folder, found in left_out.items()} == {
        "good": ["good/a.jpg", "good/b.jpg"],
        "train/other": ["train/other/d.jpg"],
    }

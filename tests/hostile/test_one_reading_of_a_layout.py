"""One reading of a layout: where a folder per class and Kaggle's cat.N.jpg / dog.N.jpg names could both read a
folder (photos from Kaggle sorted into classes of the user's own), the folders win, and split says so in a line;
where Kaggle's names are the only reading of some images but would leave out a folder of others, the folder is
refused in one line naming both readings and how to choose. A class folder is never dropped.

Folders win
 1. good/cat.N.jpg and other/dog.N.jpg (the issue's case)                  -> classes good and other; split's log
                                                                              says the folders say the class
 2. good/cat.N.jpg beside other/<photo>.jpg                                 -> classes good and other, nothing
                                                                              ignored
 3. each class folder holding both cat.N.jpg and dog.N.jpg names            -> the folders are the classes
 4. the same inside one top folder (photos/good/...), or in zips per class -> the same
 5. train/, validation/, test/ of class folders whose files have Kaggle's
    names                                                                   -> split folders, classes good and
                                                                              other, the splits kept
 6. one Kaggle-named file among others in a class folder                    -> in its folder's class
 7. cat/ and dog/ beside bird/, with dog/cat.1.jpg                          -> three classes; dog/cat.1.jpg a dog,
                                                                              named in the line
Kaggle's own layouts still read by the names
 8. train/cat.N.jpg (Kaggle's train.zip unpacked), train/train/ (unpacked
    twice), test1/ beside it (Kaggle's unlabelled test images)              -> cat and dog; test1/ ignored
 9. cat/ and dog/ with one file in the other's folder (Kaggle's sorting)    -> cat and dog by name, as before
Refused
10. Kaggle names loose, or directly in train/, beside folders of other
    images (good/, other/)                                                  -> one line naming both readings and
                                                                              the fix of each; nothing written
11. a link named like Kaggle's whose target is in a folder (store/)         -> not a folder left out: the image
                                                                              is read through the link
"""

from __future__ import annotations

import pytest

from classifier.core.paths import SPLIT_MANIFEST
from classifier.intake.raw.collection import CLASS_FOLDERS, KAGGLE, SPLIT_FOLDERS
from classifier.intake.raw.layouts import raw_collection
from stages import split
from tests.support.files import jpeg, read_csv, write_files, zip_bytes
from tests.support.params import split_params, write_params
from tests.support.stages import split_refused

FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}
NOTE = "the folders say the class, not the names; to have Kaggle's names say it, put the images loose in one folder"


def kaggle_named(prefix: str, label: str, count: int, first: int = 0) -> dict[str, bytes]:
    """`<prefix><label>.<i>.jpg`, every image distinct."""
    return {f"{prefix}{label}.{i}.jpg": jpeg(1000 * (label == "dog") + i) for i in range(first, first + count)}


def read(raw) -> tuple[str, dict[str, str], list[str], list[str]]:
    """The layout, {source: class}, the ignored sources and the notes."""
    with raw_collection(raw, "label") as collection:
        classes = {image.source: image.class_name for image in collection.images}
        return collection.layout, classes, collection.ignored, collection.notes


def runs(work, raw, capsys) -> tuple[list[dict], str]:
    """Runs split with fractions: the manifest's rows and what it printed."""
    write_params(work, split_params(raw, FRACTIONS))
    split.main()
    return read_csv(SPLIT_MANIFEST), capsys.readouterr().out


# --- 1-7: the folders win -------------------------------------------------------------------------------------


def test_photos_with_kaggle_names_in_class_folders_are_a_folder_per_class(work, raw, capsys):
    write_files(raw, kaggle_named("good/", "cat", 20) | kaggle_named("other/", "dog", 20))
    rows, out = runs(work, raw, capsys)
    assert {(row["class"], row["source"].split("/")[0]) for row in rows} == {("good", "good"), ("other", "other")}
    assert len(rows) == 40
    assert (
        "split: 40 images named like Kaggle's cat.N.jpg / dog.N.jpg are in class folders of other names "
        f"(good/cat.0.jpg, good/cat.1.jpg, good/cat.10.jpg ...): {NOTE} (as Kaggle's train/)\n"
    ) in out
    assert "split: a folder per class: 40 images of 2 classes" in out


def test_a_class_folder_of_other_names_is_kept(raw):
    write_files(raw, kaggle_named("good/", "cat", 3) | {f"other/IMG_{i}.jpg": jpeg(50 + i) for i in range(3)})
    layout, classes, ignored, notes = read(raw)
    assert layout == CLASS_FOLDERS and ignored == []
    assert classes == {**dict.fromkeys(kaggle_named("good/", "cat", 3), "good"), **{
        f"other/IMG_{i}.jpg": "other" for i in range(3)}}  # fmt: skip
    assert notes == [
        f"3 images named like Kaggle's cat.N.jpg / dog.N.jpg are in class folders of other names "
        f"(good/cat.0.jpg, good/cat.1.jpg, good/cat.2.jpg): {NOTE} (as Kaggle's train/)"
    ]


@pytest.mark.parametrize("prefix", ["", "photos/"], ids=["top", "nested"])
def test_class_folders_holding_both_kaggle_classes_are_the_classes(raw, prefix):
    files = {}
    for number, folder in enumerate(("indoor", "outdoor")):
        files |= kaggle_named(f"{prefix}{folder}/", "cat", 2, first=10 * number)
        files |= kaggle_named(f"{prefix}{folder}/", "dog", 2, first=10 * number)
    write_files(raw, files)
    layout, classes, _, notes = read(raw)
    assert layout == CLASS_FOLDERS and len(notes) == 1
    assert classes == {source: source.removeprefix(prefix).split("/")[0] for source in files}


def test_zips_of_class_folders_with_kaggle_names(raw):
    (raw / "good.zip").write_bytes(zip_bytes(kaggle_named("good/", "cat", 2)))
    (raw / "other.zip").write_bytes(zip_bytes(kaggle_named("other/", "dog", 2)))
    layout, classes, _, notes = read(raw)
    assert layout == CLASS_FOLDERS
    assert classes == {
        "good.zip:good/cat.0.jpg": "good", "good.zip:good/cat.1.jpg": "good",
        "other.zip:other/dog.0.jpg": "other", "other.zip:other/dog.1.jpg": "other",
    }  # fmt: skip
    assert notes[0].startswith("4 images named like Kaggle's cat.N.jpg / dog.N.jpg are in class folders of other")


def test_split_folders_of_class_folders_with_kaggle_names(raw):
    files = {}
    for number, folder in enumerate(("train", "validation", "test")):
        files |= kaggle_named(f"{folder}/good/", "cat", 2, first=10 * number)
        files |= kaggle_named(f"{folder}/other/", "dog", 2, first=10 * number)
    write_files(raw, files)
    with raw_collection(raw, "label") as collection:
        assert collection.layout == SPLIT_FOLDERS
        assert {(image.split, image.class_name) for image in collection.images} == {
            (split, name) for split in ("train", "validation", "test") for name in ("good", "other")
        }


def test_one_kaggle_named_file_among_others(raw):
    write_files(raw, {"good/a.jpg": jpeg(1), "good/cat.7.jpg": jpeg(2), "other/b.jpg": jpeg(3)})
    layout, classes, _, notes = read(raw)
    assert layout == CLASS_FOLDERS
    assert classes == {"good/a.jpg": "good", "good/cat.7.jpg": "good", "other/b.jpg": "other"}
    assert notes[0].startswith("1 image named like Kaggle's cat.N.jpg / dog.N.jpg is in a class folder of another")


def test_cat_and_dog_folders_beside_another_class(raw):
    files = {"cat/cat.0.jpg": jpeg(1), "dog/dog.0.jpg": jpeg(2), "dog/cat.1.jpg": jpeg(3), "bird/b.jpg": jpeg(4)}
    write_files(raw, files)
    layout, classes, _, notes = read(raw)
    assert layout == CLASS_FOLDERS
    assert classes == {source: source.split("/")[0] for source in files}
    assert notes[0].startswith("1 image named like Kaggle's cat.N.jpg / dog.N.jpg is in a class folder of another "
                               "name (dog/cat.1.jpg)")  # fmt: skip


# --- 8-9: Kaggle's own layouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["train/", "train/train/", "dogs-vs-cats/train/"])
def test_kaggle_s_train_folder_is_read_by_the_names(raw, prefix):
    write_files(raw, kaggle_named(prefix, "cat", 2) | kaggle_named(prefix, "dog", 2))
    write_files(raw, {f"{prefix.replace('train', 'test1')}1.jpg": jpeg(9)})
    layout, classes, ignored, notes = read(raw)
    assert layout == KAGGLE and notes == []
    assert set(classes.values()) == {"cat", "dog"}
    assert ignored == [f"{prefix.replace('train', 'test1')}1.jpg"]


def test_kaggle_s_train_zip_is_read_by_the_names(raw):
    (raw / "train.zip").write_bytes(zip_bytes(kaggle_named("train/", "cat", 2) | kaggle_named("train/", "dog", 2)))
    layout, classes, _, _ = read(raw)
    assert layout == KAGGLE and set(classes.values()) == {"cat", "dog"}


def test_kaggle_s_own_sorting_is_read_by_the_names(raw):
    write_files(raw, {"cat/cat.0.jpg": jpeg(1), "dog/dog.0.jpg": jpeg(2), "dog/cat.1.jpg": jpeg(3)})
    layout, classes, _, notes = read(raw)
    assert layout == KAGGLE and notes == []
    assert classes == {"cat/cat.0.jpg": "cat", "dog/dog.0.jpg": "dog", "dog/cat.1.jpg": "cat"}


# --- 10-11: refused, or read through a link --------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "train/"], ids=["loose", "in-train"])
def test_kaggle_names_that_would_leave_out_folders_are_refused(work, raw, prefix):
    write_files(raw, kaggle_named(prefix, "cat", 3) | kaggle_named(prefix, "dog", 3))
    others = "" if not prefix else prefix
    write_files(raw, {f"{others}good/a.jpg": jpeg(50), f"{others}other/b.jpg": jpeg(51)})
    message = split_refused(work, raw, FRACTIONS)
    assert message == (
        f"data.raw_dir {str(raw)!r} can be read two ways, and neither reads all of it: by Kaggle's file names "
        f"(cat.N.jpg / dog.N.jpg), which leaves out the folders {others}good/, {others}other/ (2 images, e.g. "
        f"{raw / others / 'good' / 'a.jpg'}), or as a folder per class, which has no class folder for 6 images "
        f"named like Kaggle's: {raw / prefix / 'cat.0.jpg'}, {raw / prefix / 'cat.1.jpg'}, "
        f"{raw / prefix / 'cat.2.jpg'} ...; to read a folder per class, put every image in its class folder "
        f"(<class>/<image>); to read Kaggle's names, move the other folders out of data.raw_dir"
    )


def test_a_link_named_like_kaggle_s_into_a_folder_is_read_through_it(raw):
    write_files(raw, kaggle_named("", "cat", 2) | kaggle_named("", "dog", 2) | {"store/kitten.jpg": jpeg(77)})
    (raw / "cat.5.jpg").symlink_to("store/kitten.jpg")
    layout, classes, ignored, _ = read(raw)
    assert layout == KAGGLE and classes["cat.5.jpg"] == "cat"
    assert ignored == ["store/kitten.jpg"]  # said in split's line about ignored files; its image is cat.5.jpg

"""The layouts of data.raw_dir (classifier.intake.raw.layouts): which one a folder holds, a folder per
class, split folders, and the one line when none fits. Kaggle's naming: test_kaggle.py; image arrays
with a labels table: test_arrays.py."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.core.errors import RawDataError, StageError
from classifier.intake.raw.collection import CLASS_FOLDERS, SPLIT_FOLDERS
from classifier.intake.raw.layouts import raw_collection
from tests.support.files import jpeg, png, save_array, write_files, zip_bytes
from tests.support.intake import by_source, raises_raw_data_error, summary

DOWNLOAD_HINT = "kaggle competitions download -c dogs-vs-cats"

FLOWERS = {
    "daisy/1.jpg": png(1), "daisy/sub/dir/2.JPEG": png(2), "roses/3.PnG": png(3), "roses/4.webp": png(4),
    "tulips/5.bmp": png(5), "tulips/6.gif": png(6),
}  # fmt: skip


def test_raw_data_error_is_a_stage_error():
    assert issubclass(RawDataError, StageError)


# --- a folder per class ------------------------------------------------------------------------------------


def test_a_folder_per_class(raw):
    write_files(raw, {**FLOWERS, "roses/notes.txt": b"", "README.md": b"", ".hidden/7.jpg": png(7)})
    with raw_collection(raw, "label") as collection:
        assert collection.layout == CLASS_FOLDERS
        assert collection.given_splits == set()
        assert summary(collection) == [
            (None, "daisy", "1.jpg", "daisy/1.jpg"),
            (None, "daisy", "sub__dir__2.JPEG", "daisy/sub/dir/2.JPEG"),
            (None, "roses", "3.PnG", "roses/3.PnG"),
            (None, "roses", "4.webp", "roses/4.webp"),
            (None, "tulips", "5.bmp", "tulips/5.bmp"),
            (None, "tulips", "6.gif", "tulips/6.gif"),
        ]
        image = by_source(collection)["daisy/sub/dir/2.JPEG"]
        assert image.name_in_group == "daisy__sub__dir__2.JPEG"
        assert image.read() == image.content() == png(2)
        assert sorted(collection.ignored) == ["README.md", "roses/notes.txt"]


def test_a_zip_of_a_single_top_folder_is_looked_into(raw):
    """flower_photos.zip holds flower_photos/<class>/...: the wrapper folder is no class."""
    members = {f"flower_photos/{name}": data for name, data in FLOWERS.items()}
    members["flower_photos/LICENSE.txt"] = b"CC-BY"
    members["__MACOSX/flower_photos/._LICENSE.txt"] = b""
    write_files(raw, {"flower_photos.zip": zip_bytes(members), "notes.txt": b""})
    with raw_collection(raw, "label") as collection:
        assert collection.layout == CLASS_FOLDERS
        assert {image.class_name for image in collection.images} == {"daisy", "roses", "tulips"}
        image = by_source(collection)["flower_photos.zip:flower_photos/roses/3.PnG"]
        assert (image.name, image.read()) == ("3.PnG", png(3))
        assert sorted(collection.ignored) == ["flower_photos.zip:flower_photos/LICENSE.txt", "notes.txt"]


def test_loose_wrapper_folders_are_looked_into(raw):
    write_files(raw, {f"download/flowers/{name}": data for name, data in FLOWERS.items()})
    with raw_collection(raw, "label") as collection:
        assert collection.layout == CLASS_FOLDERS
        assert by_source(collection)["download/flowers/daisy/1.jpg"].class_name == "daisy"


def test_a_single_class_folder_is_not_looked_into(raw):
    write_files(raw, {"daisy/1.jpg": png(1), "daisy/sub/2.jpg": png(2)})
    with raw_collection(raw, "label") as collection:
        assert {image.class_name for image in collection.images} == {"daisy"}  # split says: one class


def test_an_image_in_no_class_folder(raw):
    write_files(raw, {**FLOWERS, "stray.jpg": png(9)})
    message = raises_raw_data_error(raw)
    assert f"{raw / 'stray.jpg'} is in no class folder: put every image in <class>/<image>" in message


def test_a_class_folder_without_images(raw):
    write_files(raw, {**FLOWERS, "sunflowers/notes.txt": b""})
    (raw / "empty").mkdir()
    message = raises_raw_data_error(raw)
    assert f"the class folder {raw / 'empty'} holds no images" in message


def test_a_zipped_class_folder_without_images(raw):
    write_files(raw, {"f.zip": zip_bytes({**FLOWERS, "sunflowers/notes.txt": b""})})
    assert f"the class folder {raw / 'sunflowers'} holds no images" in raises_raw_data_error(raw)


# --- split folders -----------------------------------------------------------------------------------------


def split_folders(val: str = "validation") -> dict[str, bytes]:
    files = {}
    for number, split in enumerate(("train", val, "test")):
        for label in ("cat", "dog"):
            files[f"{split}/{label}/{label}{number}.jpg"] = png(number)
    return files


@pytest.mark.parametrize("val", ["validation", "val"])
def test_split_folders(raw, val):
    write_files(raw, {**split_folders(val), "train/dog/deep/x.png": png(7), "LICENSE": b""})
    with raw_collection(raw, "label") as collection:
        assert collection.layout == SPLIT_FOLDERS
        assert collection.given_splits == {"train", "validation", "test"}
        assert summary(collection) == [
            ("test", "cat", "cat2.jpg", "test/cat/cat2.jpg"),
            ("test", "dog", "dog2.jpg", "test/dog/dog2.jpg"),
            ("train", "cat", "cat0.jpg", "train/cat/cat0.jpg"),
            ("train", "dog", "deep__x.png", "train/dog/deep/x.png"),
            ("train", "dog", "dog0.jpg", "train/dog/dog0.jpg"),
            ("validation", "cat", "cat1.jpg", f"{val}/cat/cat1.jpg"),
            ("validation", "dog", "dog1.jpg", f"{val}/dog/dog1.jpg"),
        ]
        assert collection.ignored == ["LICENSE"]


def test_zipped_and_wrapped_split_folders_with_train_only(raw):
    members = {f"cifar/{name}": data for name, data in split_folders().items() if name.startswith("train/")}
    (raw / "cifar.zip").write_bytes(zip_bytes(members))
    with raw_collection(raw, "label") as collection:
        assert collection.layout == SPLIT_FOLDERS
        assert collection.given_splits == {"train"}
        assert summary(collection) == [
            ("train", "cat", "cat0.jpg", "cifar.zip:cifar/train/cat/cat0.jpg"),
            ("train", "dog", "dog0.jpg", "cifar.zip:cifar/train/dog/dog0.jpg"),
        ]


def test_split_names_mixed_with_other_folders_are_ambiguous(raw):
    write_files(raw, {**split_folders(), "extra/cat/1.jpg": png(1)})
    message = raises_raw_data_error(raw)
    assert "ambiguous" in message
    assert "mix split names (test, train, validation) and others (extra)" in message
    assert "a folder per class" in message


def test_split_folders_without_train(raw):
    write_files(raw, {name: data for name, data in split_folders().items() if not name.startswith("train/")})
    assert "split folders (test, validation) but no train/" in raises_raw_data_error(raw)


def test_both_val_and_validation(raw):
    write_files(raw, {**split_folders(), "val/cat/9.jpg": png(9)})
    assert "has both val/ and validation/" in raises_raw_data_error(raw)


def test_an_image_directly_in_a_split_folder(raw):
    write_files(raw, {**split_folders(), "test/loose.jpg": png(9)})
    message = raises_raw_data_error(raw)
    assert f"{raw / 'test' / 'loose.jpg'} is in no class folder: put every image in test/<class>/<image>" in message


def test_an_empty_class_folder_in_a_split(raw):
    write_files(raw, {**split_folders(), "validation/bird/notes.txt": b""})
    assert f"the class folder {raw / 'validation' / 'bird'} holds no images" in raises_raw_data_error(raw)


def test_a_split_folder_without_images(raw):
    write_files(raw, {name: data for name, data in split_folders().items() if not name.startswith("test/")})
    write_files(raw, {"test/README": b""})
    assert f"the split folder {raw / 'test'} holds no images" in raises_raw_data_error(raw)


# --- no layout ---------------------------------------------------------------------------------------------


def test_unrecognised_folder_lists_the_layouts(raw):
    write_files(raw, {"docs/a.txt": b"", "b.csv": b"x\n1\n"})
    message = raises_raw_data_error(raw)
    assert "holds no images and no .npy arrays" in message
    assert "found 0 images (0 directly in it), 0 .npy arrays, 2 other files, top folders: docs" in message
    for layout in ("cat.N.jpg", "a folder per class", "train/, validation/ (or val/) and test/", ".npy image array"):
        assert layout in message


def test_arrays_beside_images_are_ambiguous(raw):
    save_array(raw / "train.npy", np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8))
    write_files(raw, {"train.csv": b"id,fine_labels\n0,a\n1,b\n", **FLOWERS})
    message = raises_raw_data_error(raw, "fine_labels")
    assert "ambiguous: it mixes .npy arrays and image files" in message
    assert "found 6 images (0 directly in it), 1 .npy arrays, 1 other files" in message


def test_missing_raw_dir(tmp_path):
    missing = tmp_path / "data" / "raw"
    message = raises_raw_data_error(missing)
    assert f"data.raw_dir {str(missing)!r} is not a folder" in message
    assert DOWNLOAD_HINT in message
    assert "a folder per class" in message


def test_raw_dir_that_is_a_file(tmp_path):
    path = tmp_path / "raw"
    path.write_text("oops")
    assert "is not a folder" in raises_raw_data_error(path)


def test_empty_raw_dir(raw):
    message = raises_raw_data_error(raw)
    assert "holds no images and no .npy arrays" in message
    assert DOWNLOAD_HINT in message


def test_raw_dir_with_only_unrelated_files(raw):
    (raw / "notes.txt").write_text("todo")
    (raw / "1.jpg").write_bytes(jpeg())
    message = raises_raw_data_error(raw)
    assert "images are in no folder" in message
    assert "found 1 images (1 directly in it: 1.jpg), 0 .npy arrays, 1 other files" in message
    assert DOWNLOAD_HINT in message

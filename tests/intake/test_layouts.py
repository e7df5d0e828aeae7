"""Recognising a folder per class, split folders and image arrays in data.raw_dir (Kaggle's: test_raw_images.py)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from test_raw_images import by_source, png, raises_raw_data_error, write_files, zip_bytes

from classifier.intake.collection import ARRAYS, CLASS_FOLDERS, SPLIT_FOLDERS
from classifier.intake.layouts import raw_collection


@pytest.fixture
def raw_dir(tmp_path):
    (tmp_path / "raw").mkdir()
    return tmp_path / "raw"


def summary(collection) -> list[tuple]:
    return [(image.split, image.class_name, image.name, image.source) for image in collection.images]


FLOWERS = {
    "daisy/1.jpg": png(1), "daisy/sub/dir/2.JPEG": png(2), "roses/3.PnG": png(3), "roses/4.webp": png(4),
    "tulips/5.bmp": png(5), "tulips/6.gif": png(6),
}  # fmt: skip


# --- a folder per class ------------------------------------------------------------------------------------


def test_a_folder_per_class(raw_dir):
    write_files(raw_dir, {**FLOWERS, "roses/notes.txt": b"", "README.md": b"", ".hidden/7.jpg": png(7)})
    with raw_collection(raw_dir, "label") as collection:
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


def test_a_zip_of_a_single_top_folder_is_looked_into(raw_dir):
    """flower_photos.zip holds flower_photos/<class>/...: the wrapper folder is no class."""
    members = {f"flower_photos/{name}": data for name, data in FLOWERS.items()}
    members["flower_photos/LICENSE.txt"] = b"CC-BY"
    members["__MACOSX/flower_photos/._LICENSE.txt"] = b""
    write_files(raw_dir, {"flower_photos.zip": zip_bytes(members), "notes.txt": b""})
    with raw_collection(raw_dir, "label") as collection:
        assert collection.layout == CLASS_FOLDERS
        assert {image.class_name for image in collection.images} == {"daisy", "roses", "tulips"}
        image = by_source(collection)["flower_photos.zip:flower_photos/roses/3.PnG"]
        assert (image.name, image.read()) == ("3.PnG", png(3))
        assert sorted(collection.ignored) == ["flower_photos.zip:flower_photos/LICENSE.txt", "notes.txt"]


def test_loose_wrapper_folders_are_looked_into(raw_dir):
    write_files(raw_dir, {f"download/flowers/{name}": data for name, data in FLOWERS.items()})
    with raw_collection(raw_dir, "label") as collection:
        assert collection.layout == CLASS_FOLDERS
        assert by_source(collection)["download/flowers/daisy/1.jpg"].class_name == "daisy"


def test_a_single_class_folder_is_not_looked_into(raw_dir):
    write_files(raw_dir, {"daisy/1.jpg": png(1), "daisy/sub/2.jpg": png(2)})
    with raw_collection(raw_dir, "label") as collection:
        assert {image.class_name for image in collection.images} == {"daisy"}  # split says: one class


def test_an_image_in_no_class_folder(raw_dir):
    write_files(raw_dir, {**FLOWERS, "stray.jpg": png(9)})
    message = raises_raw_data_error(raw_dir)
    assert f"{raw_dir / 'stray.jpg'} is in no class folder: put every image in <class>/<image>" in message


def test_a_class_folder_without_images(raw_dir):
    write_files(raw_dir, {**FLOWERS, "sunflowers/notes.txt": b""})
    (raw_dir / "empty").mkdir()
    message = raises_raw_data_error(raw_dir)
    assert f"the class folder {raw_dir / 'empty'} holds no images" in message


def test_a_zipped_class_folder_without_images(raw_dir):
    write_files(raw_dir, {"f.zip": zip_bytes({**FLOWERS, "sunflowers/notes.txt": b""})})
    assert f"the class folder {raw_dir / 'sunflowers'} holds no images" in raises_raw_data_error(raw_dir)


def test_unrecognised_folder_lists_the_layouts(raw_dir):
    write_files(raw_dir, {"docs/a.txt": b"", "b.csv": b"x\n1\n"})
    message = raises_raw_data_error(raw_dir)
    assert "holds no images and no .npy arrays" in message
    assert "found 0 images (0 directly in it), 0 .npy arrays, 2 other files, top folders: docs" in message
    for layout in ("cat.N.jpg", "a folder per class", "train/, validation/ (or val/) and test/", ".npy image array"):
        assert layout in message


# --- split folders -----------------------------------------------------------------------------------------


def split_folders(val: str = "validation") -> dict[str, bytes]:
    files = {}
    for number, split in enumerate(("train", val, "test")):
        for label in ("cat", "dog"):
            files[f"{split}/{label}/{label}{number}.jpg"] = png(number)
    return files


@pytest.mark.parametrize("val", ["validation", "val"])
def test_split_folders(raw_dir, val):
    write_files(raw_dir, {**split_folders(val), "train/dog/deep/x.png": png(7), "LICENSE": b""})
    with raw_collection(raw_dir, "label") as collection:
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


def test_zipped_and_wrapped_split_folders_with_train_only(raw_dir):
    members = {f"cifar/{name}": data for name, data in split_folders().items() if name.startswith("train/")}
    (raw_dir / "cifar.zip").write_bytes(zip_bytes(members))
    with raw_collection(raw_dir, "label") as collection:
        assert collection.layout == SPLIT_FOLDERS
        assert collection.given_splits == {"train"}
        assert summary(collection) == [
            ("train", "cat", "cat0.jpg", "cifar.zip:cifar/train/cat/cat0.jpg"),
            ("train", "dog", "dog0.jpg", "cifar.zip:cifar/train/dog/dog0.jpg"),
        ]


def test_split_names_mixed_with_other_folders_are_ambiguous(raw_dir):
    write_files(raw_dir, {**split_folders(), "extra/cat/1.jpg": png(1)})
    message = raises_raw_data_error(raw_dir)
    assert "ambiguous" in message
    assert "mix split names (test, train, validation) and others (extra)" in message
    assert "a folder per class" in message


def test_split_folders_without_train(raw_dir):
    write_files(raw_dir, {name: data for name, data in split_folders().items() if not name.startswith("train/")})
    assert "split folders (test, validation) but no train/" in raises_raw_data_error(raw_dir)


def test_both_val_and_validation(raw_dir):
    write_files(raw_dir, {**split_folders(), "val/cat/9.jpg": png(9)})
    assert "has both val/ and validation/" in raises_raw_data_error(raw_dir)


def test_an_image_directly_in_a_split_folder(raw_dir):
    write_files(raw_dir, {**split_folders(), "test/loose.jpg": png(9)})
    message = raises_raw_data_error(raw_dir)
    assert f"{raw_dir / 'test' / 'loose.jpg'} is in no class folder: put every image in test/<class>/<image>" in message


def test_an_empty_class_folder_in_a_split(raw_dir):
    write_files(raw_dir, {**split_folders(), "validation/bird/notes.txt": b""})
    assert f"the class folder {raw_dir / 'validation' / 'bird'} holds no images" in raises_raw_data_error(raw_dir)


def test_a_split_folder_without_images(raw_dir):
    write_files(raw_dir, {name: data for name, data in split_folders().items() if not name.startswith("test/")})
    write_files(raw_dir, {"test/README": b""})
    assert f"the split folder {raw_dir / 'test'} holds no images" in raises_raw_data_error(raw_dir)


# --- image arrays with a labels table -----------------------------------------------------------------------


def save_array(path, array) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def pixels(count: int, seed: int = 0, shape=(4, 5, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def labels_csv(values, column="fine_labels") -> bytes:
    return (f"id,{column}\n" + "".join(f"{i},{value}\n" for i, value in enumerate(values))).encode()


def test_arrays_per_split_with_integer_labels(raw_dir):
    train, test = pixels(4, 1), pixels(2, 2)
    save_array(raw_dir / "train.npy", train)
    save_array(raw_dir / "test.npy", test)
    write_files(raw_dir, {
        "train.csv": labels_csv([10, 2, "02", 10]), "test.csv": labels_csv([2, 10]), "meta.json": b"{}",
    })  # fmt: skip
    with raw_collection(raw_dir, "fine_labels") as collection:
        assert collection.layout == ARRAYS
        assert collection.given_splits == {"train", "test"}
        assert collection.ignored == ["meta.json"]
        assert summary(collection) == [
            ("test", "2", "2.0.png", "test.npy:0"),
            ("test", "10", "10.1.png", "test.npy:1"),
            ("train", "10", "10.0.png", "train.npy:0"),
            ("train", "2", "2.1.png", "train.npy:1"),
            ("train", "2", "2.2.png", "train.npy:2"),
            ("train", "10", "10.3.png", "train.npy:3"),
        ]
        row = by_source(collection)["train.npy:2"]
        assert row.content() == train[2].tobytes()
        written = Image.open(io.BytesIO(row.read()))
        assert written.format == "PNG"
        assert np.array_equal(np.asarray(written), train[2])  # lossless


@pytest.mark.parametrize(
    ("array_name", "table_name", "split"),
    [("x_train.npy", "y_train.csv", "train"), ("train_images.npy", "train_labels.csv", "train"),
     ("images.npy", "labels.csv", None), ("cifar100.npy", "cifar100.csv", None)],
)  # fmt: skip
def test_array_and_table_pairing(raw_dir, array_name, table_name, split):
    save_array(raw_dir / array_name, pixels(2, shape=(3, 3)))  # grayscale
    write_files(raw_dir, {table_name: labels_csv(["apple", "bee"], "coarse_labels")})
    with raw_collection(raw_dir, "coarse_labels") as collection:
        assert [(image.split, image.class_name) for image in collection.images] == [(split, "apple"), (split, "bee")]
        assert np.asarray(Image.open(io.BytesIO(collection.images[1].read()))).shape == (3, 3)


def test_zipped_arrays_are_read_through_a_copy(raw_dir):
    buffer = io.BytesIO()
    np.save(buffer, pixels(2))
    (raw_dir / "cifar.zip").write_bytes(zip_bytes({"train.npy": buffer.getvalue(), "train.csv": labels_csv("ab")}))
    with raw_collection(raw_dir, "fine_labels") as collection:
        assert [image.source for image in collection.images] == ["cifar.zip:train.npy:0", "cifar.zip:train.npy:1"]
        assert collection.images[1].content() == pixels(2)[1].tobytes()


def test_label_rows_and_array_length_differ(raw_dir):
    save_array(raw_dir / "train.npy", pixels(3))
    write_files(raw_dir, {"train.csv": labels_csv("ab")})
    message = raises_raw_data_error(raw_dir, "fine_labels")
    assert f"{raw_dir / 'train.csv'} has 2 label rows but {raw_dir / 'train.npy'} holds 3 images" in message


def test_unknown_label_column(raw_dir):
    save_array(raw_dir / "train.npy", pixels(2))
    write_files(raw_dir, {"train.csv": labels_csv("ab", "coarse_labels")})
    message = raises_raw_data_error(raw_dir, "fine_labels")
    assert f"data.label_column is 'fine_labels', which {raw_dir / 'train.csv'} does not have" in message
    assert "its columns are: id, coarse_labels" in message


def test_a_missing_label(raw_dir):
    save_array(raw_dir / "train.npy", pixels(2))
    write_files(raw_dir, {"train.csv": b"id,fine_labels\n0,a\n1, \n"})
    assert "line 3 has no 'fine_labels' value" in raises_raw_data_error(raw_dir, "fine_labels")


@pytest.mark.parametrize(
    "array",
    [np.zeros((2, 4, 4, 3), np.float32), np.zeros((2, 4, 4, 4), np.uint8), np.zeros((2, 4), np.uint8)],
)
def test_wrong_array_dtype_or_shape(raw_dir, array):
    save_array(raw_dir / "train.npy", array)
    write_files(raw_dir, {"train.csv": labels_csv("ab")})
    message = raises_raw_data_error(raw_dir, "fine_labels")
    assert f"{raw_dir / 'train.npy'} holds {array.dtype} of shape {array.shape}" in message
    assert "must be uint8 of shape N x H x W x 3 (RGB) or N x H x W (grayscale)" in message


def test_pickled_arrays_are_refused(raw_dir):
    save_array(raw_dir / "train.npy", np.array([{"a": 1}, None], dtype=object))
    write_files(raw_dir, {"train.csv": labels_csv("ab")})
    assert "is not a readable .npy array" in raises_raw_data_error(raw_dir, "fine_labels")


def test_an_array_without_labels(raw_dir):
    save_array(raw_dir / "train.npy", pixels(2))
    save_array(raw_dir / "test.npy", pixels(2))
    write_files(raw_dir, {"train.csv": labels_csv("ab")})
    assert f"{raw_dir / 'test.npy'} has no labels table" in raises_raw_data_error(raw_dir, "fine_labels")


def test_labels_without_an_array(raw_dir):
    save_array(raw_dir / "train.npy", pixels(2))
    write_files(raw_dir, {"train.csv": labels_csv("ab"), "y_val.csv": labels_csv("ab")})
    assert f"{raw_dir / 'y_val.csv'} labels no image array" in raises_raw_data_error(raw_dir, "fine_labels")


def test_two_arrays_for_one_split(raw_dir):
    save_array(raw_dir / "train.npy", pixels(2))
    save_array(raw_dir / "x_train.npy", pixels(2))
    write_files(raw_dir, {"train.csv": labels_csv("ab")})
    message = raises_raw_data_error(raw_dir, "fine_labels")
    assert "are both .npy files for train" in message


def test_unsplit_and_split_arrays_together(raw_dir):
    for name in ("train", "images"):
        save_array(raw_dir / f"{name}.npy", pixels(2))
        write_files(raw_dir, {f"{name}.csv": labels_csv("ab")})
    assert "must be one unsplit pair" in raises_raw_data_error(raw_dir, "fine_labels")


def test_arrays_beside_images_are_ambiguous(raw_dir):
    save_array(raw_dir / "train.npy", pixels(2))
    write_files(raw_dir, {"train.csv": labels_csv("ab"), **FLOWERS})
    message = raises_raw_data_error(raw_dir, "fine_labels")
    assert "ambiguous: it mixes .npy arrays and image files" in message
    assert "found 6 images (0 directly in it), 1 .npy arrays, 1 other files" in message


def test_a_zip_with_a_broken_array(raw_dir):
    (raw_dir / "a.zip").write_bytes(zip_bytes({"train.npy": b"\x93NUMPY garbage", "train.csv": labels_csv("ab")},
                                               compression=zipfile.ZIP_STORED))  # fmt: skip
    assert f"{raw_dir / 'a.zip'}:train.npy is not a readable .npy array" in raises_raw_data_error(
        raw_dir, "fine_labels"
    )

"""Image arrays with a labels table in data.raw_dir (classifier.intake.raw.arrays): pairing an .npy with
its .csv, each row a lossless PNG of its class, and the one line for each way a pair is wrong."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from classifier.intake.raw.collection import ARRAYS
from classifier.intake.raw.layouts import raw_collection
from tests.support.files import save_array, write_files, zip_bytes
from tests.support.intake import by_source, raises_raw_data_error, summary


def pixels(count: int, seed: int = 0, shape=(4, 5, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def labels_csv(values, column="fine_labels") -> bytes:
    return (f"id,{column}\n" + "".join(f"{i},{value}\n" for i, value in enumerate(values))).encode()


def test_arrays_per_split_with_integer_labels(raw):
    train, test = pixels(4, 1), pixels(2, 2)
    save_array(raw / "train.npy", train)
    save_array(raw / "test.npy", test)
    write_files(raw, {
        "train.csv": labels_csv([10, 2, "02", 10]), "test.csv": labels_csv([2, 10]), "meta.json": b"{}",
    })  # fmt: skip
    with raw_collection(raw, "fine_labels") as collection:
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
def test_array_and_table_pairing(raw, array_name, table_name, split):
    save_array(raw / array_name, pixels(2, shape=(3, 3)))  # grayscale
    write_files(raw, {table_name: labels_csv(["apple", "bee"], "coarse_labels")})
    with raw_collection(raw, "coarse_labels") as collection:
        assert [(image.split, image.class_name) for image in collection.images] == [(split, "apple"), (split, "bee")]
        assert np.asarray(Image.open(io.BytesIO(collection.images[1].read()))).shape == (3, 3)


def test_zipped_arrays_are_read_through_a_copy(raw):
    buffer = io.BytesIO()
    np.save(buffer, pixels(2))
    (raw / "cifar.zip").write_bytes(zip_bytes({"train.npy": buffer.getvalue(), "train.csv": labels_csv("ab")}))
    with raw_collection(raw, "fine_labels") as collection:
        assert [image.source for image in collection.images] == ["cifar.zip:train.npy:0", "cifar.zip:train.npy:1"]
        assert collection.images[1].content() == pixels(2)[1].tobytes()


def test_label_rows_and_array_length_differ(raw):
    save_array(raw / "train.npy", pixels(3))
    write_files(raw, {"train.csv": labels_csv("ab")})
    message = raises_raw_data_error(raw, "fine_labels")
    assert f"{raw / 'train.csv'} has 2 label rows but {raw / 'train.npy'} holds 3 images" in message


def test_unknown_label_column(raw):
    save_array(raw / "train.npy", pixels(2))
    write_files(raw, {"train.csv": labels_csv("ab", "coarse_labels")})
    message = raises_raw_data_error(raw, "fine_labels")
    assert f"data.label_column is 'fine_labels', which {raw / 'train.csv'} does not have" in message
    assert "its columns are: id, coarse_labels" in message


def test_a_missing_label(raw):
    save_array(raw / "train.npy", pixels(2))
    write_files(raw, {"train.csv": b"id,fine_labels\n0,a\n1, \n"})
    assert "line 3 has no 'fine_labels' value" in raises_raw_data_error(raw, "fine_labels")


@pytest.mark.parametrize(
    "array",
    [np.zeros((2, 4, 4, 3), np.float32), np.zeros((2, 4, 4, 4), np.uint8), np.zeros((2, 4), np.uint8)],
)
def test_wrong_array_dtype_or_shape(raw, array):
    save_array(raw / "train.npy", array)
    write_files(raw, {"train.csv": labels_csv("ab")})
    message = raises_raw_data_error(raw, "fine_labels")
    assert f"{raw / 'train.npy'} holds {array.dtype} of shape {array.shape}" in message
    assert "must be uint8 of shape N x H x W x 3 (RGB) or N x H x W (grayscale)" in message


def test_pickled_arrays_are_refused(raw):
    save_array(raw / "train.npy", np.array([{"a": 1}, None], dtype=object))
    write_files(raw, {"train.csv": labels_csv("ab")})
    assert "is not a readable .npy array" in raises_raw_data_error(raw, "fine_labels")


def test_an_array_without_labels(raw):
    save_array(raw / "train.npy", pixels(2))
    save_array(raw / "test.npy", pixels(2))
    write_files(raw, {"train.csv": labels_csv("ab")})
    assert f"{raw / 'test.npy'} has no labels table" in raises_raw_data_error(raw, "fine_labels")


def test_labels_without_an_array(raw):
    save_array(raw / "train.npy", pixels(2))
    write_files(raw, {"train.csv": labels_csv("ab"), "y_val.csv": labels_csv("ab")})
    assert f"{raw / 'y_val.csv'} labels no image array" in raises_raw_data_error(raw, "fine_labels")


def test_two_arrays_for_one_split(raw):
    save_array(raw / "train.npy", pixels(2))
    save_array(raw / "x_train.npy", pixels(2))
    write_files(raw, {"train.csv": labels_csv("ab")})
    message = raises_raw_data_error(raw, "fine_labels")
    assert "are both .npy files for train" in message


def test_unsplit_and_split_arrays_together(raw):
    for name in ("train", "images"):
        save_array(raw / f"{name}.npy", pixels(2))
        write_files(raw, {f"{name}.csv": labels_csv("ab")})
    assert "must be one unsplit pair" in raises_raw_data_error(raw, "fine_labels")


def test_a_zip_with_a_broken_array(raw):
    (raw / "a.zip").write_bytes(zip_bytes({"train.npy": b"\x93NUMPY garbage", "train.csv": labels_csv("ab")},
                                               compression=zipfile.ZIP_STORED))  # fmt: skip
    assert f"{raw / 'a.zip'}:train.npy is not a readable .npy array" in raises_raw_data_error(raw, "fine_labels")

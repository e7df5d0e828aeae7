"""Decoding any image to a (size, size, 3) uint8 array, and the `prepare` stage that does it for every split."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from classifier.core.cli import StageError
from classifier.intake.classes import read_classes
from classifier.intake.images import BadImage, decode_image, to_rgb
from classifier.intake.prepared import load_prepared
from classifier.intake.tables import prepared_rows
from stages import prepare, split

REPO = Path(__file__).resolve().parents[2]
KAGGLE_TRAIN = Path(__file__).resolve().parents[3] / "shared/datasets/dogs-vs-cats/train"
RED, BLUE = (220, 20, 20), (20, 20, 220)
SIZE = 48
RANGES = {"train": [0, 4], "validation": [4, 6], "test": [6, 8]}
CLASSES = ("cat", "dog")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise_jpeg(size=(64, 48), seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels, "RGB"), "JPEG", quality=95)


def check_array(array: np.ndarray, size: int) -> None:
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.uint8
    assert array.shape == (size, size, 3)


# --- decode_image ----------------------------------------------------------------------------------------


def test_rgb_jpeg():
    array = decode_image(encode(Image.new("RGB", (20, 12), RED), "JPEG"), 10)
    check_array(array, 10)
    assert np.abs(array.astype(int) - RED).max() <= 6


def test_grayscale_jpeg_becomes_three_equal_channels():
    array = decode_image(encode(Image.new("L", (8, 8), 77), "JPEG"), 8)
    check_array(array, 8)
    assert (array == array[..., :1]).all()
    assert abs(int(array[0, 0, 0]) - 77) <= 2


def test_rgba_png_transparency_becomes_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 255, 255))
    image.putpixel((0, 0), (10, 200, 10, 0))  # fully transparent: its colour must not show
    image.putpixel((7, 7), (255, 0, 0, 128))  # half transparent red over white
    array = decode_image(encode(image, "PNG"), 8)
    check_array(array, 8)
    assert tuple(array[0, 0]) == (255, 255, 255)
    assert tuple(array[4, 4]) == (0, 0, 255)
    assert tuple(array[7, 7]) == (255, 127, 127) or tuple(array[7, 7]) == (255, 128, 128)


def test_la_png_transparency_becomes_white():
    image = Image.new("LA", (8, 8), (0, 255))
    image.putpixel((3, 3), (0, 0))
    array = decode_image(encode(image, "PNG"), 8)
    assert tuple(array[3, 3]) == (255, 255, 255)
    assert tuple(array[0, 0]) == (0, 0, 0)


def test_palette_png_with_transparency():
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * (256 * 3 - 6))
    image.putpixel((0, 0), 0)
    data = encode(image, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    array = decode_image(data, 8)
    check_array(array, 8)
    assert tuple(array[0, 0]) == (255, 255, 255)  # index 0 is transparent, not black
    assert tuple(array[4, 4]) == (200, 10, 10)


def test_palette_png_without_transparency():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0] + [0] * (256 * 3 - 3))
    array = decode_image(encode(image, "PNG"), 8)
    assert tuple(array[0, 0]) == (0, 0, 0)


def test_cmyk_jpeg():
    data = encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    array = decode_image(data, 8)
    check_array(array, 8)
    assert np.abs(array.astype(int) - (255, 0, 0)).max() <= 8  # full magenta + yellow = red


def test_png_with_a_jpg_name(tmp_path):
    path = tmp_path / "cat.0.jpg"
    path.write_bytes(encode(Image.new("RGB", (8, 8), BLUE), "PNG"))
    array = decode_image(path.read_bytes(), 8)
    check_array(array, 8)
    assert (array == BLUE).all()  # lossless: exactly the PNG's pixels


def test_non_square_images_are_squashed_not_cropped():
    image = Image.new("RGB", (48, 8), BLUE)
    image.paste(RED, (0, 0, 8, 8))  # the leftmost sixth is red
    array = decode_image(encode(image, "PNG"), 12)
    check_array(array, 12)
    assert tuple(array[6, 0]) == RED  # a centre crop would have lost the red
    assert tuple(array[6, 11]) == BLUE


def test_output_does_not_depend_on_the_input_size():
    for size in ((300, 200), (10, 40), (1, 1)):
        check_array(decode_image(encode(Image.new("RGB", size, RED), "PNG"), 23), 23)


def test_random_bytes_are_a_bad_image():
    with pytest.raises(BadImage):
        decode_image(np.random.default_rng(1).bytes(4096), 8)


def test_empty_bytes_are_a_bad_image():
    with pytest.raises(BadImage):
        decode_image(b"", 8)


def test_truncated_jpeg_is_a_bad_image():
    data = noise_jpeg()
    decode_image(data, 8)  # the whole file is fine
    with pytest.raises(BadImage, match="truncated"):
        decode_image(data[: len(data) // 2], 8)


def test_bad_image_is_a_value_error_with_a_message():
    with pytest.raises(ValueError) as info:
        decode_image(b"GIF89a not really", 8)
    assert isinstance(info.value, BadImage)
    assert str(info.value)


def test_to_rgb_modes():
    assert to_rgb(Image.new("L", (2, 2))).mode == "RGB"
    assert to_rgb(Image.new("1", (2, 2))).mode == "RGB"
    assert to_rgb(Image.new("CMYK", (2, 2))).mode == "RGB"
    assert to_rgb(Image.new("RGBA", (2, 2), (1, 2, 3, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("RGBA", (2, 2), (1, 2, 3, 255))).getpixel((0, 0)) == (1, 2, 3)


# --- high-depth images: scaled to 8 bits, or refused by name ------------------------------------------------


def test_16_bit_grayscale_is_scaled_in_every_container():
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(4, axis=0)  # 0, 1, 128, 255 in 8 bits
    little = Image.fromarray(values)  # mode I;16
    big = Image.frombytes("I;16B", (4, 4), values.astype(">u2").tobytes())
    for data in (encode(little, "PNG"), encode(little, "TIFF"), encode(big, "TIFF")):
        array = decode_image(data, 4)
        assert array[0, :, 0].tolist() == [0, 1, 128, 255], Image.open(io.BytesIO(data)).mode


def test_a_16_bit_pgm_is_scaled_by_its_own_maximum():
    data = b"P5\n4 1\n1023\n" + np.array([0, 511, 1000, 1023], ">u2").tobytes()  # 10-bit data: PIL mode I
    assert Image.open(io.BytesIO(data)).mode == "I"
    assert decode_image(data, 4)[0, :, 0].tolist() == [0, 127, 249, 255]


def test_16_bit_png_transparency_becomes_white():
    image = Image.fromarray(np.full((4, 4), 1000, np.uint16))
    image.putpixel((0, 0), 30000)
    array = decode_image(encode(image, "PNG", transparency=30000), 4)
    assert tuple(array[0, 0]) == (255, 255, 255)
    assert tuple(array[2, 2]) == (4, 4, 4)  # 1000 / 257


@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.full((4, 4), 0.5, np.float32), "32-bit float image (mode F): convert it to 8-bit RGB"),
        (np.full((4, 4), 70000, np.int32), "32-bit signed integer image (mode I): convert it to 8-bit RGB"),
    ],
)
def test_float_and_32_bit_tiffs_are_refused_by_name(pixels, message):
    with pytest.raises(BadImage) as info:
        decode_image(encode(Image.fromarray(pixels), "TIFF"), 4)
    assert str(info.value) == message


def test_an_integer_image_of_unknown_range_is_refused():
    with pytest.raises(BadImage, match=r"^32-bit integer image \(mode I\): convert it to 8-bit RGB$"):
        to_rgb(Image.new("I", (2, 2), 1000))


def real_image_paths(names):
    if not KAGGLE_TRAIN.is_dir():
        pytest.skip(f"Kaggle Dogs vs. Cats images not found at {KAGGLE_TRAIN}")
    paths = [KAGGLE_TRAIN / name for name in names]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"some of {names} are missing from {KAGGLE_TRAIN}")
    return paths


def test_real_kaggle_images():
    for path in real_image_paths(["cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.1.jpg"]):
        array = decode_image(path.read_bytes(), 150)
        check_array(array, 150)
        assert array.std() > 10, f"{path.name} decoded to a flat image"


def test_truncated_real_kaggle_image():
    (path,) = real_image_paths(["dog.2.jpg"])
    data = path.read_bytes()
    with pytest.raises(BadImage):
        decode_image(data[: len(data) // 2], 150)


# --- the prepare stage ---------------------------------------------------------------------------------------


def setup_project(tmp_path, monkeypatch, on_bad_image="fail", corrupt=()) -> Path:
    """Raw cats (red) and dogs (blue) 0-7 of assorted sizes, params.yaml for them; cwd = the project."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for label, color in zip(CLASSES, (RED, BLUE)):
        for i in range(8):
            (raw / f"{label}.{i}.jpg").write_bytes(encode(Image.new("RGB", (40 + 3 * i, 30 + i), color), "JPEG"))
    for name, data in dict(corrupt).items():
        (raw / name).write_bytes(data)
    work = tmp_path / "work"
    work.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(raw_dir=str(raw), image_size=SIZE, on_bad_image=on_bad_image, split=RANGES)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(work)
    split.main()
    return work


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


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


def test_prepare_writes_arrays_labels_and_manifest(tmp_path, monkeypatch):
    work = setup_project(tmp_path, monkeypatch)
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


def test_prepare_fails_on_a_bad_image_by_default(tmp_path, monkeypatch):
    work = setup_project(
        tmp_path, monkeypatch, corrupt={"cat.2.jpg": b"\x00not a jpeg" * 50, "dog.5.jpg": noise_jpeg()[:600]}
    )
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


def test_prepare_skips_a_bad_image_when_asked(tmp_path, monkeypatch):
    work = setup_project(tmp_path, monkeypatch, on_bad_image="skip", corrupt={"cat.2.jpg": b"\x00not a jpeg" * 50})
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


def test_prepare_without_a_split(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(work)
    with pytest.raises(StageError, match=r"data/split/manifest.csv is missing: run `dvc repro split` first"):
        prepare.main()


def test_load_prepared_without_arrays(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro prepare"):
        load_prepared("train", tmp_path)


def test_prepare_refuses_a_split_left_empty_by_skipping(tmp_path, monkeypatch):
    broken = {f"{label}.{i}.jpg": b"\x00not a jpeg" for label in CLASSES for i in (6, 7)}  # the whole test split
    work = setup_project(tmp_path, monkeypatch, on_bad_image="skip", corrupt=broken)
    with pytest.raises(StageError, match=r"no decodable image left in split\(s\) test; see data/prepared/skipped.csv"):
        prepare.main()
    assert len(read_csv(work / "data" / "prepared" / "skipped.csv")) == 4


def test_prepare_lists_a_float_image_with_its_message(tmp_path, monkeypatch):
    depth = encode(Image.fromarray(np.full((8, 8), 0.5, np.float32)), "TIFF")
    setup_project(tmp_path, monkeypatch, corrupt={"cat.3.jpg": depth})
    with pytest.raises(StageError) as info:
        prepare.main()
    assert "data/split/train/cat/cat.3.jpg: 32-bit float image (mode F): convert it to 8-bit RGB" in str(info.value)

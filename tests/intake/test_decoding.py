"""Decoding any image to a (size, size, 3) uint8 array (classifier.intake.decoding): every PIL mode and
depth, transparency, bad bytes, and real Kaggle photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from classifier.intake.decoding import BadImage, decode_image, to_rgb
from tests.support.files import encode, noise_jpeg
from tests.support.paths import KAGGLE_IMAGES, needs

RED, BLUE = (220, 20, 20), (20, 20, 220)


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
    """Real Kaggle images of ../shared (the test skipped, naming the first missing one)."""
    return [needs(KAGGLE_IMAGES / name) for name in names]


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

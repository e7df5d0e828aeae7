"""Hostile and careless input to image decoding (classifier/intake/decoding.py), to the model files load_base
and `classifier predict` are given (classifier/models/bases.py, saving.py) and to the folders predict searches:
one clear line each, or correct handling.

The cases, one test each:

- a 16-bit grayscale PNG named .jpg is scaled to 8 bits (value / 257), not clipped to white;
- a 16-bit RGB PNG decodes to its values / 257 (Pillow 13 reads it as 8-bit RGB itself: a guard);
- a 32-bit float TIFF (PIL mode F) is refused by name: predict prints one line for it and
  still predicts the other image;
- base files outside bases/ (where DVC sees their versions): params say how to move them there;
- a full model (classifier on top) given as base.name: load_base cuts it at its last feature map;
- a model with no convolutional feature map, or an unknown base.output_layer: load_base refuses
  it in one line, writes nothing;
- base.weights pointing at a README-like text file: load_base says it is not a weights file;
- a .keras file holding a Lambda layer: predict and load_base refuse it in one line, without
  Keras' advice to turn safe mode off;
- a text file named .keras: predict and load_base say it is not a Keras model file;
- models/base.keras given to predict: a convolutional base without a classifier;
- predict on an empty folder: `predict: error: no images in X`, exit 1;
- predict on a folder with symbolic link loops (`loop -> .`, `a -> b -> a`): one line per
  loop, no endless search, the other image still predicted, exit 1.

Every model here is tiny and built in the test; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from classifier.intake.decoding import BadImage, decode_image
from classifier.models import saving
from stages import load_base
from tests.support.commands import run_command
from tests.support.files import encode
from tests.support.models import conv_base
from tests.support.params import write_params
from tests.support.stages import refused

SIZE = 16  # the tiny classifier's input side


def png_16_bit(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand (PIL writes 16-bit grayscale only): gray (H, W) or RGB (H, W, 3)."""
    height, width = pixels.shape[:2]
    color_type = 2 if pixels.ndim == 3 else 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = pixels.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on each row
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def check_line(message, start: str) -> None:
    """One line, starting as expected, and never Keras' advice to turn safe mode off."""
    assert isinstance(message, str), message
    assert "\n" not in message
    assert message.startswith(start), message
    assert "safe_mode" not in message and "enable_unsafe_deserialization" not in message


# --- tiny models, built once --------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A classifier trained by nobody, a full model, a base, a Lambda model and a text file named .keras."""
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    pixels = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(pixels)
    x = keras.layers.Conv2D(2, 3, name="conv")(x)
    x = keras.layers.Flatten()(x)
    classifier = keras.Model(pixels, keras.layers.Dense(2, activation="softmax", name="predictions")(x))
    saving.save_model(classifier, folder / "classifier.keras", ["cat", "dog"])
    # A full model: convolutions and a dense head, output (None, 2), as keras.applications with include_top=True.
    full_pixels = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.Conv2D(4, 3, name="conv")(full_pixels)
    head = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    keras.Model(full_pixels, head, name="full").save(folder / "full.keras")
    (folder / "models").mkdir()
    saving.save_model(conv_base(), folder / "models" / "base.keras")
    lambda_pixels = keras.Input((None, None, 3))
    doubled = keras.layers.Lambda(lambda v: v * 2, name="doubled")(lambda_pixels)
    keras.Model(lambda_pixels, keras.layers.Conv2D(4, 3, name="conv")(doubled)).save(folder / "lambda.keras")
    (folder / "text.keras").write_text("This is a README, not a model.\n")
    (folder / "README.md").write_text("# A project\n\nSome text, not weights.\n")
    dense_pixels = keras.Input((SIZE, SIZE, 3))
    dense = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(dense_pixels))
    keras.Model(dense_pixels, dense, name="dense").save(folder / "dense.keras")
    names = (
        "classifier.keras",
        "full.keras",
        "models/base.keras",
        "lambda.keras",
        "text.keras",
        "README.md",
        "dense.keras",
    )
    return {Path(name).stem: folder / name for name in names}


@pytest.fixture
def stage_dir(work) -> Path:
    """An empty working folder with the project's params.yaml, where load_base runs."""
    write_params(work)
    return work


def set_base(folder: Path, **base) -> None:
    """Set params' base section; a file named in it is copied into bases/, where params allow base files."""
    for key in ("name", "weights"):
        if base.get(key) and Path(base[key]).is_file():
            (folder / "bases").mkdir(exist_ok=True)
            shutil.copy2(base[key], folder / "bases")
            base[key] = in_bases(base[key])
    write_params(folder, {f"base.{key}": value for key, value in base.items()})


def in_bases(path: Path | str) -> str:
    return f"bases/{Path(path).name}"


def load_base_error(folder: Path) -> str:
    """load_base's one line (`load_base: error: ` taken off), once it is checked that it wrote nothing."""
    message = refused(load_base.main, load_base.__file__, folder)
    assert not (folder / "models").exists()  # nothing written
    return message


def predict_error(capsys, *args: str) -> str:
    """`classifier predict`'s exit message when it refuses its model (SystemExit with one line)."""
    with pytest.raises(SystemExit) as info:
        run_command(["predict", *args])
    assert capsys.readouterr().out == ""
    return info.value.code


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 20, 3)).astype(np.uint8)).save(path)
    return path


# --- 3. images that decoded wrongly without a word -----------------------------------------------


def test_16_bit_grayscale_png_named_jpg_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 40 * 30).reshape(40, 30).astype(np.uint16)
    path = tmp_path / "scan.jpg"
    path.write_bytes(png_16_bit(values))
    array = decode_image(path.read_bytes(), 30)
    assert abs(array.mean() - (values / 257).mean()) < 1.5  # not 255: before, 99% of the pixels were
    assert (array == 255).mean() < 0.05
    assert (array == array[..., :1]).all()


def test_16_bit_rgb_png_is_scaled(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, (12, 12, 3)).astype(np.uint16)
    array = decode_image(png_16_bit(values), 12)  # same size: no resampling
    assert np.abs(array.astype(int) - np.rint(values / 257)).max() <= 1


def test_float_tiff_is_refused_by_name_and_predict_goes_on(files, image, tmp_path, capsys):
    data = encode(Image.fromarray(np.full((8, 8), 0.5, np.float32)), "TIFF")
    with pytest.raises(BadImage) as info:
        decode_image(data, 8)
    assert str(info.value) == "32-bit float image (mode F): convert it to 8-bit RGB"
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "depth.tif").write_bytes(data)
    shutil.copy2(image, folder)
    assert run_command(["predict", str(folder), "--model", str(files["classifier"])]) == 1
    out, err = capsys.readouterr()
    assert err == f"predict: error: {folder / 'depth.tif'}: 32-bit float image (mode F): convert it to 8-bit RGB\n"
    assert [line.split(", ")[0] for line in out.splitlines()] == [str(folder / "photo.png")]


# --- 4. impossible bases ------------------------------------------------------------------------


def test_base_file_outside_bases_is_refused_before_loading(files, stage_dir):
    write_params(stage_dir, {"base.name": str(files["full"]), "base.weights": None})
    message = load_base_error(stage_dir)
    check_line(
        message, f"params.yaml: base.name {str(files['full'])!r} is outside bases/, where DVC sees a new version"
    )


def test_full_model_as_base_is_cut_at_its_last_feature_map(files, stage_dir, capsys):
    set_base(stage_dir, name=str(files["full"]), weights=None, fine_tune_from=None)
    load_base.main()
    base = keras.models.load_model(stage_dir / "models" / "base.keras")
    assert base.output_shape == (None, SIZE - 2, SIZE - 2, 4)
    out = capsys.readouterr().out
    assert "feature map (14, 14, 4) from the output of its layer 'conv'" in out
    assert "fine_tune will unfreeze from 'conv', the base's last convolutional layer" in out


def test_model_without_a_feature_map_as_base_is_refused(files, stage_dir):
    set_base(stage_dir, name=str(files["dense"]), weights=None, fine_tune_from=None)
    message = load_base_error(stage_dir)
    check_line(
        message, "base.name 'bases/dense.keras' has no convolutional feature map (no layer outputs (None, H, W, C))"
    )


def test_unknown_output_layer_is_refused_with_the_layers_that_would_do(files, stage_dir):
    set_base(stage_dir, name=str(files["full"]), weights=None, output_layer="conv5", fine_tune_from=None)
    message = load_base_error(stage_dir)
    check_line(
        message,
        "base.output_layer 'conv5' is not a layer of base.name 'bases/full.keras'; layers with a feature map: conv",
    )


def test_text_file_as_base_weights_is_refused(files, stage_dir):
    set_base(stage_dir, name="vgg16", weights=str(files["README"]))
    message = load_base_error(stage_dir)
    check_line(message, f"base.weights {in_bases(files['README'])!r} is not a weights file")
    assert "give imagenet, null, or a weights file of vgg16" in message


# --- 5. model files Keras refuses --------------------------------------------------------------


def test_lambda_layer_file_is_refused_by_predict(files, image, capsys):
    message = predict_error(capsys, str(image), "--model", str(files["lambda"]))
    check_line(
        message,
        f"predict: error: {files['lambda']} holds a Lambda layer (Python code that safe mode will not run): "
        "refused; give ",
    )


def test_lambda_layer_file_is_refused_by_load_base(files, stage_dir):
    set_base(stage_dir, name=str(files["lambda"]), weights=None, fine_tune_from="conv")
    message = load_base_error(stage_dir)
    check_line(
        message,
        f"base.name {in_bases(files['lambda'])!r} holds a Lambda layer (Python code that safe mode will not run): "
        "refused; give ",
    )


def test_text_file_named_keras_is_refused_by_predict(files, image, capsys):
    message = predict_error(capsys, str(image), "--model", str(files["text"]))
    check_line(
        message,
        f"predict: error: {files['text']} is not a Keras model file (a .keras file is a zip archive): refused; give ",
    )


def test_text_file_named_keras_is_refused_by_load_base(files, stage_dir):
    set_base(stage_dir, name=str(files["text"]), weights=None, fine_tune_from="conv")
    message = load_base_error(stage_dir)
    check_line(
        message,
        f"base.name {in_bases(files['text'])!r} is not a Keras model file (a .keras file is a zip archive): "
        "refused; give ",
    )


def test_a_base_given_to_predict_is_refused(files, image, capsys):
    message = predict_error(capsys, str(image), "--model", str(files["base"]))
    check_line(
        message,
        f"predict: error: {files['base']} is a convolutional base without a classifier (output (None, None, None, 4)): "
        f"give one of the five trained models",
    )


# --- 7. folders ---------------------------------------------------------------------------------


def test_empty_folder_is_an_error(files, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_command(["predict", str(empty), "--model", str(files["classifier"])]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"predict: error: no images in {empty}\n"


def test_symlink_loops_are_reported_and_the_rest_predicted(files, image, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "inner").mkdir(parents=True)
    shutil.copy2(image, folder / "inner")
    os.symlink(".", folder / "loop")  # ln -s . loop
    os.symlink("..", folder / "inner" / "up")  # a loop one level down
    os.symlink("b", folder / "a")  # a -> b -> a
    os.symlink("a", folder / "b")
    assert run_command(["predict", str(folder), "--model", str(files["classifier"])]) == 1
    out, err = capsys.readouterr()
    assert [line.split(", ")[0] for line in out.splitlines()] == [str(folder / "inner" / "photo.png")]
    assert err.splitlines() == [
        f"predict: error: {folder / 'a'}: a symbolic link loop: skipped",
        f"predict: error: {folder / 'b'}: a symbolic link loop: skipped",
        f"predict: error: {folder / 'loop'}: a symbolic link loop (it leads back to {folder}): not followed",
        f"predict: error: {folder / 'inner' / 'up'}: a symbolic link loop (it leads back to {folder}): not followed",
    ]

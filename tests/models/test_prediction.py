"""classifier/models/prediction.py: running a model over image arrays in batches. predict_to_file writes
each view's rows (view-major) through a memory map released as it goes; predict_probabilities gives class
probabilities, and with test-time augmentation averages each image with its mirror (also as `classifier
predict --tta` does, and says so)."""

from __future__ import annotations

import csv
import io

import keras
import numpy as np
import pytest
from PIL import Image

from classifier.intake.decoding import decode_image
from classifier.models import architecture, prediction, saving
from classifier.models.prediction import predict_probabilities
from tests.support.commands import run_command
from tests.support.files import spy_memmaps


def test_predict_to_file_writes_view_major_rows_through_a_memory_map_released_as_it_goes(tmp_path, monkeypatch):
    pixels = keras.Input((2, 2, 3))
    model = keras.Model(pixels, keras.ops.sum(pixels, axis=(1, 2, 3)))  # one number per image: its pixel sum
    images = np.arange(7 * 12, dtype=np.uint8).reshape(7, 2, 2, 3)
    opened, released = spy_memmaps(monkeypatch), []
    monkeypatch.setattr(prediction, "release", lambda array: released.append(type(array)))
    monkeypatch.setattr(prediction, "RELEASE_EVERY", 4)
    views = (None, lambda batch: batch + 1, lambda batch: batch * 2)
    assert prediction.predict_to_file(model, images, 3, tmp_path / "out.npy", views) == 0  # rows not finite

    assert opened == [("out.npy", "w+", (21,))]
    sums = images.reshape(7, -1).sum(axis=1).astype(np.float32)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.concatenate([sums, sums + 12, sums * 2]))
    # every 4 rows written, across the views' boundaries: 21 rows cross 4, 8, 12, 16 and 20
    assert released.count(np.memmap) == 5


def test_predict_to_file_counts_the_rows_that_are_not_finite_numbers(tmp_path):
    pixels = keras.Input((2, 2, 3))
    model = keras.Model(pixels, keras.ops.log(pixels[:, 0, :, 0] - 1))  # 2 outputs: NaN below 1, -inf at 1
    images = np.full((5, 2, 2, 3), 9, np.uint8)
    images[1, 0, 1, 0], images[3, 0, 0, 0] = 0, 1  # one NaN in row 1, one -inf in row 3
    assert prediction.predict_to_file(model, images, 2, tmp_path / "out.npy") == 2
    assert tmp_path.joinpath("out.npy").stat().st_blocks * 512 >= 5 * 2 * 4  # allocated before it was written


# --- test-time augmentation ---------------------------------------------------------------------------------


def lopsided_model(classes: int) -> keras.Model:
    """A classifier of 4x4 images whose output depends on which side of the image is bright: a mirror
    image gets other probabilities."""
    pixels = keras.Input((4, 4, 3))
    x = keras.layers.Flatten()(pixels)
    model = keras.Model(pixels, architecture.output_layer(classes)(x))
    kernel = np.random.default_rng(1).normal(scale=0.003, size=(48, model.output_shape[-1])).astype(np.float32)
    model.layers[-1].set_weights([kernel, np.full(model.output_shape[-1], 0.1, np.float32)])
    return model


def by_hand(model: keras.Model, images: np.ndarray) -> np.ndarray:
    kernel, bias = model.layers[-1].get_weights()
    logits = images.reshape(len(images), -1).astype(np.float64) @ kernel + bias
    if logits.shape[1] == 1:
        p = 1 / (1 + np.exp(-logits))
        return np.concatenate([1 - p, p], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [2, 3])
def test_tta_averages_each_image_with_its_mirror(tmp_path, classes):
    model = lopsided_model(classes)
    images = np.random.default_rng(2).integers(0, 256, (5, 4, 4, 3)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")  # as evaluate reads the test split
    own, mirror = by_hand(model, images), by_hand(model, images[:, :, ::-1])
    assert np.abs(own - mirror).max(axis=1).min() > 0.01  # the mirror changes every image's probabilities
    np.testing.assert_allclose(predict_probabilities(model, mapped, 2), own, atol=1e-5)
    averaged = predict_probabilities(model, mapped, 2, tta=True)  # batches of 2: the last one padded
    np.testing.assert_allclose(averaged, (own + mirror) / 2, atol=1e-5)
    np.testing.assert_allclose(averaged.sum(axis=1), 1, atol=1e-6)
    assert predict_probabilities(model, mapped[:0], 2, tta=True).shape == (0, classes)


def test_predict_tta_is_off_by_default_and_says_when_it_is_on(tmp_path, capsys):
    model = lopsided_model(2)
    path = tmp_path / "lopsided.keras"
    saving.save_model(model, path, ["left", "right"])
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (4, 4, 3)).astype(np.uint8)).save(tmp_path / "photo.png")
    pixels = decode_image((tmp_path / "photo.png").read_bytes(), 4)  # as predict decodes it
    own, mirror = by_hand(model, pixels[None]), by_hand(model, pixels[None, :, ::-1])
    for flags, expected, said in (([], own, False), (["--tta"], (own + mirror) / 2, True)):
        assert run_command(["predict", str(tmp_path / "photo.png"), "--model", str(path), "--csv", *flags]) == 0
        out, err = capsys.readouterr()
        (row,) = list(csv.reader(io.StringIO(out)))[1:]
        np.testing.assert_allclose([float(row[2]), float(row[3])], expected[0], atol=6e-5)
        assert ("predict: test-time augmentation" in err) is said

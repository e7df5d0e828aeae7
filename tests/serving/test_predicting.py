"""classifier/serving/predicting.py, as `classifier predict` uses it: a model without a fixed input size is
refused in one line, as no image classifier of this pipeline, before any image is decoded."""

from __future__ import annotations

import keras
import pytest

from tests.support.commands import run_command
from tests.support.files import noise_png


def test_a_model_without_a_fixed_input_size_is_not_an_image_classifier(tmp_path, capsys):
    pixels = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(pixels))
    path = tmp_path / "any_size.keras"
    keras.Model(pixels, keras.layers.Dense(2, activation="softmax")(pooled)).save(path)
    with pytest.raises(SystemExit) as exit_info:
        run_command(["predict", str(noise_png(tmp_path / "photo.png")), "--model", str(path)])
    message = exit_info.value.code
    assert message.startswith(
        f"predict: error: {path} is not an image classifier of this pipeline "
        "(input (None, None, None, 3), output (None, 2)): "
        f"give one of the five trained models"
    )
    assert capsys.readouterr().out == ""

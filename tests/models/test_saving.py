"""classifier/models/saving.py: saved models take raw pixels and open in Keras' safe mode (and in stock Keras,
without this project, predicting the same); a refused or missing file is one line; save_model is deterministic
(the same bytes for the same model) and atomic (a failed save leaves the previous file, or none, and no
temporary files); a saved model carries its class names."""

from __future__ import annotations

import hashlib
import json
import re
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from classifier.core.backend import set_seed
from classifier.core.errors import StageError
from classifier.models import architecture, augmentation, bases, saving
from classifier.models.training.compiling import compile_model
from stages import train_frozen
from tests.support.models import augmented_convnet, stock_keras_outputs, tiny_model, transfer_model


def test_saved_model_takes_raw_pixels_and_loads_in_safe_mode(params, tmp_path):
    base, _ = bases.build_base(params.base.model_copy(update={"weights": None}))
    model = train_frozen.build(
        params.model_copy(update={"data": params.data.model_copy(update={"image_size": 48})}), base, 2
    )
    compile_model(model, 1e-4)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = saving.load_model(path)  # safe_mode=True: custom layers must be registered, no lambdas
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0), rtol=1e-5)
    assert loaded.predict(pixels, verbose=0).shape == (3, 1)


def test_loading_a_missing_model_says_how_to_build_it(tmp_path):
    with pytest.raises(StageError, match="dvc repro"):
        saving.load_model(tmp_path / "fine_tuned.keras")


def keras_file_with(
    path: Path, model: keras.Model, replace: dict[str, str] | None = None, drop: str | None = None
) -> Path:
    """`model` saved at `path`, then its config.json edited (strings replaced) or one entry dropped."""
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist() if name != drop}
    for old, new in (replace or {}).items():
        entries["config.json"] = entries["config.json"].replace(old.encode(), new.encode())
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_load_model_says_in_one_line_what_a_refused_file_is(tmp_path):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense"), keras.layers.ReLU(name="relu")])
    cases = {
        keras_file_with(
            tmp_path / "unknown.keras", plain, {'"ReLU"': '"FancyReLU"'}
        ): "uses a class this Keras does not know (keras.layers.FancyReLU)",
        keras_file_with(
            tmp_path / "weightless.keras", plain, drop="model.weights.h5"
        ): "is not a complete Keras model file (it holds no weights)",
        keras_file_with(
            tmp_path / "configless.keras", plain, drop="config.json"
        ): "is a zip archive but not a Keras model file (it holds no config.json)",
    }
    named = tmp_path / "named.keras"
    keras.Model(inputs := keras.Input((4,)), keras.layers.Lambda(keras.ops.abs)(inputs)).save(named)
    cases[named] = "holds a Lambda layer (Python code that safe mode will not run)"
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes((tmp_path / "unknown.keras").read_bytes()[:300])
    cases[truncated] = "is a damaged zip archive, not a complete Keras model file (cut short?)"
    for path, problem in cases.items():
        with pytest.raises(StageError) as info:
            saving.load_model(path)
        assert str(info.value) == f"{path} {problem}: refused; give {saving.A_MODEL}"


def test_a_model_or_weights_file_whose_weights_are_not_finite_numbers_is_refused(tmp_path):
    model = tiny_model(1e-3)
    kernel, bias = model.layers[-1].get_weights()
    kernel[1, 0] = np.nan
    model.layers[-1].set_weights([kernel, bias])
    saving.save_model(model, tmp_path / "nan.keras")
    model.save_weights(tmp_path / "nan.weights.h5")
    refusal = "holds weights that are not finite numbers (NaN or infinity: 1 of its 5): refused; give"
    with pytest.raises(StageError, match=rf"^{tmp_path}/nan.keras {re.escape(refusal)} a model"):
        saving.load_model(tmp_path / "nan.keras")
    with pytest.raises(StageError, match=rf"^the weights {re.escape(refusal)} weights$"):
        saving.load_weights(tiny_model(1e-3), tmp_path / "nan.weights.h5", "the weights", "weights")


def test_first_sentence_never_passes_on_the_advice_to_turn_safe_mode_off():
    err = ValueError("Something is unsafe here. Pass `safe_mode=False` to load it.\nMore detail.")
    assert saving.first_sentence(err) == "ValueError: More detail."
    assert saving.first_sentence(ValueError("Pass `safe_mode=False` to load it.")) == "ValueError"
    assert saving.first_sentence(TypeError("Bad config.\n  Full config: {...}")) == "TypeError: Bad config."


# --- save_model: deterministic and atomic ---------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_model_writes_the_same_bytes_for_the_same_model(tmp_path):
    model = augmented_convnet()
    saving.save_model(model, tmp_path / "first.keras")
    time.sleep(1.1)  # Keras stamps the save time to the second: past it, an unnormalized archive would differ
    saving.save_model(model, tmp_path / "second.keras")
    assert sha256(tmp_path / "first.keras") == sha256(tmp_path / "second.keras")
    with zipfile.ZipFile(tmp_path / "first.keras") as archive:
        assert "date_saved" not in json.loads(archive.read("metadata.json"))
        assert {entry.filename for entry in archive.infolist()} >= {"metadata.json", "config.json", "model.weights.h5"}
        assert {entry.date_time for entry in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first.keras", "second.keras"]


def test_a_normalized_model_file_loads_with_the_same_predictions(tmp_path):
    model = augmented_convnet()
    saving.save_model(model, tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)  # safe mode
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0))


def failing_save(how: str):
    """A model.save that dies midway, after writing part of the file, or that leaves a broken file behind."""

    def save(filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        if how == "raises":
            raise OSError("No space left on device")

    return save


@pytest.mark.parametrize("how, error", [("raises", StageError), ("writes a broken file", zipfile.BadZipFile)])
def test_a_failed_save_leaves_no_model_file_and_no_temporary_files(how, error, tmp_path, monkeypatch):
    model = tiny_model(1e-3)
    monkeypatch.setattr(model, "save", failing_save(how))
    destination = tmp_path / "models" / "scratch.keras"
    with pytest.raises(error):
        saving.save_model(model, destination)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []


@pytest.mark.parametrize("how, error", [("raises", StageError), ("writes a broken file", zipfile.BadZipFile)])
def test_a_failed_save_keeps_the_previous_model_file(how, error, tmp_path, monkeypatch):
    model = tiny_model(1e-3)
    destination = tmp_path / "scratch.keras"
    saving.save_model(model, destination)
    previous = destination.read_bytes()
    monkeypatch.setattr(model, "save", failing_save(how))
    with pytest.raises(error):
        saving.save_model(model, destination)
    assert destination.read_bytes() == previous
    assert [path.name for path in tmp_path.iterdir()] == ["scratch.keras"]


# --- what a saved model carries, and who can open it ------------------------------------------


def test_a_saved_model_carries_its_class_names(tmp_path):
    path = tmp_path / "model.keras"
    saving.save_model(architecture.small_convnet(32, 0.0, 3), path, ["daisy", "roses", "tulips"])
    assert saving.saved_class_names(path) == ["daisy", "roses", "tulips"]
    with zipfile.ZipFile(path) as archive:  # plain JSON in the archive: readable without this project
        assert json.loads(archive.read("metadata.json"))["class_names"] == ["daisy", "roses", "tulips"]
    assert saving.saved_class_names(tmp_path / "nothing.keras") is None


def test_saved_models_open_with_stock_keras_and_predict_the_same(params, tmp_path):
    """What a colleague, an app or a server does with a model: keras.models.load_model, safe mode,
    without this project (no custom layers: preprocessing is Keras' own, augmentation is not saved)."""
    set_seed(0)
    transfer = transfer_model(params.head)  # VGG16's caffe preprocessing as a fixed 1x1 convolution
    convnet = architecture.small_convnet(16, 0.5, 2)
    trained = augmentation.with_augmentation(convnet, augmentation.augmentation(params.augmentation, seed=0))
    compile_model(trained, 1e-4)
    saving.save_model(transfer, tmp_path / "transfer.keras", ["a", "b", "c"])
    saving.save_model(convnet, tmp_path / "scratch_augmented.keras", ["cat", "dog"])
    pixels = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    outputs = stock_keras_outputs([tmp_path / "transfer.keras", tmp_path / "scratch_augmented.keras"], pixels, tmp_path)
    for name in ("transfer", "scratch_augmented"):
        ours = saving.load_model(tmp_path / f"{name}.keras").predict(pixels, verbose=0)
        np.testing.assert_allclose(outputs[str(tmp_path / f"{name}.keras")], ours, rtol=1e-5, atol=1e-6)
    assert saving.config_classes(tmp_path / "transfer.keras").isdisjoint({"BookAugmentation", "BasePreprocessing"})

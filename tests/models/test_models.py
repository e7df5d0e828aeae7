"""Model structure against the book's numbers, base loading, preprocessing, compiling, saving
(deterministic, atomic)."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import batchnorm_base, stock_keras_outputs

from classifier.core.backend import set_seed
from classifier.core.catalog import KERAS_BASES
from classifier.core.cli import StageError
from classifier.core.params import load_params
from classifier.models import assembly, augmentation, bases, graph, heads, preprocessing, saving
from classifier.models.augmentation import BookAugmentation
from classifier.models.preprocessing import preprocessing_mode
from stages import train_frozen

ROOT = Path(__file__).resolve().parents[2]
SHARED_BASE = ROOT.parent / "shared/models/efficientnet_lite0_notop.keras"


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def vgg16(params):
    return bases.build_base(params.base.model_copy(update={"weights": None}))[0]


def with_base(params, **changes):
    return params.model_copy(update={"base": params.base.model_copy(update=changes)})


def test_vgg16_base_has_the_books_parameter_count(vgg16):
    assert vgg16.count_params() == 14_714_688
    assert vgg16.compute_output_shape((None, 150, 150, 3)) == (None, 4, 4, 512)


def test_dense_classifier_on_vgg16_features_has_the_books_parameter_count(params):
    assert heads.dense_classifier((4, 4, 512), params.head, 2).count_params() == 2_097_665


def test_average_pooling_head_is_small_on_a_large_feature_map(params):
    pooled = params.head.model_copy(update={"pooling": "average"})
    assert heads.dense_classifier((5, 5, 1280), pooled, 2).count_params() == 1280 * 256 + 256 + 257
    assert heads.dense_classifier((5, 5, 1280), params.head, 2).count_params() == 32000 * 256 + 256 + 257


def test_small_convnet_has_the_books_parameter_count():
    assert assembly.small_convnet(150, dropout=0.5, num_classes=2).count_params() == 3_453_121
    assert assembly.small_convnet(150, dropout=0.0, num_classes=2).count_params() == 3_453_121


def test_trainable_tensors_30_then_4_frozen_then_10_fine_tuned(params, vgg16):
    base = keras.models.clone_model(vgg16)
    classifier = heads.dense_classifier((4, 4, 512), params.head, 2)
    unfrozen = assembly.with_classifier(base, classifier, 150, "vgg16")
    assert len(unfrozen.trainable_weights) == 30
    model = train_frozen.build(params, base, 2)  # what stage train_frozen trains
    assert len(model.trainable_weights) == 4
    graph.unfreeze_from(graph.nested_base(model), "block5_conv1")  # what stage fine_tune trains
    assert len(model.trainable_weights) == 10
    trainable = [layer.name for layer in graph.nested_base(model).layers if layer.trainable and layer.weights]
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3"]


def test_fine_tuning_keeps_batchnorm_in_inference_mode(params):
    """Regression: Keras 3's fit overrides base(x, training=False) (keras-team/keras#20285)."""
    base = batchnorm_base()
    model = assembly.with_classifier(base, heads.dense_classifier((12, 12, 4), params.head, 2), 16, "rescale")
    graph.unfreeze_from(graph.nested_base(model), "top_conv")
    assembly.compile_model(model, 1e-2)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in base.layers if layer.weights}
    rng = np.random.default_rng(0)
    model.fit(rng.uniform(0, 255, (8, 16, 16, 3)), rng.integers(0, 2, 8).astype("float32"), epochs=2, verbose=0)
    after = {layer.name: layer.get_weights() for layer in base.layers if layer.weights}
    assert all(np.array_equal(a, b) for a, b in zip(before["top_bn"], after["top_bn"]))  # moving stats too
    assert all(np.array_equal(a, b) for a, b in zip(before["early_conv"], after["early_conv"]))
    assert not np.array_equal(before["top_conv"][0], after["top_conv"][0])


def test_unknown_fine_tune_layer_is_refused_with_its_name(vgg16):
    with pytest.raises(StageError, match="block6_conv1.*not a layer"):
        graph.unfreeze_from(vgg16, "block6_conv1")


@pytest.mark.parametrize("name", sorted(KERAS_BASES))
def test_every_known_base_builds_and_has_its_default_fine_tune_layer(params, name):
    base_params = params.base.model_copy(update={"name": name, "weights": None, "fine_tune_from": None})
    base, origin = bases.build_base(base_params)
    assert origin == f"keras.applications {KERAS_BASES[name].builder} (random weights)"
    assert bases.fine_tune_layer(base_params, base) == (
        KERAS_BASES[name].fine_tune_from,
        f"the first layer of {name}'s last block",
    )
    features = base(np.zeros((1, 64, 64, 3), np.float32))
    assert features.shape[0] == 1 and features.shape[-1] > 0


def test_imagenet_weights_offline_fail_with_instructions(params, monkeypatch):
    def no_network(fname, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_network)
    monkeypatch.setattr("keras.src.applications.vgg16.file_utils.get_file", no_network, raising=False)
    with pytest.raises(StageError) as info:
        bases.build_base(params.base)
    message = str(info.value)
    assert "vgg16" in message and "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "~/.keras/models" in message and "base.weights" in message


def test_weights_file_that_does_not_exist_is_refused(params):
    with pytest.raises(StageError, match="base.weights 'missing.h5' is not a file"):
        bases.build_base(params.base.model_copy(update={"weights": "missing.h5"}))


def test_missing_keras_base_file_is_refused(params):
    missing = params.base.model_copy(update={"name": "nowhere/base.keras", "weights": None})
    with pytest.raises(StageError, match="nowhere/base.keras' is not a file"):
        bases.build_base(missing)


def test_a_keras_base_file_that_is_not_a_model_is_refused(params, tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(
        StageError, match=r"broken.keras' is not a Keras model file \(a .keras file is a zip archive\): refused"
    ):
        bases.build_base(params.base.model_copy(update={"name": str(broken), "weights": None}))


def tiny_conv(filters: int = 4) -> keras.Model:
    pixels = keras.Input((None, None, 3))
    return keras.Model(pixels, keras.layers.Conv2D(filters, 3, name="conv")(pixels), name="tiny_conv")


def test_weights_of_another_architecture_are_refused_in_one_line(params, tmp_path):
    weights = tmp_path / "tiny.weights.h5"
    tiny_conv().save_weights(weights)
    with pytest.raises(StageError) as info:
        bases.build_base(params.base.model_copy(update={"weights": str(weights)}))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"base.weights {str(weights)!r} does not fit vgg16: the weights of 13 of its layers do not match"
    )
    assert message.endswith(
        "give imagenet, null, or a weights file of vgg16 without its top "
        "(.weights.h5, or the notop .h5 Keras downloads)"
    )


def test_a_text_file_named_h5_is_not_an_hdf5_file(params, tmp_path):
    weights = tmp_path / "vgg16.weights.h5"
    weights.write_text("not weights")
    with pytest.raises(StageError, match=r"vgg16.weights.h5' is not an HDF5 file .*: refused; give imagenet, null"):
        bases.build_base(params.base.model_copy(update={"weights": str(weights)}))


def test_weights_are_loaded_into_a_keras_base_file_and_checked(params, tmp_path):
    base, other = tiny_conv(), tiny_conv(filters=2)
    saving.save_model(base, tmp_path / "base.keras")
    base.save_weights(tmp_path / "base.weights.h5")
    other.save_weights(tmp_path / "other.weights.h5")
    keras_base = params.base.model_copy(update={"name": str(tmp_path / "base.keras"), "fine_tune_from": "conv"})
    loaded, _ = bases.build_base(keras_base.model_copy(update={"weights": str(tmp_path / "base.weights.h5")}))
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), base.get_weights()))
    with pytest.raises(
        StageError, match=r"other.weights.h5' does not fit tiny_conv: .*give null, or a .weights.h5 file"
    ):
        bases.build_base(keras_base.model_copy(update={"weights": str(tmp_path / "other.weights.h5")}))


@pytest.mark.parametrize(
    "outputs, message",
    [
        (
            lambda x: keras.layers.Dense(1000)(keras.layers.GlobalAveragePooling2D()(x)),
            "X's output is (None, 1000), not a convolutional feature map",
        ),
        (lambda x: keras.layers.Reshape((-1, 4))(x), "X's output is (None, 36, 4), not a convolutional feature map"),
        (lambda x: [x, x], "X has 2 outputs, not one convolutional feature map"),
    ],
)
def test_check_base_refuses_what_is_not_a_feature_map(outputs, message):
    pixels = keras.Input((8, 8, 3))
    model = keras.Model(pixels, outputs(keras.layers.Conv2D(4, 3)(pixels)))
    with pytest.raises(StageError) as info:
        bases.check_base(model, "X")
    assert str(info.value).startswith(message)


def test_check_base_refuses_a_base_for_grayscale_images():
    pixels = keras.Input((None, None, 1))
    with pytest.raises(StageError, match=r"X takes \(None, None, None, 1\), not RGB images \(None, H, W, 3\)"):
        bases.check_base(keras.Model(pixels, keras.layers.Conv2D(4, 3)(pixels)), "X")
    bases.check_base(tiny_conv(), "X")  # a base passes


def test_weights_file_is_loaded_into_a_keras_application(params, vgg16, tmp_path):
    weights = tmp_path / "vgg16.weights.h5"
    vgg16.save_weights(weights)
    loaded, _ = bases.build_base(params.base.model_copy(update={"weights": str(weights)}))
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), vgg16.get_weights()))


@pytest.mark.skipif(not SHARED_BASE.is_file(), reason="needs ../shared/models/efficientnet_lite0_notop.keras")
def test_a_keras_base_file_is_accepted_and_fine_tuned_from_block12(params):
    base_params = params.base.model_copy(
        update={"name": str(SHARED_BASE), "weights": None, "fine_tune_from": "block12_expand_conv"}
    )
    base, _ = bases.build_base(base_params)
    assert base.count_params() == 3_413_024
    assert preprocessing.preprocessing_mode(base_params) == "none"  # it normalises its own input
    assert base.compute_output_shape((None, 150, 150, 3)) == (None, 5, 5, 1280)
    graph.unfreeze_from(base, "block12_expand_conv")
    names = [layer.name for layer in base.layers]
    first = names.index("block12_expand_conv")
    assert not any(layer.trainable for layer in base.layers[:first])
    top = base.layers[first:]
    assert all(layer.trainable for layer in top if not isinstance(layer, keras.layers.BatchNormalization))
    assert not any(layer.trainable for layer in top if isinstance(layer, keras.layers.BatchNormalization))


@pytest.mark.parametrize("name", sorted(KERAS_BASES))
def test_preprocessing_layers_match_keras_preprocess_input(name):
    """Built-in layers do exactly what each base's preprocess_input does (so saved models need no custom code)."""
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.float32)
    module = KERAS_BASES[name].module
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    layer = preprocessing.preprocessing_layer(module)
    if layer is None:  # the EfficientNets normalise inside the model
        np.testing.assert_array_equal(expected, pixels)
    else:
        assert layer.__class__.__module__.startswith("keras.") and layer.dtype_policy.compute_dtype == "float32"
        np.testing.assert_allclose(layer(pixels), expected, rtol=1e-6, atol=1e-4)


def test_rescale_and_none_preprocessing():
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(preprocessing.preprocessing_layer("rescale")(pixels), pixels / 255, rtol=1e-6)
    assert preprocessing.preprocessing_layer("none") is None


@pytest.mark.parametrize(
    "preprocessing, name, mode",
    [("native", "vgg16", "vgg16"), ("native", "resnet50", "resnet50"), ("rescale", "vgg16", "rescale")],
)
def test_preprocessing_mode_follows_params(params, preprocessing, name, mode):
    assert preprocessing_mode(params.base.model_copy(update={"name": name, "preprocessing": preprocessing})) == mode


def test_augmentation_has_the_books_settings_and_is_off_at_inference(params):
    augment = augmentation.augmentation(params.augmentation, seed=1)
    config = augment.get_config()
    assert (config["rotation_degrees"], config["width_shift"], config["height_shift"]) == (40, 0.2, 0.2)
    assert (config["shear"], config["zoom"], config["horizontal_flip"]) == (0.2, 0.2, True)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 3)).astype(np.float32)
    np.testing.assert_array_equal(augment(pixels, training=False), pixels)
    assert not np.allclose(augment(pixels, training=True), pixels)


def book_augmentation(**settings) -> BookAugmentation:
    return BookAugmentation(**{"seed": 0, **settings})


def test_augmentation_with_every_transform_off_changes_nothing():
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 32, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(book_augmentation()(pixels, training=True), pixels, atol=1e-3)


def test_flip_alone_mirrors_some_images_and_leaves_the_others():
    pixels = np.random.default_rng(1).uniform(0, 255, (32, 16, 20, 3)).astype(np.float32)
    out = np.asarray(book_augmentation(horizontal_flip=True)(pixels, training=True))
    mirrored = [np.allclose(o, p[:, ::-1], atol=1e-3) for o, p in zip(out, pixels)]
    kept = [np.allclose(o, p, atol=1e-3) for o, p in zip(out, pixels)]
    assert all(m != k for m, k in zip(mirrored, kept))  # each image exactly one of the two
    assert 4 < sum(mirrored) < 28


def test_shifts_move_the_picture_by_at_most_their_fraction_and_fill_with_the_nearest_edge():
    pixels = np.zeros((64, 40, 40, 3), np.float32)
    pixels[:, 18:22, 18:22] = 255  # a bright square in the middle
    out = np.asarray(book_augmentation(width_shift=0.25, height_shift=0.25)(pixels, training=True))
    for image in out:
        rows, columns = np.nonzero(image[..., 0] > 127)
        assert abs(rows.mean() - 19.5) <= 10.5 and abs(columns.mean() - 19.5) <= 10.5  # 0.25 * 40 (+ rounding)
    moved = [abs(np.nonzero(image[..., 0] > 127)[1].mean() - 19.5) for image in out]
    assert max(moved) > 5  # shifts of up to 10 pixels do happen
    assert out.min() >= 0 and out.max() <= 255  # nearest-edge fill: no new values outside the image's own


def test_rotation_keeps_the_centre_pixel_and_zoom_scales_about_the_centre():
    pixels = np.zeros((16, 41, 41, 3), np.float32)
    pixels[:, 20, 20] = 255
    rotated = np.asarray(book_augmentation(rotation_degrees=40)(pixels, training=True))
    assert np.all(rotated[:, 20, 20, 0] > 250)
    square = np.zeros((16, 41, 41, 3), np.float32)
    square[:, 10:31, 10:31] = 255  # 21 pixels wide
    zoomed = np.asarray(book_augmentation(zoom=0.2)(square, training=True))
    widths = [(image[20, :, 0] > 127).sum() for image in zoomed]
    assert all(16 <= width <= 27 for width in widths)  # 21 / 1.2 .. 21 / 0.8
    assert len(set(widths)) > 1


def test_the_same_seed_gives_the_same_augmentation(params):
    pixels = np.random.default_rng(2).uniform(0, 255, (4, 24, 24, 3)).astype(np.float32)
    one = augmentation.augmentation(params.augmentation, seed=5)(pixels, training=True)
    two = augmentation.augmentation(params.augmentation, seed=5)(pixels, training=True)
    other = augmentation.augmentation(params.augmentation, seed=6)(pixels, training=True)
    np.testing.assert_array_equal(one, two)
    assert not np.allclose(one, other)


def test_saved_model_takes_raw_pixels_and_loads_in_safe_mode(params, tmp_path):
    base, _ = bases.build_base(params.base.model_copy(update={"weights": None}))
    model = train_frozen.build(
        params.model_copy(update={"data": params.data.model_copy(update={"image_size": 48})}), base, 2
    )
    assembly.compile_model(model, 1e-4)
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


def test_first_sentence_never_passes_on_the_advice_to_turn_safe_mode_off():
    err = ValueError("Something is unsafe here. Pass `safe_mode=False` to load it.\nMore detail.")
    assert saving.first_sentence(err) == "ValueError: More detail."
    assert saving.first_sentence(ValueError("Pass `safe_mode=False` to load it.")) == "ValueError"
    assert saving.first_sentence(TypeError("Bad config.\n  Full config: {...}")) == "TypeError: Bad config."


# --- save_model: deterministic and atomic ---------------------------------------------------


def augmented_convnet(params) -> keras.Model:
    """A compiled model with this project's custom layer (BookAugmentation) in front, as
    train_scratch_augmented trains."""
    set_seed(0)
    model = augmentation.with_augmentation(
        assembly.small_convnet(48, 0.5, 2), augmentation.augmentation(params.augmentation, seed=0)
    )
    assembly.compile_model(model, 1e-4)
    return model


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_model_writes_the_same_bytes_for_the_same_model(params, tmp_path):
    model = augmented_convnet(params)
    saving.save_model(model, tmp_path / "first.keras")
    time.sleep(1.1)  # Keras stamps the save time to the second: past it, an unnormalized archive would differ
    saving.save_model(model, tmp_path / "second.keras")
    assert sha256(tmp_path / "first.keras") == sha256(tmp_path / "second.keras")
    with zipfile.ZipFile(tmp_path / "first.keras") as archive:
        assert "date_saved" not in json.loads(archive.read("metadata.json"))
        assert {entry.filename for entry in archive.infolist()} >= {"metadata.json", "config.json", "model.weights.h5"}
        assert {entry.date_time for entry in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first.keras", "second.keras"]


def test_a_normalized_model_file_loads_with_the_same_predictions(params, tmp_path):
    model = augmented_convnet(params)
    saving.save_model(model, tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)  # safe mode
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0))


def dense_model() -> keras.Model:
    return keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1, activation="sigmoid")])


def tiny_dense_model() -> keras.Model:
    model = dense_model()
    assembly.compile_model(model, 1e-3)
    return model


def failing_save(how: str):
    """A model.save that dies midway, after writing part of the file, or that leaves a broken file behind."""

    def save(filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        if how == "raises":
            raise OSError("No space left on device")

    return save


@pytest.mark.parametrize("how, error", [("raises", OSError), ("writes a broken file", zipfile.BadZipFile)])
def test_a_failed_save_leaves_no_model_file_and_no_temporary_files(how, error, tmp_path, monkeypatch):
    model = tiny_dense_model()
    monkeypatch.setattr(model, "save", failing_save(how))
    destination = tmp_path / "models" / "scratch.keras"
    with pytest.raises(error):
        saving.save_model(model, destination)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []


@pytest.mark.parametrize("how, error", [("raises", OSError), ("writes a broken file", zipfile.BadZipFile)])
def test_a_failed_save_keeps_the_previous_model_file(how, error, tmp_path, monkeypatch):
    model = tiny_dense_model()
    destination = tmp_path / "scratch.keras"
    saving.save_model(model, destination)
    previous = destination.read_bytes()
    monkeypatch.setattr(model, "save", failing_save(how))
    with pytest.raises(error):
        saving.save_model(model, destination)
    assert destination.read_bytes() == previous
    assert [path.name for path in tmp_path.iterdir()] == ["scratch.keras"]


# --- compile_model ---------------------------------------------------------------------------


def test_compile_model_passes_jit_compile_through(op_determinism_off):
    default, asked, declined = dense_model(), dense_model(), dense_model()
    assembly.compile_model(default, 1e-3)
    assembly.compile_model(asked, 1e-3, jit_compile=True)
    assembly.compile_model(declined, 1e-3, jit_compile=False)
    assert default.jit_compile is False
    assert asked.jit_compile is True
    assert declined.jit_compile is False


def test_compile_model_is_rmsprop_with_binary_cross_entropy():
    model = tiny_dense_model()
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.loss == "binary_crossentropy"


# --- any number of classes ----------------------------------------------------------------------


def test_two_classes_keep_one_sigmoid_unit_and_more_get_a_softmax(params):
    two = heads.dense_classifier((4, 4, 512), params.head, 2)
    five = heads.dense_classifier((4, 4, 512), params.head, 5)
    assert two.output_shape == (None, 1) and two.get_layer("predictions").activation.__name__ == "sigmoid"
    assert five.output_shape == (None, 5) and five.get_layer("predictions").activation.__name__ == "softmax"
    assert five.count_params() == 2_097_665 - 257 + 5 * 257  # only the output layer grows


def test_a_single_class_has_no_output_layer():
    with pytest.raises(StageError, match="at least 2 classes"):
        heads.output_layer(1)


def test_compile_model_picks_the_loss_from_the_output_layer(params):
    binary, categorical = assembly.small_convnet(48, 0.0, 2), assembly.small_convnet(48, 0.0, 10)
    assembly.compile_model(binary, 1e-3)
    assembly.compile_model(categorical, 1e-3)
    assert binary.loss == "binary_crossentropy"
    assert categorical.loss == "sparse_categorical_crossentropy"


def test_a_softmax_model_trains_on_integer_labels():
    keras.utils.set_random_seed(0)
    model = assembly.small_convnet(16, 0.0, 3)
    assembly.compile_model(model, 1e-3)
    images = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype(np.float32)
    history = model.fit(images, np.array([0, 1, 2, 0, 1, 2]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "accuracy" in history.history


@pytest.mark.parametrize("size, side", [(150, 7), (46, 1), (45, 2), (32, 2), (16, 1)])
def test_the_small_convnet_takes_small_images_with_padded_convolutions(size, side):
    model = assembly.small_convnet(size, 0.0, 10)
    flatten = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    assert flatten.input.shape[1:3] == (side, side)
    padding = {layer.padding for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    assert padding == ({"valid"} if size >= 46 else {"same"})


def test_class_probabilities_of_a_sigmoid_unit_and_of_a_softmax():
    np.testing.assert_allclose(
        heads.class_probabilities(np.array([[0.25], [0.9]])), [[0.75, 0.25], [0.1, 0.9]], rtol=1e-6
    )
    softmax = np.array([[0.2, 0.3, 0.5]], np.float32)
    np.testing.assert_array_equal(heads.class_probabilities(softmax), softmax)


def test_an_empty_feature_map_is_refused_with_the_size_to_raise(vgg16):
    with pytest.raises(StageError, match=r"turns 16x16 images into an empty feature map; raise data.image_size"):
        assembly.feature_extractor(vgg16, 16, "vgg16")


def test_a_saved_model_carries_its_class_names(tmp_path):
    path = tmp_path / "model.keras"
    saving.save_model(assembly.small_convnet(32, 0.0, 3), path, ["daisy", "roses", "tulips"])
    assert saving.saved_class_names(path) == ["daisy", "roses", "tulips"]
    with zipfile.ZipFile(path) as archive:  # plain JSON in the archive: readable without this project
        assert json.loads(archive.read("metadata.json"))["class_names"] == ["daisy", "roses", "tulips"]
    assert saving.saved_class_names(tmp_path / "nothing.keras") is None


# --- a model trained here (or any model with a convolutional part) as the base ----------------------


def transfer_model(params, num_classes: int = 3) -> keras.Model:
    """A model as train_frozen saves it: pixels -> preprocessing -> nested base -> classifier."""
    pixels = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="first_conv")(pixels)
    x = keras.layers.BatchNormalization(name="bn")(x)
    base = keras.Model(pixels, keras.layers.Conv2D(6, 3, activation="relu", name="last_conv")(x), name="tiny_base")
    classifier = heads.dense_classifier((12, 12, 6), params.head, num_classes)
    return assembly.with_classifier(base, classifier, 16, "vgg16")


def file_base(params, path: Path, **changes):
    return params.base.model_copy(update={"name": str(path), "weights": None, "fine_tune_from": None, **changes})


def test_a_trained_transfer_model_as_base_is_its_preprocessing_and_base(params, tmp_path):
    model = transfer_model(params)
    saving.save_model(model, tmp_path / "task_a.keras", ["a", "b", "c"])
    base, origin = bases.build_base(file_base(params, tmp_path / "task_a.keras"))
    assert (
        origin
        == f"{tmp_path / 'task_a.keras'}: feature map (12, 12, 6) from the output of its layer 'tiny_base', its weights"
    )
    pixels = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype(np.float32)
    expected = graph.nested_base(model)(keras.applications.vgg16.preprocess_input(pixels.copy()))
    np.testing.assert_allclose(base(pixels), expected, rtol=1e-5, atol=1e-4)  # raw pixels in: preprocessing kept
    assert bases.fine_tune_layer(file_base(params, "x.keras"), base) == (
        "last_conv",
        "the base's last convolutional layer (base.fine_tune_from: null)",
    )
    # it is a base like any other: a new head on top, then fine-tuning opens the nested layers from last_conv
    task_b = assembly.with_classifier(base, heads.dense_classifier((12, 12, 6), params.head, 10), 16, "none")
    graph.freeze(graph.nested_base(task_b))
    assert len(task_b.trainable_weights) == 4
    graph.unfreeze_from(graph.nested_base(task_b), "last_conv")
    trainable = [layer for layer in graph.leaf_layers(task_b) if layer.trainable and layer.weights]
    assert [layer.name for layer in trainable[::2]] == ["last_conv", "predictions"]  # and the head's Dense between
    assert isinstance(trainable[1], keras.layers.Dense) and len(trainable) == 3


def test_a_trained_convnet_as_base_ends_at_its_last_pooling(params, tmp_path):
    convnet = assembly.small_convnet(32, 0.5, 2)
    saving.save_model(convnet, tmp_path / "scratch.keras", ["animal", "vehicle"])
    base, origin = bases.build_base(file_base(params, tmp_path / "scratch.keras"))
    last_pooling = [layer.name for layer in convnet.layers if isinstance(layer, keras.layers.MaxPooling2D)][-1]
    assert f"feature map (2, 2, 128) from the output of its layer {last_pooling!r}" in origin
    assert [type(layer).__name__ for layer in base.layers[1:3]] == ["Rescaling", "Conv2D"]
    assert base.count_params() == 240_832  # the book's 3,453,121 less its dense layers (3,212,289 at 150x150)


def test_output_layer_picks_an_earlier_feature_map(params, tmp_path):
    convnet = assembly.small_convnet(32, 0.0, 2)
    saving.save_model(convnet, tmp_path / "scratch.keras")
    second_pooling, flatten = convnet.layers[5].name, convnet.layers[10].name
    base, origin = bases.build_base(file_base(params, tmp_path / "scratch.keras", output_layer=second_pooling))
    assert base.output_shape == (None, 8, 8, 64) and f"layer {second_pooling!r}" in origin
    with pytest.raises(
        StageError, match=rf"base.output_layer {flatten!r} of .* outputs \(None, 512\), not a feature map"
    ):
        bases.build_base(file_base(params, tmp_path / "scratch.keras", output_layer=flatten))


def test_random_weights_give_the_same_architecture_untrained(params, tmp_path):
    model = transfer_model(params)
    saving.save_model(model, tmp_path / "task_a.keras")
    set_seed(1)
    trained, _ = bases.build_base(file_base(params, tmp_path / "task_a.keras"))
    untrained, origin = bases.build_base(file_base(params, tmp_path / "task_a.keras", weights="random"))
    assert origin.endswith("random weights")
    assert [w.shape for w in untrained.weights] == [w.shape for w in trained.weights]
    by_name = {w.path: w for w in trained.weights}
    changed = [w.path for w in untrained.weights if not np.array_equal(w.numpy(), by_name[w.path].numpy())]
    assert any("first_conv" in path for path in changed) and any("last_conv" in path for path in changed)
    caffe = untrained.get_layer("preprocessing")  # its constants are not weights to redraw
    np.testing.assert_array_equal(caffe.get_weights()[1], -np.array(preprocessing.IMAGENET_MEAN_BGR, np.float32))


def test_a_base_of_fixed_input_size_names_the_size_to_use(params, tmp_path):
    saving.save_model(assembly.small_convnet(32, 0.0, 2), tmp_path / "scratch.keras")
    base, _ = bases.build_base(file_base(params, tmp_path / "scratch.keras"))
    assert assembly.feature_map_shape(base, 32) == (2, 2, 128)
    with pytest.raises(StageError, match=r"takes 32x32 images only .*: set data.image_size: 32"):
        assembly.feature_map_shape(base, 48)


def test_saved_models_open_with_stock_keras_and_predict_the_same(params, tmp_path):
    """What a colleague, an app or a server does with a model: keras.models.load_model, safe mode,
    without this project (no custom layers: preprocessing is Keras' own, augmentation is not saved)."""
    set_seed(0)
    transfer = transfer_model(params)  # VGG16's caffe preprocessing as a fixed 1x1 convolution
    convnet = assembly.small_convnet(16, 0.5, 2)
    trained = augmentation.with_augmentation(convnet, augmentation.augmentation(params.augmentation, seed=0))
    assembly.compile_model(trained, 1e-4)
    saving.save_model(transfer, tmp_path / "transfer.keras", ["a", "b", "c"])
    saving.save_model(convnet, tmp_path / "scratch_augmented.keras", ["cat", "dog"])
    pixels = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    outputs = stock_keras_outputs([tmp_path / "transfer.keras", tmp_path / "scratch_augmented.keras"], pixels, tmp_path)
    for name in ("transfer", "scratch_augmented"):
        ours = saving.load_model(tmp_path / f"{name}.keras").predict(pixels, verbose=0)
        np.testing.assert_allclose(outputs[str(tmp_path / f"{name}.keras")], ours, rtol=1e-5, atol=1e-6)
    assert saving.config_classes(tmp_path / "transfer.keras").isdisjoint({"BookAugmentation", "BasePreprocessing"})

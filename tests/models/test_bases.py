"""classifier/models/bases.py: the convolutional base params name, built and checked. A keras.applications
base (the book's VGG16 and every other known one, with its default fine-tune layer), with ImageNet weights,
none or a weights file; a .keras base file (a bare base, or a trained model cut at its feature map, with its
weights or random ones); and every way one can be wrong refused in one line."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from classifier.core.backend import set_seed
from classifier.core.catalog import KERAS_BASES
from classifier.core.errors import StageError
from classifier.models import architecture, bases, graph, saving
from tests.support.models import conv_base, transfer_model
from tests.support.paths import LITE0_BASE, copy_of


def test_vgg16_base_has_the_books_parameter_count(vgg16):
    assert vgg16.count_params() == 14_714_688
    assert vgg16.compute_output_shape((None, 150, 150, 3)) == (None, 4, 4, 512)


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


def test_a_keras_base_file_is_accepted_and_fine_tuned_from_block12(params, tmp_path):
    base_file = copy_of(LITE0_BASE, tmp_path / "bases")  # as a user copies a base into bases/
    base_params = params.base.model_copy(
        update={"name": str(base_file), "weights": None, "fine_tune_from": "block12_expand_conv"}
    )
    base, _ = bases.build_base(base_params)
    assert base.count_params() == 3_413_024
    assert architecture.preprocessing_mode(base_params) == "none"  # it normalises its own input
    assert base.compute_output_shape((None, 150, 150, 3)) == (None, 5, 5, 1280)
    graph.unfreeze_from(base, "block12_expand_conv")
    names = [layer.name for layer in base.layers]
    first = names.index("block12_expand_conv")
    assert not any(layer.trainable for layer in base.layers[:first])
    top = base.layers[first:]
    assert all(layer.trainable for layer in top if not isinstance(layer, keras.layers.BatchNormalization))
    assert not any(layer.trainable for layer in top if isinstance(layer, keras.layers.BatchNormalization))


# --- a model trained here (or any model with a convolutional part) as the base ----------------------


def file_base(params, path: Path, **changes):
    return params.base.model_copy(update={"name": str(path), "weights": None, "fine_tune_from": None, **changes})


def test_a_trained_transfer_model_as_base_is_its_preprocessing_and_base(params, tmp_path):
    model = transfer_model(params.head)
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
    task_b = architecture.with_classifier(base, architecture.dense_classifier((12, 12, 6), params.head, 10), 16, "none")
    graph.freeze(graph.nested_base(task_b))
    assert len(task_b.trainable_weights) == 4
    graph.unfreeze_from(graph.nested_base(task_b), "last_conv")
    trainable = [layer for layer in graph.leaf_layers(task_b) if layer.trainable and layer.weights]
    assert [layer.name for layer in trainable[::2]] == ["last_conv", "predictions"]  # and the head's Dense between
    assert isinstance(trainable[1], keras.layers.Dense) and len(trainable) == 3


def test_a_trained_convnet_as_base_ends_at_its_last_pooling(params, tmp_path):
    convnet = architecture.small_convnet(32, 0.5, 2)
    saving.save_model(convnet, tmp_path / "scratch.keras", ["animal", "vehicle"])
    base, origin = bases.build_base(file_base(params, tmp_path / "scratch.keras"))
    last_pooling = [layer.name for layer in convnet.layers if isinstance(layer, keras.layers.MaxPooling2D)][-1]
    assert f"feature map (2, 2, 128) from the output of its layer {last_pooling!r}" in origin
    assert [type(layer).__name__ for layer in base.layers[1:3]] == ["Rescaling", "Conv2D"]
    assert base.count_params() == 240_832  # the book's 3,453,121 less its dense layers (3,212,289 at 150x150)


def test_output_layer_picks_an_earlier_feature_map(params, tmp_path):
    convnet = architecture.small_convnet(32, 0.0, 2)
    saving.save_model(convnet, tmp_path / "scratch.keras")
    second_pooling, flatten = convnet.layers[5].name, convnet.layers[10].name
    base, origin = bases.build_base(file_base(params, tmp_path / "scratch.keras", output_layer=second_pooling))
    assert base.output_shape == (None, 8, 8, 64) and f"layer {second_pooling!r}" in origin
    with pytest.raises(
        StageError, match=rf"base.output_layer {flatten!r} of .* outputs \(None, 512\), not a feature map"
    ):
        bases.build_base(file_base(params, tmp_path / "scratch.keras", output_layer=flatten))


def test_random_weights_give_the_same_architecture_untrained(params, tmp_path):
    model = transfer_model(params.head)
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
    np.testing.assert_array_equal(caffe.get_weights()[1], -np.array(architecture.IMAGENET_MEAN_BGR, np.float32))


def test_check_base_file_is_load_base_s_check_of_a_file_not_yet_in_bases(params, tmp_path):
    path = tmp_path / "elsewhere.keras"  # outside bases/: `classifier own` checks it before copying it there
    saving.save_model(conv_base(), path)
    named = params.base.model_copy(update={"name": "bases/elsewhere.keras", "weights": None, "fine_tune_from": None})
    assert bases.check_base_file(str(path), named).startswith(f"{path}: feature map (None, None, 4) from its output")
    with pytest.raises(StageError, match=r"^base.fine_tune_from 'block5_conv1' is not a layer of the base"):
        bases.check_base_file(str(path), named.model_copy(update={"fine_tune_from": "block5_conv1"}))

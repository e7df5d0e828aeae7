"""classifier/models/architecture.py: the models' architecture against the book's numbers (VGG16's dense head,
the small convnet), the average-pooling head, the base's preprocessing as Keras' own layers, the output layer
for two classes or more and its outputs as class probabilities, and images too small or of the wrong size for
a base refused with the size to use."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from classifier.core.catalog import KERAS_BASES
from classifier.core.errors import StageError
from classifier.models import architecture, bases, saving


def test_dense_classifier_on_vgg16_features_has_the_books_parameter_count(params):
    assert architecture.dense_classifier((4, 4, 512), params.head, 2).count_params() == 2_097_665


def test_average_pooling_head_is_small_on_a_large_feature_map(params):
    pooled = params.head.model_copy(update={"pooling": "average"})
    assert architecture.dense_classifier((5, 5, 1280), pooled, 2).count_params() == 1280 * 256 + 256 + 257
    assert architecture.dense_classifier((5, 5, 1280), params.head, 2).count_params() == 32000 * 256 + 256 + 257


def test_small_convnet_has_the_books_parameter_count():
    assert architecture.small_convnet(150, dropout=0.5, num_classes=2).count_params() == 3_453_121
    assert architecture.small_convnet(150, dropout=0.0, num_classes=2).count_params() == 3_453_121


@pytest.mark.parametrize("name", sorted(KERAS_BASES))
def test_preprocessing_layers_match_keras_preprocess_input(name):
    """Built-in layers do exactly what each base's preprocess_input does (so saved models need no custom code)."""
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.float32)
    module = KERAS_BASES[name].module
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    layer = architecture.preprocessing_layer(module)
    if layer is None:  # the EfficientNets normalise inside the model
        np.testing.assert_array_equal(expected, pixels)
    else:
        assert layer.__class__.__module__.startswith("keras.") and layer.dtype_policy.compute_dtype == "float32"
        np.testing.assert_allclose(layer(pixels), expected, rtol=1e-6, atol=1e-4)


def test_rescale_and_none_preprocessing():
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(architecture.preprocessing_layer("rescale")(pixels), pixels / 255, rtol=1e-6)
    assert architecture.preprocessing_layer("none") is None


@pytest.mark.parametrize(
    "preprocessing, name, mode",
    [("native", "vgg16", "vgg16"), ("native", "resnet50", "resnet50"), ("rescale", "vgg16", "rescale")],
)
def test_preprocessing_mode_follows_params(params, preprocessing, name, mode):
    base = params.base.model_copy(update={"name": name, "preprocessing": preprocessing})
    assert architecture.preprocessing_mode(base) == mode


# --- any number of classes ----------------------------------------------------------------------


def test_two_classes_keep_one_sigmoid_unit_and_more_get_a_softmax(params):
    two = architecture.dense_classifier((4, 4, 512), params.head, 2)
    five = architecture.dense_classifier((4, 4, 512), params.head, 5)
    assert two.output_shape == (None, 1) and two.get_layer("predictions").activation.__name__ == "sigmoid"
    assert five.output_shape == (None, 5) and five.get_layer("predictions").activation.__name__ == "softmax"
    assert five.count_params() == 2_097_665 - 257 + 5 * 257  # only the output layer grows


def test_a_single_class_has_no_output_layer():
    with pytest.raises(StageError, match="at least 2 classes"):
        architecture.output_layer(1)


@pytest.mark.parametrize("size, side", [(150, 7), (46, 1), (45, 2), (32, 2), (16, 1)])
def test_the_small_convnet_takes_small_images_with_padded_convolutions(size, side):
    model = architecture.small_convnet(size, 0.0, 10)
    flatten = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    assert flatten.input.shape[1:3] == (side, side)
    padding = {layer.padding for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    assert padding == ({"valid"} if size >= 46 else {"same"})


def test_class_probabilities_of_a_sigmoid_unit_and_of_a_softmax():
    np.testing.assert_allclose(
        architecture.class_probabilities(np.array([[0.25], [0.9]])), [[0.75, 0.25], [0.1, 0.9]], rtol=1e-6
    )
    softmax = np.array([[0.2, 0.3, 0.5]], np.float32)
    np.testing.assert_array_equal(architecture.class_probabilities(softmax), softmax)


# --- images a base cannot take ----------------------------------------------------------------------


def test_an_empty_feature_map_is_refused_with_the_size_to_raise(vgg16):
    with pytest.raises(StageError, match=r"turns 16x16 images into an empty feature map; raise data.image_size"):
        architecture.feature_extractor(vgg16, 16, "vgg16")


def test_a_base_of_fixed_input_size_names_the_size_to_use(params, tmp_path):
    saving.save_model(architecture.small_convnet(32, 0.0, 2), tmp_path / "scratch.keras")
    file_base = {"name": str(tmp_path / "scratch.keras"), "weights": None, "fine_tune_from": None}
    base, _ = bases.build_base(params.base.model_copy(update=file_base))
    assert architecture.feature_map_shape(base, 32) == (2, 2, 128)
    with pytest.raises(StageError, match=r"takes 32x32 images only .*: set data.image_size: 32"):
        architecture.feature_map_shape(base, 48)

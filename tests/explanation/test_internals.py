"""classifier/explanation/internals.py on tiny models built the way the stages build theirs: transfer models of
two classes (one sigmoid unit) and three (softmax), and the book's small convnet. Grad-CAM against the
gradient worked out independently, the activations of the first convolutions, filter patterns by gradient
ascent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from classifier.core.errors import StageError
from classifier.evaluation.metrics import predicted_classes
from classifier.explanation import internals
from classifier.models import architecture, graph
from classifier.models.prediction import predict_probabilities
from classifier.models.saving import load_model, save_model
from tests.support.models import TINY_IMAGE_SIZE as IMAGE_SIZE
from tests.support.models import tiny_transfer_model

FEATURE_SIZE = 13  # 32 -> conv 3x3 valid 30 -> pool 15 -> conv 3x3 valid 13


def sample_images(count: int = 6) -> np.ndarray:
    """Noise, ramps and flat colours: inputs the tiny model scores differently. Image 0 is black."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)
    images[0] = 0
    images[1] = np.linspace(0, 255, IMAGE_SIZE, dtype=np.uint8)[None, :, None]
    images[2] = (200, 30, 90)
    return images


def intended_classes(num_classes: int, count: int = 6) -> np.ndarray:
    return np.arange(count) % num_classes


def predict_intended_classes(model: keras.Model, images: np.ndarray, num_classes: int, lead: float = 2.0) -> None:
    """Fit the output layer so sample image i is predicted as class i % num_classes, clearly.

    A random head is often dead or one-sided (the same class for every image): a positive
    hidden bias keeps its relu units alive, then the output layer is solved by least squares
    for logits of +-lead (sigmoid) or a 2 * lead lead of the intended class (softmax).
    """
    classifier = model.get_layer("classifier")
    hidden = next(
        layer for layer in classifier.layers if isinstance(layer, keras.layers.Dense) and layer.name != "predictions"
    )
    kernel, bias = hidden.get_weights()
    hidden.set_weights([kernel, bias + 1.0])
    output = classifier.get_layer("predictions")
    activations = keras.Model(classifier.input, output.input)(graph.nested_base(model)(images / 255.0)).numpy()
    wanted = intended_classes(num_classes, len(images))
    targets = lead * ((2.0 * wanted[:, None] - 1.0) if num_classes == 2 else 2.0 * np.eye(num_classes)[wanted])
    solution, *_ = np.linalg.lstsq(np.c_[activations, np.ones(len(images))], targets, rcond=None)
    output.set_weights([solution[:-1].astype(np.float32), solution[-1].astype(np.float32)])


def fitted_model(num_classes: int, lead: float = 2.0) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = tiny_transfer_model(num_classes)
    predict_intended_classes(model, sample_images().astype(np.float32), num_classes, lead)
    model.num_classes = num_classes  # for the tests' expectations
    return model


@pytest.fixture(scope="module", params=[2, 3], ids=["two_classes", "three_classes"])
def model(request):
    return fitted_model(request.param)


def independent_logits(model: keras.Model, features):
    """Each class's logit, from the classifier's layers: one sigmoid unit's z is [-z, z]."""
    classifier = model.get_layer("classifier")
    output = classifier.get_layer("predictions")
    kernel, bias = output.get_weights()
    z = keras.Model(classifier.input, output.input)(features) @ kernel + bias
    return tf.concat([-z, z], axis=1) if model.num_classes == 2 else z


# --- Grad-CAM ---


def test_the_fixture_predicts_the_intended_classes(model):
    probabilities = predict_probabilities(model, sample_images(), batch_size=4)
    assert probabilities.shape == (6, model.num_classes)
    assert predicted_classes(probabilities).tolist() == intended_classes(model.num_classes).tolist()
    assert probabilities.max(axis=1).min() > 0.6  # clear decisions, no near-ties


def test_grad_cam_shape_range_and_probabilities(model):
    images = sample_images()
    heatmaps, probabilities = internals.grad_cam(model, images)
    assert heatmaps.shape == (len(images), FEATURE_SIZE, FEATURE_SIZE)
    assert np.all(np.isfinite(heatmaps))
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    for heatmap in heatmaps:
        assert heatmap.max() == pytest.approx(1.0) or np.all(heatmap == 0)
    assert sum(heatmap.max() == pytest.approx(1.0) for heatmap in heatmaps) >= 2  # not all blank
    np.testing.assert_allclose(probabilities, predict_probabilities(model, images, batch_size=6), atol=1e-5)


def test_grad_cam_of_a_black_image_is_all_zero_not_nan(model):
    # rescaled black pixels -> zero features (conv biases start at 0): nothing to normalise
    heatmaps, probabilities = internals.grad_cam(model, np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8))
    assert heatmaps.shape == (1, FEATURE_SIZE, FEATURE_SIZE)
    assert np.all(heatmaps == 0)
    assert probabilities.sum() == pytest.approx(1.0)


def test_grad_cam_weights_channels_by_the_predicted_class_logit_gradient(model, monkeypatch):
    """Recomputed independently: every class's logit gradient, then each image's predicted one.
    In batches of 4, so that the last batch is a short one."""
    monkeypatch.setattr(internals, "BATCH", 4)
    images = sample_images()
    features = tf.constant(graph.nested_base(model)(images.astype(np.float32) / 255.0))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        logits = independent_logits(model, features)
        per_class = [tf.reduce_sum(logits[:, c]) for c in range(model.num_classes)]  # images are independent
    gradients = np.stack([tape.gradient(score, features).numpy() for score in per_class])
    chosen = gradients[intended_classes(model.num_classes), np.arange(len(images))]
    expected = np.maximum((features.numpy() * chosen.mean(axis=(1, 2), keepdims=True)).sum(axis=-1), 0)
    peaks = expected.max(axis=(1, 2), keepdims=True)
    expected = np.where(peaks > 0, expected / np.where(peaks > 0, peaks, 1), 0)

    heatmaps, _ = internals.grad_cam(model, images)
    np.testing.assert_allclose(heatmaps, expected, atol=1e-5)
    assert np.abs(heatmaps[1:]).max() > 0


@pytest.mark.parametrize("num_classes", [2, 3])
def test_grad_cam_of_a_saturated_prediction_is_not_flat(num_classes):
    """P = 1.00 exactly in float32: the probability's gradient vanishes (the old heatmap was blank),
    the logit's does not."""
    model = fitted_model(num_classes, lead=100.0)
    images = sample_images()[3:]  # noise: informative images, of every class
    heatmaps, probabilities = internals.grad_cam(model, images)
    assert np.all(probabilities.max(axis=1) == 1.0)
    features = tf.constant(graph.nested_base(model)(images.astype(np.float32) / 255.0))
    with tf.GradientTape() as tape:
        tape.watch(features)
        outputs = model.get_layer("classifier")(features)
        probabilities = tf.concat([1 - outputs, outputs], axis=1) if num_classes == 2 else outputs
        top = tf.reduce_sum(tf.reduce_max(probabilities, axis=1))  # the old Grad-CAM's score
    assert np.all(tape.gradient(top, features).numpy() == 0)
    for heatmap in heatmaps:
        assert heatmap.var() > 0 and heatmap.max() == pytest.approx(1.0)


def test_grad_cam_of_the_small_convnet_uses_its_last_feature_map():
    keras.utils.set_random_seed(1)
    convnet = architecture.small_convnet(32, 0.0, 3)  # 'same' padding below 46 px: 32 -> 16 -> 8 -> 4 -> 2
    images = np.random.default_rng(3).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    heatmaps, probabilities = internals.grad_cam(convnet, images)
    assert heatmaps.shape == (5, 2, 2)
    assert np.all((heatmaps >= 0) & (heatmaps <= 1)) and np.all(np.isfinite(heatmaps))
    np.testing.assert_allclose(probabilities, predict_probabilities(convnet, images, batch_size=5), atol=1e-5)


def test_a_model_without_the_output_layer_is_refused():
    pixels = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Conv2D(2, 3)(pixels)
    plain = keras.Model(pixels, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)), name="plain")
    with pytest.raises(StageError, match="has no Dense output layer named 'predictions'"):
        internals.grad_cam(plain, sample_images()[:1])


def test_grad_cam_rows_take_the_first_images_of_the_first_eight_classes():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    assert internals.grad_cam_rows(labels, 2).tolist() == [0, 3, 1, 4, 2, 5]
    assert internals.grad_cam_rows(labels, 9).tolist() == [0, 3, 6, 9, 1, 4, 7, 2, 5, 8]
    many = np.tile(np.arange(100), 3)  # 100 classes: heatmaps for 8 only
    rows = internals.grad_cam_rows(many, 3)
    assert len(rows) == 8 * 3
    assert sorted(set(many[rows])) == list(range(8))


# --- activations and filter patterns ---


def test_activations_are_the_first_convolutions_outputs_from_raw_pixels(model):
    layers = internals.first_convolutions(model, 4)  # the tiny base has two
    assert [layer.name for layer in layers] == [layer.name for layer in graph.convolutional_layers(model)]
    image = sample_images()[4]
    maps = internals.activations(model, image, layers)
    assert [m.shape for m in maps] == [(30, 30, 4), (FEATURE_SIZE, FEATURE_SIZE, 8)]
    base = graph.nested_base(model)
    first = keras.Model(base.inputs[0], base.layers[1].output)(image[None].astype(np.float32) / 255.0)[0]
    np.testing.assert_allclose(maps[0], first, atol=1e-5)
    np.testing.assert_allclose(maps[1], base(image[None].astype(np.float32) / 255.0)[0], atol=1e-5)


def test_layers_inside_a_base_cut_from_a_trained_model_and_caffe_preprocessing(tmp_path):
    """pixels -> caffe 1x1 conv -> tiny base, saved; then a model on a base cut from it (a nested model
    in a nested model, as base.name: <a .keras file> makes): both read the same activations."""
    keras.utils.set_random_seed(2)
    first = tiny_transfer_model(2, mode="vgg16")
    save_model(first, tmp_path / "first.keras")
    first = load_model(tmp_path / "first.keras")
    cut = keras.Model(first.inputs, graph.output_in(first, graph.nested_base(first)), name="first_base")
    second = tiny_transfer_model(2, base=cut, mode="none")
    layers = internals.first_convolutions(second, 4)
    assert [layer.name for layer in layers] == [layer.name for layer in internals.first_convolutions(first, 4)]
    assert "preprocessing" not in [layer.name for layer in layers]
    assert internals.containers(second, layers[0])[1:] == [cut, cut.get_layer("tiny_base")]
    image = sample_images()[5]
    expected = internals.activations(first, image, layers)
    for got, want in zip(internals.activations(second, image, layers), expected):
        np.testing.assert_allclose(got, want, atol=1e-4)
    heatmaps, _ = internals.grad_cam(second, sample_images())
    assert heatmaps.shape == (6, FEATURE_SIZE, FEATURE_SIZE)


def test_spread_convolutions_take_the_first_the_middle_and_the_last():
    convnet = architecture.small_convnet(32, 0.0, 2)
    names = [layer.name for layer in graph.convolutional_layers(convnet)]
    assert [layer.name for layer in internals.spread_convolutions(convnet, 3)] == [names[0], names[2], names[3]]
    assert [layer.name for layer in internals.spread_convolutions(convnet, 1)] == [names[0]]
    assert [layer.name for layer in internals.spread_convolutions(convnet, 9)] == names


def test_filter_pattern_ascent_raises_each_filters_mean_activation(model):
    layer = graph.convolutional_layers(model)[1]  # 8 filters
    start = internals.filter_patterns(model, layer, 6, 0, 48, seed=5)  # no step: gray with a little noise
    patterns = internals.filter_patterns(model, layer, 6, 10, 48, seed=5)
    assert patterns.shape == start.shape == (6, 48, 48, 3)  # any size the layers take, not only 32
    assert patterns.min() >= 0 and patterns.max() <= 255
    before, after = internals.filter_means(model, layer, start), internals.filter_means(model, layer, patterns)
    alive = before > 0  # a relu filter silent on the whole start image has no gradient to follow
    assert alive.sum() >= 2
    assert np.all(after[alive] > before[alive]) and after.sum() > 1.5 * before.sum(), (before, after)
    assert np.all(after[~alive] == 0)
    np.testing.assert_array_equal(patterns, internals.filter_patterns(model, layer, 6, 10, 48, seed=5))  # repeatable


def test_filter_patterns_are_capped_at_the_layers_filters(model):
    layer = graph.convolutional_layers(model)[0]  # 4 filters
    assert internals.filter_patterns(model, layer, 16, 1, 48, seed=0).shape == (4, 48, 48, 3)

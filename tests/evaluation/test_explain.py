"""Stage `explain` and classifier/evaluation/explaining.py on tiny models built the way the stages build theirs:
transfer models of two classes (one sigmoid unit) and three (softmax), and the book's small convnet."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from classifier.core.cli import StageError
from classifier.core.schema import HeadParams
from classifier.evaluation import explaining, pictures
from classifier.evaluation.metrics import predicted_classes
from classifier.intake.prepared import save_prepared
from classifier.models import assembly, graph, heads
from classifier.models.prediction import predict_probabilities
from classifier.models.saving import load_model, save_model
from stages import explain

REPO = Path(__file__).resolve().parents[2]
IMAGE_SIZE = 32
FEATURE_SIZE = 13  # 32 -> conv 3x3 valid 30 -> pool 15 -> conv 3x3 valid 13
HIDDEN_UNITS = 8  # more than the sample images, so the output layer can be fitted to any targets


def tiny_base() -> keras.Model:
    pixels = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(pixels)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    return keras.Model(pixels, x, name="tiny_base")


def tiny_transfer_model(num_classes: int, base: keras.Model | None = None, mode: str = "rescale") -> keras.Model:
    base = base or tiny_base()
    features_shape = base.compute_output_shape((None, IMAGE_SIZE, IMAGE_SIZE, 3))[1:]  # as train_frozen.build
    head = HeadParams(pooling="flatten", dense_units=HIDDEN_UNITS, dropout=0.0)
    classifier = heads.dense_classifier(features_shape, head, num_classes)
    return assembly.with_classifier(base, classifier, image_size=IMAGE_SIZE, mode=mode)


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
    heatmaps, probabilities = explaining.grad_cam(model, images)
    assert heatmaps.shape == (len(images), FEATURE_SIZE, FEATURE_SIZE)
    assert np.all(np.isfinite(heatmaps))
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    for heatmap in heatmaps:
        assert heatmap.max() == pytest.approx(1.0) or np.all(heatmap == 0)
    assert sum(heatmap.max() == pytest.approx(1.0) for heatmap in heatmaps) >= 2  # not all blank
    np.testing.assert_allclose(probabilities, predict_probabilities(model, images, batch_size=6), atol=1e-5)


def test_grad_cam_of_a_black_image_is_all_zero_not_nan(model):
    # rescaled black pixels -> zero features (conv biases start at 0): nothing to normalise
    heatmaps, probabilities = explaining.grad_cam(model, np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8))
    assert heatmaps.shape == (1, FEATURE_SIZE, FEATURE_SIZE)
    assert np.all(heatmaps == 0)
    assert probabilities.sum() == pytest.approx(1.0)


def test_grad_cam_weights_channels_by_the_predicted_class_logit_gradient(model, monkeypatch):
    """Recomputed independently: every class's logit gradient, then each image's predicted one.
    In batches of 4, so that the last batch is a short one."""
    monkeypatch.setattr(explaining, "BATCH", 4)
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

    heatmaps, _ = explaining.grad_cam(model, images)
    np.testing.assert_allclose(heatmaps, expected, atol=1e-5)
    assert np.abs(heatmaps[1:]).max() > 0


@pytest.mark.parametrize("num_classes", [2, 3])
def test_grad_cam_of_a_saturated_prediction_is_not_flat(num_classes):
    """P = 1.00 exactly in float32: the probability's gradient vanishes (the old heatmap was blank),
    the logit's does not."""
    model = fitted_model(num_classes, lead=100.0)
    images = sample_images()[3:]  # noise: informative images, of every class
    heatmaps, probabilities = explaining.grad_cam(model, images)
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
    convnet = assembly.small_convnet(32, 0.0, 3)  # 'same' padding below 46 px: 32 -> 16 -> 8 -> 4 -> 2
    images = np.random.default_rng(3).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    heatmaps, probabilities = explaining.grad_cam(convnet, images)
    assert heatmaps.shape == (5, 2, 2)
    assert np.all((heatmaps >= 0) & (heatmaps <= 1)) and np.all(np.isfinite(heatmaps))
    np.testing.assert_allclose(probabilities, predict_probabilities(convnet, images, batch_size=5), atol=1e-5)


def test_a_model_without_the_output_layer_is_refused():
    pixels = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Conv2D(2, 3)(pixels)
    plain = keras.Model(pixels, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)), name="plain")
    with pytest.raises(StageError, match="has no Dense output layer named 'predictions'"):
        explaining.grad_cam(plain, sample_images()[:1])


def test_grad_cam_rows_take_the_first_images_of_the_first_eight_classes():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    assert explaining.grad_cam_rows(labels, 2).tolist() == [0, 3, 1, 4, 2, 5]
    assert explaining.grad_cam_rows(labels, 9).tolist() == [0, 3, 6, 9, 1, 4, 7, 2, 5, 8]
    many = np.tile(np.arange(100), 3)  # 100 classes: heatmaps for 8 only
    rows = explaining.grad_cam_rows(many, 3)
    assert len(rows) == 8 * 3
    assert sorted(set(many[rows])) == list(range(8))


# --- activations and filter patterns ---


def test_activations_are_the_first_convolutions_outputs_from_raw_pixels(model):
    layers = explaining.first_convolutions(model, 4)  # the tiny base has two
    assert [layer.name for layer in layers] == [layer.name for layer in graph.convolutional_layers(model)]
    image = sample_images()[4]
    maps = explaining.activations(model, image, layers)
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
    layers = explaining.first_convolutions(second, 4)
    assert [layer.name for layer in layers] == [layer.name for layer in explaining.first_convolutions(first, 4)]
    assert "preprocessing" not in [layer.name for layer in layers]
    assert explaining.containers(second, layers[0])[1:] == [cut, cut.get_layer("tiny_base")]
    image = sample_images()[5]
    expected = explaining.activations(first, image, layers)
    for got, want in zip(explaining.activations(second, image, layers), expected):
        np.testing.assert_allclose(got, want, atol=1e-4)
    heatmaps, _ = explaining.grad_cam(second, sample_images())
    assert heatmaps.shape == (6, FEATURE_SIZE, FEATURE_SIZE)


def test_spread_convolutions_take_the_first_the_middle_and_the_last():
    convnet = assembly.small_convnet(32, 0.0, 2)
    names = [layer.name for layer in graph.convolutional_layers(convnet)]
    assert [layer.name for layer in explaining.spread_convolutions(convnet, 3)] == [names[0], names[2], names[3]]
    assert [layer.name for layer in explaining.spread_convolutions(convnet, 1)] == [names[0]]
    assert [layer.name for layer in explaining.spread_convolutions(convnet, 9)] == names


def test_filter_pattern_ascent_raises_each_filters_mean_activation(model):
    layer = graph.convolutional_layers(model)[1]  # 8 filters
    start = explaining.filter_patterns(model, layer, 6, 0, 48, seed=5)  # no step: gray with a little noise
    patterns = explaining.filter_patterns(model, layer, 6, 10, 48, seed=5)
    assert patterns.shape == start.shape == (6, 48, 48, 3)  # any size the layers take, not only 32
    assert patterns.min() >= 0 and patterns.max() <= 255
    before, after = explaining.filter_means(model, layer, start), explaining.filter_means(model, layer, patterns)
    alive = before > 0  # a relu filter silent on the whole start image has no gradient to follow
    assert alive.sum() >= 2
    assert np.all(after[alive] > before[alive]) and after.sum() > 1.5 * before.sum(), (before, after)
    assert np.all(after[~alive] == 0)
    np.testing.assert_array_equal(patterns, explaining.filter_patterns(model, layer, 6, 10, 48, seed=5))  # repeatable


def test_filter_patterns_are_capped_at_the_layers_filters(model):
    layer = graph.convolutional_layers(model)[0]  # 4 filters
    assert explaining.filter_patterns(model, layer, 16, 1, 48, seed=0).shape == (4, 48, 48, 3)


# --- the stage, in a scratch workspace ---


def workspace(folder: Path, model: keras.Model, class_names: list[str], **explain_params) -> None:
    """params.yaml, data/classes.json, the test arrays (9 images) and models/<explain.model>.keras in `folder`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["explain"].update(dict(model="fine_tuned", image=1, filter_steps=2, filter_size=48, gradcam_per_class=2))
    params["explain"].update(explain_params)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    (folder / "data/prepared").mkdir(parents=True)
    (folder / "data/classes.json").write_text(json.dumps(class_names))
    labels = np.arange(9, dtype=np.uint8) % len(class_names)
    images = np.random.default_rng(0).integers(0, 256, (9, *model.input_shape[1:])).astype(np.uint8)
    save_prepared("test", images, labels, folder / "data/prepared")
    save_model(model, folder / "models/fine_tuned.keras", class_names)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def grid_pixels(*rows_per_block: int) -> tuple[int, int]:
    """The size of an activations or filters picture whose blocks hold these rows of cells."""
    inches = pictures.TITLE + sum(rows * pictures.CELL + pictures.TITLE for rows in rows_per_block)
    return round(pictures.GRID_COLUMNS * pictures.CELL * pictures.DPI), round(inches * pictures.DPI)


def test_the_stage_on_a_transfer_model(tmp_path, monkeypatch, capsys):
    workspace(tmp_path, fitted_model(3), ["cat", "dog", "fox"])
    monkeypatch.chdir(tmp_path)
    explain.main()
    assert "explain.activation_layers asks for 4 convolutional layers, the model has 2" in capsys.readouterr().out
    # the image, then two layers of 4 and 8 channels: one row each
    assert png_size(Path("metrics/explain/activations.png")) == grid_pixels(1, 1, 1)
    assert png_size(Path("metrics/explain/filters.png")) == grid_pixels(1, 1)  # 4 filters, then 8
    assert png_size(Path("metrics/explain/gradcam.png")) == (960, round((3.2 * 3 + 0.6) * 80))  # 6 images, 2 a row


def test_the_stage_on_the_small_convnet(tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    workspace(tmp_path, assembly.small_convnet(32, 0.0, 3), ["cat", "dog", "fox"], gradcam_per_class=1, filters=9)
    monkeypatch.chdir(tmp_path)
    explain.main()
    # four layers of 32 to 128 channels, 16 shown: two rows each; 9 filters of 3 layers: two rows each
    assert png_size(Path("metrics/explain/activations.png")) == grid_pixels(1, 2, 2, 2, 2)
    assert png_size(Path("metrics/explain/filters.png")) == grid_pixels(2, 2, 2)
    assert png_size(Path("metrics/explain/gradcam.png")) == (960, round((3.2 * 2 + 0.6) * 80))


def test_a_test_image_beyond_the_split_is_one_line_before_any_work(tmp_path, monkeypatch):
    workspace(tmp_path, fitted_model(2), ["cat", "dog"], image=9)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(explain, "load_model", lambda path: pytest.fail("loaded the model"))
    with pytest.raises(StageError, match=r"^explain.image 9 is beyond the test split's 9 images: give 0 to 8$"):
        explain.main()
    assert not Path("metrics/explain").exists()


def test_a_model_of_other_classes_is_refused(tmp_path, monkeypatch):
    workspace(tmp_path, fitted_model(3), ["cat", "dog"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="trained on other classes than the 2 in data/classes.json"):
        explain.main()

"""Grad-CAM and the mistakes gallery on tiny models built the way the stages build theirs:
two classes (one sigmoid unit) and three (softmax)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stages.common import models, pictures
from stages.common.evaluation import predicted_classes
from stages.common.params import HeadParams
from stages.common.prediction import predict_probabilities

IMAGE_SIZE = 32
FEATURE_SIZE = 13  # 32 -> conv 3x3 valid 30 -> pool 15 -> conv 3x3 valid 13
HIDDEN_UNITS = 8  # more than the sample images, so the output layer can be fitted to any targets
CLASS_NAMES = {2: ["cat", "dog"], 3: ["cat", "dog", "fox"]}
MAX_SIDE = 4000  # pixels: a sane picture for a report


def tiny_base() -> keras.Model:
    pixels = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(pixels)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    return keras.Model(pixels, x, name="tiny_base")


def tiny_transfer_model(num_classes: int) -> keras.Model:
    base = tiny_base()
    features_shape = base.compute_output_shape((None, IMAGE_SIZE, IMAGE_SIZE, 3))[1:]  # as train_frozen.build
    head = HeadParams(pooling="flatten", dense_units=HIDDEN_UNITS, dropout=0.0)
    classifier = models.dense_classifier(features_shape, head, num_classes)
    return models.with_classifier(base, classifier, image_size=IMAGE_SIZE, mode="rescale")


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


def predict_intended_classes(model: keras.Model, images: np.ndarray, num_classes: int) -> None:
    """Fit the output layer so sample image i is predicted as class i % num_classes, clearly.

    A random head is often dead or one-sided (the same class for every image): a positive
    hidden bias keeps its relu units alive, then the output layer is solved by least squares
    for logits of +-2 (sigmoid) or a 4-point lead of the intended class (softmax).
    """
    classifier = model.get_layer("classifier")
    hidden = next(
        layer for layer in classifier.layers if isinstance(layer, keras.layers.Dense) and layer.name != "predictions"
    )
    kernel, bias = hidden.get_weights()
    hidden.set_weights([kernel, bias + 1.0])
    output = classifier.get_layer("predictions")
    activations = keras.Model(classifier.input, output.input)(models.nested_base(model)(images / 255.0)).numpy()
    wanted = intended_classes(num_classes, len(images))
    targets = (4.0 * wanted[:, None] - 2.0) if num_classes == 2 else 4.0 * np.eye(num_classes)[wanted]
    solution, *_ = np.linalg.lstsq(np.c_[activations, np.ones(len(images))], targets, rcond=None)
    output.set_weights([solution[:-1].astype(np.float32), solution[-1].astype(np.float32)])


@pytest.fixture(scope="module", params=[2, 3], ids=["two_classes", "three_classes"])
def model(request):
    keras.utils.set_random_seed(0)
    model = tiny_transfer_model(request.param)
    predict_intended_classes(model, sample_images().astype(np.float32), request.param)
    model.num_classes = request.param  # for the tests' expectations
    return model


def capture_figures(monkeypatch) -> list:
    """Record the figures the module makes (they are closed, but their axes can still be read)."""
    made = []
    real_subplots = pictures.plt.subplots

    def subplots(*args, **kwargs):
        figure, axes = real_subplots(*args, **kwargs)
        made.append((figure, axes))
        return figure, axes

    monkeypatch.setattr(pictures.plt, "subplots", subplots)
    return made


def png_size(path) -> tuple[int, int]:
    """Width and height of a valid PNG of sane size."""
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        width, height = image.size
    assert 200 <= width <= MAX_SIDE and 200 <= height <= MAX_SIDE, (width, height)
    return width, height


def titles(figure) -> list[str]:
    return [axis.get_title() for axis in figure.axes if axis.get_title()]


# --- grad_cam ---


def test_the_fixture_predicts_the_intended_classes(model):
    probabilities = predict_probabilities(model, sample_images(), batch_size=4)
    assert probabilities.shape == (6, model.num_classes)
    assert predicted_classes(probabilities).tolist() == intended_classes(model.num_classes).tolist()
    assert probabilities.max(axis=1).min() > 0.6  # clear decisions, no near-ties


def test_grad_cam_shape_range_and_probabilities(model):
    images = sample_images()
    heatmaps, probabilities = pictures.grad_cam(model, images.astype(np.float32))
    base = models.nested_base(model)
    assert base.name == "tiny_base"
    assert base.compute_output_shape((None, IMAGE_SIZE, IMAGE_SIZE, 3))[1:3] == (FEATURE_SIZE, FEATURE_SIZE)
    assert heatmaps.shape == (len(images), FEATURE_SIZE, FEATURE_SIZE)
    assert np.all(np.isfinite(heatmaps))
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    for heatmap in heatmaps:
        assert heatmap.max() == pytest.approx(1.0) or np.all(heatmap == 0)
    assert sum(heatmap.max() == pytest.approx(1.0) for heatmap in heatmaps) >= 2  # not all blank
    expected = predict_probabilities(model, images, batch_size=6)
    assert probabilities.shape == (len(images), model.num_classes)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_grad_cam_of_a_black_image_is_all_zero_not_nan(model):
    # rescaled black pixels -> zero features (conv biases start at 0): nothing to normalise
    heatmaps, probabilities = pictures.grad_cam(model, np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))
    assert heatmaps.shape == (1, FEATURE_SIZE, FEATURE_SIZE)
    assert np.all(heatmaps == 0)
    assert probabilities.sum() == pytest.approx(1.0)


def test_grad_cam_weights_channels_by_the_predicted_class_gradient(model):
    """Recomputed independently: every class's gradient, then each image's predicted one
    (for one sigmoid unit, the cat score 1 - p has gradient -dp)."""
    images = sample_images()
    base = models.nested_base(model)
    classifier = model.get_layer("classifier")
    features = tf.constant(base(images.astype(np.float32) / 255.0, training=False))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        outputs = classifier(features, training=False)
        scores = tf.concat([1 - outputs, outputs], axis=1) if model.num_classes == 2 else outputs
        per_class = [tf.reduce_sum(scores[:, c]) for c in range(model.num_classes)]  # images are independent
    gradients = np.stack([tape.gradient(score, features).numpy() for score in per_class])
    chosen = gradients[intended_classes(model.num_classes), np.arange(len(images))]
    weights = chosen.mean(axis=(1, 2), keepdims=True)
    expected = np.maximum((features.numpy() * weights).sum(axis=-1), 0)
    peaks = expected.max(axis=(1, 2), keepdims=True)
    expected = np.where(peaks > 0, expected / np.where(peaks > 0, peaks, 1), 0)

    heatmaps, _ = pictures.grad_cam(model, images.astype(np.float32))
    np.testing.assert_allclose(heatmaps, expected, atol=1e-5)
    assert np.abs(heatmaps[1:]).max() > 0


def test_grad_cam_figure_writes_a_png_with_true_and_predicted_classes(model, tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    images = sample_images()[1:5]  # four with heatmaps (image 0 is black), of every class
    labels = np.array([2, 1, 0, 0], np.uint8) % model.num_classes
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    class_names = CLASS_NAMES[model.num_classes]
    out = tmp_path / "gradcam.png"
    pictures.grad_cam_figure(model, images, labels, names, class_names, "tiny", out)
    png_size(out)
    (figure, axes), = made
    shown = titles(figure)
    for name, label in zip(names, labels):
        assert f"{name} (true {class_names[label]})" in shown
    _, probabilities = pictures.grad_cam(model, images.astype(np.float32))
    predicted = intended_classes(model.num_classes)[1:5]
    overlays = [title for title in shown if title.startswith("Grad-CAM")]
    assert overlays == [
        f"Grad-CAM: {class_names[c]} ({probabilities[i, c]:.2f})" for i, c in enumerate(predicted)
    ]
    assert figure._suptitle.get_text().startswith("tiny: class activation heatmaps")


def test_grad_cam_rows_take_the_first_images_of_the_first_eight_classes():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    assert pictures.grad_cam_rows(labels, 2).tolist() == [0, 3, 1, 4, 2, 5]
    assert pictures.grad_cam_rows(labels, 9).tolist() == [0, 3, 6, 9, 1, 4, 7, 2, 5, 8]
    many = np.tile(np.arange(100), 3)  # 100 classes: heatmaps for 8 only
    rows = pictures.grad_cam_rows(many, 3)
    assert len(rows) == 8 * 3
    assert sorted(set(many[rows])) == list(range(8))


# --- most_wrong_gallery ---

# index:     0      1      2      3      4      5      6
# actual:    cat    dog    cat    dog    dog    cat    cat
# P(dog):    .55    .2     .9     .95    .5     .1     .7
# wrong?     yes    yes    yes    no     no(.5 = dog)  no   yes
# P(true class): .45  .2   .1    .95    .5    .9    .3  -> most confident mistakes 2, 1, 6, 0
GALLERY_LABELS = np.array([0, 1, 0, 1, 1, 0, 0], np.uint8)  # uint8, as load_prepared gives them
GALLERY_P = np.array([0.55, 0.2, 0.9, 0.95, 0.5, 0.1, 0.7], np.float32)
GALLERY_NAMES = [f"img{i}.jpg" for i in range(7)]


def gallery_probabilities(p_dog) -> np.ndarray:
    return models.class_probabilities(np.asarray(p_dog, np.float32)[:, None])  # as the stage gets them


def gallery_images(count: int = 7) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, 16, 16, 3)).astype(np.uint8)


def shown_names(axes) -> list[str]:
    return [axis.get_title().split("\n")[0] for axis in axes.flat if axis.get_title()]


def gallery(tmp_path, labels, probabilities, names, class_names=("cat", "dog"), **kwargs) -> tuple[int, tuple]:
    out = tmp_path / "most_wrong.png"
    wrong = pictures.most_wrong_gallery(
        gallery_images(len(labels)), labels, probabilities, names, list(class_names), "tiny", out, **kwargs
    )
    png_size(out)
    return wrong, out


def test_most_wrong_gallery_counts_and_orders_the_mistakes(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    wrong, _ = gallery(tmp_path, GALLERY_LABELS, gallery_probabilities(GALLERY_P), GALLERY_NAMES)
    assert wrong == 4
    (figure, axes), = made
    assert shown_names(axes) == ["img2.jpg", "img1.jpg", "img6.jpg", "img0.jpg"]
    assert axes.flat[0].get_title() == "img2.jpg\ntrue cat\npredicted dog (0.90)"
    assert axes.flat[1].get_title() == "img1.jpg\ntrue dog\npredicted cat (0.80)"
    assert figure._suptitle.get_text() == "tiny: the 4 most confident mistakes of 4 (7 test images)"


def test_most_wrong_gallery_of_three_classes(tmp_path, monkeypatch):
    # index:      0              1              2              3              4
    # actual:     cat            dog            fox            fox            dog
    # P(c,d,f):   .1 .3 .6       .2 .7 .1       .5 .45 .05     .3 .3 .4       .6 .3 .1
    # predicted:  fox            dog            cat            fox            cat
    # P(true):    .1 (wrong)     right          .05 (wrong)    right          .3 (wrong) -> 2, 0, 4
    made = capture_figures(monkeypatch)
    labels = np.array([0, 1, 2, 2, 1], np.uint8)
    probabilities = np.array(
        [[0.1, 0.3, 0.6], [0.2, 0.7, 0.1], [0.5, 0.45, 0.05], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]], np.float32
    )
    wrong, _ = gallery(tmp_path, labels, probabilities, GALLERY_NAMES[:5], ("cat", "dog", "fox"))
    assert wrong == 3
    (figure, axes), = made
    assert [axis.get_title() for axis in axes.flat if axis.get_title()] == [
        "img2.jpg\ntrue fox\npredicted cat (0.50)",
        "img0.jpg\ntrue cat\npredicted fox (0.60)",
        "img4.jpg\ntrue dog\npredicted cat (0.60)",
    ]


def test_most_wrong_gallery_shows_at_most_count(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    wrong, _ = gallery(tmp_path, GALLERY_LABELS, gallery_probabilities(GALLERY_P), GALLERY_NAMES, count=2)
    assert wrong == 4  # all the mistakes are counted, only the worst 2 shown
    (figure, axes), = made
    assert shown_names(axes) == ["img2.jpg", "img1.jpg"]
    assert "the 2 most confident mistakes of 4" in figure._suptitle.get_text()


def test_most_wrong_gallery_with_more_mistakes_than_a_row(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    rng = np.random.default_rng(2)
    labels = np.array([0, 1] * 5, np.uint8)
    p = np.where(labels == 1, rng.uniform(0, 0.45, 10), rng.uniform(0.55, 1, 10))  # all ten wrong
    wrong, _ = gallery(tmp_path, labels, gallery_probabilities(p), [f"n{i}" for i in range(10)], count=9)
    assert wrong == 10
    (figure, axes), = made
    errors = np.abs(labels - p)
    assert shown_names(axes) == [f"n{i}" for i in np.argsort(-errors)[:9]]


def test_most_wrong_gallery_without_mistakes(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    labels = np.array([0, 1, 1, 0], np.uint8)
    wrong, _ = gallery(tmp_path, labels, gallery_probabilities([0.1, 0.5, 0.99, 0.49]), GALLERY_NAMES[:4])
    assert wrong == 0
    (figure, axes), = made
    assert shown_names(axes) == []
    assert [text.get_text() for axis in figure.axes for text in axis.texts] == ["no mistakes on the test split"]
    assert figure._suptitle.get_text() == "tiny: the 0 most confident mistakes of 0 (4 test images)"


def test_most_wrong_gallery_of_a_small_convnet_predicting_three_classes(tmp_path):
    """End to end from a model the stages build: predictions as evaluate makes them, then the picture."""
    keras.utils.set_random_seed(1)
    convnet = models.small_convnet(16, dropout=0.0, num_classes=3)
    images = np.random.default_rng(3).integers(0, 256, (12, 16, 16, 3)).astype(np.uint8)
    probabilities = predict_probabilities(convnet, images, batch_size=5)
    assert probabilities.shape == (12, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    labels = (predicted_classes(probabilities) + np.arange(12) % 2).astype(np.uint8) % 3  # every other one wrong
    wrong = pictures.most_wrong_gallery(
        images, labels, probabilities, [f"i{n}" for n in range(12)], ["a", "b", "c"], "convnet", tmp_path / "w.png", 4
    )
    assert wrong == 6
    png_size(tmp_path / "w.png")

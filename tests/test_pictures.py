"""Grad-CAM and the mistakes gallery on a tiny model built the way the stages build theirs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stages.common import models, pictures
from stages.common.params import HeadParams

IMAGE_SIZE = 32
FEATURE_SIZE = 13  # 32 -> conv 3x3 valid 30 -> pool 15 -> conv 3x3 valid 13


def tiny_base() -> keras.Model:
    pixels = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(pixels)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    return keras.Model(pixels, x, name="tiny_base")


def tiny_transfer_model() -> keras.Model:
    base = tiny_base()
    features_shape = base.compute_output_shape((None, IMAGE_SIZE, IMAGE_SIZE, 3))[1:]  # as train_frozen.build
    classifier = models.dense_classifier(features_shape, HeadParams(pooling="flatten", dense_units=4, dropout=0.0))
    return models.with_classifier(base, classifier, image_size=IMAGE_SIZE, mode="rescale")


def sample_images(count: int = 6) -> np.ndarray:
    """Noise, ramps and flat colours: inputs the tiny model scores differently. Image 0 is black."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)
    images[0] = 0
    images[1] = np.linspace(0, 255, IMAGE_SIZE, dtype=np.uint8)[None, :, None]
    images[2] = (200, 30, 90)
    return images


def straddle_one_half(model: keras.Model, images: np.ndarray) -> None:
    """Set the head's weights so P(dog) of `images` spreads over both sides of 0.5, away from it.

    A random head of 4 relu units is often dead (one P for every image): a positive hidden
    bias keeps the units alive, then the output layer is shifted and scaled so the middle
    two logits land at -1 and +1 and the others further out.
    """
    classifier = model.get_layer("classifier")
    hidden = next(layer for layer in classifier.layers if isinstance(layer, keras.layers.Dense) and layer.name != "p_dog")
    kernel, bias = hidden.get_weights()
    hidden.set_weights([kernel, bias + 1.0])
    p = model.predict(images.astype(np.float32), verbose=0)[:, 0].astype(np.float64)
    logits = np.sort(np.log(p / (1 - p)))
    middle = len(logits) // 2
    center, gap = (logits[middle - 1] + logits[middle]) / 2, logits[middle] - logits[middle - 1]
    assert gap > 0, "the images should get distinct scores"
    scale = 2.0 / gap
    output = classifier.get_layer("p_dog")
    kernel, bias = output.get_weights()
    output.set_weights([kernel * scale, (bias - center) * scale])


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = tiny_transfer_model()
    straddle_one_half(model, sample_images())
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
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


# --- grad_cam ---


def test_the_fixture_predicts_both_classes(model):
    p = model.predict(sample_images().astype(np.float32), verbose=0)[:, 0]
    assert np.any(p >= 0.5) and np.any(p < 0.5)


def test_grad_cam_shape_range_and_p_dog(model):
    images = sample_images()
    heatmaps, p_dog = pictures.grad_cam(model, images.astype(np.float32))
    base = models.nested_base(model)
    assert base.name == "tiny_base"
    assert base.compute_output_shape((None, IMAGE_SIZE, IMAGE_SIZE, 3))[1:3] == (FEATURE_SIZE, FEATURE_SIZE)
    assert heatmaps.shape == (len(images), FEATURE_SIZE, FEATURE_SIZE)
    assert np.all(np.isfinite(heatmaps))
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    for heatmap in heatmaps:
        assert heatmap.max() == pytest.approx(1.0) or np.all(heatmap == 0)
    assert sum(heatmap.max() == pytest.approx(1.0) for heatmap in heatmaps) >= 2  # not all blank
    expected = model.predict(images.astype(np.float32), verbose=0)[:, 0]
    assert p_dog.shape == (len(images),)
    np.testing.assert_allclose(p_dog, expected, atol=1e-5)


def test_grad_cam_of_a_black_image_is_all_zero_not_nan(model):
    # rescaled black pixels -> zero features (conv biases start at 0): nothing to normalise
    heatmaps, p_dog = pictures.grad_cam(model, np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))
    assert heatmaps.shape == (1, FEATURE_SIZE, FEATURE_SIZE)
    assert np.all(heatmaps == 0)
    assert 0 <= p_dog[0] <= 1


def test_grad_cam_weights_channels_by_the_predicted_class_gradient(model):
    """Recomputed independently: features as a watched constant, the cat score's gradient is -dp."""
    images = sample_images()
    base = models.nested_base(model)
    classifier = model.get_layer("classifier")
    features = tf.constant(base(images.astype(np.float32) / 255.0, training=False))
    with tf.GradientTape() as tape:
        tape.watch(features)
        p = classifier(features, training=False)[:, 0]
    d_p = tape.gradient(p, features).numpy()
    sign = np.where(p.numpy() >= 0.5, 1.0, -1.0)[:, None, None, None]
    weights = (sign * d_p).mean(axis=(1, 2), keepdims=True)
    expected = np.maximum((features.numpy() * weights).sum(axis=-1), 0)
    peaks = expected.max(axis=(1, 2), keepdims=True)
    expected = np.where(peaks > 0, expected / np.where(peaks > 0, peaks, 1), 0)

    heatmaps, _ = pictures.grad_cam(model, images.astype(np.float32))
    np.testing.assert_allclose(heatmaps, expected, atol=1e-5)


def titles(figure) -> list[str]:
    return [axis.get_title() for axis in figure.axes if axis.get_title()]


def test_grad_cam_figure_writes_a_png(model, tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    images = sample_images(3)
    out = tmp_path / "gradcam.png"
    pictures.grad_cam_figure(model, images, np.array([0, 1, 1], np.uint8), ["a.jpg", "b.jpg", "c.jpg"], "tiny", out)
    width, height = png_size(out)
    assert width > 0 and height > 0
    (figure, axes), = made
    shown = titles(figure)
    for name, label in (("a.jpg", "cat"), ("b.jpg", "dog"), ("c.jpg", "dog")):
        assert f"{name} (true {label})" in shown
    _, p = pictures.grad_cam(model, images.astype(np.float32))
    overlays = [title for title in shown if title.startswith("Grad-CAM")]
    assert [title.split("= ")[-1] for title in overlays] == [f"{q:.2f}" for q in p]
    assert figure._suptitle.get_text().startswith("tiny: class activation heatmaps")


# --- most_wrong_gallery ---

# index:     0      1      2      3      4      5      6
# actual:    cat    dog    cat    dog    dog    cat    cat
# P(dog):    .55    .2     .9     .95    .5     .1     .7
# wrong?     yes    yes    yes    no     no(.5 = dog)  no   yes
# 1 - P(true class): .55  .8  .9   .05  .5  .1  .7  -> most confident mistakes 2, 1, 6, 0
GALLERY_LABELS = np.array([0, 1, 0, 1, 1, 0, 0], np.uint8)  # uint8, as load_prepared gives them
GALLERY_P = np.array([0.55, 0.2, 0.9, 0.95, 0.5, 0.1, 0.7], np.float32)
GALLERY_NAMES = [f"img{i}.jpg" for i in range(7)]


def gallery_images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (7, 16, 16, 3)).astype(np.uint8)


def shown_names(axes) -> list[str]:
    return [axis.get_title().split("\n")[0] for axis in axes.flat if axis.get_title()]


def test_most_wrong_gallery_counts_and_orders_the_mistakes(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    out = tmp_path / "most_wrong.png"
    wrong = pictures.most_wrong_gallery(gallery_images(), GALLERY_LABELS, GALLERY_P, GALLERY_NAMES, "tiny", out)
    assert wrong == 4
    png_size(out)
    (figure, axes), = made
    assert shown_names(axes) == ["img2.jpg", "img1.jpg", "img6.jpg", "img0.jpg"]
    assert axes.flat[0].get_title() == "img2.jpg\ntrue cat, P(dog) = 0.90"
    assert axes.flat[1].get_title() == "img1.jpg\ntrue dog, P(dog) = 0.20"
    assert figure._suptitle.get_text() == "tiny: the 4 most confident mistakes of 4 (7 test images)"


def test_most_wrong_gallery_shows_at_most_count(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    out = tmp_path / "most_wrong.png"
    wrong = pictures.most_wrong_gallery(
        gallery_images(), GALLERY_LABELS, GALLERY_P, GALLERY_NAMES, "tiny", out, count=2
    )
    assert wrong == 4  # all the mistakes are counted, only the worst 2 shown
    (figure, axes), = made
    assert shown_names(axes) == ["img2.jpg", "img1.jpg"]
    assert "the 2 most confident mistakes of 4" in figure._suptitle.get_text()
    png_size(out)


def test_most_wrong_gallery_with_more_mistakes_than_a_row(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    rng = np.random.default_rng(2)
    labels = np.array([0, 1] * 5, np.uint8)
    p = np.where(labels == 1, rng.uniform(0, 0.45, 10), rng.uniform(0.55, 1, 10))  # all ten wrong
    out = tmp_path / "most_wrong.png"
    wrong = pictures.most_wrong_gallery(
        rng.integers(0, 256, (10, 8, 8, 3)).astype(np.uint8), labels, p, [f"n{i}" for i in range(10)], "t", out, 9
    )
    assert wrong == 10
    (figure, axes), = made
    errors = np.abs(labels - p)
    assert shown_names(axes) == [f"n{i}" for i in np.argsort(-errors)[:9]]
    png_size(out)


def test_most_wrong_gallery_without_mistakes(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    out = tmp_path / "most_wrong.png"
    labels = np.array([0, 1, 1, 0], np.uint8)
    wrong = pictures.most_wrong_gallery(
        gallery_images()[:4], labels, np.array([0.1, 0.5, 0.99, 0.49]), GALLERY_NAMES[:4], "tiny", out
    )
    assert wrong == 0
    png_size(out)
    (figure, axes), = made
    assert shown_names(axes) == []
    assert [text.get_text() for axis in figure.axes for text in axis.texts] == ["no mistakes on the test split"]
    assert figure._suptitle.get_text() == "tiny: the 0 most confident mistakes of 0 (4 test images)"

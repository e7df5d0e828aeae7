"""The pictures, drawn from arrays: the mistakes gallery (from predictions as evaluate makes them),
and explain's activations, filter patterns and Grad-CAM overlays (tests/evaluation/test_explain.py computes them)."""

from __future__ import annotations

import keras
import numpy as np
from PIL import Image

from classifier.evaluation import pictures
from classifier.evaluation.metrics import predicted_classes
from classifier.models import assembly, heads
from classifier.models.prediction import predict_probabilities

MAX_SIDE = 4000  # pixels: a sane picture for a report


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


# --- explain's pictures ---


def test_grad_cam_figure_titles_each_image_with_its_true_and_predicted_class(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    heatmaps = rng.random((3, 5, 5)).astype(np.float32)
    probabilities = np.array([[0.1, 0.9], [1.0, 0.0], [0.5, 0.5]], np.float32)  # a tie predicts label 1
    names = ["test image 4", "test image 7", "test image 9"]
    out = tmp_path / "gradcam.png"
    pictures.grad_cam_figure(images, heatmaps, probabilities, np.array([1, 1, 0]), names, ["cat", "dog"], "tiny", out)
    assert png_size(out) == (960, round((3.2 * 2 + 0.6) * 80))  # two pairs a row
    ((figure, axes),) = made
    assert titles(figure) == [
        "test image 4 (true dog)",
        "Grad-CAM: dog (0.90)",
        "test image 7 (true dog)",
        "Grad-CAM: cat (1.00)",
        "test image 9 (true cat)",
        "Grad-CAM: dog (0.50)",
    ]
    assert figure._suptitle.get_text() == "tiny: Grad-CAM of the predicted class's logit (5x5 feature map)"
    overlay = axes[0, 1].images[1]
    assert overlay.get_extent() == [-0.5, 31.5, 31.5, -0.5]  # stretched over the whole image


def test_activations_figure_shows_the_image_and_at_most_sixteen_channels_a_layer(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    rng = np.random.default_rng(1)
    maps = [rng.random((30, 30, 4)), rng.random((13, 13, 64))]
    out = tmp_path / "activations.png"
    image = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    pictures.activations_figure(image, ["conv_a", "conv_b"], maps, "test image 0 (cat)", "tiny", out)
    rows = 1 + 1 + pictures.CHANNELS_SHOWN // pictures.GRID_COLUMNS  # the image, 4 channels, 16 of 64
    assert png_size(out) == (768, round((pictures.TITLE + rows * pictures.CELL + 3 * pictures.TITLE) * pictures.DPI))
    ((figure, axes),) = made
    assert titles(figure) == [
        "test image 0 (cat)",
        "conv_a: 30x30, 4 channels",
        "conv_b: 13x13, 64 channels, the first 16",
    ]
    # one row of 8 tiles (4 empty) a pixel apart, then two rows: each channel over the whole color scale
    first, second = (np.ma.filled(axis.images[0].get_array(), np.nan) for axis in axes[1:, 0])
    assert first.shape == (30, 8 * 31 - 1) and second.shape == (2 * 14 - 1, 8 * 14 - 1)
    channel = maps[0][..., 0]
    np.testing.assert_allclose(first[:, :30], (channel - channel.min()) / np.ptp(channel), atol=1e-6)
    assert np.isnan(first[:, 30]).all() and np.isnan(first[:, 4 * 31 :]).all()
    tiles = [second[r * 14 : r * 14 + 13, c * 14 : c * 14 + 13] for r in range(2) for c in range(8)]
    assert all(tile.min() == 0 and tile.max() == 1 for tile in tiles)


def test_filters_figure_tiles_each_layers_patterns(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    patterns = [np.full((3, 20, 20, 3), 128.0), np.random.default_rng(2).random((10, 20, 20, 3)) * 255]
    out = tmp_path / "filters.png"
    pictures.filters_figure(["conv_a", "conv_b"], patterns, "tiny", out)
    assert png_size(out) == (768, round((pictures.TITLE + 3 * pictures.CELL + 2 * pictures.TITLE) * pictures.DPI))
    ((figure, axes),) = made
    assert titles(figure) == ["conv_a: filters 0 to 2", "conv_b: filters 0 to 9"]
    flat, varied = (axis.images[0].get_array() for axis in axes[:, 0])
    assert flat.shape == (20, 8 * 21 - 1, 3) and varied.shape == (2 * 21 - 1, 8 * 21 - 1, 3)
    assert np.all(flat[:, :20] == 0.5) and np.all(flat[:, 3 * 21 :] == 1.0)  # flat patterns mid gray; white margins


def test_a_flat_filter_pattern_is_shown_mid_gray_not_nan():
    assert np.all(pictures.displayable(np.full((4, 4, 3), 200.0)) == 0.5)
    stretched = pictures.displayable(np.random.default_rng(3).random((8, 8, 3)) * 255)
    assert stretched.min() >= 0 and stretched.max() <= 1 and abs(stretched.mean() - 0.5) < 0.01


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
    return heads.class_probabilities(np.asarray(p_dog, np.float32)[:, None])  # as the stage gets them


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
    ((figure, axes),) = made
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
    ((figure, axes),) = made
    assert [axis.get_title() for axis in axes.flat if axis.get_title()] == [
        "img2.jpg\ntrue fox\npredicted cat (0.50)",
        "img0.jpg\ntrue cat\npredicted fox (0.60)",
        "img4.jpg\ntrue dog\npredicted cat (0.60)",
    ]


def test_most_wrong_gallery_shows_at_most_count(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    wrong, _ = gallery(tmp_path, GALLERY_LABELS, gallery_probabilities(GALLERY_P), GALLERY_NAMES, count=2)
    assert wrong == 4  # all the mistakes are counted, only the worst 2 shown
    ((figure, axes),) = made
    assert shown_names(axes) == ["img2.jpg", "img1.jpg"]
    assert "the 2 most confident mistakes of 4" in figure._suptitle.get_text()


def test_most_wrong_gallery_with_more_mistakes_than_a_row(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    rng = np.random.default_rng(2)
    labels = np.array([0, 1] * 5, np.uint8)
    p = np.where(labels == 1, rng.uniform(0, 0.45, 10), rng.uniform(0.55, 1, 10))  # all ten wrong
    wrong, _ = gallery(tmp_path, labels, gallery_probabilities(p), [f"n{i}" for i in range(10)], count=9)
    assert wrong == 10
    ((figure, axes),) = made
    errors = np.abs(labels - p)
    assert shown_names(axes) == [f"n{i}" for i in np.argsort(-errors)[:9]]


def test_most_wrong_gallery_without_mistakes(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    labels = np.array([0, 1, 1, 0], np.uint8)
    wrong, _ = gallery(tmp_path, labels, gallery_probabilities([0.1, 0.5, 0.99, 0.49]), GALLERY_NAMES[:4])
    assert wrong == 0
    ((figure, axes),) = made
    assert shown_names(axes) == []
    assert [text.get_text() for axis in figure.axes for text in axis.texts] == ["no mistakes on the test split"]
    assert figure._suptitle.get_text() == "tiny: the 0 most confident mistakes of 0 (4 test images)"


def test_most_wrong_gallery_of_a_small_convnet_predicting_three_classes(tmp_path):
    """End to end from a model the stages build: predictions as evaluate makes them, then the picture."""
    keras.utils.set_random_seed(1)
    convnet = assembly.small_convnet(16, dropout=0.0, num_classes=3)
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

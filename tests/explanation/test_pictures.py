"""classifier/explanation/pictures.py: explain's pictures drawn from arrays (the activations, the filter patterns,
the Grad-CAM overlays; tests/explanation/test_internals.py computes them): their titles, their tiles and the
size of the PNG."""

from __future__ import annotations

import numpy as np

from classifier.explanation import pictures
from tests.support.pictures import capture_figures, picture_size


def titles(figure) -> list[str]:
    return [axis.get_title() for axis in figure.axes if axis.get_title()]


def test_grad_cam_figure_titles_each_image_with_its_true_and_predicted_class(tmp_path, monkeypatch):
    made = capture_figures(monkeypatch)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    heatmaps = rng.random((3, 5, 5)).astype(np.float32)
    probabilities = np.array([[0.1, 0.9], [1.0, 0.0], [0.5, 0.5]], np.float32)  # a tie predicts label 1
    names = ["test image 4", "test image 7", "test image 9"]
    out = tmp_path / "gradcam.png"
    pictures.grad_cam_figure(images, heatmaps, probabilities, np.array([1, 1, 0]), names, ["cat", "dog"], "tiny", out)
    assert picture_size(out) == (960, round((3.2 * 2 + 0.6) * 80))  # two pairs a row
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
    inches = pictures.TITLE + rows * pictures.CELL + 3 * pictures.TITLE
    assert picture_size(out) == (768, round(inches * pictures.DPI))
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
    assert picture_size(out) == (768, round((pictures.TITLE + 3 * pictures.CELL + 2 * pictures.TITLE) * pictures.DPI))
    ((figure, axes),) = made
    assert titles(figure) == ["conv_a: filters 0 to 2", "conv_b: filters 0 to 9"]
    flat, varied = (axis.images[0].get_array() for axis in axes[:, 0])
    assert flat.shape == (20, 8 * 21 - 1, 3) and varied.shape == (2 * 21 - 1, 8 * 21 - 1, 3)
    assert np.all(flat[:, :20] == 0.5) and np.all(flat[:, 3 * 21 :] == 1.0)  # flat patterns mid gray; white margins


def test_a_flat_filter_pattern_is_shown_mid_gray_not_nan():
    assert np.all(pictures.displayable(np.full((4, 4, 3), 200.0)) == 0.5)
    stretched = pictures.displayable(np.random.default_rng(3).random((8, 8, 3)) * 255)
    assert stretched.min() >= 0 and stretched.max() <= 1 and abs(stretched.mean() - 0.5) < 0.01

"""The pictures of what a convnet learned (matplotlib, no display needed): a test image's activations,
filter patterns and Grad-CAM heatmaps, drawn from the arrays classifier.explanation.internals computes.
Class and file names are drawn as they are, never as mathtext (classifier.intake.escaping.picture_text)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless server

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from classifier.evaluation.metrics import predicted_classes  # noqa: E402
from classifier.intake.escaping import picture_text  # noqa: E402

DPI = 80
# The activations and filter patterns: rows of GRID_COLUMNS small squares of CELL inches, each
# layer's under a title line of TITLE inches.
GRID_COLUMNS = 8
CELL = 1.2
TITLE = 0.4
CHANNELS_SHOWN = 16  # per layer: the book shows them all, 512 of them at the top of VGG16


def grid_rows(count: int) -> int:
    return max(1, -(-count // GRID_COLUMNS))


def mosaic(tiles: np.ndarray, fill: float) -> np.ndarray:
    """Tiles (n, h, w) or (n, h, w, 3) in rows of GRID_COLUMNS, as the book's display grids: one image,
    with a margin of `fill` between them."""
    count, height, width = tiles.shape[:3]
    margin = max(1, height // 16)
    step_y, step_x = height + margin, width + margin
    shape = (grid_rows(count) * step_y - margin, GRID_COLUMNS * step_x - margin, *tiles.shape[3:])
    grid = np.full(shape, fill, np.float32)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, GRID_COLUMNS)
        grid[row * step_y : row * step_y + height, column * step_x : column * step_x + width] = tile
    return grid


def grid_figure(blocks: list[tuple[str, int]]):
    """A figure of one titled axes per block (title, tiles), GRID_COLUMNS * CELL inches wide and each
    block CELL inches high per row of tiles: its size depends on the blocks alone."""
    heights = [grid_rows(tiles) * CELL + TITLE for _, tiles in blocks]
    figure, axes = plt.subplots(
        len(blocks),
        1,
        figsize=(GRID_COLUMNS * CELL, sum(heights) + TITLE),
        height_ratios=heights,
        squeeze=False,
        layout="constrained",
    )
    for axis, (title, _) in zip(axes[:, 0], blocks):
        axis.axis("off")
        axis.set_title(title, fontsize=10)
    return figure, axes[:, 0]


def scaled_channels(activation: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (C, H, W), each channel stretched over 0..1 (a constant one is 0)."""
    channels = np.moveaxis(np.asarray(activation, np.float32), -1, 0)
    low = channels.min(axis=(1, 2), keepdims=True)
    spread = channels.max(axis=(1, 2), keepdims=True) - low
    return np.divide(channels - low, spread, out=np.zeros_like(channels), where=spread > 0)


def activations_figure(image, layer_names, maps, caption: str, title: str, out_path) -> None:
    """The image, then per layer its first CHANNELS_SHOWN channels, each on its own color scale."""
    blocks = [(picture_text(caption), 1)] + [
        (
            f"{name}: {m.shape[0]}x{m.shape[1]}, {m.shape[-1]} channels"
            + (f", the first {CHANNELS_SHOWN}" if m.shape[-1] > CHANNELS_SHOWN else ""),
            min(m.shape[-1], CHANNELS_SHOWN),
        )
        for name, m in zip(layer_names, maps)
    ]
    figure, axes = grid_figure(blocks)
    axes[0].imshow(image)
    colors = plt.get_cmap("viridis").with_extremes(bad="white")  # the margins
    for axis, activation in zip(axes[1:], maps):
        axis.imshow(mosaic(scaled_channels(activation[..., :CHANNELS_SHOWN]), np.nan), cmap=colors, vmin=0, vmax=1)
    figure.suptitle(title)
    figure.savefig(out_path, dpi=DPI)
    plt.close(figure)


def displayable(pattern: np.ndarray) -> np.ndarray:
    """A filter pattern (raw pixels) with its contrast stretched into 0..1, as the book does."""
    centred = (pattern - pattern.mean()) / (pattern.std() + 1e-5)
    return np.clip(0.5 + 0.15 * centred, 0, 1)


def filters_figure(layer_names, patterns, title: str, out_path) -> None:
    """Per layer, its filter patterns (n, size, size, 3) in rows, from filter 0."""
    blocks = [(f"{name}: filters 0 to {len(found) - 1}", len(found)) for name, found in zip(layer_names, patterns)]
    figure, axes = grid_figure(blocks)
    for axis, found in zip(axes, patterns):
        axis.imshow(mosaic(np.stack([displayable(pattern) for pattern in found]), 1.0))
    figure.suptitle(title)
    figure.savefig(out_path, dpi=DPI)
    plt.close(figure)


def grad_cam_figure(images, heatmaps, probabilities, labels, names, class_names, title: str, out_path) -> None:
    """Each image beside its heatmap overlay, two pairs per row: where the model looked to decide."""
    names, class_names = [picture_text(name) for name in names], [picture_text(name) for name in class_names]
    predicted = predicted_classes(probabilities)
    size = images.shape[1]
    rows = max(1, -(-len(images) // 2))
    figure, axes = plt.subplots(rows, 4, figsize=(12, 3.2 * rows + 0.6), squeeze=False, layout="constrained")
    for axis in axes.flat:
        axis.axis("off")
    for index, (image, heatmap) in enumerate(zip(images, heatmaps)):
        plain, overlay = axes[index // 2, 2 * (index % 2)], axes[index // 2, 2 * (index % 2) + 1]
        plain.imshow(image)
        plain.set_title(f"{names[index]} (true {class_names[labels[index]]})", fontsize=9)
        overlay.imshow(image)
        overlay.imshow(  # stretched over the image, smoothly
            heatmap,
            cmap="jet",
            alpha=0.45,
            vmin=0,
            vmax=1,
            interpolation="bilinear",
            extent=(-0.5, size - 0.5, size - 0.5, -0.5),
        )
        choice = predicted[index]
        overlay.set_title(f"Grad-CAM: {class_names[choice]} ({probabilities[index, choice]:.2f})", fontsize=9)
    figure.suptitle(
        f"{title}: Grad-CAM of the predicted class's logit ({heatmaps.shape[1]}x{heatmaps.shape[2]} feature map)"
    )
    figure.savefig(out_path, dpi=DPI)
    plt.close(figure)

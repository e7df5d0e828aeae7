"""The pictures (matplotlib, no display needed): evaluate's worst mistakes; explain's activations,
filter patterns and Grad-CAM heatmaps, drawn from the arrays stages/common/explaining.py computes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless server

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stages.common.evaluation import predicted_classes  # noqa: E402

COLUMNS = 4
DPI = 80
# The activations and filter patterns: rows of GRID_COLUMNS small squares of CELL inches, each
# layer's under a title line of TITLE inches.
GRID_COLUMNS = 8
CELL = 1.2
TITLE = 0.4
CHANNELS_SHOWN = 16  # per layer: the book shows them all, 512 of them at the top of VGG16


def most_wrong_gallery(images, labels, probabilities, names, class_names, title: str, out_path, count: int = 12) -> int:
    """The `count` test images the model is most confidently wrong about; returns how many were wrong.

    Most confident = the least probability given to the true class.
    """
    labels, probabilities = np.asarray(labels, dtype=np.int64), np.asarray(probabilities)
    predicted = predicted_classes(probabilities)
    true_class = probabilities[np.arange(len(labels)), labels]
    wrong = np.flatnonzero(predicted != labels)
    shown = wrong[np.argsort(true_class[wrong], kind="stable")][:count]
    rows = max(1, -(-len(shown) // COLUMNS))
    figure, axes = plt.subplots(
        rows, COLUMNS, figsize=(3 * COLUMNS, 3.5 * rows + 0.6), squeeze=False, layout="constrained"
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, row in zip(axes.flat, shown):
        axis.imshow(images[row])
        axis.set_title(
            f"{names[row]}\ntrue {class_names[labels[row]]}\n"
            f"predicted {class_names[predicted[row]]} ({probabilities[row, predicted[row]]:.2f})",
            fontsize=9,
        )
    if not len(shown):
        axes[0, 0].text(0.5, 0.5, "no mistakes on the test split", ha="center", va="center")
    figure.suptitle(f"{title}: the {len(shown)} most confident mistakes of {len(wrong)} ({len(labels)} test images)")
    figure.savefig(out_path, dpi=DPI)
    plt.close(figure)
    return len(wrong)


def grid_rows(count: int) -> int:
    return max(1, -(-count // GRID_COLUMNS))


def layer_grids(figure, blocks) -> list:
    """One subfigure per block (title, cells): its title above rows of GRID_COLUMNS axes, axes off."""
    heights = [grid_rows(cells) * CELL + TITLE for _, cells in blocks]
    rows = figure.subfigures(len(blocks), 1, height_ratios=heights, squeeze=False)[:, 0]
    grids = []
    for row, (title, cells) in zip(rows, blocks):
        axes = row.subplots(grid_rows(cells), GRID_COLUMNS, squeeze=False)
        for axis in axes.flat:
            axis.axis("off")
        row.suptitle(title, fontsize=10)
        grids.append(axes.flat[:cells])
    return grids


def grid_figure(blocks):
    """A figure for `layer_grids`, its size fixed by the blocks alone: GRID_COLUMNS * CELL inches wide."""
    height = sum(grid_rows(cells) * CELL + TITLE for _, cells in blocks) + TITLE
    return plt.figure(figsize=(GRID_COLUMNS * CELL, height), layout="constrained")


def activations_figure(image, layer_names, maps, caption: str, title: str, out_path) -> None:
    """The image, then per layer its first CHANNELS_SHOWN channels, each on its own color scale."""
    blocks = [(caption, 1)] + [
        (f"{name}: {m.shape[0]}x{m.shape[1]}, {m.shape[-1]} channels"
         + (f", the first {CHANNELS_SHOWN}" if m.shape[-1] > CHANNELS_SHOWN else ""), min(m.shape[-1], CHANNELS_SHOWN))
        for name, m in zip(layer_names, maps)
    ]
    figure = grid_figure(blocks)
    grids = layer_grids(figure, blocks)
    grids[0][0].imshow(image)
    for axes, activation in zip(grids[1:], maps):
        for channel, axis in enumerate(axes):
            axis.imshow(activation[..., channel], cmap="viridis")
    figure.suptitle(title)
    figure.savefig(out_path, dpi=DPI)
    plt.close(figure)


def displayable(pattern: np.ndarray) -> np.ndarray:
    """A filter pattern (raw pixels) with its contrast stretched into 0..1, as the book does."""
    centred = (pattern - pattern.mean()) / (pattern.std() + 1e-5)
    return np.clip(0.5 + 0.15 * centred, 0, 1)


def filters_figure(layer_names, patterns, title: str, out_path) -> None:
    """Per layer, a row of filter patterns (n, size, size, 3), each filter's number above it."""
    blocks = [(f"{name}: filters 0-{len(found) - 1}", len(found)) for name, found in zip(layer_names, patterns)]
    figure = grid_figure(blocks)
    for axes, found in zip(layer_grids(figure, blocks), patterns):
        for number, (axis, pattern) in enumerate(zip(axes, found)):
            axis.imshow(displayable(pattern))
            axis.set_title(str(number), fontsize=8)
    figure.suptitle(title)
    figure.savefig(out_path, dpi=DPI)
    plt.close(figure)


def grad_cam_figure(images, heatmaps, probabilities, labels, names, class_names, title: str, out_path) -> None:
    """Each image beside its heatmap overlay, two pairs per row: where the model looked to decide."""
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
            heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear",
            extent=(-0.5, size - 0.5, size - 0.5, -0.5),
        )
        choice = predicted[index]
        overlay.set_title(f"Grad-CAM: {class_names[choice]} ({probabilities[index, choice]:.2f})", fontsize=9)
    figure.suptitle(
        f"{title}: Grad-CAM of the predicted class's logit ({heatmaps.shape[1]}x{heatmaps.shape[2]} feature map)"
    )
    figure.savefig(out_path, dpi=DPI)
    plt.close(figure)

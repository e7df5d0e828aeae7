"""The evaluation's pictures (matplotlib, no display needed): worst mistakes and Grad-CAM heatmaps."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless server

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from stages.common.models import BasePreprocessing, nested_base  # noqa: E402
from stages.common.raw_images import LABELS  # noqa: E402

COLUMNS = 4


def most_wrong_gallery(images, labels, p_dog, names, title: str, out_path, count: int = 12) -> int:
    """The `count` test images the model is most confidently wrong about; returns how many were wrong."""
    labels, p_dog = np.asarray(labels), np.asarray(p_dog)
    error = np.abs(labels - p_dog)  # 1 - probability given to the true class
    wrong = np.flatnonzero((p_dog >= 0.5) != (labels == 1))
    shown = wrong[np.argsort(-error[wrong], kind="stable")][:count]
    rows = max(1, -(-len(shown) // COLUMNS))
    figure, axes = plt.subplots(
        rows, COLUMNS, figsize=(3 * COLUMNS, 3.3 * rows + 0.6), squeeze=False, layout="constrained"
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, row in zip(axes.flat, shown):
        axis.imshow(images[row])
        axis.set_title(f"{names[row]}\ntrue {LABELS[labels[row]]}, P(dog) = {p_dog[row]:.2f}", fontsize=9)
    if not len(shown):
        axes[0, 0].text(0.5, 0.5, "no mistakes on the test split", ha="center", va="center")
    figure.suptitle(f"{title}: the {len(shown)} most confident mistakes of {len(wrong)} ({len(labels)} test images)")
    figure.savefig(out_path, dpi=80)
    plt.close(figure)
    return len(wrong)


def grad_cam(model: keras.Model, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps in [0, 1] on the base's last feature map, P(dog)) for a model made by `with_classifier`.

    As in the book: the gradient of the predicted class score with respect to the base's
    output, averaged per channel, weights the channels of that output.
    """
    base = nested_base(model)
    preprocess = next(layer for layer in model.layers if isinstance(layer, BasePreprocessing))
    classifier = model.get_layer("classifier")
    inputs = tf.convert_to_tensor(pixels, dtype=tf.float32)
    with tf.GradientTape() as tape:
        features = base(preprocess(inputs), training=False)
        tape.watch(features)
        p_dog = classifier(features, training=False)[:, 0]
        # Explain the class the model predicts: the dog score, or the cat score 1 - p.
        score = tf.where(p_dog >= 0.5, p_dog, 1.0 - p_dog)
    gradients = tape.gradient(score, features)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    heatmaps = tf.nn.relu(tf.reduce_sum(features * channel_weights, axis=-1)).numpy()
    peaks = heatmaps.max(axis=(1, 2), keepdims=True)
    return np.divide(heatmaps, peaks, out=np.zeros_like(heatmaps), where=peaks > 0), p_dog.numpy()


def grad_cam_figure(model, images, labels, names, title: str, out_path) -> None:
    """Each image beside its heatmap overlay, two pairs per row: where the model looked to decide."""
    heatmaps, p_dog = grad_cam(model, images.astype(np.float32))
    size = images.shape[1]
    rows = -(-len(images) // 2)
    figure, axes = plt.subplots(rows, 4, figsize=(12, 3.2 * rows + 0.6), squeeze=False, layout="constrained")
    for axis in axes.flat:
        axis.axis("off")
    for index, (image, heatmap) in enumerate(zip(images, heatmaps)):
        upscaled = tf.image.resize(heatmap[..., None], (size, size), method="bilinear").numpy()[..., 0]
        plain, overlay = axes[index // 2, 2 * (index % 2)], axes[index // 2, 2 * (index % 2) + 1]
        plain.imshow(image)
        plain.set_title(f"{names[index]} (true {LABELS[labels[index]]})", fontsize=9)
        overlay.imshow(image)
        overlay.imshow(upscaled, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        overlay.set_title(f"Grad-CAM, P(dog) = {p_dog[index]:.2f}", fontsize=9)
    figure.suptitle(f"{title}: class activation heatmaps ({heatmaps.shape[1]}x{heatmaps.shape[2]} feature map)")
    figure.savefig(out_path, dpi=80)
    plt.close(figure)

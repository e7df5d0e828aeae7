"""The evaluation's pictures (matplotlib, no display needed): worst mistakes and Grad-CAM heatmaps."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless server

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from stages.common.evaluation import predicted_classes  # noqa: E402
from stages.common.layers import BasePreprocessing  # noqa: E402
from stages.common.models import class_probabilities, nested_base  # noqa: E402

COLUMNS = 4
GRADCAM_CLASSES = 8  # heatmaps for the first classes only: a hundred classes would make a giant picture


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
    figure.savefig(out_path, dpi=80)
    plt.close(figure)
    return len(wrong)


def grad_cam_rows(labels, per_class: int) -> np.ndarray:
    """The first `per_class` test images of each of the first GRADCAM_CLASSES classes, class by class."""
    labels = np.asarray(labels)
    return np.concatenate(
        [np.flatnonzero(labels == label)[:per_class] for label in range(GRADCAM_CLASSES)]
    ).astype(np.int64)


def class_score(outputs, classes):
    """Each row's probability of its class in `classes`, differentiably (one sigmoid unit p: p for
    label 1, 1 - p for label 0)."""
    if outputs.shape[-1] == 1:
        return tf.where(classes == 1, outputs[:, 0], 1.0 - outputs[:, 0])
    return tf.gather(outputs, classes, axis=1, batch_dims=1)


def grad_cam(model: keras.Model, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps in [0, 1] on the base's last feature map, class probabilities (n, classes)) for
    a model made by `with_classifier`.

    As in the book: the gradient of the predicted class's score with respect to the base's
    output, averaged per channel, weights the channels of that output.
    """
    base = nested_base(model)
    preprocess = next(layer for layer in model.layers if isinstance(layer, BasePreprocessing))
    classifier = model.get_layer("classifier")
    inputs = tf.convert_to_tensor(pixels, dtype=tf.float32)
    with tf.GradientTape() as tape:
        features = base(preprocess(inputs), training=False)
        tape.watch(features)
        outputs = classifier(features, training=False)
        probabilities = class_probabilities(outputs.numpy())
        score = class_score(outputs, tf.constant(predicted_classes(probabilities)))
    gradients = tape.gradient(score, features)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    heatmaps = tf.nn.relu(tf.reduce_sum(features * channel_weights, axis=-1)).numpy()
    peaks = heatmaps.max(axis=(1, 2), keepdims=True)
    return np.divide(heatmaps, peaks, out=np.zeros_like(heatmaps), where=peaks > 0), probabilities


def grad_cam_figure(model, images, labels, names, class_names, title: str, out_path) -> None:
    """Each image beside its heatmap overlay, two pairs per row: where the model looked to decide."""
    heatmaps, probabilities = grad_cam(model, images.astype(np.float32))
    predicted = predicted_classes(probabilities)
    size = images.shape[1]
    rows = max(1, -(-len(images) // 2))
    figure, axes = plt.subplots(rows, 4, figsize=(12, 3.2 * rows + 0.6), squeeze=False, layout="constrained")
    for axis in axes.flat:
        axis.axis("off")
    for index, (image, heatmap) in enumerate(zip(images, heatmaps)):
        upscaled = tf.image.resize(heatmap[..., None], (size, size), method="bilinear").numpy()[..., 0]
        plain, overlay = axes[index // 2, 2 * (index % 2)], axes[index // 2, 2 * (index % 2) + 1]
        plain.imshow(image)
        plain.set_title(f"{names[index]} (true {class_names[labels[index]]})", fontsize=9)
        overlay.imshow(image)
        overlay.imshow(upscaled, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        choice = predicted[index]
        overlay.set_title(f"Grad-CAM: {class_names[choice]} ({probabilities[index, choice]:.2f})", fontsize=9)
    figure.suptitle(f"{title}: class activation heatmaps ({heatmaps.shape[1]}x{heatmaps.shape[2]} feature map)")
    figure.savefig(out_path, dpi=80)
    plt.close(figure)

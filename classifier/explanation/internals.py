"""What a convnet learned (the book's 5.4), as arrays for the pictures (classifier.explanation.pictures):
the activations of one image in the first convolutional layers, filter patterns by gradient ascent,
and Grad-CAM heatmaps.

Every model this pipeline writes takes raw pixels (0-255), so all three start from pixels and go
through the model's own preprocessing; a layer inside a nested model (a transfer model's base, a
base cut from a trained model) is reached through what flows into that model. Gradients come from
`backend.gradient`, on any backend.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from classifier.core.backend import gradient
from classifier.core.errors import StageError
from classifier.evaluation.metrics import predicted_classes
from classifier.models.architecture import class_probabilities
from classifier.models.bases import feature_layer
from classifier.models.graph import call_in, convolutional_layers, leaf_layers

GRADCAM_CLASSES = 8  # heatmaps for the first classes only: a hundred classes would make a giant picture
ASCENT_STEP = 2.0  # pixel levels per normalized gradient step
BATCH = 16  # images per Grad-CAM pass


def entry(model: keras.Model, nested: keras.Model) -> keras.Model:
    """`model`'s pixels -> what flows into the nested model `nested` in `model`'s graph."""
    return keras.Model(model.inputs[0], call_in(model, nested).input_tensors[0])


def containers(model: keras.Model, layer: keras.layers.Layer) -> list[keras.Model]:
    """`model`, then each nested model down to the one whose own layers hold `layer`."""
    if any(own is layer for own in model.layers):
        return [model]
    for nested in model.layers:
        if isinstance(nested, keras.Model) and any(leaf is layer for leaf in leaf_layers(nested)):
            return [model, *containers(nested, layer)]
    raise ValueError(f"{layer.name} is not a layer of {model.name}")


def layer_reader(model: keras.Model, layer: keras.layers.Layer) -> Callable:
    """pixels -> `layer`'s output, for images of any size its layers take."""
    chain = containers(model, layer)
    parts = [entry(outer, nested) for outer, nested in zip(chain, chain[1:])]
    parts.append(keras.Model(chain[-1].inputs[0], layer.output))
    for part in parts:
        part.input_spec = None  # the filter patterns are smaller than the model's images

    def read(pixels):
        for part in parts:
            pixels = part(pixels, training=False)
        return keras.ops.cast(pixels, "float32")

    return read


def first_convolutions(model: keras.Model, count: int) -> list[keras.layers.Layer]:
    return convolutions(model)[:count]


def spread_convolutions(model: keras.Model, count: int) -> list[keras.layers.Layer]:
    """`count` convolutional layers spread over the depth: the first, ..., the last."""
    found = convolutions(model)
    picked = np.unique(np.linspace(0, len(found) - 1, min(count, len(found))).round().astype(int))
    return [found[i] for i in picked]


def convolutions(model: keras.Model) -> list[keras.layers.Layer]:
    found = convolutional_layers(model)
    if not found:
        raise StageError(f"the model {model.name!r} has no convolutional layer to explain; give a convnet")
    return found


def activations(model: keras.Model, image: np.ndarray, layers: list) -> list[np.ndarray]:
    """Each layer's output (H, W, channels) for one image (S, S, 3) of raw pixels."""
    pixels = np.asarray(image, np.float32)[None]
    return [keras.ops.convert_to_numpy(layer_reader(model, layer)(pixels))[0] for layer in layers]


def filter_patterns(model: keras.Model, layer, count: int, steps: int, size: int, seed: int) -> np.ndarray:
    """The images (count, size, size, 3) of raw pixels that most excite `layer`'s first `count` filters,
    by `steps` steps of gradient ascent on each filter's mean activation from gray with a little noise."""
    read = layer_reader(model, layer)
    count = min(count, layer.output.shape[-1])

    def mean_activations(pixels):  # image i's mean activation of filter i
        return keras.ops.diagonal(keras.ops.mean(read(pixels)[..., :count], axis=(1, 2)))

    ascend = gradient(mean_activations)
    pixels = 128.0 + 20.0 * np.random.default_rng(seed).random((count, size, size, 3), dtype=np.float32)
    for _ in range(steps):
        grads = ascend(pixels)  # scaled by the preprocessing and the layer's size: normalized, no epsilon
        norms = np.sqrt(np.mean(grads**2, axis=(1, 2, 3), keepdims=True))
        steps_taken = np.divide(grads, norms, out=np.zeros_like(grads), where=norms > 0)  # a dead filter stays
        pixels = np.clip(pixels + ASCENT_STEP * steps_taken, 0.0, 255.0)
    return pixels


def filter_means(model: keras.Model, layer, pixels: np.ndarray) -> np.ndarray:
    """Image i's mean activation of `layer`'s filter i (what filter_patterns maximizes)."""
    outputs = keras.ops.convert_to_numpy(layer_reader(model, layer)(np.asarray(pixels, np.float32)))
    return np.array([outputs[i, ..., i].mean() for i in range(len(pixels))])


def output_parts(model: keras.Model) -> tuple[Callable, Callable, keras.layers.Dense]:
    """(pixels -> the last feature map, that map -> what the output layer takes, the output layer "predictions").

    A transfer model's feature map is its base's output (the classifier's input); a flat convnet's
    is its last one before Flatten."""
    found = [layer for layer in leaf_layers(model) if layer.name == "predictions"]
    if len(found) != 1 or not isinstance(found[0], keras.layers.Dense):
        raise StageError(
            f"the model {model.name!r} has no Dense output layer named 'predictions': give one this pipeline trained"
        )
    predictions = found[0]
    chain = containers(model, predictions)
    if len(chain) == 1:
        feature_map = feature_layer(model, None, f"the model {model.name!r}").output
        return keras.Model(model.inputs[0], feature_map), keras.Model(feature_map, predictions.input), predictions
    if len(chain) > 2:
        raise StageError(
            f"the model {model.name!r} holds its classifier deeper than this pipeline puts it: give one it trained"
        )
    classifier = chain[1]  # its input is the base's output
    return entry(model, classifier), keras.Model(classifier.inputs[0], predictions.input), predictions


def logits(hidden, predictions: keras.layers.Dense):
    """The output layer before its sigmoid or softmax: what still varies when a probability is 1.00."""
    hidden = keras.ops.cast(hidden, "float32")
    return keras.ops.matmul(hidden, predictions.kernel) + predictions.bias


def class_logit(scores, classes):
    """Each row's logit of its class: one sigmoid unit's z for label 1 and -z for label 0."""
    classes = keras.ops.convert_to_tensor(classes, "int32")
    if scores.shape[-1] == 1:
        return scores[:, 0] * (2.0 * keras.ops.cast(classes, "float32") - 1.0)
    return keras.ops.take_along_axis(scores, classes[:, None], axis=1)[:, 0]


def grad_cam(model: keras.Model, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps in [0, 1] on the last feature map, class probabilities (n, classes)).

    As in the book, the gradient with respect to the feature map, averaged per channel, weights its
    channels; the gradient is the predicted class's logit's, not its probability's, whose gradient
    vanishes where the sigmoid or softmax saturates (a flat heatmap for every confident prediction)."""
    features_of, hidden_of, predictions = output_parts(model)
    class_gradient = gradient(lambda f, chosen: class_logit(logits(hidden_of(f, training=False), predictions), chosen))
    heatmaps, probabilities = [], []
    for start in range(0, len(pixels), BATCH):
        features = keras.ops.convert_to_numpy(features_of(np.asarray(pixels[start : start + BATCH], np.float32)))
        scores = logits(hidden_of(features, training=False), predictions)
        chunk = class_probabilities(keras.ops.convert_to_numpy(predictions.activation(scores)))
        grads = class_gradient(features, predicted_classes(chunk).astype(np.int32))
        channel_weights = grads.mean(axis=(1, 2), keepdims=True)
        weighted = np.maximum((features.astype(np.float32) * channel_weights).sum(axis=-1), 0)
        peaks = weighted.max(axis=(1, 2), keepdims=True)
        heatmaps.append(np.divide(weighted, peaks, out=np.zeros_like(weighted), where=peaks > 0))
        probabilities.append(chunk)
    return np.concatenate(heatmaps), np.concatenate(probabilities)


def grad_cam_rows(labels, per_class: int) -> np.ndarray:
    """The first `per_class` test images of each of the first GRADCAM_CLASSES classes, class by class."""
    labels = np.asarray(labels)
    return np.concatenate([np.flatnonzero(labels == label)[:per_class] for label in range(GRADCAM_CLASSES)]).astype(
        np.int64
    )

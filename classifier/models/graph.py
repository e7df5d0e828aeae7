"""Finding layers and tensors in a Keras functional model, nested models included (a transfer model's
base, a base cut from a trained model), and setting which of them train.
"""

from __future__ import annotations

import keras
from keras import layers

from classifier.core.errors import StageError


def output_in(model: keras.Model, layer: keras.layers.Layer):
    """The tensor `layer` produces in `model`'s graph. For a plain layer that is `layer.output`;
    a nested model's `.output` is the one of its own graph, so take its call in `model`'s."""
    return call_in(model, layer).output_tensors[0] if isinstance(layer, keras.Model) else layer.output


def call_in(model: keras.Model, nested: keras.Model):
    """The call (Keras node: input and output tensors) of the nested model `nested` in `model`'s graph.
    Keras has no public way to ask: a nested model has one node per model it was called in."""
    for node in reversed(nested._inbound_nodes):
        try:
            keras.Model(model.inputs, node.output_tensors[0])  # raises unless this call is in `model`'s graph
        except ValueError:
            continue
        return node
    raise ValueError(f"{nested.name} is not called in {model.name}")


def leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of `model` in order, with nested models (a base made from a trained model) opened up."""
    found = []
    for layer in model.layers:
        found.extend(leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return found


# Conv2DTranspose is no subclass of Conv2D, but a base's convolution all the same (a decoder's, say).
CONVOLUTIONS = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Conv2DTranspose)


def convolutional_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The convolutional layers of `model`, nested ones included, in order; the fixed 1x1 convolution
    of the caffe preprocessing is not one of them."""
    return [layer for layer in leaf_layers(model) if is_convolution(layer)]


def is_convolution(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, CONVOLUTIONS) and layer.name != "preprocessing"


def feature_maps(model: keras.Model) -> list[keras.layers.Layer]:
    """The top-level layers of `model` whose output is a convolutional feature map (None, H, W, C): from its
    first convolution (or nested model holding one) on. Before it, a 4-D output is still pixels: the input,
    a rescaling or normalization, the caffe preprocessing."""
    convolved, maps = False, []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        nested = isinstance(layer, keras.Model) and bool(convolutional_layers(layer))
        convolved = convolved or nested or is_convolution(layer)
        if convolved and len(output_in(model, layer).shape) == 4:
            maps.append(layer)
    return maps


def nested_base(model: keras.Model) -> keras.Model:
    """The pretrained base inside a model made by `with_classifier`."""
    (base,) = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.Model) and layer.name not in ("augmentation", "classifier")
    ]
    return base


def freeze(base: keras.Model) -> None:
    base.trainable = False


def unfreeze_from(base: keras.Model, layer_name: str) -> None:
    """Make `layer_name` and every layer after it trainable; the earlier ones stay frozen.

    BatchNormalization layers stay frozen: in Keras 3, `fit` passes training=True down
    through `base(x, training=False)` (keras-team/keras#20285), and only a frozen
    BatchNormalization layer keeps its inference-mode statistics.
    """
    check_layer(base, layer_name)
    base.trainable = True  # and every nested model in it; their own layers are set one by one below
    reached = False
    for layer in leaf_layers(base):
        reached = reached or layer.name == layer_name
        layer.trainable = reached and not isinstance(layer, layers.BatchNormalization)


def check_layer(base: keras.Model, layer_name: str) -> None:
    names = [layer.name for layer in leaf_layers(base)]
    if layer_name not in names:
        raise StageError(
            f"base.fine_tune_from {layer_name!r} is not a layer of the base {base.name!r}; its last layers are "
            f"{', '.join(names[-8:])} ({len(names)} layers in all), or use null for the base's default"
        )

"""Bases and heads (Keras functional API), and the one place that knows what the number of
classes means for a model: two classes get the book's single sigmoid unit, more get a softmax.

Every saved model takes raw RGB pixels (0-255): its preprocessing is made of Keras' own
layers inside it, so it opens with plain `keras.models.load_model` and predicts with no extra
code. Augmentation is a training-time layer in front (`with_augmentation`), never saved.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from classifier.models.augmentation import BookAugmentation
from classifier.core.backend import jit_compile_setting
from classifier.core.cli import StageError
from classifier.core.params import KERAS_BASES, AugmentationParams, BaseParams, HeadParams
from classifier.models.saving import load_model, load_weights


def preprocessing_mode(base: BaseParams) -> str:
    """rescale (1/255, the book's first edition), none (a .keras base normalises its own input),
    or the keras.applications module whose preprocess_input the base was trained with."""
    if base.preprocessing == "rescale":
        return "rescale"
    return "none" if base.is_file else KERAS_BASES[base.name]["module"]


# keras.applications' preprocess_input, per module, as built-in layers (so saved models need no
# custom code): "caffe" is RGB -> BGR minus ImageNet's mean per channel, "tf" is -1..1; the
# EfficientNets normalise inside the model.
CAFFE_MODULES = ("vgg16", "vgg19", "resnet50")
TF_MODULES = ("mobilenet_v2",)
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


def preprocessing_layer(mode: str) -> layers.Layer | None:
    """Raw RGB 0-255 -> what the base was trained on; None where the base needs nothing.

    Computed in float32 even under mixed precision: in float16, 0-255 minus a mean keeps
    only about 0.1 of precision. The caffe mode is a fixed 1x1 convolution (a channel swap
    with the mean as bias), exact, and its constants survive `keras.models.clone_model`.
    """
    options = {"dtype": "float32", "name": "preprocessing", "trainable": False}
    if mode == "rescale":
        return layers.Rescaling(1 / 255, **options)
    if mode in TF_MODULES:
        return layers.Rescaling(1 / 127.5, offset=-1.0, **options)
    if mode in CAFFE_MODULES:
        swap = np.zeros((1, 1, 3, 3), np.float32)
        for out_channel, in_channel in enumerate((2, 1, 0)):
            swap[0, 0, in_channel, out_channel] = 1.0
        return layers.Conv2D(
            3, 1, kernel_initializer=keras.initializers.Constant(swap),
            bias_initializer=keras.initializers.Constant(-np.array(IMAGENET_MEAN_BGR, np.float32)), **options,
        )
    return None


def preprocessed(pixels, mode: str):
    layer = preprocessing_layer(mode)
    return pixels if layer is None else layer(pixels)


A_BASE = (
    "a convolutional base made of Keras layers: a keras.applications name, or a .keras file with a convolutional "
    "part (a model this pipeline trained, or one saved with include_top=False)"
)


def build_base(base: BaseParams) -> tuple[keras.Model, str]:
    """The convolutional base named by params, with its weights, checked (`check_base`), and
    a few words on where its feature map comes from.

    Every file it reads is loaded in safe mode, and every way it can be wrong (not a model, a
    Lambda layer, no convolutional feature map, an unknown output layer, weights for another
    architecture) is a StageError of one line."""
    if base.weights not in (None, "imagenet", "random") and not Path(base.weights).is_file():
        raise StageError(f"base.weights {base.weights!r} is not a file; give a weights file, imagenet or null")
    if base.is_file:
        return base_from_file(base.name, base.weights, base.output_layer)
    builder = getattr(keras.applications, KERAS_BASES[base.name]["builder"])
    weights_file = base.weights not in (None, "imagenet", "random")
    try:
        # A weights file is loaded below, where what can go wrong with it is known.
        chosen = "imagenet" if base.weights == "imagenet" else None
        model = builder(include_top=False, weights=chosen, input_shape=(None, None, 3))
    except Exception as err:  # Keras raises a bare Exception when the download fails
        if base.weights != "imagenet":
            raise
        raise StageError(
            f"could not get the ImageNet weights of {base.name} ({err}). Offline: on a machine with internet, "
            f"download the .h5 file at the URL in that message, then copy it into ~/.keras/models/ here "
            f"(Keras looks there before downloading) or set base.weights to its path"
        ) from None
    if weights_file:
        load_weights(model, base.weights, f"base.weights {base.weights!r}", weights_wanted(base.name, base.is_file))
    return model, f"keras.applications {KERAS_BASES[base.name]['builder']} ({base.weights or 'random'} weights)"


def base_from_file(name: str, weights: str | None, output_layer: str | None) -> tuple[keras.Model, str]:
    """A .keras file's convolutional part: the whole model if its output is a feature map, else
    the model cut at `output_layer` or, by default, at the last feature map (what its head
    reads: the base of a transfer model, the last pooling of a convnet)."""
    label = f"base.name {name!r}"
    if not Path(name).is_file():
        raise StageError(f"{label} is not a file; give an existing .keras model or a keras.applications name")
    model = load_model(name, label=label, wanted=A_BASE)
    if weights not in (None, "random"):
        load_weights(model, weights, f"base.weights {weights!r}", weights_wanted(name, is_file=True))
    try:
        rank = len(model.output_shape)
    except (AttributeError, ValueError):  # an unbuilt Sequential model: check_base names it
        rank = None
    if output_layer is not None or rank == 2:
        layer = feature_layer(model, output_layer, label)
        model = keras.Model(model.inputs, output_in(model, layer), name=f"{Path(name).stem}_base")
        where = f"the output of its layer {layer.name!r}"
    else:
        where = "its output"
    check_base(model, label)
    if weights == "random":
        model = keras.models.clone_model(model)  # the same layers, each with fresh initial weights
    kept = "random weights" if weights == "random" else "its weights"
    return model, f"{name}: feature map {tuple(model.output_shape[1:])} from {where}, {kept}"


def feature_layer(model: keras.Model, name: str | None, label: str) -> keras.layers.Layer:
    """The top-level layer of `model` named `name` or, for None, the last one whose output is a feature map."""
    maps = [layer for layer in model.layers[1:] if len(output_in(model, layer).shape) == 4]
    if name is None:
        if not maps:
            raise StageError(f"{label} has no convolutional feature map (no layer outputs (None, H, W, C)): give {A_BASE}")
        return maps[-1]
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise StageError(
            f"base.output_layer {name!r} is not a layer of {label}; layers with a feature map: "
            f"{', '.join(layer.name for layer in maps[-8:]) or 'none'}, or use null for the one its head reads"
        )
    layer = model.get_layer(name)
    if layer not in maps:
        raise StageError(
            f"base.output_layer {name!r} of {label} outputs {tuple(output_in(model, layer).shape)}, not a "
            f"feature map (None, H, W, C); name a convolutional or pooling layer, or use null"
        )
    return layer


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


def weights_wanted(name: str, is_file: bool) -> str:
    """What to give as base.weights for the base `name`."""
    if is_file:
        return "null, or a .weights.h5 file saved (model.save_weights) from the model in base.name"
    return f"imagenet, null, or a weights file of {name} without its top (.weights.h5, or the notop .h5 Keras downloads)"


def check_base(model: keras.Model, label: str) -> None:
    """What every base must be: RGB images in, one convolutional feature map (None, H, W, C) out.

    A full model (its classifier on top) would pass load_base and fail stages later, after
    hours of work: refused here, with what to give instead."""
    try:
        outputs, output = model.outputs, model.output_shape
    except (AttributeError, ValueError):  # a Sequential model saved before it was built
        raise StageError(f"{label} has no defined input and output (an unbuilt model): give {A_BASE}") from None
    if len(outputs) != 1:
        raise StageError(
            f"{label} has {len(outputs)} outputs, not one convolutional feature map (None, H, W, C): give {A_BASE}"
        )
    output = tuple(output)
    if len(output) != 4:
        raise StageError(f"{label}'s output is {output}, not a convolutional feature map (None, H, W, C): give {A_BASE}")
    inputs = model.inputs
    shape = tuple(inputs[0].shape) if len(inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        described = shape if shape is not None else f"{len(inputs)} inputs"
        raise StageError(f"{label} takes {described}, not RGB images (None, H, W, 3): give {A_BASE}")


def leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of `model` in order, with nested models (a base made from a trained model) opened up."""
    found = []
    for layer in model.layers:
        found.extend(leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return found


CONVOLUTIONS = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)


def convolutional_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The convolutional layers of `model`, nested ones included, in order; the fixed 1x1 convolution
    of the caffe preprocessing is not one of them."""
    return [layer for layer in leaf_layers(model) if isinstance(layer, CONVOLUTIONS) and layer.name != "preprocessing"]


def fine_tune_layer(params: BaseParams, base: keras.Model) -> tuple[str, str]:
    """(the first layer fine_tune unfreezes, why that one): base.fine_tune_from, the book's choice for
    a keras.applications base, or else the base's last convolutional layer."""
    if params.fine_tune_from is not None:
        name, why = params.fine_tune_from, "as base.fine_tune_from says"
    elif not params.is_file:
        name, why = KERAS_BASES[params.name]["fine_tune_from"], f"the first layer of {params.name}'s last block"
    else:
        convolutions = convolutional_layers(base)
        if not convolutions:
            raise StageError(f"base.fine_tune_from is null but the base {base.name!r} has no convolutional layer; name a layer")
        name, why = convolutions[-1].name, "the base's last convolutional layer (base.fine_tune_from: null)"
    check_layer(base, name)
    return name, why


def check_layer(base: keras.Model, layer_name: str) -> None:
    names = [layer.name for layer in leaf_layers(base)]
    if layer_name not in names:
        raise StageError(
            f"base.fine_tune_from {layer_name!r} is not a layer of the base {base.name!r}; its last layers are "
            f"{', '.join(names[-8:])} ({len(names)} layers in all), or use null for the base's default"
        )


def nested_base(model: keras.Model) -> keras.Model:
    """The pretrained base inside a model made by `with_classifier`."""
    (base,) = [
        layer for layer in model.layers
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


def augmentation(params: AugmentationParams, seed: int) -> BookAugmentation:
    """The book's ImageDataGenerator settings as one Keras layer (active only in training)."""
    return BookAugmentation(
        rotation_degrees=params.rotation_degrees, width_shift=params.width_shift, height_shift=params.height_shift,
        shear=params.shear, zoom=params.zoom, horizontal_flip=params.horizontal_flip, seed=seed, name="augmentation",
    )


def pixels_input(image_size: int) -> keras.KerasTensor:
    return keras.Input(shape=(image_size, image_size, 3), name="pixels")


def dense_classifier(features_shape, head: HeadParams, num_classes: int) -> keras.Model:
    """Flatten -> Dense relu -> Dropout -> the output layer. 2,097,665 params on 4x4x512 for two classes.

    `head.pooling: average` replaces Flatten by global average pooling, as the Keras
    transfer-learning guide does: far fewer weights on a large feature map.
    """
    features = keras.Input(shape=features_shape, name="features")
    x = layers.Flatten()(features) if head.pooling == "flatten" else layers.GlobalAveragePooling2D()(features)
    x = layers.Dense(head.dense_units, activation="relu")(x)
    x = layers.Dropout(head.dropout)(x)
    return keras.Model(features, output_layer(num_classes)(x), name="classifier")


def output_layer(num_classes: int) -> layers.Dense:
    """Two classes: one sigmoid unit, P(label 1), as the book; more: a softmax over the classes.
    Computed in float32 even under mixed precision, where float16 would lose small losses."""
    if num_classes < 2:
        raise StageError(f"a classifier needs at least 2 classes, got {num_classes}")
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    return layers.Dense(units, activation=activation, dtype="float32", name="predictions")


def compile_model(model: keras.Model, learning_rate: float, jit_compile: bool = False) -> None:
    """RMSprop, as in the book, with the cross-entropy that fits the output layer: binary for
    one sigmoid unit, sparse categorical (integer labels) for a softmax; `jit_compile` compiles the
    train step (XLA on TensorFlow, torch.compile on torch; JAX always compiles)."""
    binary = model.output_shape[-1] == 1
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],  # Keras picks binary or sparse categorical accuracy from the shapes
        jit_compile=jit_compile_setting(jit_compile),
    )


def class_count(model: keras.Model) -> int:
    """How many classes a classifier made by `output_layer` tells apart: one sigmoid unit is two."""
    return max(model.output_shape[-1], 2)


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """A model's outputs as (N, classes) probabilities: one sigmoid unit p becomes [1 - p, p]."""
    outputs = np.asarray(outputs, dtype=np.float32)
    return np.concatenate([1 - outputs, outputs], axis=1) if outputs.shape[-1] == 1 else outputs


def feature_extractor(base: keras.Model, image_size: int, mode: str) -> keras.Model:
    """Pixels -> preprocessing -> base: what extract_features runs over each split."""
    feature_map_shape(base, image_size)
    pixels = pixels_input(image_size)
    features = base(preprocessed(pixels, mode), training=False)
    return keras.Model(pixels, features, name="feature_extractor")


def feature_map_shape(base: keras.Model, image_size: int) -> tuple:
    """The base's output shape for images of this size, or a StageError if they are too small for it."""
    fixed = tuple(base.input_shape[1:3])
    if None not in fixed and fixed != (image_size, image_size):
        raise StageError(
            f"the base {base.name!r} takes {fixed[0]}x{fixed[1]} images only (the size the model it was cut from "
            f"was built for), not {image_size}x{image_size}: set data.image_size: {fixed[0]}"
        )
    try:
        shape = base.compute_output_shape((None, image_size, image_size, 3))[1:]
    except ValueError:  # Keras: "Computed output size would be zero or negative"
        shape = None
    if shape is None or any(side is not None and side < 1 for side in shape[:-1]):
        raise StageError(
            f"the base {base.name!r} turns {image_size}x{image_size} images into an empty feature map; "
            f"raise data.image_size (VGG16 halves the image five times: 32 at least)"
        )
    return tuple(shape)


def with_classifier(base, classifier, image_size, mode) -> keras.Model:
    """Pixels -> preprocessing -> base -> classifier, as one model.

    The base is called with training=False as the Keras transfer-learning guide does;
    in Keras 3 that alone does not hold during `fit`, hence `unfreeze_from` keeps
    BatchNormalization layers frozen.
    """
    feature_map_shape(base, image_size)
    pixels = pixels_input(image_size)
    features = base(preprocessed(pixels, mode), training=False)
    return keras.Model(pixels, classifier(features), name="transfer")


def with_augmentation(model: keras.Model, augment: keras.layers.Layer) -> keras.Model:
    """Pixels -> augmentation -> `model`: what is trained, while `model` alone (sharing the
    weights) is what is saved, so saved models hold no training-time layer."""
    pixels = keras.Input(shape=model.input_shape[1:], name="pixels")
    return keras.Model(pixels, model(augment(pixels)), name=f"{model.name}_augmented")


# The book's convnet shrinks a side s to (s - 2) // 2 four times (valid 3x3 convolution, 2x2 pooling):
# 46 pixels is the least that leaves a feature map. Smaller images (CIFAR's 32x32) get 'same'-padded
# convolutions, which keep the side, so only the four poolings shrink it: 16 pixels at least.
BOOK_CONVNET_MIN_SIZE = 46


def small_convnet(image_size: int, dropout: float, num_classes: int) -> keras.Model:
    """The book's convnet from scratch: 3,453,121 params at 150x150 for two classes."""
    padding = "valid" if image_size >= BOOK_CONVNET_MIN_SIZE else "same"
    pixels = pixels_input(image_size)
    x = layers.Rescaling(1 / 255)(pixels)
    for filters in (32, 64, 128, 128):
        x = layers.Conv2D(filters, 3, activation="relu", padding=padding)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.Dense(512, activation="relu")(x)
    return keras.Model(pixels, output_layer(num_classes)(x), name="small_convnet")

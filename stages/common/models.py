"""Bases and heads (Keras functional API), and the one place that knows what the number of
classes means for a model: two classes get the book's single sigmoid unit, more get a softmax.

Every model takes raw RGB pixels (0-255): preprocessing and augmentation are layers
inside it, so evaluating or predicting needs no extra code.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from stages.common.cli import StageError
from stages.common.layers import BasePreprocessing, BookAugmentation
from stages.common.params import KERAS_BASES, AugmentationParams, BaseParams, HeadParams

def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed weights, shuffling, augmentation and dropout; with `deterministic`, TensorFlow ops
    also give the same results on every run (cheap on a CPU, slower on a GPU)."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def preprocessing_mode(base: BaseParams) -> str:
    if base.preprocessing == "rescale":
        return "rescale"
    return "none" if base.is_file else KERAS_BASES[base.name]["module"]


def build_base(base: BaseParams) -> keras.Model:
    """The convolutional base named by params, with its weights, any input size."""
    if base.weights not in (None, "imagenet") and not Path(base.weights).is_file():
        raise StageError(f"base.weights {base.weights!r} is not a file; give a weights file, imagenet or null")
    if base.is_file:
        if not Path(base.name).is_file():
            raise StageError(f"base.name {base.name!r} is not a file; give an existing .keras base or a keras.applications name")
        try:
            model = keras.models.load_model(base.name, compile=False)  # safe_mode: no code from the file runs
        except (ValueError, TypeError, OSError) as err:
            raise StageError(f"base.name {base.name!r} is not a loadable Keras model: {err}") from None
        if base.weights:
            model.load_weights(base.weights)
        return model
    builder = getattr(keras.applications, KERAS_BASES[base.name]["builder"])
    try:
        return builder(include_top=False, weights=base.weights, input_shape=(None, None, 3))
    except Exception as err:  # Keras raises a bare Exception when the download fails
        if base.weights != "imagenet":
            raise
        raise StageError(
            f"could not get the ImageNet weights of {base.name} ({err}). Offline: on a machine with internet, "
            f"download the .h5 file at the URL in that message, then copy it into ~/.keras/models/ here "
            f"(Keras looks there before downloading) or set base.weights to its path"
        ) from None


def check_layer(base: keras.Model, layer_name: str) -> None:
    names = [layer.name for layer in base.layers]
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
    base.trainable = True
    reached = False
    for layer in base.layers:
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
    one sigmoid unit, sparse categorical (integer labels) for a softmax; `jit_compile` XLA-compiles the train step."""
    binary = model.output_shape[-1] == 1
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],  # Keras picks binary or sparse categorical accuracy from the shapes
        jit_compile=jit_compile,
    )


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """A model's outputs as (N, classes) probabilities: one sigmoid unit p becomes [1 - p, p]."""
    outputs = np.asarray(outputs, dtype=np.float32)
    return np.concatenate([1 - outputs, outputs], axis=1) if outputs.shape[-1] == 1 else outputs


def feature_extractor(base: keras.Model, image_size: int, mode: str) -> keras.Model:
    """Pixels -> preprocessing -> base: what extract_features runs over each split."""
    feature_map_shape(base, image_size)
    pixels = pixels_input(image_size)
    features = base(BasePreprocessing(mode)(pixels), training=False)
    return keras.Model(pixels, features, name="feature_extractor")


def feature_map_shape(base: keras.Model, image_size: int) -> tuple:
    """The base's output shape for images of this size, or a StageError if they are too small for it."""
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


def with_classifier(base, classifier, image_size, mode, augment: keras.layers.Layer | None = None) -> keras.Model:
    """Pixels -> [augmentation] -> preprocessing -> base -> classifier, as one model.

    The base is called with training=False as the Keras transfer-learning guide does;
    in Keras 3 that alone does not hold during `fit`, hence `unfreeze_from` keeps
    BatchNormalization layers frozen.
    """
    feature_map_shape(base, image_size)
    pixels = pixels_input(image_size)
    x = augment(pixels) if augment is not None else pixels
    x = base(BasePreprocessing(mode)(x), training=False)
    return keras.Model(pixels, classifier(x), name="transfer")


# The book's convnet shrinks a side s to (s - 2) // 2 four times (valid 3x3 convolution, 2x2 pooling):
# 46 pixels is the least that leaves a feature map. Smaller images (CIFAR's 32x32) get 'same'-padded
# convolutions, which keep the side, so only the four poolings shrink it: 16 pixels at least.
BOOK_CONVNET_MIN_SIZE = 46


def small_convnet(image_size: int, dropout: float, num_classes: int, augment: keras.layers.Layer | None = None) -> keras.Model:
    """The book's convnet from scratch: 3,453,121 params at 150x150 for two classes."""
    padding = "valid" if image_size >= BOOK_CONVNET_MIN_SIZE else "same"
    pixels = pixels_input(image_size)
    x = augment(pixels) if augment is not None else pixels
    x = layers.Rescaling(1 / 255)(x)
    for filters in (32, 64, 128, 128):
        x = layers.Conv2D(filters, 3, activation="relu", padding=padding)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.Dense(512, activation="relu")(x)
    return keras.Model(pixels, output_layer(num_classes)(x), name="small_convnet")

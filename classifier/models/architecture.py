"""The models' architecture, with the Keras functional API: raw pixels in, the base's preprocessing as
Keras' own layers (so that every saved model takes RGB 0-255 and opens with plain
`keras.models.load_model`), the base, the dense head on top; or the book's small convnet. And the one
place that knows what the number of classes means for a model: two classes get the book's single
sigmoid unit, more a softmax; its outputs as class probabilities, and the class names it carries.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from classifier.core.catalog import KERAS_BASES
from classifier.core.errors import StageError
from classifier.core.paths import CLASSES_FILE
from classifier.core.schema import BaseParams, HeadParams
from classifier.models.saving import saved_class_names


def preprocessing_mode(base: BaseParams) -> str:
    """rescale (1/255, the book's first edition), none (a .keras base normalises its own input),
    or the keras.applications module whose preprocess_input the base was trained with."""
    if base.preprocessing == "rescale":
        return "rescale"
    return "none" if base.is_file else KERAS_BASES[base.name].module


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
            3,
            1,
            kernel_initializer=keras.initializers.Constant(swap),
            bias_initializer=keras.initializers.Constant(-np.array(IMAGENET_MEAN_BGR, np.float32)),
            **options,
        )
    return None


def preprocessed(pixels, mode: str):
    layer = preprocessing_layer(mode)
    return pixels if layer is None else layer(pixels)


def pixels_input(image_size: int) -> keras.KerasTensor:
    return keras.Input(shape=(image_size, image_size, 3), name="pixels")


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


def feature_extractor(base: keras.Model, image_size: int, mode: str) -> keras.Model:
    """Pixels -> preprocessing -> base: what extract_features runs over each split."""
    feature_map_shape(base, image_size)
    pixels = pixels_input(image_size)
    features = base(preprocessed(pixels, mode), training=False)
    return keras.Model(pixels, features, name="feature_extractor")


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


def class_count(model: keras.Model) -> int:
    """How many classes a classifier made by `output_layer` tells apart: one sigmoid unit is two."""
    return max(model.output_shape[-1], 2)


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """A model's outputs as (N, classes) probabilities: one sigmoid unit p becomes [1 - p, p]."""
    outputs = np.asarray(outputs, dtype=np.float32)
    return np.concatenate([1 - outputs, outputs], axis=1) if outputs.shape[-1] == 1 else outputs


def class_names_of(model: keras.Model, path: Path) -> list[str]:
    """The class names the model file carries; a model from elsewhere may carry none: its labels as numbers."""
    return saved_class_names(path) or [str(label) for label in range(class_count(model))]


def check_trained_on(model: keras.Model, path: Path, class_names: list[str]) -> None:
    """A model trained on other classes than data/classes.json's would be read with the wrong names."""
    if class_count(model) != len(class_names) or saved_class_names(path) not in (None, class_names):
        raise StageError(
            f"{path} was trained on other classes than the {len(class_names)} in {CLASSES_FILE}: "
            f"run `dvc repro` to retrain it"
        )

"""The models the stages train, put together with the Keras functional API: pixels in, the base's
preprocessing, the base, the head (transfer models), or the book's small convnet; and compiling.
"""

from __future__ import annotations

import keras
from keras import layers

from classifier.core.backend import jit_compile_setting
from classifier.core.cli import StageError
from classifier.models.heads import output_layer
from classifier.models.preprocessing import preprocessed


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

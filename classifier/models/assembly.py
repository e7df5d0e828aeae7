"""The models the stages train, put together with the Keras functional API: pixels in, the base's
preprocessing, the base, the head (transfer models), or the book's small convnet; and compiling.
"""

from __future__ import annotations

import keras
from keras import layers

from classifier.core.backend import jit_compile_setting
from classifier.core.cli import StageError
from classifier.core.schema import OptimizerParams
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


def compile_model(
    model: keras.Model,
    learning_rate: float,
    jit_compile: bool = False,
    *,
    optimizer: OptimizerParams | None = None,
    label_smoothing: float = 0.0,
    epochs: int = 1,
    steps_per_epoch: int = 1,
) -> None:
    """The optimizer (`optimizer`: its settings; None: the book's RMSprop at a constant rate) and the
    cross-entropy that fits the output layer: binary for one sigmoid unit, categorical for a softmax
    (`loss_for`). A schedule runs over `epochs` of `steps_per_epoch` steps. `jit_compile` compiles the
    train step (XLA on TensorFlow, torch.compile on torch; JAX always compiles)."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate, epochs, steps_per_epoch),
        loss=loss_for(model.output_shape[-1], label_smoothing),
        metrics=["accuracy"],  # Keras picks binary, sparse or categorical accuracy from the shapes
        jit_compile=jit_compile_setting(jit_compile),
    )


def make_optimizer(
    settings: OptimizerParams | None, learning_rate: float, epochs: int, steps_per_epoch: int
) -> keras.optimizers.Optimizer:
    """RMSprop, Adam or AdamW at `learning_rate`, constant or on the cosine schedule."""
    if settings is None:
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    # every key read whatever the choice: a stage declares the whole section in dvc.yaml
    name, weight_decay = settings.name, settings.weight_decay
    rate = learning_rate_schedule(learning_rate, settings.schedule, settings.warmup_epochs, epochs, steps_per_epoch)
    if name == "adamw":  # the decay is multiplied by the scheduled rate at each step, as in PyTorch's AdamW
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=weight_decay)
    return {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}[name](learning_rate=rate)


def learning_rate_schedule(peak: float, schedule: str, warmup_epochs: int, epochs: int, steps_per_epoch: int):
    """`peak` itself (constant), or the cosine schedule: a linear warm-up from 0 to `peak` over `warmup_epochs`,
    then a cosine decay to 0 at the end of the last of `epochs` (the most a stage runs: early stopping
    may end it before)."""
    if schedule == "constant":
        return peak
    warmup_steps = warmup_epochs * steps_per_epoch
    decay_steps = (epochs - warmup_epochs) * steps_per_epoch
    if not warmup_steps:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps)
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps, warmup_target=peak, warmup_steps=warmup_steps)


def loss_for(outputs: int, label_smoothing: float = 0.0):
    """Binary cross-entropy for one sigmoid unit, sparse categorical (integer labels) for a softmax: the
    book's. With label smoothing, each target moves `label_smoothing` towards uniform: y (1 - e) + e / classes.
    Keras' sparse loss has no smoothing, so a softmax then takes one-hot labels (`one_hot_classes`)."""
    if not label_smoothing:
        return "binary_crossentropy" if outputs == 1 else "sparse_categorical_crossentropy"
    smoothed = keras.losses.BinaryCrossentropy if outputs == 1 else keras.losses.CategoricalCrossentropy
    return smoothed(label_smoothing=label_smoothing)


def one_hot_classes(model: keras.Model) -> int | None:
    """The number of classes when the compiled loss takes one-hot labels (a smoothed softmax), else None:
    integer labels."""
    return model.output_shape[-1] if isinstance(model.loss, keras.losses.CategoricalCrossentropy) else None


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

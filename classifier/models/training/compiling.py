"""Compiling a model for training: the optimizer (RMSprop, Adam or AdamW), its learning-rate schedule,
and the cross-entropy that fits the output layer (with label smoothing, one-hot labels).
"""

from __future__ import annotations

import keras

from classifier.core.backend import jit_compile_setting
from classifier.core.schema import OptimizerParams


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

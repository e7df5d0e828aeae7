"""The classifier on top, and the one place that knows what the number of classes means for a model:
two classes get the book's single sigmoid unit, more get a softmax.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from classifier.core.cli import StageError
from classifier.core.schema import HeadParams


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

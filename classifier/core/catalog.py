"""What params.yaml can name besides files: the keras.applications bases this project knows how to
preprocess and fine-tune, and the export formats with what their converters need; and the classes
of the book's data set.

Plain data, no Keras import: the params check needs the names, and core imports no other package.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BaseSpec:
    builder: str  # the keras.applications function
    module: str  # the keras.applications module whose preprocess_input the base was trained with
    fine_tune_from: str  # the first layer of the last block: what the book unfreezes


KERAS_BASES = {
    "vgg16": BaseSpec("VGG16", "vgg16", "block5_conv1"),
    "vgg19": BaseSpec("VGG19", "vgg19", "block5_conv1"),
    "resnet50": BaseSpec("ResNet50", "resnet50", "conv5_block1_1_conv"),
    "mobilenet_v2": BaseSpec("MobileNetV2", "mobilenet_v2", "block_16_expand"),
    "efficientnetb0": BaseSpec("EfficientNetB0", "efficientnet", "block7a_expand_conv"),
}


@dataclass(frozen=True)
class Converter:
    """What an export format's converter imports beyond TensorFlow, and how to install it."""

    modules: tuple[str, ...] = ()
    install: str = ""


# Checked with the params, so that a missing converter stops `dvc repro` before anything trains, not
# at its end. TensorFlow itself is not checked here: JAX and torch train without it, and the export
# stage says what to install when it is not there.
EXPORT_CONVERTERS = {
    "saved_model": Converter(),
    "litert": Converter(),
    "onnx": Converter(("tf2onnx", "onnx"), "pip install -r requirements-export.txt"),
}


# The book's data set, Kaggle's Dogs vs. Cats: its accuracies are shown beside ours only for these classes.
DOGS_VS_CATS = ("cat", "dog")

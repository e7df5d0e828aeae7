"""Each base's preprocess_input as Keras' own layers inside the model, so that every saved model takes
raw RGB pixels (0-255) and opens with plain `keras.models.load_model`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from classifier.core.catalog import KERAS_BASES
from classifier.core.schema import BaseParams


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

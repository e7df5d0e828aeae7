"""Tiny Keras models built in a test, and what stock Keras makes of a saved model in a process that
never imports this project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def conv_base(name: str = "tiny_base"):
    """A convolutional base of two 3x3 convolutions (conv1 with ReLU, last_conv), any input size."""
    import keras  # here: most tests never build a model

    pixels = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(pixels)
    return keras.Model(pixels, keras.layers.Conv2D(4, 3, name="last_conv")(x), name=name)


def batchnorm_base():
    """A tiny convolutional base for the BatchNormalization tests: early_conv, early_bn, top_conv,
    top_bn (4 filters each), 16 px in, a 12x12x4 feature map out."""
    import keras

    pixels = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, name="early_conv")(pixels)
    x = keras.layers.BatchNormalization(name="early_bn")(x)
    x = keras.layers.Conv2D(4, 3, name="top_conv")(x)
    x = keras.layers.BatchNormalization(name="top_bn")(x)
    return keras.Model(pixels, x, name="tiny_base")


# Loads .keras files with plain Keras in a process that never imports this project (-I: no
# script folder or PYTHONPATH on sys.path; run from a folder without it), and prints each
# model's outputs on the pixels given as a .npy file.
STOCK_KERAS = """
import json, sys
import keras, numpy as np
pixels = np.load(sys.argv[1]).astype("float32")
outputs = {path: keras.models.load_model(path).predict(pixels, verbose=0).tolist() for path in sys.argv[2:]}
outputs["backend"] = keras.backend.backend()
assert not [name for name in sys.modules if name.split(".")[0] in ("stages", "classifier")], "the project was imported"
print(json.dumps(outputs))
"""


def stock_keras_outputs(
    model_paths: list[Path], pixels: np.ndarray, folder: Path, backend: str = "tensorflow"
) -> dict[str, np.ndarray]:
    """{path: outputs} of each model, loaded by stock Keras in safe mode on `backend`, in a process
    without this project."""
    np.save(folder / "pixels.npy", pixels)
    paths = [str(Path(path).resolve()) for path in model_paths]
    result = subprocess.run(
        [sys.executable, "-I", "-c", STOCK_KERAS, str(folder / "pixels.npy"), *paths],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": backend},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.splitlines()[-1])
    assert outputs["backend"] == backend
    return {str(path): np.array(outputs[str(Path(path).resolve())], np.float32) for path in model_paths}


TINY_IMAGE_SIZE = 32  # tiny_transfer_model's input: 32 -> conv 3x3 valid 30 -> pool 15 -> conv 3x3 valid 13


def tiny_transfer_base():
    """A convolutional base: two 3x3 ReLU convolutions (4 then 8 filters) around a 2x2 max pooling, any input size."""
    import keras

    pixels = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(pixels)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    return keras.Model(pixels, x, name="tiny_base")


def tiny_transfer_model(num_classes: int = 2, base=None, mode: str = "rescale", dense_units: int = 8):
    """A small base (tiny_transfer_base unless given) inside the stages' own head and wrapper, as train_frozen
    builds it: raw pixels of TINY_IMAGE_SIZE in, class probabilities out (one sigmoid unit for two classes)."""
    from classifier.core.schema import HeadParams
    from classifier.models import architecture

    base = base or tiny_transfer_base()
    features_shape = base.compute_output_shape((None, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3))[1:]
    head = HeadParams(pooling="flatten", dense_units=dense_units, dropout=0.0)
    classifier = architecture.dense_classifier(features_shape, head, num_classes)
    return architecture.with_classifier(base, classifier, image_size=TINY_IMAGE_SIZE, mode=mode)


def tiny_pooled_model(outputs: int = 3, activation: str = "softmax", size: int = 32):
    """Seeded: rescaling, one 3x3 ReLU convolution, global average pooling, dropout and a dense output, `size`
    pixels a side."""
    import keras

    keras.utils.set_random_seed(0)
    pixels = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(pixels)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)  # a random state among the variables, as in the pipeline's heads
    return keras.Model(pixels, keras.layers.Dense(outputs, activation=activation)(x))


def pooled_base():
    """A random convolutional base, seeded: conv (4 3x3 filters, ReLU) then 4x4 max pooling, any input size;
    what a tiny workspace's models/base.keras holds for extract_features and the training stages."""
    import keras

    keras.utils.set_random_seed(0)
    pixels = keras.Input((None, None, 3))
    features = keras.layers.MaxPooling2D(4)(keras.layers.Conv2D(4, 3, activation="relu", name="conv")(pixels))
    return keras.Model(pixels, features, name="tiny_base")


def tiny_model(learning_rate: float, hidden: int = 0, dropout: float = 0.0):
    """One sigmoid unit on 4 numbers (with `hidden` ReLU units and dropout before it), compiled as the book's
    (RMSprop at `learning_rate`, binary cross-entropy)."""
    import keras

    from classifier.models.training.compiling import compile_model

    layers = [keras.Input(shape=(4,))]
    if hidden:
        layers += [keras.layers.Dense(hidden, activation="relu"), keras.layers.Dropout(dropout)]
    model = keras.Sequential([*layers, keras.layers.Dense(1, activation="sigmoid")])
    compile_model(model, learning_rate)
    return model


def constant_model(probabilities: list[float]):
    """Two inputs in, the same output for every row: sigmoid(bias) for one unit, softmax(bias) for more."""
    import keras

    from classifier.models.architecture import output_layer

    units = 1 if len(probabilities) == 1 else len(probabilities)
    p = np.array(probabilities, np.float64)
    bias = np.log(p / (1 - p)) if units == 1 else np.log(p)
    model = keras.Sequential([keras.Input((2,)), output_layer(max(units, 2))])
    model.layers[-1].set_weights([np.zeros((2, units), np.float32), bias.astype(np.float32)])
    return model


def transfer_model(head, num_classes: int = 3):
    """A model as train_frozen saves it: pixels (16 px) -> VGG16's preprocessing -> a nested base (first_conv,
    bn, last_conv: a 12x12x6 feature map) -> a dense classifier of `head` (HeadParams)."""
    import keras

    from classifier.models.architecture import dense_classifier, with_classifier

    pixels = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="first_conv")(pixels)
    x = keras.layers.BatchNormalization(name="bn")(x)
    base = keras.Model(pixels, keras.layers.Conv2D(6, 3, activation="relu", name="last_conv")(x), name="tiny_base")
    classifier = dense_classifier((12, 12, 6), head, num_classes)
    return with_classifier(base, classifier, 16, "vgg16")


def augmented_convnet(seed: int = 0, learning_rate: float = 1e-4):
    """The book's small convnet at 48x48 with this project's augmentation layer (BookAugmentation, the book's
    settings) in front, seeded and compiled, as train_scratch_augmented trains it: random init, augmentation
    and dropout, each with a seed state."""
    from classifier.core.backend import set_seed
    from classifier.core.schema import AugmentationParams
    from classifier.models.architecture import small_convnet
    from classifier.models.augmentation import augmentation, with_augmentation
    from classifier.models.training.compiling import compile_model

    book = AugmentationParams(
        rotation_degrees=40, width_shift=0.2, height_shift=0.2, shear=0.2, zoom=0.2, horizontal_flip=True
    )
    set_seed(seed)
    model = with_augmentation(small_convnet(48, 0.5, 2), augmentation(book, seed))
    compile_model(model, learning_rate)
    return model

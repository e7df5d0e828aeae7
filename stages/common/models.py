"""Model builders shared by the stages (Keras functional API).

Every saved model takes raw RGB pixels (0-255): preprocessing and augmentation
are layers inside it, so evaluating or predicting needs no extra code.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from stages.common.cli import StageError
from stages.common.params import KERAS_BASES, AugmentationParams, BaseParams, HeadParams

PACKAGE = "dogs_vs_cats"  # namespace of this project's custom layers in saved .keras files


@keras.saving.register_keras_serializable(package=PACKAGE)
class BasePreprocessing(layers.Layer):
    """Raw RGB 0-255 -> what the base was trained on.

    mode: a keras.applications module name (`vgg16`, `resnet50`, ...) to apply its
    `preprocess_input`, `rescale` for the book's first-edition 1/255, or `none`
    for a base that normalises its own input (such as a .keras base file).
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, pixels):
        if self.mode == "none":
            return pixels
        if self.mode == "rescale":
            return pixels / 255.0
        return getattr(keras.applications, self.mode).preprocess_input(pixels)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BookAugmentation(layers.Layer):
    """The book's ImageDataGenerator transforms as one random affine map per image.

    Rotation (degrees), shifts (fractions of the side), shear, zoom (same factor on both
    axes) and horizontal flip are composed into one matrix, so the batch is resampled
    once; keras.layers.RandomRotation, RandomTranslation, RandomShear and RandomZoom in a
    row resample it four times (slower, and blurrier). Empty space is filled with the
    nearest edge pixel, as the book's fill_mode="nearest". Active only in training.
    """

    def __init__(self, rotation_degrees=0.0, width_shift=0.0, height_shift=0.0, shear=0.0, zoom=0.0,
                 horizontal_flip=False, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # resampling in float32, also under mixed precision
        super().__init__(**kwargs)
        self.rotation_degrees, self.width_shift, self.height_shift = rotation_degrees, width_shift, height_shift
        self.shear, self.zoom, self.horizontal_flip, self.seed = shear, zoom, horizontal_flip, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        ops = keras.ops
        height, width = images.shape[1], images.shape[2]
        count = ops.shape(images)[0]

        def uniform(half_width, centre=0.0):
            return keras.random.uniform((count,), centre - half_width, centre + half_width, seed=self.seed_generator)

        angle = uniform(self.rotation_degrees * math.pi / 180)
        cos, sin = ops.cos(angle), ops.sin(angle)
        shear_x, shear_y, zoom = uniform(self.shear), uniform(self.shear), uniform(self.zoom, 1.0)
        flip = ops.where(uniform(0.5, 0.5) < 0.5, -1.0, 1.0) if self.horizontal_flip else ops.ones_like(zoom)
        shift_x, shift_y = uniform(self.width_shift) * width, uniform(self.height_shift) * height
        # Output pixel -> input pixel, about the image centre: flip . rotation . shear . zoom, then the shift.
        a0, a1 = flip * zoom * (cos - sin * shear_y), flip * zoom * (cos * shear_x - sin)
        b0, b1 = zoom * (sin + cos * shear_y), zoom * (sin * shear_x + cos)
        centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
        a2 = centre_x + shift_x - a0 * centre_x - a1 * centre_y
        b2 = centre_y + shift_y - b0 * centre_x - b1 * centre_y
        zeros = ops.zeros_like(a0)
        transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="nearest")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(), "rotation_degrees": self.rotation_degrees, "width_shift": self.width_shift,
            "height_shift": self.height_shift, "shear": self.shear, "zoom": self.zoom,
            "horizontal_flip": self.horizontal_flip, "seed": self.seed,
        }


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


def dense_classifier(features_shape, head: HeadParams) -> keras.Model:
    """Flatten -> Dense relu -> Dropout -> Dense sigmoid: P(dog). 2,097,665 params on 4x4x512.

    `head.pooling: average` replaces Flatten by global average pooling, as the Keras
    transfer-learning guide does: far fewer weights on a large feature map.
    """
    features = keras.Input(shape=features_shape, name="features")
    x = layers.Flatten()(features) if head.pooling == "flatten" else layers.GlobalAveragePooling2D()(features)
    x = layers.Dense(head.dense_units, activation="relu")(x)
    x = layers.Dropout(head.dropout)(x)
    outputs = probability(x)
    return keras.Model(features, outputs, name="classifier")


def probability(x):
    """P(dog): computed in float32 even under mixed precision, where float16 would lose small losses."""
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="p_dog")(x)


def feature_extractor(base: keras.Model, image_size: int, mode: str) -> keras.Model:
    """Pixels -> preprocessing -> base: what extract_features runs over each split."""
    pixels = pixels_input(image_size)
    features = base(BasePreprocessing(mode)(pixels), training=False)
    return keras.Model(pixels, features, name="feature_extractor")


def with_classifier(base, classifier, image_size, mode, augment: keras.layers.Layer | None = None) -> keras.Model:
    """Pixels -> [augmentation] -> preprocessing -> base -> classifier, as one model.

    The base is called with training=False as the Keras transfer-learning guide does;
    in Keras 3 that alone does not hold during `fit`, hence `unfreeze_from` keeps
    BatchNormalization layers frozen.
    """
    pixels = pixels_input(image_size)
    x = augment(pixels) if augment is not None else pixels
    x = base(BasePreprocessing(mode)(x), training=False)
    return keras.Model(pixels, classifier(x), name="transfer")


def small_convnet(image_size: int, dropout: float, augment: keras.layers.Layer | None = None) -> keras.Model:
    """The book's convnet from scratch: 3,453,121 params at 150x150."""
    pixels = pixels_input(image_size)
    x = augment(pixels) if augment is not None else pixels
    x = layers.Rescaling(1 / 255)(x)
    for filters in (32, 64, 128, 128):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.Dense(512, activation="relu")(x)
    outputs = probability(x)
    return keras.Model(pixels, outputs, name="small_convnet")


def compile_binary(model: keras.Model, learning_rate: float, jit_compile: bool = False) -> None:
    """RMSprop and binary cross-entropy, as in the book; `jit_compile` XLA-compiles the train step."""
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def renumber_shared_objects(config: str) -> str:
    """Keras marks objects shared between layers with their memory address (`id()`), which
    differs from run to run; number them 1, 2, ... in order of appearance instead."""
    numbers: dict[str, int] = {}

    def number(match: re.Match) -> str:
        return f'"shared_object_id": {numbers.setdefault(match.group(1), len(numbers) + 1)}'

    return re.sub(r'"shared_object_id": (\d+)', number, config)


def save_model(model: keras.Model, path: Path) -> None:
    """Save as .keras, byte for byte the same for the same model, and atomically.

    Keras writes the save time into the archive (metadata.json and the zip entries'
    dates) and memory addresses into config.json; without them, identical runs give
    identical hashes in dvc.lock. The file appears under its name only once complete,
    so an interrupted stage leaves no model that looks finished.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        saved = Path(folder) / path.name
        model.save(saved)
        normalized = Path(folder) / "normalized.keras"
        with zipfile.ZipFile(saved) as source, zipfile.ZipFile(normalized, "w") as target:
            for entry in source.infolist():
                data = source.read(entry)
                if entry.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata).encode()
                elif entry.filename == "config.json":
                    data = renumber_shared_objects(data.decode()).encode()
                fixed = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
                fixed.compress_type, fixed.external_attr = entry.compress_type, entry.external_attr
                target.writestr(fixed, data)
        os.replace(normalized, path)


def predict_batches(model: keras.Model, images: np.ndarray, batch_size: int):
    """(start row, model output) for each batch of images; only a batch is read at a time (memory maps)."""
    for start in range(0, len(images), batch_size):
        yield start, model.predict_on_batch(images[start : start + batch_size].astype(np.float32))


def predict_p_dog(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """P(dog) for each image."""
    batches = [output[:, 0] for _, output in predict_batches(model, images, batch_size)]
    return np.concatenate(batches) if batches else np.zeros(0, np.float32)


def load_model(path: Path) -> keras.Model:
    """A model saved by a stage; safe mode, so loading runs no code from the file."""
    if not Path(path).is_file():
        raise StageError(f"{path} is missing: run `dvc repro` to build it")
    return keras.models.load_model(path, compile=False, safe_mode=True)

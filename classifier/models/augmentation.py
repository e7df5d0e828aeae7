"""The book's augmentation as one Keras layer, used in training only.

Saved models never hold it (`with_augmentation` puts it in front of the model that is
trained, and the model behind it is what is saved), so they load with plain Keras.
It is registered all the same, so that a model holding it can be saved and loaded in tests.
`augmented_views` applies it to pixel arrays, for the augmented views extract_features caches.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from classifier.core.schema import AugmentationParams

PACKAGE = "dogs_vs_cats"  # namespace of this project's custom layer in .keras files


@keras.saving.register_keras_serializable(package=PACKAGE)
class BookAugmentation(layers.Layer):
    """The book's ImageDataGenerator transforms as one random affine map per image.

    Rotation (degrees), shifts (fractions of the side), shear, zoom (same factor on both
    axes) and horizontal flip are composed into one matrix, so the batch is resampled
    once; keras.layers.RandomRotation, RandomTranslation, RandomShear and RandomZoom in a
    row resample it four times (slower, and blurrier). Empty space is filled with the
    nearest edge pixel, as the book's fill_mode="nearest". Active only in training.
    """

    def __init__(
        self,
        rotation_degrees=0.0,
        width_shift=0.0,
        height_shift=0.0,
        shear=0.0,
        zoom=0.0,
        horizontal_flip=False,
        seed=None,
        **kwargs,
    ):
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
            **super().get_config(),
            "rotation_degrees": self.rotation_degrees,
            "width_shift": self.width_shift,
            "height_shift": self.height_shift,
            "shear": self.shear,
            "zoom": self.zoom,
            "horizontal_flip": self.horizontal_flip,
            "seed": self.seed,
        }


def augmentation(params: AugmentationParams, seed: int) -> BookAugmentation:
    """The book's ImageDataGenerator settings as one Keras layer (active only in training)."""
    return BookAugmentation(
        rotation_degrees=params.rotation_degrees,
        width_shift=params.width_shift,
        height_shift=params.height_shift,
        shear=params.shear,
        zoom=params.zoom,
        horizontal_flip=params.horizontal_flip,
        seed=seed,
        name="augmentation",
    )


def with_augmentation(model: keras.Model, augment: keras.layers.Layer) -> keras.Model:
    """Pixels -> augmentation -> `model`: what is trained, while `model` alone (sharing the
    weights) is what is saved, so saved models hold no training-time layer."""
    pixels = keras.Input(shape=model.input_shape[1:], name="pixels")
    return keras.Model(pixels, model(augment(pixels)), name=f"{model.name}_augmented")


def view_seed(seed: int, view: int) -> int:
    """Each view's own 32-bit seed, drawn from (seed, view): no two views share a random stream."""
    return int(np.random.SeedSequence([seed, view]).generate_state(1)[0])


def augmented_views(params: AugmentationParams, seed: int, count: int) -> list[Callable[[np.ndarray], np.ndarray]]:
    """`count` augmentations of batches of pixels (arrays in, arrays out), views 1..count: the layer the
    training stages use, always in training mode, seeded from (seed, view). The same batches in the same
    order get the same views on every run."""

    def view(number: int) -> Callable[[np.ndarray], np.ndarray]:
        layer = augmentation(params, view_seed(seed, number))
        return lambda pixels: keras.ops.convert_to_numpy(layer(pixels, training=True))

    return [view(number) for number in range(1, count + 1)]

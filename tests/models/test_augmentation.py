"""classifier/models/augmentation.py: the book's augmentation as one Keras layer (BookAugmentation): its
settings, off at inference, each transform alone doing what it says, and the same seed giving the same
augmentation."""

from __future__ import annotations

import numpy as np

from classifier.models import augmentation
from classifier.models.augmentation import BookAugmentation


def test_augmentation_has_the_books_settings_and_is_off_at_inference(params):
    augment = augmentation.augmentation(params.augmentation, seed=1)
    config = augment.get_config()
    assert (config["rotation_degrees"], config["width_shift"], config["height_shift"]) == (40, 0.2, 0.2)
    assert (config["shear"], config["zoom"], config["horizontal_flip"]) == (0.2, 0.2, True)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 3)).astype(np.float32)
    np.testing.assert_array_equal(augment(pixels, training=False), pixels)
    assert not np.allclose(augment(pixels, training=True), pixels)


def book_augmentation(**settings) -> BookAugmentation:
    return BookAugmentation(**{"seed": 0, **settings})


def test_augmentation_with_every_transform_off_changes_nothing():
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 32, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(book_augmentation()(pixels, training=True), pixels, atol=1e-3)


def test_flip_alone_mirrors_some_images_and_leaves_the_others():
    pixels = np.random.default_rng(1).uniform(0, 255, (32, 16, 20, 3)).astype(np.float32)
    out = np.asarray(book_augmentation(horizontal_flip=True)(pixels, training=True))
    mirrored = [np.allclose(o, p[:, ::-1], atol=1e-3) for o, p in zip(out, pixels)]
    kept = [np.allclose(o, p, atol=1e-3) for o, p in zip(out, pixels)]
    assert all(m != k for m, k in zip(mirrored, kept))  # each image exactly one of the two
    assert 4 < sum(mirrored) < 28


def test_shifts_move_the_picture_by_at_most_their_fraction_and_fill_with_the_nearest_edge():
    pixels = np.zeros((64, 40, 40, 3), np.float32)
    pixels[:, 18:22, 18:22] = 255  # a bright square in the middle
    out = np.asarray(book_augmentation(width_shift=0.25, height_shift=0.25)(pixels, training=True))
    for image in out:
        rows, columns = np.nonzero(image[..., 0] > 127)
        assert abs(rows.mean() - 19.5) <= 10.5 and abs(columns.mean() - 19.5) <= 10.5  # 0.25 * 40 (+ rounding)
    moved = [abs(np.nonzero(image[..., 0] > 127)[1].mean() - 19.5) for image in out]
    assert max(moved) > 5  # shifts of up to 10 pixels do happen
    assert out.min() >= 0 and out.max() <= 255  # nearest-edge fill: no new values outside the image's own


def test_rotation_keeps_the_centre_pixel_and_zoom_scales_about_the_centre():
    pixels = np.zeros((16, 41, 41, 3), np.float32)
    pixels[:, 20, 20] = 255
    rotated = np.asarray(book_augmentation(rotation_degrees=40)(pixels, training=True))
    assert np.all(rotated[:, 20, 20, 0] > 250)
    square = np.zeros((16, 41, 41, 3), np.float32)
    square[:, 10:31, 10:31] = 255  # 21 pixels wide
    zoomed = np.asarray(book_augmentation(zoom=0.2)(square, training=True))
    widths = [(image[20, :, 0] > 127).sum() for image in zoomed]
    assert all(16 <= width <= 27 for width in widths)  # 21 / 1.2 .. 21 / 0.8
    assert len(set(widths)) > 1


def test_the_same_seed_gives_the_same_augmentation(params):
    pixels = np.random.default_rng(2).uniform(0, 255, (4, 24, 24, 3)).astype(np.float32)
    one = augmentation.augmentation(params.augmentation, seed=5)(pixels, training=True)
    two = augmentation.augmentation(params.augmentation, seed=5)(pixels, training=True)
    other = augmentation.augmentation(params.augmentation, seed=6)(pixels, training=True)
    np.testing.assert_array_equal(one, two)
    assert not np.allclose(one, other)

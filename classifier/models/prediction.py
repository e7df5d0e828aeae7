"""Running a model over image arrays a batch at a time (into memory, or into a memory-mapped file),
and reading its output as class probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from classifier.core.outputs import reserve
from classifier.intake.prepared.checks import rows_not_finite
from classifier.intake.prepared.shards import release
from classifier.models.architecture import class_count, class_probabilities

View = Callable[[np.ndarray], np.ndarray] | None  # a batch of pixels -> the pixels the model sees; None: as they are


def predict_batches(model: keras.Model, images: np.ndarray, batch_size: int, view: View = None):
    """(start row, model output) for each batch of images; only a batch is read at a time (memory maps).
    The last of several batches is padded to the same shape: another shape would trace the predict
    function again, and TensorFlow warns when several models in a row each do that. `view`, when
    given, turns each (padded) batch of pixels into the one the model sees (an augmentation)."""
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        short = batch_size - len(batch) if start else 0
        if short:
            batch = np.concatenate([batch, np.zeros((short, *batch.shape[1:]), np.float32)])
        output = model.predict_on_batch(batch if view is None else view(batch))
        yield start, output[: len(output) - short]


def mirrored(batch: np.ndarray) -> np.ndarray:
    """(N, height, width, channels), each image flipped left to right; copied, as torch takes no negative strides."""
    return np.ascontiguousarray(batch[:, :, ::-1])


RELEASE_EVERY = 1024  # images between two releases of the memory maps' pages


def predict_to_file(extractor, images: np.ndarray, batch_size: int, out_path, views: Sequence[View] = (None,)) -> int:
    """Stream the model's outputs (features) batch by batch into a memory-mapped .npy file; resident memory
    stays bounded by RELEASE_EVERY images, whatever the size of the split. Returns how many rows hold a value
    that is not a finite number (NaN, infinity): 0 for a base that fits its images.

    With several `views` (None: the images as they are), the file holds len(views) x N rows, view-major:
    rows v*N .. (v+1)*N - 1 are view v of images 0 .. N-1, so the first N rows are the plain features."""
    count = len(images)
    shape = (len(views) * count, *extractor.output_shape[1:])
    features = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32, shape=shape)
    reserve(out_path)  # a full disk fails here, not as SIGBUS in the middle of the writes
    not_finite = 0
    for index, view in enumerate(views):
        for start, output in predict_batches(extractor, images, batch_size, view):
            row = index * count + start
            features[row : row + len(output)] = output
            not_finite += rows_not_finite(output)
            if (row + len(output)) // RELEASE_EVERY > row // RELEASE_EVERY:
                release(features)
                release(images)
    features.flush()
    return not_finite


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int, tta: bool = False) -> np.ndarray:
    """(N, classes) probabilities, rows summing to 1, for a classifier made by this project.

    With `tta` (test-time augmentation), each image's are the mean of its own and its mirror image's: for
    pictures whose mirror image shows the same class (photographs of animals, flowers, objects; not text).
    """
    probabilities = []
    for view in (None, mirrored) if tta else (None,):
        batches = [class_probabilities(output) for _, output in predict_batches(model, images, batch_size, view)]
        probabilities.append(np.concatenate(batches) if batches else np.zeros((0, class_count(model)), np.float32))
    return np.mean(probabilities, axis=0, dtype=np.float32) if tta else probabilities[0]

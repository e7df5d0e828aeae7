"""Running a model over image arrays a batch at a time (into memory, or into a memory-mapped file),
and reading its output as class probabilities."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from classifier.core.cli import StageError
from classifier.core.layout import CLASSES_FILE
from classifier.intake.prepared import release
from classifier.models.heads import class_count, class_probabilities
from classifier.models.saving import saved_class_names


def predict_batches(model: keras.Model, images: np.ndarray, batch_size: int, mirrored: bool = False):
    """(start row, model output) for each batch of images (`mirrored`: of each image flipped left to right);
    only a batch is read at a time (memory maps).
    The last of several batches is padded to the same shape: another shape would trace the predict
    function again, and TensorFlow warns when several models in a row each do that."""
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        if mirrored:
            # (N, height, width, channels): the width reversed; copied, as torch takes no negative strides
            batch = np.ascontiguousarray(batch[:, :, ::-1])
        short = batch_size - len(batch) if start else 0
        if short:
            batch = np.concatenate([batch, np.zeros((short, *batch.shape[1:]), np.float32)])
        output = model.predict_on_batch(batch)
        yield start, output[: len(output) - short]


RELEASE_EVERY = 1024  # images between two releases of the memory maps' pages


def predict_to_file(extractor, images: np.ndarray, batch_size: int, out_path) -> None:
    """Stream the model's outputs (features) batch by batch into a memory-mapped .npy file; resident memory
    stays bounded by RELEASE_EVERY images, whatever the size of the split."""
    shape = (len(images), *extractor.output_shape[1:])
    features = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32, shape=shape)
    for start, output in predict_batches(extractor, images, batch_size):
        features[start : start + len(output)] = output
        if (start + len(output)) // RELEASE_EVERY > start // RELEASE_EVERY:
            release(features)
            release(images)
    features.flush()


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int, tta: bool = False) -> np.ndarray:
    """(N, classes) probabilities, rows summing to 1, for a classifier made by this project.

    With `tta` (test-time augmentation), each image's are the mean of its own and its mirror image's: for
    pictures whose mirror image shows the same class (photographs of animals, flowers, objects; not text).
    """
    views = (False, True) if tta else (False,)
    probabilities = []
    for mirrored in views:
        batches = [class_probabilities(output) for _, output in predict_batches(model, images, batch_size, mirrored)]
        probabilities.append(np.concatenate(batches) if batches else np.zeros((0, class_count(model)), np.float32))
    return np.mean(probabilities, axis=0, dtype=np.float32) if tta else probabilities[0]


def class_names_of(model: keras.Model, path: Path) -> list[str]:
    """The class names the model file carries; a model from elsewhere may carry none: its labels as numbers."""
    return saved_class_names(path) or [str(label) for label in range(class_count(model))]


def check_trained_on(model: keras.Model, path: Path, class_names: list[str]) -> None:
    """A model trained on other classes than data/classes.json's would be read with the wrong names."""
    if class_count(model) != len(class_names) or saved_class_names(path) not in (None, class_names):
        raise StageError(
            f"{path} was trained on other classes than the {len(class_names)} in {CLASSES_FILE}: "
            f"run `dvc repro` to retrain it"
        )

"""Classifying new images with a trained model: the check that a file is an image classifier this
pipeline can use, and decoding the images as the training images were.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from classifier.core.errors import StageError
from classifier.core.paths import MODEL_STAGES
from classifier.intake.decoding import DEFAULT_MAX_PIXELS, BadImage, decode_image


def check_classifier(model, path: Path) -> None:
    """Predict needs an image classifier: (None, S, S, 3) pixels in, (None, classes) out."""
    trained = f"one of the five trained models ({', '.join(MODEL_STAGES)}) or a .keras classifier this pipeline trained"
    try:
        output, inputs = model.output_shape, model.input_shape
    except (AttributeError, ValueError):  # a Sequential model saved before it was built
        raise StageError(
            f"{path} is not an image classifier (it has no defined input and output): give {trained}"
        ) from None
    if isinstance(output, list) or isinstance(inputs, list):
        raise StageError(f"{path} is not an image classifier (it has several inputs or outputs): give {trained}")
    if len(output) == 4:
        raise StageError(f"{path} is a convolutional base without a classifier (output {output}): give {trained}")
    if len(output) != 2 or len(inputs) != 4 or inputs[-1] != 3 or inputs[1] is None or inputs[1] != inputs[2]:
        raise StageError(
            f"{path} is not an image classifier of this pipeline (input {inputs}, output {output}): give {trained}"
        )


def decoded_images(
    files: list[Path], size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[list[Path], np.ndarray | None, int]:
    """(the files that decode, their pixels (N, size, size, 3) or None, how many failed); a line on
    stderr for each that fails, or has more than `max_pixels` pixels. Decoded as prepare decodes."""
    readable, pixels = [], []
    for file in files:
        try:
            with open(file, "rb") as handle:  # an image over the limit: only its header is read
                pixels.append(decode_image(handle, size, max_pixels, "--max-pixels"))
            readable.append(file)
        except (OSError, BadImage) as err:
            print(f"predict: error: {file}: {getattr(err, 'strerror', None) or err}", file=sys.stderr)
    return readable, (np.stack(pixels) if pixels else None), len(files) - len(readable)

"""What the intake makes of a raw folder, as stage split reads it (classifier.intake.raw.layouts): the
one line it is refused with, and a collection's images by source, by Kaggle key, or summed up."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.core.errors import RawDataError
from classifier.intake.raw.layouts import raw_collection


def raises_raw_data_error(raw_dir: Path, label_column: str = "label") -> str:
    """The one-line RawDataError that reading `raw_dir` as a collection stops with."""
    with pytest.raises(RawDataError) as info:
        with raw_collection(raw_dir, label_column):
            pass
    message = str(info.value)
    assert "\n" not in message
    return message


def by_source(collection) -> dict:
    """{source: image} of a collection."""
    return {image.source: image for image in collection.images}


def kaggle_keys(collection) -> set[tuple[str, int]]:
    """(class, index) of each image of a collection in Kaggle's cat.N.jpg naming."""
    return {(image.class_name, image.index) for image in collection.images}


def summary(collection) -> list[tuple]:
    """(split, class, name, source) of each image of a collection, in its order."""
    return [(image.split, image.class_name, image.name, image.source) for image in collection.images]

"""Kaggle's Dogs vs. Cats naming, `cat.N.jpg` / `dog.N.jpg` at any depth, and its near misses
(`cat.3.JPG`, `Cat.1.jpg`, a folder named `cat.4.jpg`), which do not count and are named with the reason.
"""

from __future__ import annotations

import re

from classifier.core.catalog import DOGS_VS_CATS
from classifier.intake.raw.collection import RawImage
from classifier.intake.raw.files import RawFile, duplicate_error
from classifier.intake.raw.tree import RawTree

KAGGLE_CLASSES = DOGS_VS_CATS  # label 0 cat, 1 dog
KAGGLE_NAME = re.compile(rf"^({'|'.join(KAGGLE_CLASSES)})\.(\d+)\.jpg$")
NEAR_KAGGLE_NAME = re.compile(rf"^({'|'.join(KAGGLE_CLASSES)})\.(\d+)\.(jpe?g)$", re.IGNORECASE)  # or exactly it

KAGGLE_DOWNLOAD = "`kaggle competitions download -c dogs-vs-cats -p data/raw` (accept the competition rules first)"


def is_kaggle(file: RawFile) -> bool:
    return KAGGLE_NAME.match(file.path.name) is not None


def kaggle_named(images: list[RawFile]) -> bool:
    """Kaggle's naming, unless every such image is already in a folder named after its class."""
    return any(is_kaggle(file) and not in_own_class_folder(file) for file in images)


def near_miss(name: str) -> str | None:
    """Why a name that is nearly Kaggle's (case aside, or .jpeg) does not count; None for any other name."""
    match = NEAR_KAGGLE_NAME.match(name)
    if match is None or KAGGLE_NAME.match(name):
        return None
    label, index, extension = match.groups()
    reasons = [
        *(["the class must be lower case"] if label != label.lower() else []),
        *(["the extension must be .jpg, lower case"] if extension != "jpg" else []),
    ]
    return f"{' and '.join(reasons)}: rename it {label.lower()}.{index}.jpg"


def near_misses(tree: RawTree) -> list[str]:
    """`source (why it does not count)` for the files and folders named nearly as Kaggle's images."""
    files = [f"{file.source} ({reason})" for file in tree.files if (reason := near_miss(file.path.name))]
    folders = [
        f"{folder.as_posix()} (is a folder, not a file)"
        for folder in sorted(tree.folders)
        if NEAR_KAGGLE_NAME.match(folder.name)
    ]
    return files + folders


def in_own_class_folder(file: RawFile) -> bool:
    label = KAGGLE_NAME.match(file.path.name).group(1)
    return file.path.parent.name in (label, f"{label}s")


def kaggle_images(tree: RawTree, images: list[RawFile]) -> list[RawImage]:
    found: dict[tuple[str, int], RawImage] = {}
    for file in images:
        match = KAGGLE_NAME.match(file.path.name)
        if match is None:
            continue
        label, index = match.group(1), int(match.group(2))
        name = f"{label}.{index}.jpg"
        if (label, index) in found:
            raise duplicate_error(name, tree.shown(found[label, index].source), tree.shown(file.source))
        found[label, index] = RawImage(label, name, name, file.source, file.read, file.read, index=index)
    return [found[key] for key in sorted(found)]

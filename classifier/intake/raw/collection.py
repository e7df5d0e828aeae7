"""The vocabulary of the intake: a raw image (where it is, how to read it, its class and any split
it brings) and the collection a layout of `data.raw_dir` makes of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation", "test": "test"}
INTEGER = re.compile(r"^[+-]?\d+$")
SHOWN = 3  # examples named in a message

KAGGLE = "Kaggle's cat.N.jpg / dog.N.jpg"
CLASS_FOLDERS = "a folder per class"
SPLIT_FOLDERS = "split folders of class folders"
ARRAYS = "image arrays with a labels table"


def split_name(folder: str) -> str | None:
    """The split a folder's name says, whatever its letter case (Train/, VAL/), or None."""
    return SPLIT_NAMES.get(folder.lower())


@dataclass(frozen=True)
class RawImage:
    class_name: str
    name: str  # its file name under data/split/<split>/<class>/: unique among its class's images
    name_in_group: str  # the same where classes share a folder (data.class_groups): unique among all images
    source: str  # relative to data.raw_dir: a path, `archive.zip:member`, or `train.npy:17` for an array row
    read: Callable[[], bytes]  # the file written under data/split
    content: Callable[[], bytes]  # what is hashed to choose its split: the file's bytes, an array row's pixels
    split: str | None = None  # the split the collection already puts it in
    index: int | None = None  # Kaggle's N, for data.split index ranges


@dataclass(frozen=True)
class Collection:
    layout: str  # KAGGLE, CLASS_FOLDERS, SPLIT_FOLDERS or ARRAYS
    images: list[RawImage]
    given_splits: frozenset[str]  # the splits the collection brings; empty when it is not split
    ignored: list[str]  # sources of the files that hold none of its images
    takes: str  # what the layout reads, to say why the others are ignored
    near_misses: list[str] = field(default_factory=list)  # Kaggle's layout: `name (why it does not count)`
    hidden: list[str] = field(default_factory=list)  # hidden files and folders (`.cache/`), never read
    notes: list[str] = field(default_factory=list)  # how the layout was chosen where another could read it


def examples(names: list[str]) -> str:
    return f": {', '.join(names[:SHOWN])}{' ...' if len(names) > SHOWN else ''}" if names else ""

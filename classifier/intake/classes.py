"""The class list: written once by `split` to data/classes.json, read by every later stage.

Label i of every array and model output is the i-th name in the list. With
`data.class_groups` the names are the groups' (the superclasses the models learn).
"""

from __future__ import annotations

import json

from classifier.core.cli import StageError
from classifier.core.layout import CLASSES_FILE

# The book's data set: its accuracies are shown beside ours only for these classes.
DOGS_VS_CATS = ["cat", "dog"]


def write_classes(names: list[str]) -> None:
    CLASSES_FILE.parent.mkdir(parents=True, exist_ok=True)
    CLASSES_FILE.write_text(json.dumps(list(names), indent=2) + "\n")


def read_classes() -> list[str]:
    if not CLASSES_FILE.is_file():
        raise StageError(f"{CLASSES_FILE} is missing: run `dvc repro split` first")
    return json.loads(CLASSES_FILE.read_text())

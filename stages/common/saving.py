"""Saving and loading models: repeatable .keras files that carry their class names."""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import keras

from stages.common import layers  # noqa: F401  (registers the custom layers a saved model may hold)
from stages.common.cli import StageError

# The entry of the .keras archive (a zip) that holds its metadata; the class names go there too,
# so a model names its classes wherever it is copied (plain JSON: readable without this project).
METADATA = "metadata.json"


def renumber_shared_objects(config: str) -> str:
    """Keras marks objects shared between layers with their memory address (`id()`), which
    differs from run to run; number them 1, 2, ... in order of appearance instead."""
    numbers: dict[str, int] = {}

    def number(match: re.Match) -> str:
        return f'"shared_object_id": {numbers.setdefault(match.group(1), len(numbers) + 1)}'

    return re.sub(r'"shared_object_id": (\d+)', number, config)


def save_model(model: keras.Model, path: Path, class_names: list[str] | None = None) -> None:
    """Save as .keras with its class names, byte for byte the same for the same model, and atomically.

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
                if entry.filename == METADATA:
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    if class_names is not None:
                        metadata["class_names"] = list(class_names)
                    data = json.dumps(metadata).encode()
                elif entry.filename == "config.json":
                    data = renumber_shared_objects(data.decode()).encode()
                fixed = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
                fixed.compress_type, fixed.external_attr = entry.compress_type, entry.external_attr
                target.writestr(fixed, data)
        os.replace(normalized, path)


def load_model(path: Path) -> keras.Model:
    """A model saved by a stage; safe mode, so loading runs no code from the file."""
    if not Path(path).is_file():
        raise StageError(f"{path} is missing: run `dvc repro` to build it")
    return keras.models.load_model(path, compile=False, safe_mode=True)


def saved_class_names(path: Path) -> list[str] | None:
    """The class names a model file carries (label i = name i); None for a file saved elsewhere."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(METADATA)).get("class_names")
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return None

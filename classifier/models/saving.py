"""Saving and loading models: repeatable .keras files that carry their class names."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np

from classifier.core.errors import StageError
from classifier.core.outputs import writing

# The entry of the .keras archive (a zip) that holds its metadata; the class names go there too,
# so a model names its classes wherever it is copied (plain JSON: readable without this project).
METADATA = "metadata.json"
# What a training stage writes in place of the model that `models.<name>: false` skips: a line of text,
# not an empty file (DVC warns about each empty output on every run), that no one takes for a model.
PLACEHOLDER = "not trained: models.{name} is false in params.yaml\n"


def write_placeholder(path: Path) -> None:
    path.write_text(PLACEHOLDER.format(name=path.stem))


def is_placeholder(path: Path) -> bool:
    return path.stat().st_size < 200 and path.read_bytes() == PLACEHOLDER.format(name=path.stem).encode()


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
    so an interrupted stage leaves no model that looks finished, and a full disk or a file-size
    limit ends in one line (classifier.core.outputs.writing).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = str(path) if path.exists() else None  # a full disk: one line, and an earlier model stays whole
    with writing(path, weights_bytes(model), kept), tempfile.TemporaryDirectory(dir=path.parent) as folder:
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


def weights_bytes(model: keras.Model) -> int:
    """About the size of a model's .keras file: its weights' bytes."""
    return sum(math.prod(weight.shape) * np.dtype(weight.dtype).itemsize for weight in model.weights)


# What to give instead of a refused file, unless the caller says otherwise.
A_MODEL = "a model made of Keras layers, such as one this pipeline trained"


def load_model(path: Path, label: str | None = None, wanted: str = A_MODEL) -> keras.Model:
    """A .keras model file, loaded in Keras safe mode (no code from the file runs).

    The one place that turns Keras' loading errors into one line: a missing file, one that
    is not a .keras archive, a Lambda layer, a class this Keras does not know, damaged
    weights all raise StageError("<label> <what it is>: refused; give <wanted>"), where label
    defaults to the path. Keras' own advice to turn safe mode off is never repeated.
    """
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise StageError(f"{label} is missing: run `dvc repro` to build it")
    if is_placeholder(path):
        raise StageError(
            f"{label} is a placeholder: that model is not trained (models.{path.stem}: false in params.yaml); "
            "set it true and run `dvc repro`, or use another model"
        )
    problem = archive_problem(path, label)
    if problem is None:
        try:
            with replayed_warnings():
                model = keras.models.load_model(path, compile=False, safe_mode=True)
        except MemoryError:
            raise
        except Exception as err:  # Keras raises ValueError, TypeError, KeyError, OSError, ... alike
            problem = loading_problem(path, err)
        else:
            problem = weights_not_finite(model)
            if problem is None:
                return model
    raise StageError(f"{label} {problem}: refused; give {wanted}")


def load_weights(model: keras.Model, path: Path, label: str, wanted: str) -> None:
    """Load a weights file into `model`; any problem raises StageError, one line, as load_model."""
    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIXES):
        problem = "is not a weights file (Keras reads .weights.h5, legacy .h5 and .keras files)"
    else:
        problem = archive_problem(path, label) if path.name.endswith(".keras") else None
    if problem is None:
        try:
            with replayed_warnings():
                model.load_weights(path)
        except MemoryError:
            raise
        except Exception as err:
            problem = weights_problem(model, err)
        else:
            problem = weights_not_finite(model)
            if problem is None:
                return
    raise StageError(f"{label} {problem}: refused; give {wanted}")


def weights_not_finite(model: keras.Model) -> str | None:
    """`holds weights that are not finite numbers (...)` when some are NaN or infinite, else None: a model of
    them gives nothing but NaN (or, behind a ReLU, the same features for every image: NaN becomes 0)."""
    weights = model.get_weights()
    bad = sum(int(weight.size - np.count_nonzero(np.isfinite(weight))) for weight in weights)
    if not bad:
        return None
    total = sum(int(weight.size) for weight in weights)
    return f"holds weights that are not finite numbers (NaN or infinity: {bad:,} of its {total:,})"


WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")


@contextlib.contextmanager
def replayed_warnings():
    """Keras warns about every layer it skips on its way to an error: keep its warnings back and
    show them only if the load succeeds (a refusal says in one line all that matters)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def archive_problem(path: Path, label: str) -> str | None:
    """What is wrong with a .keras file before Keras reads it (not a zip, no config), or None."""
    try:
        with open(path, "rb") as file:
            start = file.read(4)
        if not zipfile.is_zipfile(path):
            if start.startswith(b"PK"):
                return "is a damaged zip archive, not a complete Keras model file (cut short?)"
            return "is not a Keras model file (a .keras file is a zip archive)"
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                return "is a zip archive but not a Keras model file (it holds no config.json)"
            json.loads(archive.read("config.json"))
    except OSError as err:
        raise StageError(f"{label} cannot be read: {err.strerror or err}") from None
    except (ValueError, zipfile.BadZipFile):  # bad JSON, a damaged entry
        return "is a damaged Keras model file (its config.json cannot be read)"
    return None


def config_classes(path: Path) -> set[str]:
    """Every class name in a .keras file's config (layers, nested models, initializers, ...)."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    names, stack = set(), [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str):
                names.add(item["class_name"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names


def loading_problem(path: Path, err: Exception) -> str:
    """Keras' error on loading a .keras archive -> what the file is, in a few words."""
    message = str(err)
    try:
        classes = config_classes(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # changed since archive_problem read it
        classes = set()
    if "Lambda" in classes:
        return "holds a Lambda layer (Python code that safe mode will not run)"
    unknown = re.findall(r"Could not locate class '([^']+)'", message) + re.findall(
        r"Could not deserialize '([^']+)' because it is not a KerasSaveable", message
    )
    if unknown:
        return f"uses a class this Keras does not know ({unknown[-1]})"  # the innermost: the one missing
    functions = re.findall(r"Could not locate function '([^']+)'", message)
    if functions:
        return f"uses a function this Keras does not know ({functions[-1]})"
    if "safe_mode" in message or "unsafe" in message:
        return "holds Python code that safe mode will not run"
    if "Expected a model.weights" in message:
        return "is not a complete Keras model file (it holds no weights)"
    if isinstance(err, OSError) and "signature" in message:
        return "holds damaged weights (its model.weights.h5 is not an HDF5 file)"
    mismatched = re.search(r"A total of (\d+) objects could not be loaded", message)
    if mismatched:
        return f"holds weights that do not fit its own layers ({mismatched.group(1)} of them)"
    return f"could not be loaded by Keras {keras.__version__} ({first_sentence(err)})"


def weights_problem(model: keras.Model, err: Exception) -> str:
    """Keras' error on loading weights -> what the weights file is, in a few words."""
    message = str(err)
    if isinstance(err, OSError) and "signature" in message:
        return "is not an HDF5 file (its name ends in .h5, its contents are something else)"
    mismatched = re.search(r"A total of (\d+) objects could not be loaded", message)
    if mismatched:
        layers = mismatched.group(1)
        return f"does not fit {model.name}: the weights of {layers} of its layers do not match (another architecture?)"
    if "mismatch" in message:
        return f"does not fit {model.name} ({first_sentence(err)})"
    return f"could not be loaded into {model.name} ({first_sentence(err)})"


def first_sentence(err: Exception) -> str:
    """The start of an error message, on one line, without Keras' advice to turn safe mode off."""
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(str(err).split()))
    kept = [s for s in sentences if "safe_mode" not in s and "unsafe" not in s.lower()]
    if not kept or not kept[0]:
        return type(err).__name__
    text = kept[0] if len(kept[0]) <= 160 else kept[0][:157] + "..."
    return f"{type(err).__name__}: {text}"


def saved_class_names(path: Path) -> list[str] | None:
    """The class names a model file carries (label i = name i); None for a file saved elsewhere."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(METADATA)).get("class_names")
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return None

"""params.yaml for a test's workspace: the repository's own, with some keys changed (or edited in any
way, and the ParamsError that gives)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from classifier.core.errors import ParamsError
from classifier.core.params import load_params
from classifier.core.schema import OptimizerParams
from tests.support.paths import ROOT


def changed_params(changes: dict[str, object]) -> dict:
    """The repository's params.yaml as a mapping, each dotted key of `changes` ("data.raw_dir") set."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        place = params
        for section in sections:
            place = place[section]
        place[key] = value
    return params


def write_params(folder: Path, changes: dict[str, object] | None = None) -> Path:
    """folder/params.yaml: the repository's, with `changes` ({dotted key: value}); its path."""
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(changed_params(changes or {}), sort_keys=False, allow_unicode=True))
    return path


def setter(*keys_and_value) -> Callable[[dict], None]:
    """An edit for edited_params that sets one key: setter("data", "image_size", 16)."""
    *keys, value = keys_and_value

    def change(raw: dict) -> None:
        target = raw
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def edited_params(folder: Path, edit: Callable[[dict], None]) -> Path:
    """folder/params.yaml: the repository's as `edit(mapping)` leaves it (a key set, removed, renamed); its path."""
    params = changed_params({})
    edit(params)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def params_error(folder: Path, edit: Callable[[dict], None]) -> str:
    """The message of the ParamsError that load_params raises on the repository's params.yaml as `edit`
    leaves it (written to folder/params.yaml)."""
    with pytest.raises(ParamsError) as info:
        load_params(edited_params(folder, edit))
    return str(info.value)


def split_params(raw_dir, shares: dict, **data) -> dict[str, object]:
    """The changes for stage split to read `raw_dir` (a path, or text as params.yaml gives it) with
    data.split `shares`: every class found (data.classes and data.class_groups null), labels in a table's
    `label` column, and other keys of data as given (on_bad_image="skip": data.on_bad_image)."""
    changes = {"data.raw_dir": str(raw_dir), "data.split": shares, "data.classes": None, "data.class_groups": None}
    changes["data.label_column"] = "label"
    return changes | {f"data.{key}": value for key, value in data.items()}


# params.yaml's optimizer section: the book's RMSprop at a constant rate, no weight decay, no warm-up.
BOOK_OPTIMIZER = OptimizerParams(name="rmsprop", weight_decay=0.0, schedule="constant", warmup_epochs=0)

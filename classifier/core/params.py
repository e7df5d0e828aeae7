"""Loading params.yaml: checked in full when any stage starts, every problem one line.

The schema (classifier.core.schema) checks types, ranges and keys, the rules
(classifier.core.rules) what spans several keys; pydantic's errors become one line naming the
key, the value and what is allowed, with a "did you mean" for a misspelt key.

A stage sees its params through `Watched`: attribute access as on the models, and each key
it reads announced as the audit event "classifier.params.read" (PEP 578; free when nobody
listens). tests/e2e/test_dvc_deps_e2e.py listens, and compares the keys each stage reads
with those dvc.yaml declares for it.
"""

from __future__ import annotations

import difflib
import inspect
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from classifier.core.errors import ParamsError
from classifier.core.rules import check_rules
from classifier.core.schema import Params, Section
from classifier.core.yaml_files import read_yaml

PARAMS_FILE = Path("params.yaml")
READ_EVENT = "classifier.params.read"
SUGGESTED = 3  # keys named in a "did you mean"


def load_params(path: str | Path = PARAMS_FILE) -> Watched:
    """Read and check params.yaml (as `Params`, watched); raise ParamsError with a fix on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run the stages from the repository root, where params.yaml lives")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        kinds = {str: "text", list: "a list", bool: "a boolean", int: "a number", float: "a number"}
        what = "nothing" if raw is None else f"{kinds.get(type(raw), type(raw).__name__)} ({repr(raw)[:40]})"
        raise ParamsError(
            f"{path} holds {what}: the top level must be a mapping of sections (seed: ..., data: ...); restore it: "
            f"git checkout {path}"
        )
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(one_line(err)) from None
    check_rules(params)
    return Watched(params)


# --- pydantic's errors as one line ---------------------------------------------------------------------------

# What a value must be, by pydantic's error type, where the message does not depend on the field.
MUST_BE = {
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a number",
    "string_type": "must be a non-empty string",
    "string_too_short": "must be a non-empty string",
}
BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def one_line(err: ValidationError) -> str:
    """The first of pydantic's errors (an unknown key first, then a missing one) as one line."""
    errors = err.errors(include_url=False)
    first = min(errors, key=lambda e: {"extra_forbidden": 0, "missing": 1}.get(e["type"], 2))
    keys, parent, field, annotation = located(first["loc"])
    key, kind, value = ".".join(keys), first["type"], first["input"]
    where = f"{key} " if key else ""
    if kind == "extra_forbidden":
        allowed = f"allowed keys in {place(keys[:-1])}: {names(parent)}"
        return f"params.yaml: unknown key {key}{suggestion(parent, keys)}; {allowed}"
    if kind == "missing":
        return f"params.yaml: missing key {key}; {place(keys[:-1])} needs {names(parent)}"
    if kind == "model_type":
        return f"params.yaml: {place(keys)} must be a mapping with keys {names(as_model(annotation))}, got {value!r}"
    if kind in BOUNDS:
        help_text = f" ({field.description})" if field.description else ""
        shown = float(value) if float in flat_types(annotation) else value
        return f"params.yaml: {key}{help_text} must be {bounds(field)}; got {shown!r}"
    if kind == "literal_error":
        return f"params.yaml: {where}must be one of {', '.join(map(str, literal_values(annotation)))}; got {value!r}"
    if kind in ("list_type", "too_short", "dict_type"):
        what = "a mapping like {group: [class, ...]}" if item_type(annotation, dict) else "a non-empty list"
        return f"params.yaml: {where}must be {what}{' or null' if nullable(annotation) else ''}; got {value!r}"
    if kind in MUST_BE:
        return f"params.yaml: {where}{MUST_BE[kind]}; got {value!r}"
    message = first["msg"].removeprefix("Value error, ")  # our own validators' sentences, which say what they got
    return f"params.yaml: {where}{message}"


def located(loc: tuple) -> tuple[list[str], type[Section], typing.Any, typing.Any]:
    """For an error's loc: (the dotted key's parts, the section that holds the last of them, that key's
    FieldInfo (None for an unknown key), the type of the value at loc). A dict's keys are part of the
    key (data.class_groups.animal); a list's indices are not."""
    keys, parent, field, annotation = [], Params, None, Params
    for part in loc:
        model = as_model(annotation)
        if model is not None:
            keys.append(part)
            parent, field = model, model.model_fields.get(part)
            if field is None:  # an unknown key
                break
            annotation = field.annotation
        elif isinstance(part, str) and item_type(annotation, dict) is not None:
            keys.append(part)
            annotation = item_type(annotation, dict)
        elif isinstance(part, int) and item_type(annotation, list) is not None:
            annotation = item_type(annotation, list)
        else:
            break
    return keys, parent, field, annotation


def as_model(annotation) -> type[Section] | None:
    """The section a type is, or None for a value's type."""
    return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None


def flat_types(annotation) -> list:
    """The types inside an annotation: Optional, unions and Annotated opened."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return flat_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [kind for arg in typing.get_args(annotation) for kind in flat_types(arg)]
    return [annotation]


def item_type(annotation, container):
    """The type of a list's items or a dict's values, where `annotation` is (or may be) one; else None."""
    for kind in flat_types(annotation):
        if typing.get_origin(kind) is container:
            return typing.get_args(kind)[-1]
    return None


def nullable(annotation) -> bool:
    return type(None) in flat_types(annotation)


def literal_values(annotation) -> list:
    return [
        v for kind in flat_types(annotation) if typing.get_origin(kind) is typing.Literal for v in typing.get_args(kind)
    ]


def bounds(field) -> str:
    """A field's declared range, as the messages say it: `between` inclusive, `>` exclusive."""
    limits = {
        name: getattr(rule, name) for rule in field.metadata for name in ("ge", "gt", "le") if hasattr(rule, name)
    }
    low, above, high = limits.get("ge"), limits.get("gt"), limits.get("le")
    if above is not None:
        return f"> {above}" + (f" and <= {high}" if high is not None else "")
    return f">= {low}" if high is None else f"between {low} and {high}"


def place(keys: list[str]) -> str:
    return ".".join(keys) or "the top level"


def names(section: type[Section]) -> str:
    return ", ".join(section.model_fields)


def suggestion(section: type[Section], keys: list[str]) -> str:
    """' (did you mean X?)' for an unknown key: a close key of the same section, or else a close key
    one section down (`learning_rat` -> `train_frozen.learning_rate`), or ''."""
    prefix, name = keys[:-1], keys[-1]
    close = difflib.get_close_matches(name, section.model_fields, n=1)
    if close:
        return f" (did you mean {'.'.join([*prefix, close[0]])}?)"
    nested = {
        f"{outer}.{inner}": inner
        for outer, field in section.model_fields.items()
        if (model := as_model(field.annotation)) is not None
        for inner in model.model_fields
    }
    close = difflib.get_close_matches(name, set(nested.values()), n=1)
    if not close:
        return ""
    places = [".".join([*prefix, dotted]) for dotted, inner in nested.items() if inner == close[0]]
    more = " or ..." if len(places) > SUGGESTED else ""
    return f" (did you mean {' or '.join(places[:SUGGESTED])}{more}?)"


# --- what a stage reads ------------------------------------------------------------------------------------


class Watched:
    """A params section as the stages see it: its keys, properties and methods as on the model, each
    value read announced as READ_EVENT with its dotted key (a section read is not a read: its keys are)."""

    __slots__ = ("_section", "_key")

    def __init__(self, section: Section, key: str = ""):
        object.__setattr__(self, "_section", section)
        object.__setattr__(self, "_key", key)

    def __getattr__(self, name: str):
        section = self._section
        if name in type(section).model_fields:
            value = getattr(section, name)
            key = f"{self._key}.{name}" if self._key else name
            if isinstance(value, Section):
                return Watched(value, key)
            sys.audit(READ_EVENT, key)
            return value
        own = next(
            (vars(kind)[name] for kind in type(section).__mro__ if name in vars(kind) and issubclass(kind, Section)),
            None,
        )
        if isinstance(own, property):  # BaseParams.is_file reads `name`: through this view, so it is seen
            return own.fget(self)
        if inspect.isfunction(own):
            return types.MethodType(own, self)
        raise AttributeError(f"params {self._key or 'file'} has no key {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError("params are read-only")

    def keys(self) -> list[str]:
        return list(type(self._section).model_fields)

    def model_copy(self, *, update: dict) -> Watched:
        """The same params with some keys changed (not checked again): for tests and tools."""
        update = {name: value._section if isinstance(value, Watched) else value for name, value in update.items()}
        return Watched(self._section.model_copy(update=update), self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Watched) and self._section == other._section

    def __repr__(self) -> str:
        return f"Watched({self._key or 'params'}: {self._section!r})"

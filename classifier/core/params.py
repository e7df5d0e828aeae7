"""The schema of params.yaml, checked in full when any stage starts.

Every key is required (DVC tracks params by key, so a missing key would break
`dvc repro` anyway); an unknown key, a wrong type or an out-of-range value
stops the stage with one message naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from classifier.core.backend import backend_problem
from classifier.core.cli import StageError
from classifier.core.layout import BASES_DIR

PARAMS_FILE = Path("params.yaml")
SPLITS = ("train", "validation", "test")

# keras.applications bases this project knows how to preprocess and fine-tune.
# `fine_tune_from` is the first layer of the last block: what the book unfreezes.
KERAS_BASES = {
    "vgg16": {"builder": "VGG16", "module": "vgg16", "fine_tune_from": "block5_conv1"},
    "vgg19": {"builder": "VGG19", "module": "vgg19", "fine_tune_from": "block5_conv1"},
    "resnet50": {"builder": "ResNet50", "module": "resnet50", "fine_tune_from": "conv5_block1_1_conv"},
    "mobilenet_v2": {"builder": "MobileNetV2", "module": "mobilenet_v2", "fine_tune_from": "block_16_expand"},
    "efficientnetb0": {"builder": "EfficientNetB0", "module": "efficientnet", "fine_tune_from": "block7a_expand_conv"},
}

# The book's small convnet halves the image four times (2x2 max pooling): 16 pixels is the least
# that leaves it a feature map (below 46 its 3x3 convolutions pad instead of shrinking the image).
MIN_IMAGE_SIZE = 16
# Each prepared image takes size x size x 3 bytes (3 MiB at 1024) and the bases' feature maps grow
# with its square: past 1024 the arrays and a batch of activations outgrow a machine's memory.
MAX_IMAGE_SIZE = 1024
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds are 32-bit
# A learning rate of 0 trains nothing; above 1 (RMSprop, Adam) the weights blow up at once.
RATE = {"above": 0, "max": 1}


class ParamsError(StageError):
    """A params.yaml problem, phrased for the person who edits params.yaml."""


def _check(min=None, max=None, help=None, above=None):
    """Bounds of a number: `min` and `max` inclusive, `above` exclusive."""
    return field(metadata={"min": min, "max": max, "help": help, "above": above})


# A split is a fraction of each class (any layout) or, for Kaggle's naming, an index range [start, end).
SplitShare = typing.Union[tuple[int, int], float]


@dataclass(frozen=True)
class SplitParams:
    train: SplitShare
    validation: SplitShare
    test: SplitShare

    @property
    def is_ranges(self) -> bool:
        return isinstance(self.train, tuple)

    def as_dict(self) -> dict[str, tuple[int, int] | float]:
        return {name: getattr(self, name) for name in SPLITS}


@dataclass(frozen=True)
class DataParams:
    raw_dir: str
    image_size: int = _check(
        min=MIN_IMAGE_SIZE, max=MAX_IMAGE_SIZE, help="pixels per side; the small convnet halves it four times"
    )
    on_bad_image: Literal["fail", "skip"]
    split: SplitParams
    classes: list[str] | None  # null: every class found, sorted by name; or the ones to use, in label order
    class_groups: dict[str, list[str]] | None  # null, or {group: [class, ...]}: train on the groups
    label_column: str  # the labels CSV's column that holds the label (arrays with a labels table)


@dataclass(frozen=True)
class BaseParams:
    name: str
    weights: str | None
    output_layer: str | None  # a .keras base: the layer whose output is the feature map; null: the one its head reads
    fine_tune_from: str | None
    preprocessing: Literal["native", "rescale"]

    @property
    def is_file(self) -> bool:
        return self.name.endswith(".keras")


@dataclass(frozen=True)
class AugmentationParams:
    rotation_degrees: float = _check(min=0, max=180)
    width_shift: float = _check(min=0, max=1)
    height_shift: float = _check(min=0, max=1)
    shear: float = _check(min=0, max=1)
    zoom: float = _check(min=0, max=1)
    horizontal_flip: bool


@dataclass(frozen=True)
class HeadParams:
    pooling: Literal["flatten", "average"]
    dense_units: int = _check(min=1)
    dropout: float = _check(min=0, max=0.99)


@dataclass(frozen=True)
class BatchParams:
    batch_size: int = _check(min=1)


@dataclass(frozen=True)
class TrainingParams:
    epochs: int = _check(min=1)
    batch_size: int = _check(min=1)
    learning_rate: float = _check(**RATE)


@dataclass(frozen=True)
class FineTuneParams:
    """The learning rate is the top-level `lr`, so `dvc exp run -S lr=...` sweeps it."""

    epochs: int = _check(min=1)
    batch_size: int = _check(min=1)


@dataclass(frozen=True)
class ScratchParams(TrainingParams):
    dropout: float = _check(min=0, max=0.99)


@dataclass(frozen=True)
class RunParams:
    """How the training stages run (section `training`), the same for all of them."""

    resume: bool
    deterministic: bool
    distribute: Literal["none", "mirrored"]
    mixed_precision: bool
    jit_compile: bool
    class_weight: Literal["balanced"] | None  # balanced: weigh each class by 1 / its share of the training images


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = _check(min=1)
    top_k: int = _check(min=1, help="top-k accuracy is reported when k is below the number of classes")
    gallery_size: int = _check(min=1, help="how many of the worst mistakes to show")


# The models the training stages write (layout.MODEL_STAGES), as explain.model and export.model name them.
ModelName = Literal["scratch", "scratch_augmented", "feature_extraction", "frozen_augmented", "fine_tuned"]


@dataclass(frozen=True)
class ExplainParams:
    model: ModelName
    image: int = _check(min=0, help="the index of a test image")
    activation_layers: int = _check(min=1)
    filter_layers: int = _check(min=1)
    filters: int = _check(min=1)
    filter_steps: int = _check(min=1)
    filter_size: int = _check(
        min=48, max=MAX_IMAGE_SIZE, help="pixels per side of the filter patterns; the small convnet needs 46"
    )
    gradcam_per_class: int = _check(min=1, help="test images per class with a Grad-CAM heatmap")


ExportFormat = Literal["saved_model", "litert", "onnx"]
# What each export format's converter imports beyond TensorFlow, and how to install it (stage export;
# checked with the params, so that a missing converter stops `dvc repro` before anything trains, not
# at its end). TensorFlow itself is not checked here: JAX and torch train without it, and the export
# stage says what to install when it is not there.
EXPORT_CONVERTERS = {
    "saved_model": ((), ""),
    "litert": ((), ""),
    "onnx": (("tf2onnx", "onnx"), "pip install -r requirements-export.txt"),
}


@dataclass(frozen=True)
class ExportParams:
    model: ModelName
    formats: list[ExportFormat]


@dataclass(frozen=True)
class Params:
    seed: int = _check(min=0, max=MAX_SEED)
    lr: float = _check(**RATE, help="the fine-tuning learning rate")
    data: DataParams
    base: BaseParams
    augmentation: AugmentationParams
    head: HeadParams
    training: RunParams
    extract_features: BatchParams
    train_classifier: TrainingParams
    train_frozen: TrainingParams
    fine_tune: FineTuneParams
    train_scratch: ScratchParams
    train_scratch_augmented: ScratchParams
    evaluate: EvaluateParams
    explain: ExplainParams
    export: ExportParams


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and check params.yaml; raise ParamsError with a fix on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run the stages from the repository root, where params.yaml lives")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    params = _convert(Params, raw, "")
    _check_cross_field(params)
    return params


def _convert(kind, value, key: str, nullable: bool = False):
    """Turn the YAML value at `key` into `kind`, or raise ParamsError naming `key`."""
    where = key or "the top level"
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ParamsError(f"params.yaml: {where} must be a mapping with keys {_names(kind)}, got {value!r}")
        fields = {f.name: f for f in dataclasses.fields(kind)}
        hints = typing.get_type_hints(kind)
        for name in value:
            if name not in fields:
                hint = _suggestion(kind, key, str(name))
                raise ParamsError(
                    f"params.yaml: unknown key {_join(key, name)}{hint}; allowed keys in {where}: {_names(kind)}"
                )
        missing = [name for name in fields if name not in value]
        if missing:
            raise ParamsError(f"params.yaml: missing key {_join(key, missing[0])}; {where} needs {_names(kind)}")
        converted = {}
        for name, f in fields.items():
            converted[name] = _convert(hints[name], value[name], _join(key, name))
            _check_range(converted[name], f.metadata, _join(key, name))
        return kind(**converted)
    if origin is Literal:
        allowed = typing.get_args(kind)
        if value not in allowed:
            raise ParamsError(f"params.yaml: {key} must be one of {', '.join(map(str, allowed))}; got {value!r}")
        return value
    if kind == SplitShare:
        if isinstance(value, list):
            return _convert(tuple[int, int], value, key)
        try:
            return _convert(float, value, key)
        except ParamsError:
            raise ParamsError(
            f"params.yaml: {key} must be a fraction of each class like 0.8 or, for Kaggle's cat.N.jpg naming, "
            f"an index range [start, end) like [0, 1000]; got {value!r}"
            ) from None
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)][0]
        return _convert(inner, value, key, nullable=True)
    if origin is tuple:
        if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value)):
            raise ParamsError(f"params.yaml: {key} must be a [start, end) pair of integers like [0, 1000]; got {value!r}")
        return tuple(value)
    if origin is list:
        if not isinstance(value, list) or not value:
            raise ParamsError(f"params.yaml: {key} must be a non-empty list{' or null' if nullable else ''}; got {value!r}")
        items = [_convert(typing.get_args(kind)[0], item, key) for item in value]
        repeated = sorted({item for item in items if items.count(item) > 1})
        if repeated:
            raise ParamsError(f"params.yaml: {key} lists {', '.join(map(repr, repeated))} more than once")
        return items
    if origin is dict:
        if not isinstance(value, dict) or not value:
            raise ParamsError(f"params.yaml: {key} must be a mapping like {{group: [class, ...]}} or null; got {value!r}")
        value_kind = typing.get_args(kind)[1]
        return {str(name): _convert(value_kind, items, _join(key, name)) for name, items in value.items()}
    if kind is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params.yaml: {key} must be true or false; got {value!r}")
        return value
    if kind is int:
        if not _is_int(value):
            raise ParamsError(f"params.yaml: {key} must be an integer; got {value!r}")
        return value
    if kind is float:
        # PyYAML reads `1e-05` (as `dvc exp run -S lr=1e-5` writes it) as a string.
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number):
            raise ParamsError(f"params.yaml: {key} must be a number; got {value!r}")
        return number
    if kind is str:
        if _is_int(value) and key.startswith("data.class"):  # class names read from a labels CSV: 3 means "3"
            return str(value)
        if not isinstance(value, str) or not value:
            raise ParamsError(f"params.yaml: {key} must be a non-empty string; got {value!r}")
        return value
    raise TypeError(f"no conversion for {kind}")  # a bug in the schema, not in params.yaml


def _check_range(value, metadata, key: str) -> None:
    low, high, above = metadata.get("min"), metadata.get("max"), metadata.get("above")
    if low is not None and value < low or high is not None and value > high or above is not None and value <= above:
        if above is not None:
            bounds = f"> {above}" + (f" and <= {high}" if high is not None else "")
        else:
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
        what = f" ({metadata['help']})" if metadata.get("help") else ""
        raise ParamsError(f"params.yaml: {key}{what} must be {bounds}; got {value!r}")


def _check_cross_field(params: Params) -> None:
    _check_split(params.data.split)
    _check_classes(params.data)
    problem = backend_problem(params.training.distribute, params.training.jit_compile, params.training.deterministic)
    if problem:
        raise ParamsError(problem)
    _check_base(params.base)
    _check_converters(params.export.formats)


def _check_split(split: SplitParams) -> None:
    kinds = {name: isinstance(share, tuple) for name, share in split.as_dict().items()}
    if len(set(kinds.values())) > 1:
        raise ParamsError(
            "params.yaml: data.split mixes index ranges and fractions; give three fractions of each class "
            "(train: 0.8, validation: 0.1, test: 0.1) or, for Kaggle's naming, three ranges [start, end)"
        )
    if split.is_ranges:
        _check_ranges(split.as_dict())
        return
    fractions = split.as_dict()
    for name, fraction in fractions.items():
        if not 0 < fraction < 1:
            raise ParamsError(
                f"params.yaml: data.split.{name} is {fraction:g}; each split's fraction of a class must be "
                f"between 0 and 1 (exclusive), e.g. train: 0.8, validation: 0.1, test: 0.1"
            )
    total = sum(fractions.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ParamsError(
            f"params.yaml: data.split fractions add up to {total:g}, not 1; e.g. train: 0.8, validation: 0.1, test: 0.1"
        )


def _check_ranges(ranges: dict[str, tuple[int, int]]) -> None:
    for name, (start, end) in ranges.items():
        if start < 0 or end <= start:
            raise ParamsError(
                f"params.yaml: data.split.{name} is [{start}, {end}), an empty or negative range; "
                f"give per-class image indices [start, end) with 0 <= start < end"
            )
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            (a0, a1), (b0, b1) = ranges[first], ranges[second]
            if a0 < b1 and b0 < a1:
                raise ParamsError(
                    f"params.yaml: data.split.{first} [{a0}, {a1}) overlaps data.split.{second} [{b0}, {b1}); "
                    f"the same image must not be in two splits"
                )


def _check_classes(data: DataParams) -> None:
    """What can be checked without looking at the data; split checks the names against what it finds."""
    if data.classes is not None and len(data.classes) < 2 and data.class_groups is None:
        raise ParamsError(
            f"params.yaml: data.classes lists one class ({data.classes[0]!r}); a classifier needs at least 2, "
            f"or use null for every class found"
        )
    if data.class_groups is None:
        return
    if len(data.class_groups) < 2:
        raise ParamsError(
            f"params.yaml: data.class_groups has one group ({next(iter(data.class_groups))!r}); "
            f"give at least 2 groups, or null to train on the classes themselves"
        )
    owner: dict[str, str] = {}
    for group, members in data.class_groups.items():
        for member in members:
            if member in owner:
                raise ParamsError(
                    f"params.yaml: class {member!r} is in two groups of data.class_groups ({owner[member]!r} and "
                    f"{group!r}); put each class in one group"
                )
            owner[member] = group
    if data.classes is not None:
        outside = [member for member in owner if member not in data.classes]
        if outside:
            raise ParamsError(
                f"params.yaml: data.class_groups uses {', '.join(map(repr, outside))}, which data.classes leaves "
                f"out; add it to data.classes or set data.classes: null"
            )


def _check_converters(formats: list[str]) -> None:
    """Each listed format's converter is installed (found, not imported: this runs in every stage)."""
    for name in formats:
        modules, install = EXPORT_CONVERTERS[name]
        for module in modules:
            if importlib.util.find_spec(module) is None:
                raise ParamsError(
                    f"params.yaml: export.formats lists {name} but {module} is not installed: {install}, "
                    f"or remove {name} from export.formats"
                )


def _check_base(base: BaseParams) -> None:
    if base.is_file:
        if base.weights == "imagenet":
            raise ParamsError(
                "params.yaml: base.weights is 'imagenet' but base.name is a .keras file, which brings its own "
                "weights; set base.weights: null (or random, or a weights file to load into it)"
            )
    elif base.name not in KERAS_BASES:
        raise ParamsError(
            f"params.yaml: base.name {base.name!r} is not a known base; use one of "
            f"{', '.join(KERAS_BASES)} or the path of a .keras model in {BASES_DIR}/"
        )
    elif base.output_layer is not None:
        raise ParamsError(
            f"params.yaml: base.output_layer is {base.output_layer!r}, but it only applies to a .keras base; "
            f"{base.name} ends at its last feature map already: set base.output_layer: null"
        )
    for key, path in (("base.name", base.name if base.is_file else None), ("base.weights", base.weights)):
        if path not in (None, "imagenet", "random") and not _inside(Path(path), BASES_DIR):
            raise ParamsError(
                f"params.yaml: {key} {path!r} is outside {BASES_DIR}/, where DVC sees a new version of it and "
                f"reruns load_base; copy it there and track it: cp {path} {BASES_DIR}/ && dvc add "
                f"{BASES_DIR}/{Path(path).name}, then set {key}: {BASES_DIR}/{Path(path).name}"
            )


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is inside `folder` by name (links are not followed: DVC hashes what is in the folder)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def _suggestion(kind, key: str, name: str) -> str:
    """' (did you mean X?)' for an unknown key: a close key of the same section, or else a close key
    one section down (`learning_rat` -> `train_frozen.learning_rate`), or ''."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    close = difflib.get_close_matches(name, fields, n=1)
    if close:
        return f" (did you mean {_join(key, close[0])}?)"
    hints = typing.get_type_hints(kind)
    nested = {
        f"{section}.{inner.name}": inner.name
        for section in fields if dataclasses.is_dataclass(hints[section])
        for inner in dataclasses.fields(hints[section])
    }
    close = difflib.get_close_matches(name, set(nested.values()), n=1)
    if not close:
        return ""
    places = [_join(key, dotted) for dotted, inner in nested.items() if inner == close[0]]
    return f" (did you mean {' or '.join(places[:3])}{' or ...' if len(places) > 3 else ''}?)"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _join(prefix: str, name) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _names(kind) -> str:
    return ", ".join(f.name for f in dataclasses.fields(kind))

"""The schema of params.yaml, checked in full when any stage starts.

Every key is required (DVC tracks params by key, so a missing key would break
`dvc repro` anyway); an unknown key, a wrong type or an out-of-range value
stops the stage with one message naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from stages.common.cli import StageError

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

# The book's small convnet has four 3x3 convolutions and four 2x2 poolings.
MIN_IMAGE_SIZE = 46


class ParamsError(StageError):
    """A params.yaml problem, phrased for the person who edits params.yaml."""


def _check(min=None, max=None, help=None):
    return field(metadata={"min": min, "max": max, "help": help})


@dataclass(frozen=True)
class SplitParams:
    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]


@dataclass(frozen=True)
class DataParams:
    raw_dir: str
    image_size: int = _check(min=MIN_IMAGE_SIZE)
    on_bad_image: Literal["fail", "skip"]
    split: SplitParams


@dataclass(frozen=True)
class BaseParams:
    name: str
    weights: str | None
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
    learning_rate: float = _check(min=0)


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


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = _check(min=1)
    gallery_size: int = _check(min=1, help="how many of the worst mistakes to show")
    gradcam_per_class: int = _check(min=1, help="test images per class with a Grad-CAM heatmap")


@dataclass(frozen=True)
class Params:
    seed: int = _check(min=0)
    lr: float = _check(min=0, help="the fine-tuning learning rate")
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


def _convert(kind, value, key: str):
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
                close = difflib.get_close_matches(str(name), fields, n=1)
                hint = f" (did you mean {_join(key, close[0])}?)" if close else ""
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
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)][0]
        return _convert(inner, value, key)
    if origin is tuple:
        if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value)):
            raise ParamsError(f"params.yaml: {key} must be a [start, end) pair of integers like [0, 1000]; got {value!r}")
        return tuple(value)
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
        if not isinstance(value, str) or not value:
            raise ParamsError(f"params.yaml: {key} must be a non-empty string; got {value!r}")
        return value
    raise TypeError(f"no conversion for {kind}")  # a bug in the schema, not in params.yaml


def _check_range(value, metadata, key: str) -> None:
    low, high = metadata.get("min"), metadata.get("max")
    if low is not None and value < low or high is not None and value > high:
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        what = f" ({metadata['help']})" if metadata.get("help") else ""
        raise ParamsError(f"params.yaml: {key}{what} must be {bounds}; got {value!r}")


def _check_cross_field(params: Params) -> None:
    ranges = {name: getattr(params.data.split, name) for name in SPLITS}
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
    if params.training.jit_compile and params.training.deterministic:
        raise ParamsError(
            "params.yaml: training.jit_compile: true needs training.deterministic: false; Keras does not "
            "XLA-compile under TensorFlow's op determinism (it would silently train without XLA)"
        )
    base = params.base
    if base.is_file:
        if base.weights == "imagenet":
            raise ParamsError(
                "params.yaml: base.weights is 'imagenet' but base.name is a .keras file, which brings its own "
                "weights; set base.weights: null (or a weights file to load into it)"
            )
        if base.fine_tune_from is None:
            raise ParamsError(
                f"params.yaml: base.fine_tune_from is null, but {base.name} is a file with no known default; "
                f"name the first layer to unfreeze when fine-tuning"
            )
    elif base.name not in KERAS_BASES:
        raise ParamsError(
            f"params.yaml: base.name {base.name!r} is not a known base; use one of "
            f"{', '.join(KERAS_BASES)} or the path of a .keras convolutional base"
        )


def fine_tune_from(base: BaseParams) -> str:
    """The layer to unfreeze from: the param, or the base's own default when it is null."""
    return base.fine_tune_from or KERAS_BASES[base.name]["fine_tune_from"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _join(prefix: str, name) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _names(kind) -> str:
    return ", ".join(f.name for f in dataclasses.fields(kind))

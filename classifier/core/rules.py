"""The rules of params.yaml that span several keys, or need more than a type and a range: each a
small function that raises one sentence naming the keys, run in order once every field is valid
(so a type error never reads as a rule error). What only the data can tell (class names against
the folders found) is checked by stage split.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

from classifier.core.backend import backend_problem
from classifier.core.catalog import EXPORT_CONVERTERS, KERAS_BASES
from classifier.core.errors import ParamsError
from classifier.core.paths import BASES_DIR, MODEL_STAGES, SPLITS, WRITTEN
from classifier.core.schema import Params


def raw_dir_is_not_written(params: Params) -> None:
    """A raw folder that is, holds or lies in an output is deleted by DVC (which deletes a stage's outputs
    before it runs it) or by split itself (which replaces data/split) before it is read."""
    raw_dir = params.data.raw_dir
    for output in WRITTEN:
        relation = overlap(Path(raw_dir), output)
        if relation:
            raise ParamsError(
                f"params.yaml: data.raw_dir {raw_dir!r} {relation} {output}, which the stages write and delete (a "
                f"stage would delete its own input, or read its outputs as raw images); point data.raw_dir at a "
                f"folder of its own outside {', '.join(map(str, WRITTEN))}, such as data/raw"
            )


def split_kinds_agree(params: Params) -> None:
    kinds = {isinstance(share, tuple) for share in params.data.split.as_dict().values()}
    if len(kinds) > 1:
        raise ParamsError(
            "params.yaml: data.split mixes index ranges and fractions; give three fractions of each class "
            "(train: 0.8, validation: 0.1, test: 0.1) or, for Kaggle's naming, three ranges [start, end)"
        )


def split_ranges_are_disjoint(params: Params) -> None:
    if not params.data.split.is_ranges:
        return
    ranges = params.data.split.as_dict()
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


def split_fractions_add_up(params: Params) -> None:
    if params.data.split.is_ranges:
        return
    fractions = params.data.split.as_dict()
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


def classes_make_a_classifier(params: Params) -> None:
    data = params.data
    if data.classes is not None and len(data.classes) < 2 and data.class_groups is None:
        raise ParamsError(
            f"params.yaml: data.classes lists one class ({data.classes[0]!r}); a classifier needs at least 2, "
            f"or use null for every class found"
        )


def class_groups_partition_the_classes(params: Params) -> None:
    data = params.data
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
    outside = [member for member in owner if data.classes is not None and member not in data.classes]
    if outside:
        raise ParamsError(
            f"params.yaml: data.class_groups uses {', '.join(map(repr, outside))}, which data.classes leaves "
            f"out; add it to data.classes or set data.classes: null"
        )


def backend_can_train(params: Params) -> None:
    run = params.training
    problem = backend_problem(run.distribute, run.jit_compile, run.deterministic)
    if problem:
        raise ParamsError(problem)


def base_is_known(params: Params) -> None:
    base = params.base
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


def base_files_are_in_bases(params: Params) -> None:
    """A new version of a base file reruns load_base only if DVC sees it: in bases/, its dependency."""
    base = params.base
    for key, path in (("base.name", base.name if base.is_file else None), ("base.weights", base.weights)):
        if path not in (None, "imagenet", "random") and not _inside(Path(path), BASES_DIR):
            raise ParamsError(
                f"params.yaml: {key} {path!r} is outside {BASES_DIR}/, where DVC sees a new version of it and "
                f"reruns load_base; copy it there and track it: cp {path} {BASES_DIR}/ && dvc add "
                f"{BASES_DIR}/{Path(path).name}, then set {key}: {BASES_DIR}/{Path(path).name}"
            )


def export_converters_are_installed(params: Params) -> None:
    """Found, not imported: this runs in every stage."""
    for name in params.export.formats:
        converter = EXPORT_CONVERTERS[name]
        for module in converter.modules:
            if importlib.util.find_spec(module) is None:
                raise ParamsError(
                    f"params.yaml: export.formats lists {name} but {module} is not installed: {converter.install}, "
                    f"or remove {name} from export.formats"
                )


def chosen_models_can_be_made(params: Params) -> None:
    """fine_tune starts from a trained model (fine_tune.start_from); explain and export need a trained model."""
    chosen = [name for name, trained in params.models.model_dump().items() if trained]
    if not chosen:
        raise ParamsError("params.yaml: models: every model is false; set at least one true (the book: all five)")
    start = params.fine_tune.start_from
    if params.models.fine_tuned and not getattr(params.models, start):
        raise ParamsError(
            f"params.yaml: models.fine_tuned is true but models.{start} is false: fine_tune starts from it "
            f"(fine_tune.start_from); set models.{start}: true, another start_from, or models.fine_tuned: false"
        )
    for section in ("explain", "export"):
        name = getattr(params, section).model
        if name != "best" and name not in chosen:
            raise ParamsError(
                f"params.yaml: {section}.model {name} is not trained (models.{name}: false): "
                f"set {section}.model: best, or one of {', '.join(chosen)}"
            )


def optimizer_settings_agree(params: Params) -> None:
    """Weight decay is AdamW's (Keras would decay with any optimizer, but `adam` then is AdamW under
    another name, and RMSprop with decoupled decay is no published recipe); warm-up belongs to the
    cosine schedule and leaves it epochs to decay over in every stage that trains."""
    optimizer = params.optimizer
    if optimizer.weight_decay > 0 and optimizer.name != "adamw":
        raise ParamsError(
            f"params.yaml: optimizer.weight_decay is {optimizer.weight_decay:g} but optimizer.name is "
            f"{optimizer.name}: decoupled weight decay is AdamW's; set optimizer.name: adamw, or "
            f"optimizer.weight_decay: 0"
        )
    if optimizer.warmup_epochs and optimizer.schedule != "cosine":
        raise ParamsError(
            f"params.yaml: optimizer.warmup_epochs is {optimizer.warmup_epochs} but optimizer.schedule is "
            f"{optimizer.schedule}: warm-up is part of the cosine schedule; set optimizer.schedule: cosine, or "
            f"optimizer.warmup_epochs: 0"
        )
    for model, stage in MODEL_STAGES.items():
        epochs = getattr(params, stage).epochs
        if getattr(params.models, model) and optimizer.warmup_epochs >= epochs:
            raise ParamsError(
                f"params.yaml: optimizer.warmup_epochs {optimizer.warmup_epochs} leaves {stage} ({stage}.epochs: "
                f"{epochs}) no epoch to decay over; lower optimizer.warmup_epochs below {epochs}, or raise "
                f"{stage}.epochs"
            )


RULES = (
    raw_dir_is_not_written,
    split_kinds_agree,
    split_ranges_are_disjoint,
    split_fractions_add_up,
    classes_make_a_classifier,
    class_groups_partition_the_classes,
    backend_can_train,
    base_is_known,
    base_files_are_in_bases,
    export_converters_are_installed,
    chosen_models_can_be_made,
    optimizer_settings_agree,
)


def check_rules(params: Params) -> None:
    for rule in RULES:
        rule(params)


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is inside `folder` by name (links are not followed: DVC hashes what is in the folder)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def overlap(path: Path, output: Path) -> str | None:
    """How `path` overlaps `output` ('is', 'lies inside', 'contains'), or None: by name (`..` resolved), through
    links, and by the folders' identity where they exist (a case-insensitive file system, a bind mount)."""
    for resolve in (os.path.abspath, os.path.realpath):
        first, second = Path(resolve(path)), Path(resolve(output))
        if first == second:
            return "is"
        if first.is_relative_to(second):
            return "lies inside"
        if second.is_relative_to(first):
            return "contains"
    (own, *above), (other, *above_other) = _identities(path), _identities(output)
    if own is not None and own == other:
        return "is"
    if other is not None and other in above:
        return "lies inside"
    if own is not None and own in above_other:
        return "contains"
    return None


def _identities(path: Path) -> list[tuple[int, int] | None]:
    """(device, inode) of `path` (None where it does not exist), then of each existing folder above it."""
    real = Path(os.path.realpath(path))
    found = []
    for place in (real, *real.parents):
        try:
            info = os.stat(place)
        except OSError:
            if place == real:
                found.append(None)
            continue
        found.append((info.st_dev, info.st_ino))
    return found

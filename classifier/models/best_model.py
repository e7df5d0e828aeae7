"""Which trained model to use: the best on the validation split, chosen by stage `evaluate`
(never on the test split, whose accuracy would then overstate what the model does on new images)."""

from __future__ import annotations

import json
import shutil

from classifier.core.errors import StageError
from classifier.core.outputs import writing
from classifier.core.paths import BEST, EVALUATION_METRICS, MODEL_STAGES, model_path, training_summary


def trained_summaries() -> dict[str, dict]:
    """{model: its training stage's metrics at the best epoch}, in the book's order, for the models
    trained (a stage skipped by `models` says so in its metrics.json)."""
    summaries = {}
    for name, stage in MODEL_STAGES.items():
        path = training_summary(stage)
        if not path.is_file():
            raise StageError(f"{path} is missing: run `dvc repro {stage}`")
        summary = json.loads(path.read_text())
        if not summary.get("skipped"):
            summaries[name] = summary
    if not summaries:
        raise StageError("no model is trained (every stage was skipped by `models`): set one true in params.yaml")
    return summaries


def best_on_validation(summaries: dict[str, dict]) -> str:
    """The model whose best epoch has the highest validation accuracy; on a tie the lower validation
    loss, then the earlier in the book's order. `summaries`: {model: its training stage's metrics.json}."""
    order = list(summaries)
    return min(
        summaries,
        key=lambda name: (-summaries[name]["val"]["accuracy"], summaries[name]["val"]["loss"], order.index(name)),
    )


def keep_as_best(name: str) -> None:
    """models/best.keras becomes a copy of models/<name>.keras (DVC caches the content once)."""
    partial = model_path(BEST).with_suffix(".keras.partial")
    try:
        with writing(model_path(BEST), model_path(name).stat().st_size):
            shutil.copyfile(model_path(name), partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(model_path(BEST))


def which_model(name: str) -> str:
    """The model that `name` means: itself, or for `best` the one metrics/evaluate.json records."""
    if name != BEST:
        return name
    try:
        chosen = json.loads(EVALUATION_METRICS.read_text())["best_model"]
    except (OSError, ValueError, KeyError):
        raise StageError(
            f"the best model is named in {EVALUATION_METRICS}, which has none: run `dvc repro evaluate`, "
            f"or name a model ({', '.join(MODEL_STAGES)})"
        ) from None
    if chosen not in MODEL_STAGES:
        raise StageError(f"{EVALUATION_METRICS} names best_model {chosen!r}, not a model: rerun evaluate")
    return chosen


def using(name: str, chosen: str) -> str:
    """The line that says which model a command uses."""
    if name == BEST:
        return f"using {chosen}, the best model on the validation split ({model_path(BEST)})"
    return f"using {chosen} ({model_path(chosen)})"

"""`classifier results`: the five models' validation and test results (the test accuracy with its 95%
interval), next to the book's test accuracies when the run is on Dogs vs. Cats (the classes cat and dog).

    classifier results             # from metrics/ in the workspace
    classifier results --exp demo  # from a DVC experiment (after `make demo`)
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from classifier.core.errors import StageError
from classifier.core.paths import CLASSES_FILE, EVALUATION_METRICS, MODEL_STAGES, PROJECT_ROOT, stage_metrics_dir
from classifier.evaluation.book import BOOK_ACCURACY, BOOK_COLUMNS, compares_with_book


def metrics_files() -> list[str]:
    return [f"{stage_metrics_dir(stage)}/metrics.json" for stage in MODEL_STAGES.values()] + [str(EVALUATION_METRICS)]


def workspace_metrics() -> dict[str, dict]:
    """{metrics file: its content} for those that exist."""
    return {name: json.loads(Path(name).read_text()) for name in metrics_files() if Path(name).is_file()}


def workspace_classes() -> list[str] | None:
    return json.loads(CLASSES_FILE.read_text()) if CLASSES_FILE.is_file() else None


def experiment_file(name: str, path: str) -> dict | list | None:
    """A JSON output of experiment `name`, from DVC's cache; None if it has none (or the cache lost it)."""
    import dvc.api  # here: dvc takes a second to import, and the workspace table needs none of it
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    try:
        return json.loads(dvc.api.read(path, rev=name))
    except RevError:
        raise StageError(f"no experiment named {name!r}; see `dvc exp show`") from None
    except (DvcException, FileNotFoundError):
        return None


def experiment_metrics(name: str) -> dict[str, dict]:
    found = {path: experiment_file(name, path) for path in metrics_files()}
    return {path: content for path, content in found.items() if content is not None}


def experiment_classes(name: str) -> list[str] | None:
    return experiment_file(name, str(CLASSES_FILE))


def shows_book(test: dict[str, dict], classes: list[str] | None) -> bool:
    """With the class list at hand, the book's columns only for cat and dog. Without it, only for
    metrics from before the pipeline took other classes (no `macro_f1` yet): those were Dogs vs. Cats."""
    if classes is not None:
        return compares_with_book(classes)
    return bool(test) and all("precision" in m and "macro_f1" not in m for m in test.values())


def accuracy_cell(tested: dict) -> str:
    """0.905 (0.863-0.935); metrics without an interval (an older run's): the accuracy alone."""
    if "accuracy" not in tested:
        return "-"
    if "accuracy_low" not in tested:
        return f"{tested['accuracy']:.3f}"
    return f"{tested['accuracy']:.3f} ({tested['accuracy_low']:.3f}-{tested['accuracy_high']:.3f})"


def table(metrics: dict[str, dict], classes: list[str] | None) -> str:
    test = dict(metrics.get(str(EVALUATION_METRICS), {}))
    best = test.pop("best_model", None)
    book = shows_book(test, classes)
    header = ["model", "stage", "best epoch", "val accuracy", "test accuracy", "test AUC", "test macro F1"]
    header += BOOK_COLUMNS if book else []
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for model, stage in MODEL_STAGES.items():
        trained = metrics.get(f"{stage_metrics_dir(stage)}/metrics.json")
        if trained and trained.get("skipped"):
            continue  # `models` left it out
        cells = [str(trained["best_epoch"]), f"{trained['val']['accuracy']:.3f}"] if trained else ["-", "not run"]
        tested = test.get(model, {})
        cells += [accuracy_cell(tested)]
        cells += [f"{tested[key]:.3f}" if key in tested else "-" for key in ("auc", "macro_f1")]
        cells += [f"{accuracy:.3f}" for accuracy in BOOK_ACCURACY[model]] if book else []
        lines.append(f"| {model} | {stage} | " + " | ".join(cells) + " |")
    images = {entry["test_images"] for entry in test.values() if "test_images" in entry}
    if images:
        lines += ["", f"Test accuracy with its 95% interval (Wilson), on {images.pop()} test images."]
    if best:
        lines += ["", f"Best on the validation split: {best} (models/best.keras)."]
    return "\n".join(lines)


def print_results(experiment: str | None = None) -> None:
    """The table of the workspace's metrics, or of a DVC experiment's."""
    with contextlib.chdir(PROJECT_ROOT):
        if experiment:
            print(table(experiment_metrics(experiment), experiment_classes(experiment)))
        else:
            print(table(workspace_metrics(), workspace_classes()))


def run(args: argparse.Namespace) -> None:
    print_results(args.exp)

"""Stage `evaluate`: every model on the test split, in one table, with plots, pictures and a report.

Writes metrics/evaluate.json ({model: {metric: value}}, so `dvc metrics show` prints the
table and `dvc metrics diff` compares it: accuracy, loss, AUC, macro precision, recall and
F1, top-k accuracy when there are more than k classes, and for two classes the precision and
recall of label 1), each model's predictions under metrics/evaluate/predictions/ (DVC's
confusion matrices) and its ROC points under metrics/evaluate/roc/ (for more than two classes
the micro-averaged one-vs-rest curve),
a picture of the fine-tuned model's worst mistakes, and metrics/report.md, with the book's
accuracies beside ours when the classes are Dogs vs. Cats (stage `explain` draws what a model learned).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from classifier.evaluation.book import compares_with_book
from classifier.intake.classes import read_classes
from classifier.core.cli import StageError, run_stage
from classifier.evaluation.metrics import (
    classification_metrics,
    confusion,
    predicted_classes,
    roc_curve,
)
from classifier.intake.images import load_prepared
from classifier.core.layout import (
    EVALUATION_DIR,
    EVALUATION_METRICS,
    MODEL_STAGES,
    PREPARED_DIR,
    REPORT,
    model_path,
)
from classifier.core.params import Params, load_params
from classifier.evaluation.pictures import most_wrong_gallery
from classifier.models.prediction import check_trained_on, predict_probabilities
from classifier.evaluation.report import confused_pairs, per_class_tables, pictures_lines, results_table, split_summary
from classifier.models.saving import load_model

EXPLAINED_MODEL = "fine_tuned"  # the model the mistakes, the per-class table and the confused pairs are about


def manifest_test_paths(count: int) -> list[str]:
    """The test images' paths (as under data/split), in the order of test_images.npy."""
    manifest = PREPARED_DIR / "manifest.csv"
    with open(manifest, newline="") as file:
        rows = sorted((int(row["row"]), row["path"]) for row in csv.DictReader(file) if row["split"] == "test")
    if len(rows) != count:
        raise StageError(
            f"{manifest} lists {len(rows)} test images but the test arrays hold {count}: run `dvc repro prepare`"
        )
    return [path for _, path in rows]


def write_rows(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def write_predictions(name: str, paths, labels, predicted, probabilities, class_names) -> None:
    """One row per test image; `probability` is the model's probability of the class it predicts."""
    write_rows(
        EVALUATION_DIR / "predictions" / f"{name}.csv",
        ("image", "actual", "predicted", "probability"),
        [
            (path, class_names[actual], class_names[guess], f"{row[guess]:.6f}")
            for path, actual, guess, row in zip(paths, labels, predicted, probabilities)
        ],
    )


ROC_POINTS = 1000  # plenty for a smooth curve; 5,000 test images of 10 classes make 50,000 decisions


def write_roc(name: str, labels: np.ndarray, probabilities: np.ndarray) -> None:
    """Two classes: the ROC curve of P(label 1). More: the micro-averaged one-vs-rest curve, each
    (image, class) pair one yes/no decision, so that one chart still compares the five models."""
    if probabilities.shape[1] == 2:
        fpr, tpr, thresholds = roc_curve(labels, probabilities[:, 1])
    else:
        fpr, tpr, thresholds = roc_curve(np.eye(probabilities.shape[1])[labels].ravel(), probabilities.ravel())
    shown = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).round().astype(int))  # ends kept
    write_rows(
        EVALUATION_DIR / "roc" / f"{name}.csv",
        ("fpr", "tpr", "threshold"),
        [(f"{fpr[i]:.6f}", f"{tpr[i]:.6f}", f"{min(thresholds[i], 1.0):.6f}") for i in shown],
    )


def share_text(share) -> str:
    """An index range [start, end) or a fraction of each class."""
    return f"[{share[0]}, {share[1]})" if isinstance(share, tuple) else f"{share * 100:g}%"


def groups_text(groups: dict[str, list[str]]) -> str:
    return "; ".join(f"{group}: {', '.join(members)}" for group, members in groups.items())


def params_lines(params: Params) -> list[str]:
    data = params.data  # one alias per line: the dvc.yaml test follows `x = params.a`, not tuples
    base = params.base
    split = data.split
    shares = (
        f"train {share_text(split.train)}, validation {share_text(split.validation)}, test {share_text(split.test)}"
    )
    lines = [f"- data: `{data.raw_dir}` at {data.image_size}x{data.image_size}, per class {shares}"]
    if data.classes is not None:
        lines.append(f"- classes: {', '.join(data.classes)}")
    if data.class_groups is not None:
        lines.append(f"- class groups: {groups_text(data.class_groups)}")
    class_weight = params.training.class_weight
    lines += [
        f"- base: `{base.name}`, weights `{base.weights or 'null'}`, preprocessing `{base.preprocessing}`, "
        f"fine-tuned from `{base.fine_tune_from}` at lr {params.lr:g}",
        f"- epochs: classifier {params.train_classifier.epochs}, frozen {params.train_frozen.epochs}, "
        f"fine-tune {params.fine_tune.epochs}, scratch {params.train_scratch.epochs}, "
        f"scratch augmented {params.train_scratch_augmented.epochs}; class weights {class_weight or 'none'}; "
        f"seed {params.seed}",
    ]
    return lines


def report(params: Params, class_names: list[str], results: dict, counts: dict, labels: np.ndarray, wrong: int) -> str:
    book = compares_with_book(class_names)
    title = "Dogs vs. Cats: test results" if book else f"Test results, {len(class_names)} classes"
    lines = [
        f"# {title}",
        "",
        f"Written by stage `evaluate` from {split_summary(labels, class_names)}; do not edit, run `dvc repro`.",
        "",
        *results_table(results, class_names),
        "",
        "## Per class",
        "",
        *per_class_tables(counts, class_names, EXPLAINED_MODEL),
        "",
        f"## Most confused ({EXPLAINED_MODEL})",
        "",
        *confused_pairs(counts[EXPLAINED_MODEL], class_names),
        "",
        "## Params",
        "",
        *params_lines(params),
        "",
        "## Pictures",
        "",
        *pictures_lines(class_names, wrong, EXPLAINED_MODEL),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    params = load_params()
    settings = params.evaluate
    class_names = read_classes()
    images, labels = load_prepared("test")
    paths = manifest_test_paths(len(labels))
    results, counts = {}, {}
    for name in MODEL_STAGES:
        model = load_model(model_path(name))
        check_trained_on(model, model_path(name), class_names)
        probabilities = predict_probabilities(model, images, settings.batch_size)
        results[name] = classification_metrics(labels, probabilities, settings.top_k)
        predicted = predicted_classes(probabilities)
        counts[name] = confusion(labels, predicted, len(class_names))
        write_predictions(name, paths, labels, predicted, probabilities, class_names)
        write_roc(name, labels, probabilities)
        if name == EXPLAINED_MODEL:
            explained_probabilities = probabilities
        print(f"evaluate: {name}: " + ", ".join(f"{key} {value:.4f}" for key, value in results[name].items()))
    EVALUATION_METRICS.write_text(json.dumps(results, indent=2) + "\n")

    names = [Path(path).name for path in paths]
    wrong = most_wrong_gallery(
        images, labels, explained_probabilities, names, class_names, EXPLAINED_MODEL, EVALUATION_DIR / "most_wrong.png",
        settings.gallery_size,
    )
    REPORT.write_text(report(params, class_names, results, counts, labels, wrong))


if __name__ == "__main__":
    run_stage(main, __file__)

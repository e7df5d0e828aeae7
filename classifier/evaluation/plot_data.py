"""The files DVC plots from the test split: each model's predictions (DVC's confusion matrices) and
the points of its ROC curve; for the best model, each class's ROC and precision-recall curve.

Class names and paths go in as classifier.intake.escaping writes them for a plot (`<` and `>` as look-alikes,
which DVC's page cannot take raw) and for a spreadsheet (no formula).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classifier.core.outputs import writing
from classifier.core.paths import EVALUATION_DIR
from classifier.evaluation.metrics import roc_curve
from classifier.intake.escaping import plot_text, write_csv_file

ROC_POINTS = 1000  # plenty for a smooth curve; 5,000 test images of 10 classes make 50,000 decisions


def write_rows(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with writing(path):  # a full disk: one line naming the file
        write_csv_file(path, header, ([plot_text(field) for field in row] for row in rows))


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


def write_roc(name: str, labels: np.ndarray, probabilities: np.ndarray) -> None:
    """Two classes: the ROC curve of P(label 1). More: the micro-averaged one-vs-rest curve, each
    (image, class) pair one yes/no decision, so that one chart still compares the five models."""
    if probabilities.shape[1] == 2:
        fpr, tpr, thresholds = roc_curve(labels, probabilities[:, 1])
    else:
        fpr, tpr, thresholds = roc_curve(np.eye(probabilities.shape[1])[labels].ravel(), probabilities.ravel())
    shown = thinned(len(fpr))
    write_rows(
        EVALUATION_DIR / "roc" / f"{name}.csv",
        ("fpr", "tpr", "threshold"),
        [(f"{fpr[i]:.6f}", f"{tpr[i]:.6f}", f"{min(thresholds[i], 1.0):.6f}") for i in shown],
    )


def write_untrained(name: str) -> None:
    """Header-only files for a model that `models` skipped: dvc.yaml plots every model, and DVC warns of
    each plot file it cannot load (its line is simply missing from the chart)."""
    write_rows(EVALUATION_DIR / "predictions" / f"{name}.csv", ("image", "actual", "predicted", "probability"), [])
    write_rows(EVALUATION_DIR / "roc" / f"{name}.csv", ("fpr", "tpr", "threshold"), [])


def thinned(count: int) -> np.ndarray:
    """At most ROC_POINTS indices of a curve's `count` points, spread evenly, both ends kept."""
    return np.unique(np.linspace(0, count - 1, min(count, ROC_POINTS)).round().astype(int))


def write_class_curves(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> None:
    """Each class's one-vs-rest ROC and precision-recall curve (class, point, x, y: one file each), which
    DVC's template by_class (.dvc/plots/) draws a line per class, in a colour of its own."""
    roc, precision_recall = [], []
    for label, name in enumerate(class_names):
        is_class = labels == label
        fpr, tpr, _ = roc_curve(is_class, probabilities[:, label])
        true_pos, false_pos = tpr * max(is_class.sum(), 1), fpr * max((~is_class).sum(), 1)
        predicted = true_pos + false_pos
        precision = np.divide(true_pos, predicted, out=np.ones_like(true_pos), where=predicted > 0)
        for point, i in enumerate(thinned(len(fpr))):
            roc.append((name, point, f"{fpr[i]:.6f}", f"{tpr[i]:.6f}"))
            precision_recall.append((name, point, f"{tpr[i]:.6f}", f"{precision[i]:.6f}"))
    write_rows(EVALUATION_DIR / "classes" / "roc.csv", ("class", "point", "fpr", "tpr"), roc)
    write_rows(
        EVALUATION_DIR / "classes" / "precision_recall.csv", ("class", "point", "recall", "precision"), precision_recall
    )

"""The per-model files DVC plots from the test split: each image's prediction (DVC's confusion
matrices) and the points of the ROC curve.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from classifier.core.layout import EVALUATION_DIR
from classifier.evaluation.metrics import roc_curve

ROC_POINTS = 1000  # plenty for a smooth curve; 5,000 test images of 10 classes make 50,000 decisions


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

"""classifier/evaluation/plot_data.py: the CSV files of DVC's plots that stage evaluate writes, here each
class's ROC and precision-recall curve."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from classifier.evaluation.plot_data import write_class_curves


def test_each_class_has_its_roc_and_precision_recall_curve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    probabilities = np.eye(3)[[0, 1, 1, 1, 2, 2, 0]] * 0.7 + 0.1  # two mistakes
    write_class_curves(labels, probabilities, ["ant", "bee", "cow"])
    with open("metrics/evaluate/classes/roc.csv", newline="") as file:
        roc = list(csv.DictReader(file))
    with open("metrics/evaluate/classes/precision_recall.csv", newline="") as file:
        precision_recall = list(csv.DictReader(file))
    assert list(roc[0]) == ["class", "point", "fpr", "tpr"]
    assert list(precision_recall[0]) == ["class", "point", "recall", "precision"]
    for name in ("ant", "bee", "cow"):
        curve = [(float(row["fpr"]), float(row["tpr"])) for row in roc if row["class"] == name]
        assert curve[0] == (0.0, 0.0) and curve[-1] == (1.0, 1.0)
        assert all(a <= b and c <= d for (a, c), (b, d) in zip(curve, curve[1:]))
    bee = [(float(row["recall"]), float(row["precision"])) for row in precision_recall if row["class"] == "bee"]
    assert bee[1] == (1.0, pytest.approx(2 / 3))  # at 0.8: both bees and one ant taken for a bee
    assert len(roc) == len(precision_recall)

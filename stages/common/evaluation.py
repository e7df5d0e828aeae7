"""Binary-classification metrics in plain numpy, so every number can be checked by hand."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7  # as Keras clips probabilities in binary cross-entropy


def binary_metrics(labels: np.ndarray, p_dog: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """accuracy, loss (binary cross-entropy), auc, precision, recall; dog (1) is the positive class."""
    labels = np.asarray(labels, dtype=np.int64)
    p_dog = np.asarray(p_dog, dtype=np.float64)
    (true_neg, false_pos), (false_neg, true_pos) = confusion(labels, p_dog, threshold).tolist()
    clipped = np.clip(p_dog, EPSILON, 1 - EPSILON)
    return {
        "accuracy": (true_pos + true_neg) / len(labels),
        "loss": float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))),
        "auc": roc_auc(labels, p_dog),
        "precision": true_pos / max(true_pos + false_pos, 1),
        "recall": true_pos / max(true_pos + false_neg, 1),
    }


def roc_curve(labels: np.ndarray, p_dog: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, threshold), from (0, 0) to (1, 1)."""
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        raise ValueError("roc_curve needs at least one prediction")
    order = np.argsort(-np.asarray(p_dog, dtype=np.float64), kind="stable")
    scores, sorted_labels = np.asarray(p_dog)[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # ties move together
    true_pos = np.cumsum(sorted_labels)[last_of_each_score]
    false_pos = (last_of_each_score + 1) - true_pos
    positives, negatives = max(labels.sum(), 1), max(len(labels) - labels.sum(), 1)
    fpr = np.r_[0.0, false_pos / negatives]
    tpr = np.r_[0.0, true_pos / positives]
    thresholds = np.r_[np.inf, scores[last_of_each_score]]
    return fpr, tpr, thresholds


def roc_auc(labels: np.ndarray, p_dog: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(labels, p_dog)
    return float(np.trapezoid(tpr, fpr))


def confusion(labels: np.ndarray, p_dog: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """2x2 counts: rows actual (cat, dog), columns predicted (cat, dog)."""
    predicted = (np.asarray(p_dog) >= threshold).astype(np.int64)
    counts = np.zeros((2, 2), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels, dtype=np.int64), predicted), 1)
    return counts

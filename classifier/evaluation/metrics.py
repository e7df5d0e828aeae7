"""Classification metrics in plain numpy, so every number can be checked by hand.

Labels are integers 0 .. N-1; probabilities are (n, N) arrays whose rows sum to 1 (for
two classes the columns are [1 - p, p], p the book's single sigmoid unit, P(label 1)).
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7  # as Keras clips probabilities in its cross-entropies


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class of each row. A tie goes to the later class, so that for two
    classes P(label 1) = 0.5 predicts label 1: the book's threshold, p >= 0.5."""
    probabilities = np.asarray(probabilities)
    return probabilities.shape[1] - 1 - np.argmax(probabilities[:, ::-1], axis=1)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, top_k: int | None = None) -> dict[str, float]:
    """accuracy, loss, auc; for two classes precision and recall of label 1; top-k accuracy when
    k is below the number of classes; macro precision, recall and F1."""
    labels, probabilities = _checked(labels, probabilities)
    classes = probabilities.shape[1]
    counts = confusion(labels, predicted_classes(probabilities), classes)
    scores = per_class_scores(counts)
    metrics = {
        "accuracy": float(np.trace(counts) / len(labels)),
        "loss": cross_entropy(labels, probabilities),
        "auc": macro_auc(labels, probabilities),
    }
    if classes == 2:  # Dogs vs. Cats' keys: label 1 (dog) is the positive class
        metrics["precision"], metrics["recall"] = float(scores["precision"][1]), float(scores["recall"][1])
    if top_k is not None and top_k < classes:
        metrics[f"top_{top_k}_accuracy"] = top_k_accuracy(labels, probabilities, top_k)
    # As scikit-learn: averaged over the classes that are in the test split or were predicted.
    averaged = (counts.sum(axis=0) + counts.sum(axis=1)) > 0
    for name in ("precision", "recall", "f1"):
        metrics[f"macro_{name}"] = float(np.mean(scores[name][averaged]))
    return metrics


def _checked(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2 or len(probabilities) != len(labels):
        raise ValueError(
            f"need (n, classes >= 2) probabilities for n labels; got shape {probabilities.shape} for {len(labels)}"
        )
    if not len(labels):
        raise ValueError("no predictions to evaluate")
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise ValueError(f"labels must lie in 0 .. {probabilities.shape[1] - 1}; got {labels.min()} .. {labels.max()}")
    return labels, probabilities


def cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean of -log P(true class), clipped to [EPSILON, 1 - EPSILON] as Keras does. For two
    classes it is the binary cross-entropy: P(label 0) is 1 - p."""
    true_class = np.asarray(probabilities, dtype=np.float64)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(true_class, EPSILON, 1 - EPSILON))))


def top_k_accuracy(labels: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the k most probable. As Keras (tf.math.in_top_k),
    classes tied at the boundary all count as in the top k: fewer than k classes score higher."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    true_class = probabilities[np.arange(len(labels)), labels]
    higher = np.sum(probabilities > true_class[:, None], axis=1)
    return float(np.mean(higher < k))


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """classes x classes counts: rows actual, columns predicted."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return counts


def per_class_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """precision, recall, f1 and support of each class from confusion counts. A class never
    predicted has precision 0, a class absent from the labels recall 0 (as scikit-learn)."""
    hits = np.diag(counts).astype(np.float64)
    support, predicted = counts.sum(axis=1), counts.sum(axis=0)
    precision = hits / np.maximum(predicted, 1)
    recall = hits / np.maximum(support, 1)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def most_confused(counts: np.ndarray, top: int = 5) -> list[tuple[int, int, int]]:
    """The `top` largest off-diagonal cells as (actual, predicted, count), largest first;
    equal counts in row-major order."""
    off_diagonal = np.asarray(counts) * (1 - np.eye(len(counts), dtype=np.int64))
    cells = np.argsort(-off_diagonal, axis=None, kind="stable")[:top]
    pairs = [(*np.unravel_index(cell, off_diagonal.shape), off_diagonal.flat[cell]) for cell in cells]
    return [(int(actual), int(predicted), int(count)) for actual, predicted, count in pairs if count > 0]


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """One-vs-rest ROC AUC averaged over the classes in `labels` (without a test image a class's
    AUC is undefined). For two classes, the AUC of P(label 1): label 0's curve is the same one."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    classes = [1] if probabilities.shape[1] == 2 else np.unique(labels)
    return float(np.mean([roc_auc(labels == c, probabilities[:, c]) for c in classes]))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, threshold), from (0, 0) to (1, 1); label 1 (or
    True) is the positive class, predicted when its score is at least the threshold."""
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        raise ValueError("roc_curve needs at least one prediction")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_scores, sorted_labels = np.asarray(scores)[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]  # ties move together
    true_pos = np.cumsum(sorted_labels)[last_of_each_score]
    false_pos = (last_of_each_score + 1) - true_pos
    positives, negatives = max(labels.sum(), 1), max(len(labels) - labels.sum(), 1)
    fpr = np.r_[0.0, false_pos / negatives]
    tpr = np.r_[0.0, true_pos / positives]
    thresholds = np.r_[np.inf, sorted_scores[last_of_each_score]]
    return fpr, tpr, thresholds


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))

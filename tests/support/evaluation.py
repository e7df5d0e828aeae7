"""Predictions worked out by hand for the evaluation tests (two classes, the book's Dogs vs. Cats with P(dog)
from one sigmoid unit; three classes from a softmax), the results stage evaluate makes of them, and the
Markdown tables of its report read back."""

from __future__ import annotations

import numpy as np

from classifier.core.paths import MODEL_STAGES
from classifier.evaluation.metrics import classification_metrics, confusion, predicted_classes

# --- two classes: the book's Dogs vs. Cats, P(dog) from one sigmoid unit ---

# dog = 1 is the positive class. Predicted dog when p >= 0.5 (inclusive):
#   index      0    1    2    3    4    5    6    7
#   actual     dog  dog  dog  cat  cat  cat  dog  cat
#   p(dog)     .9   .5   .2   .6   .1   .4   .7   .5
#   predicted  dog  dog  cat  dog  cat  cat  dog  dog
# true positives 0, 1, 6 (3); false positives 3, 7 (2); false negatives 2 (1); true negatives 4, 5 (2)
LABELS = np.array([1, 1, 1, 0, 0, 0, 1, 0])
P_DOG = np.array([0.9, 0.5, 0.2, 0.6, 0.1, 0.4, 0.7, 0.5])
BINARY_KEYS = {"accuracy", "loss", "auc", "precision", "recall", "macro_precision", "macro_recall", "macro_f1"}


def two_class(p_dog) -> np.ndarray:
    """[P(cat), P(dog)] rows, as class_probabilities makes of one sigmoid unit (in float64 here)."""
    p_dog = np.asarray(p_dog, dtype=np.float64)
    return np.column_stack([1 - p_dog, p_dog])


def binary_metrics(labels, p_dog) -> dict[str, float]:
    return classification_metrics(labels, two_class(p_dog), top_k=5)


# --- three classes, softmax ---

# classes cat 0, dog 1, fox 2; fox is never predicted.
#   index       0           1           2           3           4           5           6           7
#   actual      cat         cat         cat         dog         dog         dog         fox         fox
#   P(c,d,f)    .7 .2 .1    .5 .4 .1    .3 .6 .1    .1 .8 .1    .2 .5 .3    .6 .3 .1    .2 .5 .3    .5 .35 .15
#   predicted   cat         cat         dog         dog         dog         cat         dog         cat
# confusion (rows actual): cat [2 1 0], dog [1 2 0], fox [1 1 0]; accuracy 4 / 8
# precision: cat 2/4, dog 2/4, fox 0 (never predicted); recall: cat 2/3, dog 2/3, fox 0/2
# F1: cat = dog = 2 (1/2)(2/3) / (1/2 + 2/3) = 4/7, fox 0
# top-2: all but 7 (fox .15 below .5 and .35) -> 7/8
THREE_CLASSES = ["cat", "dog", "fox"]
THREE_LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
THREE_P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.5, 0.4, 0.1],
        [0.3, 0.6, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.5, 0.3],
        [0.6, 0.3, 0.1],
        [0.2, 0.5, 0.3],
        [0.5, 0.35, 0.15],
    ]
)


def random_probabilities(rng, count: int, classes: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, softmax rows) that lean towards the true class; rounding makes ties."""
    labels = rng.integers(0, classes, count)
    logits = rng.normal(size=(count, classes)) + 1.5 * np.eye(classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities if decimals is None else np.round(probabilities, decimals)


# --- results as the stage makes them, and its report's tables ---


def run_results(class_names, labels, probabilities, top_k=5) -> tuple[dict, dict]:
    """results and confusion counts as the stage makes them; scratch guesses the first class always."""
    guess_first = np.eye(len(class_names))[np.zeros(len(labels), dtype=int)] * 0.9 + 0.1 / len(class_names)
    results, counts = {}, {}
    for name in MODEL_STAGES:
        model_p = guess_first if name == "scratch" else probabilities
        results[name] = classification_metrics(labels, model_p, top_k)
        counts[name] = confusion(labels, predicted_classes(model_p), len(class_names))
    return results, counts


def table_after(report: str, heading: str) -> list[str]:
    """The lines of the first Markdown table after the line that starts with `heading`."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading)) + 1
    while not lines[start].startswith("|"):
        start += 1
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]

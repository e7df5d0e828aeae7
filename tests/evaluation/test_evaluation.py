"""Stage `evaluate`: its numpy metrics against counts and formulas worked out by hand, its report,
and the stage itself on tiny models."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from test_explain import IMAGE_SIZE, tiny_transfer_model  # the tiny transfer models of explain's tests

from classifier.core.cli import StageError
from classifier.core.layout import MODEL_STAGES, training_summary
from classifier.core.params import load_params
from classifier.core.schema import SplitParams
from classifier.evaluation.book import BOOK_NOTE
from classifier.evaluation.metrics import (
    EPSILON,
    classification_metrics,
    confusion,
    cross_entropy,
    macro_auc,
    most_confused,
    per_class_scores,
    predicted_classes,
    roc_auc,
    roc_curve,
    top_k_accuracy,
)
from classifier.evaluation.plot_data import write_class_curves
from classifier.evaluation.report import report_markdown
from classifier.evaluation.statistics import interval_text, wilson_interval
from classifier.intake.prepared import save_prepared
from classifier.intake.tables import write_table
from classifier.models.heads import class_probabilities
from classifier.models.saving import load_model, save_model
from classifier.models.training import skipped
from stages import evaluate

REPO = Path(__file__).resolve().parents[2]

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


def mann_whitney_auc(positive, scores) -> float:
    """Fraction of (positive, negative) pairs in which the positive scores higher; ties count 1/2."""
    positive, scores = np.asarray(positive, dtype=bool), np.asarray(scores)
    higher, lower = scores[positive][:, None], scores[~positive][None, :]
    return float(np.mean((higher > lower) + 0.5 * (higher == lower)))


def test_binary_accuracy_precision_recall_match_hand_counts():
    metrics = binary_metrics(LABELS, P_DOG)
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert metrics["precision"] == pytest.approx(3 / 5)
    assert metrics["recall"] == pytest.approx(3 / 4)
    # cat: precision 2 / 3 (predicted 2, 4, 5), recall 2 / 4; F1 = 2PR / (P + R)
    assert metrics["macro_precision"] == pytest.approx((3 / 5 + 2 / 3) / 2)
    assert metrics["macro_recall"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert metrics["macro_f1"] == pytest.approx((2 * 0.6 * 0.75 / 1.35 + 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)) / 2)
    assert set(metrics) == BINARY_KEYS  # the old keys stay; no top-5 of two classes
    assert all(type(value) is float for value in metrics.values())  # json.dumps-able


def test_threshold_is_inclusive_so_one_half_predicts_dog():
    assert binary_metrics([1], [0.5])["accuracy"] == 1.0
    assert binary_metrics([0], [0.5])["accuracy"] == 0.0
    assert binary_metrics([1], [0.5 - 1e-9])["accuracy"] == 0.0
    assert predicted_classes(two_class([0.5, 0.5])).tolist() == [1, 1]
    # as the stage gets them: float32 [1 - p, p] from the sigmoid unit
    p = np.array([[0.5], [np.nextafter(np.float32(0.5), 0)], [np.nextafter(np.float32(0.5), 1)]], np.float32)
    assert predicted_classes(class_probabilities(p)).tolist() == [1, 0, 1]


def test_another_threshold_moves_the_counts():
    # at 0.7: predicted dog 0, 6 only -> tp 2, fp 0, accuracy (2 + 4) / 8
    counts = confusion(LABELS, (P_DOG >= 0.7).astype(int), 2)
    assert counts.tolist() == [[4, 0], [2, 2]]
    scores = per_class_scores(counts)
    assert scores["precision"][1] == pytest.approx(1.0)
    assert scores["recall"][1] == pytest.approx(2 / 4)
    assert np.trace(counts) / counts.sum() == pytest.approx(6 / 8)


def test_binary_loss_is_the_hand_computed_binary_cross_entropy():
    dog_terms = [math.log(p) for p in (0.9, 0.5, 0.2, 0.7)]
    cat_terms = [math.log(1 - p) for p in (0.6, 0.1, 0.4, 0.5)]
    expected = -(sum(dog_terms) + sum(cat_terms)) / 8
    assert binary_metrics(LABELS, P_DOG)["loss"] == pytest.approx(expected, abs=1e-12)


def test_binary_loss_matches_keras_binary_crossentropy():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 50)
    p_dog = rng.uniform(0.02, 0.98, 50).astype(np.float32)
    expected = float(
        np.mean(
            keras.ops.convert_to_numpy(
                keras.losses.binary_crossentropy(labels[:, None].astype("float32"), p_dog[:, None])
            )
        )
    )
    probabilities = class_probabilities(p_dog[:, None])  # as the stage gets them: float32 [1 - p, p]
    assert classification_metrics(labels, probabilities)["loss"] == pytest.approx(expected, abs=1e-6)


def test_clipping_keeps_the_loss_finite_at_zero_and_one():
    confidently_wrong = binary_metrics([1, 0], [0.0, 1.0])["loss"]
    assert math.isfinite(confidently_wrong)
    assert confidently_wrong == pytest.approx(-math.log(EPSILON), rel=1e-6)  # about 16.1
    confidently_right = binary_metrics([1, 0], [1.0, 0.0])["loss"]
    assert math.isfinite(confidently_right)
    assert 0 < confidently_right == pytest.approx(-math.log(1 - EPSILON), rel=1e-6)
    assert cross_entropy(np.array([2]), np.array([[0.5, 0.5, 0.0]])) == pytest.approx(-math.log(EPSILON))


def test_roc_curve_of_the_hand_example():
    # descending: .9 d, .7 d, .6 c, (.5 d, .5 c), .4 c, .2 d, .1 c; the tied pair moves diagonally
    fpr, tpr, thresholds = roc_curve(LABELS, P_DOG)
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.25, 0.5, 0.75, 0.75, 1])
    np.testing.assert_allclose(tpr, [0, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1])
    assert thresholds[0] == np.inf
    np.testing.assert_allclose(thresholds[1:], [0.9, 0.7, 0.6, 0.5, 0.4, 0.2, 0.1])


def test_roc_auc_of_the_hand_example_is_the_pair_count():
    # dog .9 beats 4 cats, .5 beats 2 and ties 1, .2 beats 1, .7 beats 4: 11.5 of 16 pairs
    assert roc_auc(LABELS, P_DOG) == pytest.approx(11.5 / 16)
    assert binary_metrics(LABELS, P_DOG)["auc"] == pytest.approx(11.5 / 16)


def test_binary_auc_is_exactly_the_auc_of_p_dog_as_the_stage_gets_it():
    """In float32, 1 - p merges distinct small p into ties: the cat column must not be averaged in."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 400)
    p_dog = np.where(np.arange(400) < 200, rng.uniform(1e-9, 1e-7, 400), rng.uniform(0.3, 1, 400)).astype(np.float32)
    probabilities = class_probabilities(p_dog[:, None])
    assert roc_auc(labels == 0, probabilities[:, 0]) != pytest.approx(roc_auc(labels, p_dog))  # the case
    assert classification_metrics(labels, probabilities)["auc"] == roc_auc(labels, p_dog)


def test_roc_curve_shape_on_a_random_case_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    p_dog = np.round(np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1), 1)  # only 11 distinct scores
    fpr, tpr, thresholds = roc_curve(labels, p_dog)
    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == pytest.approx((1.0, 1.0))
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.all(np.diff(thresholds) < 0)
    assert len(thresholds) == 1 + len(np.unique(p_dog))  # one point per distinct score: ties move together
    for threshold, f, t in zip(thresholds[1:], fpr[1:], tpr[1:]):  # each point counts p >= threshold
        predicted = p_dog >= threshold
        assert f == pytest.approx(np.sum(predicted & (labels == 0)) / np.sum(labels == 0))
        assert t == pytest.approx(np.sum(predicted & (labels == 1)) / np.sum(labels == 1))


def test_roc_auc_equals_mann_whitney_on_a_random_case():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    p_dog = np.round(rng.beta(2 + 2 * labels, 3), 2)  # ties between and within classes
    expected = mann_whitney_auc(labels == 1, p_dog)
    assert 0.6 < expected < 0.95  # a case that is neither trivial nor perfect
    assert roc_auc(labels, p_dog) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_extremes():
    labels = np.array([0, 0, 0, 1, 1])
    assert roc_auc(labels, [0.1, 0.2, 0.3, 0.8, 0.9]) == pytest.approx(1.0)
    assert roc_auc(labels, [0.9, 0.8, 0.7, 0.2, 0.1]) == pytest.approx(0.0)
    assert roc_auc(labels, [0.5] * 5) == pytest.approx(0.5)
    fpr, tpr, thresholds = roc_curve(labels, [0.3] * 5)  # all tied: one diagonal step
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]
    assert thresholds.tolist() == [np.inf, 0.3]


def test_roc_does_not_depend_on_input_order():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 40)
    p_dog = np.round(rng.uniform(size=40), 1)
    order = rng.permutation(40)
    for a, b in zip(roc_curve(labels, p_dog), roc_curve(labels[order], p_dog[order])):
        np.testing.assert_array_equal(a, b)


def test_binary_confusion_rows_are_actual_columns_predicted():
    counts = confusion(LABELS, predicted_classes(two_class(P_DOG)), 2)
    # rows actual (cat, dog), columns predicted (cat, dog)
    assert counts.tolist() == [[2, 2], [1, 3]]
    assert counts.sum() == len(LABELS)
    assert confusion([0, 0, 0], [1, 1, 0], 2).tolist() == [[1, 2], [0, 0]]  # cats called dogs: top right
    assert confusion([1, 1], [0, 1], 2).tolist() == [[0, 0], [1, 1]]  # a dog called cat: bottom left


def test_no_division_by_zero_when_nothing_is_predicted_dog_or_there_are_no_dogs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nothing_dog = binary_metrics([1, 0, 1], [0.1, 0.2, 0.3])
        no_dogs = binary_metrics([0, 0], [0.1, 0.9])
    assert nothing_dog["precision"] == 0.0
    assert nothing_dog["recall"] == 0.0
    assert nothing_dog["accuracy"] == pytest.approx(1 / 3)
    assert no_dogs["recall"] == 0.0
    assert no_dogs["precision"] == 0.0  # the one dog predicted is a cat
    assert all(math.isfinite(value) for value in (*nothing_dog.values(), *no_dogs.values()))


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


def test_three_class_counts_and_scores_match_hand_counts():
    counts = confusion(THREE_LABELS, predicted_classes(THREE_P), 3)
    assert counts.tolist() == [[2, 1, 0], [1, 2, 0], [1, 1, 0]]
    scores = per_class_scores(counts)
    np.testing.assert_allclose(scores["precision"], [1 / 2, 1 / 2, 0])
    np.testing.assert_allclose(scores["recall"], [2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(scores["f1"], [4 / 7, 4 / 7, 0])
    assert scores["support"].tolist() == [3, 3, 2]


def test_three_class_metrics_match_hand_counts():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the never-predicted fox divides nothing by zero
        metrics = classification_metrics(THREE_LABELS, THREE_P, top_k=2)
    assert metrics["accuracy"] == pytest.approx(4 / 8)
    assert metrics["top_2_accuracy"] == pytest.approx(7 / 8)
    assert metrics["macro_precision"] == pytest.approx(1 / 3)
    assert metrics["macro_recall"] == pytest.approx(4 / 9)
    assert metrics["macro_f1"] == pytest.approx(8 / 21)
    true_class = [0.7, 0.5, 0.3, 0.8, 0.5, 0.3, 0.3, 0.15]
    assert metrics["loss"] == pytest.approx(-np.mean(np.log(true_class)), abs=1e-12)
    assert set(metrics) == {"accuracy", "loss", "auc", "top_2_accuracy", "macro_precision", "macro_recall", "macro_f1"}
    assert all(type(value) is float for value in metrics.values())


def test_three_class_auc_is_the_mean_of_the_one_vs_rest_pair_counts():
    # cat column, cats .7 .5 .3 vs the rest .1 .2 .6 .2 .5: 5 + 3.5 + 3 of 15 pairs
    # dog column, dogs .8 .5 .3 vs .2 .4 .6 .5 .35: 5 + 3.5 + 1 of 15
    # fox column, foxes .3 .15 vs .1 .1 .1 .1 .3 .1: 5.5 + 5 of 12
    expected = (11.5 / 15 + 9.5 / 15 + 10.5 / 12) / 3
    assert classification_metrics(THREE_LABELS, THREE_P)["auc"] == pytest.approx(expected, abs=1e-12)


def test_top_k_is_left_out_unless_k_is_below_the_number_of_classes():
    assert "top_3_accuracy" not in classification_metrics(THREE_LABELS, THREE_P, top_k=3)
    assert "top_5_accuracy" not in classification_metrics(THREE_LABELS, THREE_P, top_k=5)
    assert top_k_accuracy(THREE_LABELS, THREE_P, 1) == classification_metrics(THREE_LABELS, THREE_P)["accuracy"]
    assert top_k_accuracy(THREE_LABELS, THREE_P, 3) == 1.0


def random_probabilities(rng, count: int, classes: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, softmax rows) that lean towards the true class; rounding makes ties."""
    labels = rng.integers(0, classes, count)
    logits = rng.normal(size=(count, classes)) + 1.5 * np.eye(classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities if decimals is None else np.round(probabilities, decimals)


def test_loss_matches_keras_sparse_categorical_crossentropy():
    labels, probabilities = random_probabilities(np.random.default_rng(5), 200, 4)
    probabilities = probabilities.astype(np.float32)
    expected = float(
        np.mean(keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, probabilities)))
    )
    assert classification_metrics(labels, probabilities)["loss"] == pytest.approx(expected, rel=1e-5)


def test_top_k_matches_keras_with_ties_at_the_boundary():
    labels, probabilities = random_probabilities(np.random.default_rng(6), 300, 5, decimals=1)
    tied = np.sum(probabilities == probabilities[np.arange(300), labels][:, None], axis=1) > 1
    assert tied.sum() > 20  # the case: the true class shares its probability with another
    for k in (1, 2, 3):
        expected = float(
            np.mean(
                keras.ops.convert_to_numpy(
                    keras.metrics.sparse_top_k_categorical_accuracy(labels, probabilities.astype(np.float32), k=k)
                )
            )
        )
        assert top_k_accuracy(labels, probabilities, k) == pytest.approx(expected), k


def test_macro_auc_is_the_mean_one_vs_rest_mann_whitney_count():
    labels, probabilities = random_probabilities(np.random.default_rng(7), 400, 4, decimals=2)
    expected = np.mean([mann_whitney_auc(labels == c, probabilities[:, c]) for c in range(4)])
    assert 0.6 < expected < 0.95
    assert macro_auc(labels, probabilities) == pytest.approx(expected, abs=1e-12)


def test_a_class_missing_from_the_test_split_is_left_out_of_the_averages():
    # scikit-learn's macro averages: over the classes in the labels or the predictions
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    metrics = classification_metrics([0, 1, 1], probabilities)  # class 2: no image, never predicted
    assert metrics["macro_recall"] == pytest.approx((1 + 1 / 2) / 2)
    assert metrics["macro_precision"] == pytest.approx((1 / 2 + 1) / 2)
    # AUC: cat .8 .6 vs dog .2 -> 1; dog .7 .3 vs cat .1 -> 1
    assert metrics["auc"] == pytest.approx(1.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no predictions"):
        classification_metrics([], np.zeros((0, 3)))
    with pytest.raises(ValueError, match="labels must lie in 0 .. 2"):
        classification_metrics([0, 3], THREE_P[:2])
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics([0, 1], np.array([0.2, 0.9]))  # P(dog) alone: use class_probabilities


def test_most_confused_pairs_largest_first():
    counts = np.array([[5, 3, 0], [1, 4, 2], [3, 0, 6]])
    assert most_confused(counts, top=3) == [(0, 1, 3), (2, 0, 3), (1, 2, 2)]  # equal counts: row by row
    assert most_confused(counts, top=10) == [(0, 1, 3), (2, 0, 3), (1, 2, 2), (1, 0, 1)]  # no empty cells
    assert most_confused(np.diag([4, 5, 6])) == []
    assert most_confused(confusion(THREE_LABELS, predicted_classes(THREE_P), 3), top=2) == [(0, 1, 1), (1, 0, 1)]


# --- the report ---


def run_results(class_names, labels, probabilities, top_k=5) -> tuple[dict, dict]:
    """results and confusion counts as the stage makes them; scratch guesses the first class always."""
    guess_first = np.eye(len(class_names))[np.zeros(len(labels), dtype=int)] * 0.9 + 0.1 / len(class_names)
    results, counts = {}, {}
    for name in MODEL_STAGES:
        model_p = guess_first if name == "scratch" else probabilities
        results[name] = classification_metrics(labels, model_p, top_k)
        counts[name] = confusion(labels, predicted_classes(model_p), len(class_names))
    return results, counts


def params_with(**data_changes):
    params = load_params(REPO / "params.yaml")
    return params.model_copy(update={"data": params.data.model_copy(update=data_changes)})


def run_correct(class_names, labels, probabilities) -> dict[str, np.ndarray]:
    """Which test images each model of run_results gets right."""
    right_if_first = np.asarray(labels) == 0
    right = predicted_classes(probabilities) == np.asarray(labels)
    return {name: right_if_first if name == "scratch" else right for name in MODEL_STAGES}


def make_report(class_names, labels, probabilities, params=None, top_k=5) -> str:
    results, counts = run_results(class_names, labels, probabilities, top_k)
    correct = run_correct(class_names, labels, probabilities)
    best = {"best_epoch": 3, "epochs_run": 5, "val": {"accuracy": 0.75, "loss": 0.5}}
    params = params or load_params(REPO / "params.yaml")
    return report_markdown(params, class_names, results, counts, correct, labels, 3, "fine_tuned", best)


def table_after(report: str, heading: str) -> list[str]:
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


def test_report_shows_the_books_columns_for_dogs_vs_cats():
    report = make_report(["cat", "dog"], LABELS, two_class(P_DOG))
    assert report.startswith("# Dogs vs. Cats: test results")
    header, rule, *rows = table_after(report, "# Dogs vs. Cats")
    assert cells(header) == [
        "model",
        "accuracy (95% interval)",
        "loss",
        "AUC",
        "precision (dog)",
        "recall (dog)",
        "macro precision",
        "macro recall",
        "macro F1",
        "book 1st ed.",
        "book 2nd ed.",
    ]
    assert [cells(row)[0] for row in rows] == list(MODEL_STAGES)
    fine_tuned = cells(rows[-1])
    # 5 of 8 right: Wilson's 95% interval 0.306 to 0.863
    assert fine_tuned[1:3] == ["0.625 (0.306-0.863)", f"{binary_metrics(LABELS, P_DOG)['loss']:.3f}"]
    assert fine_tuned[-2:] == ["0.970", "0.985"]
    assert BOOK_NOTE in report
    assert "8 test images (4 cat, 4 dog)" in report


@pytest.mark.parametrize(
    "class_names, labels, probabilities",
    [
        (["ant", "bee"], LABELS, two_class(P_DOG)),  # two classes, but not the book's
        (THREE_CLASSES, THREE_LABELS, THREE_P),
    ],
)
def test_report_leaves_the_book_out_for_other_classes(class_names, labels, probabilities):
    report = make_report(class_names, labels, probabilities)
    assert "book" not in report.lower()
    assert "0.970" not in report and "0.985" not in report
    assert report.startswith(f"# Test results, {len(class_names)} classes")
    header, _, *rows = table_after(report, "# Test results")
    assert len(rows) == len(MODEL_STAGES)
    assert all(len(cells(row)) == len(cells(header)) for row in rows)


def test_report_per_class_tables_and_most_confused_pairs():
    report = make_report(THREE_CLASSES, THREE_LABELS, THREE_P, top_k=2)
    header, _, *rows = table_after(report, "# Test results")
    assert "top-2 accuracy" in cells(header)
    header, _, *rows = table_after(report, "### fine_tuned")
    assert cells(header) == ["class", "precision", "recall", "F1", "test images"]
    assert [cells(row) for row in rows] == [
        ["cat", "0.500", "0.667", "0.571", "3"],
        ["dog", "0.500", "0.667", "0.571", "3"],
        ["fox", "0.000", "0.000", "0.000", "2"],  # never predicted
    ]
    header, _, *rows = table_after(report, "### F1, every model")
    assert cells(header) == ["class", *MODEL_STAGES]
    assert cells(rows[0])[1:3] == ["0.545", "0.571"]  # scratch calls all cat: P 3/8, R 1; scratch_augmented 4/7
    header, _, *rows = table_after(report, "## Most confused")
    assert cells(header) == ["actual", "predicted", "images"]
    assert [cells(row) for row in rows] == [
        ["cat", "dog", "1"],
        ["dog", "cat", "1"],
        ["fox", "cat", "1"],
        ["fox", "dog", "1"],
    ]
    assert "8 test images (3 cat, 3 dog, 2 fox)" in report
    assert "ROC" not in report  # no ROC curves beyond two classes


def test_report_without_mistakes():
    report = make_report(THREE_CLASSES, np.array([0, 1, 2]), np.eye(3) * 0.8 + 0.2 / 3)
    assert "## Most confused (fine_tuned)\n\nNo mistakes." in report


def test_report_quotes_the_split_as_ranges_or_fractions_and_the_classes():
    ranges = make_report(["cat", "dog"], LABELS, two_class(P_DOG))
    assert "per class train [0, 1000), validation [1000, 1500), test [1500, 2000)" in ranges
    assert "- classes:" not in ranges and "- class groups:" not in ranges
    fractions = params_with(
        split=SplitParams(train=0.8, validation=0.1, test=0.1),
        classes=["cat", "dog", "fox", "owl"],
        class_groups={"pet": ["cat", "dog"], "wild": ["fox", "owl"]},
    )
    report = make_report(["pet", "wild"], LABELS, two_class(P_DOG), params=fractions)
    assert "per class train 80%, validation 10%, test 10%" in report
    assert "- classes: cat, dog, fox, owl" in report
    assert "- class groups: pet: cat, dog; wild: fox, owl" in report


def test_report_counts_many_classes_in_one_line():
    rng = np.random.default_rng(8)
    labels, probabilities = random_probabilities(rng, 300, 12)
    names = [f"class{i}" for i in range(12)]
    report = make_report(names, labels, probabilities)
    per_class = np.bincount(labels, minlength=12)
    assert f"300 test images in 12 classes ({per_class.min()} to {per_class.max()} per class)" in report
    assert "(explain/gradcam.png)" in report  # drawn by stage explain, for the first 8 classes


# --- tools/results_table.py ---


@pytest.fixture(scope="module")
def results_table():
    spec = importlib.util.spec_from_file_location("results_table", REPO / "tools/results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_table_shows_the_book_only_for_dogs_vs_cats(results_table):
    binary, _ = run_results(["cat", "dog"], LABELS, two_class(P_DOG))
    metrics = {"metrics/evaluate.json": binary}
    with_book = results_table.table(metrics, ["cat", "dog"])
    assert "book 1st ed." in with_book and "| 0.970 | 0.985 |" in with_book
    assert "| fine_tuned | fine_tune | - | not run | 0.625 |" in with_book
    assert "book" not in results_table.table(metrics, ["ant", "bee"])
    # No class list (an experiment whose cache lost it): only the metrics of the time before
    # other classes (no macro_f1) say Dogs vs. Cats.
    assert "book" not in results_table.table(metrics, None)
    old_keys = ("accuracy", "loss", "auc", "precision", "recall")
    old = {name: {key: metrics[key] for key in old_keys} for name, metrics in binary.items()}
    table = results_table.table({"metrics/evaluate.json": old}, None)
    assert "book 1st ed." in table
    assert all(line.count("|") == table.splitlines()[0].count("|") for line in table.splitlines())


# --- the stage, on tiny models in a scratch workspace ---


def workspace(folder: Path, class_names: list[str], model_classes: list[str] | None = None) -> np.ndarray:
    """params.yaml, data/classes.json, test arrays with their manifest and the five models
    (one tiny transfer model saved under every name) in `folder`; returns the test labels."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"].update(batch_size=4, top_k=2, gallery_size=4)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    (folder / "data/prepared").mkdir(parents=True)
    (folder / "data/classes.json").write_text(json.dumps(class_names))
    labels = np.arange(9, dtype=np.uint8) % len(class_names)
    images = np.random.default_rng(0).integers(0, 256, (9, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)
    save_prepared("test", images, labels, folder / "data/prepared")
    rows = [
        {"label": name, "path": f"test/{name}/{i}.jpg"} for i, name in enumerate(class_names[label] for label in labels)
    ]
    write_table(folder / "data/prepared/test/images-00000.npy", rows)
    keras.utils.set_random_seed(0)
    save_model(tiny_transfer_model(len(class_names)), folder / "models/fine_tuned.keras", model_classes or class_names)
    for name in MODEL_STAGES:
        if name != "fine_tuned":
            shutil.copy(folder / "models/fine_tuned.keras", folder / f"models/{name}.keras")
    for stage, accuracy in zip(MODEL_STAGES.values(), VAL_ACCURACY):
        summary = {"best_epoch": 2, "epochs_run": 4, "val": {"loss": 1 - accuracy, "accuracy": accuracy}}
        (folder / training_summary(stage)).parent.mkdir(parents=True)
        (folder / training_summary(stage)).write_text(json.dumps(summary))
    return labels


# Validation accuracy at each training stage's best epoch, in MODEL_STAGES' order: feature_extraction's is best.
VAL_ACCURACY = (0.6, 0.65, 0.9, 0.8, 0.85)


@pytest.mark.parametrize("class_names", [["cat", "dog"], ["cat", "dog", "fox"]])
def test_the_stage_writes_its_outputs(class_names, tmp_path, monkeypatch):
    labels = workspace(tmp_path, class_names)
    monkeypatch.chdir(tmp_path)
    evaluate.main()
    results = json.loads(Path("metrics/evaluate.json").read_text())
    assert results.pop("best_model") == "feature_extraction"
    assert list(results) == list(MODEL_STAGES)
    assert Path("models/best.keras").read_bytes() == Path("models/feature_extraction.keras").read_bytes()
    expected_keys = BINARY_KEYS if len(class_names) == 2 else BINARY_KEYS - {"precision", "recall"} | {"top_2_accuracy"}
    with open("metrics/evaluate/predictions/fine_tuned.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["image", "actual", "predicted", "probability"]
    assert [row["image"] for row in rows] == [f"test/{class_names[label]}/{i}.jpg" for i, label in enumerate(labels)]
    assert [row["actual"] for row in rows] == [class_names[label] for label in labels]
    assert {row["predicted"] for row in rows} <= set(class_names)
    assert all(1 / len(class_names) <= float(row["probability"]) <= 1 for row in rows)  # the predicted class's
    right = sum(row["actual"] == row["predicted"] for row in rows)
    for metrics in results.values():  # one tiny model saved under every name: the same predictions
        assert set(metrics) == expected_keys | {"accuracy_low", "accuracy_high", "test_images"}
        assert list(metrics)[:3] == ["accuracy", "accuracy_low", "accuracy_high"]
        assert metrics["accuracy"] == pytest.approx(right / 9)
        assert (metrics["accuracy_low"], metrics["accuracy_high"]) == pytest.approx(wilson_interval(right, 9))
        assert metrics["test_images"] == 9
    headline = json.loads(Path("metrics/headline.json").read_text())
    best = results["feature_extraction"]
    assert headline == {
        "best_model": "feature_extraction",
        "accuracy": best["accuracy"],
        "accuracy_low": best["accuracy_low"],
        "accuracy_high": best["accuracy_high"],
        "val_accuracy": 0.9,
        "test_images": 9,
    }
    with open("metrics/evaluate/roc/fine_tuned.csv", newline="") as file:  # micro-averaged for 3 classes
        points = [(float(row["fpr"]), float(row["tpr"])) for row in csv.DictReader(file)]
    assert points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0)
    assert all(a <= b for (a, _), (b, _) in zip(points, points[1:]))
    assert Path("metrics/evaluate/most_wrong.png").read_bytes().startswith(b"\x89PNG")
    assert not Path("metrics/evaluate/gradcam.png").exists()  # drawn by stage explain
    report = Path("metrics/report.md").read_text()
    assert ("book 1st ed." in report) == (class_names == ["cat", "dog"])
    assert "## Most confused (feature_extraction)" in report and "### feature_extraction" in report
    assert "Best on the validation split: **feature_extraction** (val accuracy 0.9000, epoch 2 of 4 run)" in report
    assert "[Grad-CAM heatmaps](explain/gradcam.png)" in report
    assert f"| fine_tuned | {interval_text(right, 9)} |" in report
    header, _, *rows = table_after(report, "## Is the difference real?")
    assert [cells(row)[0] for row in rows] == [name for name in MODEL_STAGES if name != "feature_extraction"]
    assert all(cells(row)[3:] == ["0", "0", "1.000", "not distinguishable on these 9 images"] for row in rows)


def test_a_model_that_models_skipped_is_left_out_and_not_chosen(tmp_path, monkeypatch):
    workspace(tmp_path, ["cat", "dog"])
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["models"].update(scratch=False, feature_extraction=False)  # feature_extraction's validation was the best
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params()
    assert [name for name in MODEL_STAGES if skipped(params, name)] == ["scratch", "feature_extraction"]
    placeholder = Path("models/feature_extraction.keras").read_text()
    assert placeholder == "not trained: models.feature_extraction is false in params.yaml\n"  # not empty: DVC warns
    assert json.loads(training_summary("train_classifier").read_text()) == {"skipped": True}
    evaluate.main()
    results = json.loads(Path("metrics/evaluate.json").read_text())
    assert results.pop("best_model") == "fine_tuned"  # the best of those trained
    assert list(results) == ["scratch_augmented", "frozen_augmented", "fine_tuned"]
    for name in ("scratch", "feature_extraction"):  # header only: DVC plots them without a warning
        assert Path(f"metrics/evaluate/predictions/{name}.csv").read_text() == "image,actual,predicted,probability\n"
        assert Path(f"metrics/evaluate/roc/{name}.csv").read_text() == "fpr,tpr,threshold\n"
    assert len(Path("metrics/evaluate/predictions/fine_tuned.csv").read_text().splitlines()) > 1
    curves = Path("metrics/train_scratch/plots/metrics")
    assert sorted(str(path.relative_to(curves)) for path in curves.rglob("*.tsv")) == [
        "train/accuracy.tsv",
        "train/loss.tsv",
        "val/accuracy.tsv",
        "val/loss.tsv",
    ]
    assert (curves / "val/loss.tsv").read_text() == "step\tloss\n"
    assert "| scratch |" not in Path("metrics/report.md").read_text()
    with pytest.raises(
        StageError, match=r"^models/scratch.keras is a placeholder: that model is not trained \(models.scratch"
    ):
        load_model(Path("models/scratch.keras"))


def test_the_stage_refuses_models_of_other_classes(tmp_path, monkeypatch):
    workspace(tmp_path, ["cat", "dog", "fox"], model_classes=["ant", "bee", "cow"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="trained on other classes than the 3 in data/classes.json"):
        evaluate.main()
    assert not Path("metrics/evaluate.json").exists()


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

"""classifier/evaluation/metrics.py: the numpy metrics of stage evaluate against counts and formulas worked out
by hand (tests.support.evaluation's examples) and against Keras' own losses and metrics."""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np
import pytest

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
from classifier.models.architecture import class_probabilities
from tests.support.evaluation import (
    BINARY_KEYS,
    LABELS,
    P_DOG,
    THREE_LABELS,
    THREE_P,
    binary_metrics,
    random_probabilities,
    two_class,
)


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


# --- three classes, softmax (tests.support.evaluation's THREE_P) ---


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

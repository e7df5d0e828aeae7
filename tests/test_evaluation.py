"""The numpy metrics of stage `evaluate` against counts and formulas worked out by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from stages.common.evaluation import EPSILON, binary_metrics, confusion, roc_auc, roc_curve

# dog = 1 is the positive class. Predicted dog when p >= 0.5 (inclusive):
#   index      0    1    2    3    4    5    6    7
#   actual     dog  dog  dog  cat  cat  cat  dog  cat
#   p(dog)     .9   .5   .2   .6   .1   .4   .7   .5
#   predicted  dog  dog  cat  dog  cat  cat  dog  dog
# true positives 0, 1, 6 (3); false positives 3, 7 (2); false negatives 2 (1); true negatives 4, 5 (2)
LABELS = np.array([1, 1, 1, 0, 0, 0, 1, 0])
P_DOG = np.array([0.9, 0.5, 0.2, 0.6, 0.1, 0.4, 0.7, 0.5])


def mann_whitney_auc(labels, p_dog) -> float:
    """Fraction of (dog, cat) pairs in which the dog gets the higher P(dog); ties count 1/2."""
    labels, p_dog = np.asarray(labels), np.asarray(p_dog)
    dogs, cats = p_dog[labels == 1][:, None], p_dog[labels == 0][None, :]
    return float(np.mean((dogs > cats) + 0.5 * (dogs == cats)))


def test_accuracy_precision_recall_match_hand_counts():
    metrics = binary_metrics(LABELS, P_DOG)
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert metrics["precision"] == pytest.approx(3 / 5)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert set(metrics) == {"accuracy", "loss", "auc", "precision", "recall"}
    assert all(type(value) is float for value in metrics.values())  # json.dumps-able


def test_threshold_is_inclusive_so_one_half_predicts_dog():
    assert binary_metrics([1], [0.5])["accuracy"] == 1.0
    assert binary_metrics([0], [0.5])["accuracy"] == 0.0
    assert binary_metrics([1], [0.5 - 1e-9])["accuracy"] == 0.0
    assert confusion([0, 1], [0.5, 0.5]).tolist() == [[0, 1], [0, 1]]


def test_another_threshold_moves_the_counts():
    # at 0.7: predicted dog 0, 6 only -> tp 2, fp 0, accuracy (2 + 4) / 8
    metrics = binary_metrics(LABELS, P_DOG, threshold=0.7)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["precision"] == pytest.approx(1.0)
    assert metrics["recall"] == pytest.approx(2 / 4)
    assert confusion(LABELS, P_DOG, threshold=0.7).tolist() == [[4, 0], [2, 2]]


def test_loss_is_the_hand_computed_binary_cross_entropy():
    dog_terms = [math.log(p) for p in (0.9, 0.5, 0.2, 0.7)]
    cat_terms = [math.log(1 - p) for p in (0.6, 0.1, 0.4, 0.5)]
    expected = -(sum(dog_terms) + sum(cat_terms)) / 8
    assert binary_metrics(LABELS, P_DOG)["loss"] == pytest.approx(expected, abs=1e-12)


def test_loss_matches_keras_binary_crossentropy():
    import keras  # lazily: the rest of this file needs numpy only

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 50)
    p_dog = rng.uniform(0.02, 0.98, 50)
    expected = float(np.mean(keras.ops.convert_to_numpy(
        keras.losses.binary_crossentropy(labels[:, None].astype("float32"), p_dog[:, None].astype("float32"))
    )))
    assert binary_metrics(labels, p_dog)["loss"] == pytest.approx(expected, abs=1e-6)


def test_clipping_keeps_the_loss_finite_at_zero_and_one():
    confidently_wrong = binary_metrics([1, 0], [0.0, 1.0])["loss"]
    assert math.isfinite(confidently_wrong)
    assert confidently_wrong == pytest.approx(-math.log(EPSILON), rel=1e-6)  # about 16.1
    confidently_right = binary_metrics([1, 0], [1.0, 0.0])["loss"]
    assert math.isfinite(confidently_right)
    assert 0 < confidently_right == pytest.approx(-math.log(1 - EPSILON), rel=1e-6)


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
    expected = mann_whitney_auc(labels, p_dog)
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


def test_confusion_rows_are_actual_columns_predicted():
    counts = confusion(LABELS, P_DOG)
    # rows actual (cat, dog), columns predicted (cat, dog)
    assert counts.tolist() == [[2, 2], [1, 3]]
    assert counts.sum() == len(LABELS)
    assert confusion([0, 0, 0], [0.9, 0.9, 0.1]).tolist() == [[1, 2], [0, 0]]  # cats called dogs: top right
    assert confusion([1, 1], [0.1, 0.7]).tolist() == [[0, 0], [1, 1]]  # a dog called cat: bottom left


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
    assert math.isfinite(nothing_dog["auc"]) and math.isfinite(no_dogs["auc"])

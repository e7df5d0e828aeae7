"""classifier/evaluation/report.py: metrics/report.md of the hand examples (tests.support.evaluation), the
book's columns only for Dogs vs. Cats, the per-class tables, the split quoted, and the paired comparison
of the best model with each other (McNemar's test)."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.core.params import load_params
from classifier.core.paths import MODEL_STAGES
from classifier.core.schema import SplitParams
from classifier.evaluation.book import BOOK_NOTE
from classifier.evaluation.metrics import predicted_classes
from classifier.evaluation.report import paired_table, report_markdown
from classifier.evaluation.statistics import mcnemar_p
from tests.support.evaluation import (
    LABELS,
    P_DOG,
    THREE_CLASSES,
    THREE_LABELS,
    THREE_P,
    binary_metrics,
    cells,
    random_probabilities,
    run_results,
    table_after,
    two_class,
)
from tests.support.paths import ROOT


def params_with(**data_changes):
    params = load_params(ROOT / "params.yaml")
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
    params = params or load_params(ROOT / "params.yaml")
    return report_markdown(params, class_names, results, counts, correct, labels, 3, "fine_tuned", best)


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


# --- is the difference real? the paired table ---


def test_the_reports_paired_table_of_the_hand_example():
    # fine_tuned gets 0, 1, 4, 5, 6 right; scratch (always cat) 3, 4, 5, 7: only fine_tuned 0, 1, 6 (b = 3),
    # only scratch 3, 7 (c = 2): p = 2 (1 + 5 + 10) / 32, capped at 1. The other models are fine_tuned's copies.
    report = make_report(["cat", "dog"], LABELS, two_class(P_DOG))
    assert "fine_tuned against each other model on the same 8 test images" in report
    header, rule, *rows = table_after(report, "## Is the difference real?")
    assert cells(header) == [
        "model",
        "accuracy",
        "fine_tuned accuracy",
        "b: only fine_tuned right",
        "c: only it right",
        "p (McNemar)",
        "verdict",
    ]
    assert rule == "|---|---:|---:|---:|---:|---:|---:|"
    assert [cells(row) for row in rows] == [
        [
            "scratch",
            "0.500 (0.215-0.785)",
            "0.625 (0.306-0.863)",
            "3",
            "2",
            "1.000",
            "not distinguishable on these 8 images",
        ],
        *(
            [
                name,
                "0.625 (0.306-0.863)",
                "0.625 (0.306-0.863)",
                "0",
                "0",
                "1.000",
                "not distinguishable on these 8 images",
            ]
            for name in ("scratch_augmented", "feature_extraction", "frozen_augmented")
        ),
    ]
    _, _, *results = table_after(report, "# Dogs vs. Cats")
    assert cells(results[0])[:2] == ["scratch", "0.500 (0.215-0.785)"]
    assert cells(results[-1])[:2] == ["fine_tuned", "0.625 (0.306-0.863)"]


def test_the_paired_table_calls_a_lopsided_difference_real():
    right = np.ones(40, dtype=bool)
    ten_wrong = right.copy()
    ten_wrong[:10] = False
    trade = ten_wrong.copy()
    trade[:2] = True  # 8 only the best gets right...
    best = right.copy()
    best[30:32] = False  # ...and 2 only the other: b = 8, c = 2 -> 2 (1 + 10 + 45) / 1024
    lines = paired_table({"best_one": best, "other": trade, "worse": ten_wrong}, "best_one")
    rows = [cells(line) for line in lines if line.startswith("| ") and "model" not in line]
    assert rows == [
        [
            "other",
            "0.800 (0.652-0.895)",
            "0.950 (0.835-0.986)",
            "8",
            "2",
            "0.109",
            "not distinguishable on these 40 images",
        ],
        ["worse", "0.750 (0.598-0.858)", "0.950 (0.835-0.986)", "10", "2", "0.039", "a real difference at 5%"],
    ]
    assert mcnemar_p(8, 2) == pytest.approx(2 * 56 / 1024)


def test_the_paired_table_of_one_model():
    assert paired_table({"fine_tuned": np.array([True, False])}, "fine_tuned") == [
        "Only fine_tuned was trained: no other model to compare it with."
    ]

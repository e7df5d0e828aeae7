"""`classifier results` (classifier/commands/results.py): the table of every model's validation and test
results, the test accuracy with its 95% interval, the book's columns only for Dogs vs. Cats."""

from __future__ import annotations

from classifier.commands import results
from tests.support.evaluation import LABELS, P_DOG, run_results, two_class


def test_results_table_shows_the_book_only_for_dogs_vs_cats():
    binary, _ = run_results(["cat", "dog"], LABELS, two_class(P_DOG))
    metrics = {"metrics/evaluate.json": binary}
    with_book = results.table(metrics, ["cat", "dog"])
    assert "book 1st ed." in with_book and "| 0.970 | 0.985 |" in with_book
    assert "| fine_tuned | fine_tune | - | not run | 0.625 |" in with_book
    assert "book" not in results.table(metrics, ["ant", "bee"])
    # No class list (an experiment whose cache lost it): only the metrics of the time before
    # other classes (no macro_f1) say Dogs vs. Cats.
    assert "book" not in results.table(metrics, None)
    old_keys = ("accuracy", "loss", "auc", "precision", "recall")
    old = {name: {key: metrics[key] for key in old_keys} for name, metrics in binary.items()}
    table = results.table({"metrics/evaluate.json": old}, None)
    assert "book 1st ed." in table
    assert all(line.count("|") == table.splitlines()[0].count("|") for line in table.splitlines())


def test_the_results_table_shows_the_interval_beside_the_test_accuracy():
    tested = {"accuracy": 0.90458, "accuracy_low": 0.86294, "accuracy_high": 0.93453, "auc": 0.97, "test_images": 262}
    table = results.table({"metrics/evaluate.json": {"fine_tuned": tested, "best_model": "fine_tuned"}}, ["a", "b"])
    assert "| fine_tuned | fine_tune | - | not run | 0.905 (0.863-0.935) | 0.970 | - |" in table
    assert "Test accuracy with its 95% interval (Wilson), on 262 test images." in table
    assert "| scratch | train_scratch | - | not run | - | - | - |" in table
    plain = results.table({"metrics/evaluate.json": {"fine_tuned": {"accuracy": 0.9}}}, ["a", "b"])
    assert "| 0.900 | - | - |" in plain and "interval" not in plain  # metrics without one: the accuracy alone

"""classifier/models/best_model.py: the best model is chosen on validation, and `best` names it."""

from __future__ import annotations

import json

import pytest

from classifier.core.errors import StageError
from classifier.core.paths import EVALUATION_METRICS
from classifier.models.best_model import best_on_validation, using, which_model


def summary(accuracy: float, loss: float) -> dict:
    return {"best_epoch": 1, "epochs_run": 1, "val": {"accuracy": accuracy, "loss": loss}}


def test_the_highest_validation_accuracy_wins():
    chosen = best_on_validation({"a": summary(0.7, 0.5), "b": summary(0.9, 0.9), "c": summary(0.8, 0.1)})
    assert chosen == "b"


def test_a_tie_goes_to_the_lower_validation_loss_then_to_the_earlier_model():
    assert best_on_validation({"a": summary(0.9, 0.5), "b": summary(0.9, 0.4), "c": summary(0.9, 0.4)}) == "b"


def test_best_means_the_model_evaluate_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert which_model("scratch") == "scratch"
    with pytest.raises(StageError, match=r"^the best model is named in metrics/evaluate.json, which has none"):
        which_model("best")
    EVALUATION_METRICS.parent.mkdir()
    EVALUATION_METRICS.write_text(json.dumps({"scratch": {"accuracy": 0.5}, "best_model": "frozen_augmented"}))
    assert which_model("best") == "frozen_augmented"
    assert using("best", "frozen_augmented") == (
        "using frozen_augmented, the best model on the validation split (models/best.keras)"
    )
    assert using("scratch", "scratch") == "using scratch (models/scratch.keras)"
    EVALUATION_METRICS.write_text(json.dumps({"best_model": "nope"}))
    with pytest.raises(StageError, match="names best_model 'nope', not a model"):
        which_model("best")

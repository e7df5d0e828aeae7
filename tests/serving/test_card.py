"""classifier/serving/card.py: the model card's test accuracy with its interval, and a sigmoid model's card
naming the positive class. (Stage export's card, written beside the exported files: tests/stages/test_export.py;
hostile class names in it: tests/hostile/test_class_names.py.)"""

from __future__ import annotations

from classifier.models import saving
from classifier.serving import card
from classifier.serving.card import accuracy_text
from tests.support.models import tiny_pooled_model


def test_the_cards_accuracy_has_its_interval_and_the_number_of_test_images():
    metrics = {"accuracy": 0.9046, "accuracy_low": 0.8629, "accuracy_high": 0.9345, "loss": 0.25, "test_images": 262}
    assert accuracy_text(metrics) == (
        "0.9046 (95% interval 0.8629-0.9345, 262 test images) (metrics/evaluate.json; loss 0.2500)"
    )
    assert accuracy_text({"accuracy": 0.8125, "loss": 0.4321}) == "0.8125 (metrics/evaluate.json; loss 0.4321)"


def test_a_sigmoid_models_card_names_the_positive_class(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tiny_pooled_model(1, "sigmoid")
    saving.save_model(model, tmp_path / "models/fine_tuned.keras", ["cat", "dog"])
    text = card.card("fine_tuned", model, ["cat", "dog"], {"accuracy": 0.9}, {}, ["litert"])
    assert "float32 (N, 1): P(`dog`), the probability of class 1; P(`cat`) is 1 minus it" in text
    assert "saved_model" not in text and "model.tflite" in text

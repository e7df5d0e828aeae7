"""Stage `evaluate` (stages/evaluate.py) on tiny models in a scratch workspace: its metrics, predictions, ROC
points, headline and report; a model its training stage skipped left out and not chosen; models of other
classes refused."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from classifier.core.errors import StageError
from classifier.core.params import load_params
from classifier.core.paths import MODEL_STAGES, training_summary
from classifier.evaluation.statistics import interval_text, wilson_interval
from classifier.intake.prepared.arrays import save_prepared
from classifier.intake.tables import write_table
from classifier.models.saving import save_model
from classifier.models.training.stage import TrainingStage
from stages import evaluate
from tests.support.evaluation import BINARY_KEYS, cells, table_after
from tests.support.models import TINY_IMAGE_SIZE, tiny_transfer_model
from tests.support.params import write_params


def workspace(folder: Path, class_names: list[str], model_classes: list[str] | None = None) -> np.ndarray:
    """params.yaml, data/classes.json, test arrays with their manifest and the five models
    (one tiny transfer model saved under every name) in `folder`; returns the test labels."""
    write_params(folder, {"evaluate.batch_size": 4, "evaluate.top_k": 2, "evaluate.gallery_size": 4})
    (folder / "data/prepared").mkdir(parents=True)
    (folder / "data/classes.json").write_text(json.dumps(class_names))
    labels = np.arange(9, dtype=np.uint8) % len(class_names)
    images = np.random.default_rng(0).integers(0, 256, (9, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3)).astype(np.uint8)
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
    for name in MODEL_STAGES:  # as the training stages run before evaluate: placeholders for the two skipped
        TrainingStage(params, name).skipped()
    evaluate.main()
    results = json.loads(Path("metrics/evaluate.json").read_text())
    assert results.pop("best_model") == "fine_tuned"  # the best of those trained
    assert list(results) == ["scratch_augmented", "frozen_augmented", "fine_tuned"]
    for name in ("scratch", "feature_extraction"):  # header only: DVC plots them without a warning
        assert Path(f"metrics/evaluate/predictions/{name}.csv").read_text() == "image,actual,predicted,probability\n"
        assert Path(f"metrics/evaluate/roc/{name}.csv").read_text() == "fpr,tpr,threshold\n"
    assert len(Path("metrics/evaluate/predictions/fine_tuned.csv").read_text().splitlines()) > 1
    assert "| scratch |" not in Path("metrics/report.md").read_text()


def test_the_stage_refuses_models_of_other_classes(tmp_path, monkeypatch):
    workspace(tmp_path, ["cat", "dog", "fox"], model_classes=["ant", "bee", "cow"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="trained on other classes than the 3 in data/classes.json"):
        evaluate.main()
    assert not Path("metrics/evaluate.json").exists()

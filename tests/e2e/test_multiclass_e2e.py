"""End to end on ten classes: `dvc repro` on a folder-per-class subset of CIFAR-10 at 32x32."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest

from classifier.core.paths import MODEL_STAGES
from classifier.intake.prepared.arrays import load_prepared
from classifier.models.saving import load_model, saved_class_names
from tests.support.files import read_csv
from tests.support.paths import CIFAR10, copy_of, needs
from tests.support.repos import ALL_STAGES, CIFAR10_CLASSES, CIFAR_PARAMS, CIFAR_PER_CLASS, CIFAR_TOP_K, copy_cifar
from tools.scratch_repo import make_repo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cifar_repo(tmp_path_factory):
    needs(CIFAR10 / "train/truck/0030.jpg")
    repo = make_repo(tmp_path_factory.mktemp("cifar_repo"), CIFAR_PARAMS, fill_raw=copy_cifar)
    repo.ran_first = repo.repro()
    repo.commit("ten-class run")
    return repo


def test_every_stage_runs_and_the_class_list_is_the_folders_sorted(cifar_repo):
    assert sorted(cifar_repo.ran_first) == sorted(ALL_STAGES)
    assert "up to date" in cifar_repo.dvc("status").stdout
    assert json.loads((cifar_repo.path / "data/classes.json").read_text()) == CIFAR10_CLASSES


def test_split_keeps_every_class_in_every_split_and_records_the_source(cifar_repo):
    counts = json.loads((cifar_repo.path / "metrics/split.json").read_text())
    assert sum(n for split in counts.values() for n in split.values()) == 10 * CIFAR_PER_CLASS
    assert all(counts[split][name] >= 1 for split in counts for name in CIFAR10_CLASSES)
    rows = read_csv(cifar_repo.path / "data/split/manifest.csv")
    assert {row["source"] for row in rows} == {
        f"{name}/{i:04d}.jpg" for name in CIFAR10_CLASSES for i in range(CIFAR_PER_CLASS)
    }
    labels = load_prepared("train", cifar_repo.path / "data/prepared")[1]
    assert set(labels.tolist()) == set(range(10))


def test_models_end_in_a_softmax_over_the_ten_classes_and_carry_their_names(cifar_repo):
    pixels = load_prepared("test", cifar_repo.path / "data/prepared")[0][:4].astype(np.float32)
    for model_name in MODEL_STAGES:
        path = cifar_repo.path / f"models/{model_name}.keras"
        probabilities = load_model(path).predict(pixels, verbose=0)
        assert probabilities.shape == (4, 10)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
        assert saved_class_names(path) == CIFAR10_CLASSES


def test_evaluate_reports_the_n_class_metrics_and_accuracy_matches_a_hand_count(cifar_repo):
    results = json.loads((cifar_repo.path / "metrics/evaluate.json").read_text())
    assert results.pop("best_model") in MODEL_STAGES
    assert set(results) == set(MODEL_STAGES)
    for model_name, metrics in results.items():
        assert set(metrics) == {
            "accuracy",
            "loss",
            "auc",
            "macro_precision",
            "macro_recall",
            "macro_f1",
            f"top_{CIFAR_TOP_K}_accuracy",
            "accuracy_low",
            "accuracy_high",
            "test_images",
        }
        assert metrics[f"top_{CIFAR_TOP_K}_accuracy"] >= metrics["accuracy"]
        rows = read_csv(cifar_repo.path / f"metrics/evaluate/predictions/{model_name}.csv")
        assert {row["actual"] for row in rows} == set(CIFAR10_CLASSES)
        assert metrics["accuracy"] == pytest.approx(sum(row["actual"] == row["predicted"] for row in rows) / len(rows))
    shown = json.loads(cifar_repo.dvc("metrics", "show", "--json").stdout)
    headline = shown[""]["data"]["metrics/headline.json"]["data"]
    assert headline["test_images"] == len(rows) and headline["best_model"] in MODEL_STAGES


def test_the_report_has_a_per_class_table_and_no_book_columns(cifar_repo):
    report = (cifar_repo.path / "metrics/report.md").read_text()
    for name in CIFAR10_CLASSES:
        assert f"| {name} |" in report
    assert "book" not in report.lower()


def test_dvc_plots_show_has_a_confusion_matrix_per_model(cifar_repo):
    cifar_repo.dvc("plots", "show", "-o", "plots_page")
    page = (cifar_repo.path / "plots_page/index.html").read_text()
    for model_name in MODEL_STAGES:
        assert f"metrics/evaluate/predictions/{model_name}.csv" in page


def test_predict_names_the_classes(cifar_repo, tmp_path):
    image = copy_of(CIFAR10 / "test/ship/0000.jpg", tmp_path)
    result = cifar_repo.run(sys.executable, "-m", "classifier", "predict", str(image), "--top", "3")
    fields = result.stdout.strip().split(", ")
    assert fields[0] == str(image) and len(fields) == 7
    assert set(fields[1::2]) <= set(CIFAR10_CLASSES)


def test_adding_images_moves_no_image_to_another_split(cifar_repo):
    before = {row["source"]: row["split"] for row in read_csv(cifar_repo.path / "data/split/manifest.csv")}
    try:
        copy_cifar(cifar_repo.path / "data/raw", first=CIFAR_PER_CLASS, count=6)
        cifar_repo.dvc("add", "data/raw")
        assert cifar_repo.repro("split") == ["split"]
        after = {row["source"]: row["split"] for row in read_csv(cifar_repo.path / "data/split/manifest.csv")}
        assert len(after) == len(before) + 10 * 6
        assert {source: after[source] for source in before} == before
    finally:
        cifar_repo.reset()


# --- arrays with a labels table, trained on the coarse labels (the CIFAR-100 notebooks' way) ----------------

VEHICLES = {"airplane", "automobile", "ship", "truck"}


def write_arrays(raw, split: str, folder: str, count: int) -> None:
    """raw/<split>.npy (N x 32 x 32 x 3 uint8) and raw/<split>.csv with fine_labels and coarse_labels."""
    from PIL import Image

    pixels, rows = [], []
    for fine, name in enumerate(CIFAR10_CLASSES):
        for index in range(count):
            with Image.open(CIFAR10 / folder / name / f"{index:04d}.jpg") as image:
                pixels.append(np.asarray(image.convert("RGB")))
            rows.append({"fine_labels": fine, "coarse_labels": "vehicle" if name in VEHICLES else "animal"})
    np.save(raw / f"{split}.npy", np.stack(pixels).astype(np.uint8))
    with open(raw / f"{split}.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["fine_labels", "coarse_labels"])
        writer.writeheader()
        writer.writerows(rows)


def cifar_arrays(raw) -> None:
    write_arrays(raw, "train", "train", CIFAR_PER_CLASS)
    write_arrays(raw, "test", "test", 4)


@pytest.fixture(scope="module")
def arrays_repo(tmp_path_factory):
    needs(CIFAR10 / "test/truck/0003.jpg")
    params = {**CIFAR_PARAMS, ("data", "label_column"): "coarse_labels", ("training", "class_weight"): None}
    repo = make_repo(tmp_path_factory.mktemp("arrays_repo"), params, fill_raw=cifar_arrays)
    repo.ran_first = repo.repro()
    return repo


def test_arrays_with_a_labels_table_train_on_the_column_asked_for(arrays_repo):
    assert sorted(arrays_repo.ran_first) == sorted(ALL_STAGES)
    assert json.loads((arrays_repo.path / "data/classes.json").read_text()) == ["animal", "vehicle"]
    counts = json.loads((arrays_repo.path / "metrics/split.json").read_text())
    assert counts["test"] == {"animal": 6 * 4, "vehicle": 4 * 4}  # the given test split, kept
    trained_on = counts["train"]["animal"] + counts["validation"]["animal"]
    assert trained_on == 6 * CIFAR_PER_CLASS  # validation carved from train
    sources = {row["source"] for row in read_csv(arrays_repo.path / "data/split/manifest.csv")}
    assert "train.npy:0" in sources and "test.npy:39" in sources
    results = json.loads((arrays_repo.path / "metrics/evaluate.json").read_text())
    assert set(results) == {*MODEL_STAGES, "best_model"}
    assert "precision" in results["fine_tuned"]  # two classes: one sigmoid unit
    assert load_model(arrays_repo.path / "models/fine_tuned.keras").output_shape == (None, 1)

"""End to end: real `dvc repro` of the whole pipeline in a temporary git repo, on real images."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import vl_convert
from PIL import Image

from classifier.commands import plots_page
from classifier.core.paths import MODEL_STAGES
from classifier.intake.prepared.arrays import load_prepared
from classifier.models.prediction import predict_probabilities
from classifier.models.saving import load_model, saved_class_names
from tests.support.files import read_csv
from tests.support.models import stock_keras_outputs
from tests.support.paths import KAGGLE_IMAGES, copy_of, needs
from tests.support.repos import ALL_STAGES
from tools.scratch_repo import TINY_PARAMS, set_params

pytestmark = pytest.mark.e2e

METRIC_KEYS = {"accuracy", "loss", "auc", "precision", "recall", "macro_precision", "macro_recall", "macro_f1"}
INTERVAL_KEYS = {"accuracy_low", "accuracy_high", "test_images"}  # the accuracy's 95% interval and what it is of


def weights_by_layer(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_repro_runs_every_stage_and_leaves_dvc_status_clean(tiny_repo):
    assert sorted(tiny_repo.ran_first) == sorted(ALL_STAGES)
    assert "up to date" in tiny_repo.dvc("status").stdout
    assert tiny_repo.repro() == []  # a second repro has nothing to do


def test_split_and_prepare_outputs(tiny_repo):
    root = tiny_repo.path
    assert len(list((root / "data/split/train/cat").glob("cat.*.jpg"))) == 12
    assert len(list((root / "data/split/test/dog").glob("dog.*.jpg"))) == 6
    assert json.loads((root / "metrics/split.json").read_text())["validation"] == {"cat": 6, "dog": 6}
    images, labels = load_prepared("train", root / "data/prepared")
    assert images.shape == (24, 48, 48, 3) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [0] * 12 + [1] * 12


def test_features_are_cached_per_split(tiny_repo):
    features = np.load(tiny_repo.path / "data/features/validation_features.npy")
    assert features.shape == (12, 1, 1, 512) and features.dtype == np.float32  # VGG16 at 48x48


def test_every_model_takes_raw_pixels_and_has_metrics(tiny_repo):
    pixels = load_prepared("test", tiny_repo.path / "data/prepared")[0][:].astype(np.float32)
    for model_name, stage in MODEL_STAGES.items():
        model = load_model(tiny_repo.path / f"models/{model_name}.keras")
        predictions = model.predict(pixels, verbose=0)
        assert predictions.shape == (12, 1) and np.all((predictions >= 0) & (predictions <= 1))  # the book's sigmoid
        assert saved_class_names(tiny_repo.path / f"models/{model_name}.keras") == ["cat", "dog"]
        summary = json.loads((tiny_repo.path / f"metrics/{stage}/metrics.json").read_text())
        assert 1 <= summary["best_epoch"] <= TINY_PARAMS[(stage, "epochs")]
        assert 0 <= summary["val"]["accuracy"] <= 1
        epochs_logged = (tiny_repo.path / f"metrics/{stage}/plots/metrics/val/accuracy.tsv").read_text().splitlines()
        assert len(epochs_logged) == 1 + TINY_PARAMS[(stage, "epochs")]  # header + one row per epoch


def test_every_model_opens_with_stock_keras_and_predicts_as_the_pipeline(tiny_repo, tmp_path):
    """No custom layer in any saved model: plain keras.models.load_model (safe mode) in a process that
    never imports this project gives the probabilities predict and evaluate compute."""
    pixels = load_prepared("test", tiny_repo.path / "data/prepared")[0][:].astype(np.float32)
    paths = [tiny_repo.path / f"models/{model_name}.keras" for model_name in MODEL_STAGES]
    stock = stock_keras_outputs(paths, pixels, tmp_path)
    for path in paths:
        ours = predict_probabilities(load_model(path), pixels, batch_size=5)  # what `classifier predict` runs
        np.testing.assert_allclose(np.concatenate([1 - stock[str(path)], stock[str(path)]], axis=1), ours, atol=1e-5)


def test_train_frozen_leaves_the_base_unchanged_and_fine_tune_changes_only_its_top(tiny_repo):
    models_dir = tiny_repo.path / "models"
    base = weights_by_layer(load_model(models_dir / "base.keras"))
    frozen_model = load_model(models_dir / "frozen_augmented.keras")
    tuned_model = load_model(models_dir / "fine_tuned.keras")
    frozen = weights_by_layer(frozen_model.get_layer("vgg16"))
    tuned = weights_by_layer(tuned_model.get_layer("vgg16"))
    assert all(same(base[name], frozen[name]) for name in base)
    top_block = {"block5_conv1", "block5_conv2", "block5_conv3"}
    for name in base:
        assert same(frozen[name], tuned[name]) == (name not in top_block), name
    assert not same(
        frozen_model.get_layer("classifier").get_weights(), tuned_model.get_layer("classifier").get_weights()
    )


def test_changing_a_training_param_reruns_only_that_stage_evaluate_explain_and_export(tiny_repo):
    """export quotes the test metrics on its card (and the training params); explain and export use the best
    model, which metrics/evaluate.json names; the other training stages stay."""
    set_params(tiny_repo.path, {("train_classifier", "epochs"): 1})
    try:
        assert tiny_repo.repro() == ["check_params", "train_classifier", "evaluate", "explain", "export"]
    finally:
        tiny_repo.reset()


def test_raw_images_outside_the_split_ranges_rerun_split_only(tiny_repo):
    copy_of(KAGGLE_IMAGES / "cat.2400.jpg", tiny_repo.path / "data/raw")
    try:
        tiny_repo.dvc("add", "data/raw")  # the README's step after changing the raw images
        assert tiny_repo.repro() == ["split"]
        assert "up to date" in tiny_repo.dvc("status").stdout
    finally:
        tiny_repo.reset()


def test_evaluate_writes_every_model_and_accuracy_matches_a_hand_count(tiny_repo):
    results = json.loads((tiny_repo.path / "metrics/evaluate.json").read_text())
    assert results.pop("best_model") in MODEL_STAGES
    assert set(results) == set(MODEL_STAGES)
    for model_name, metrics in results.items():
        assert set(metrics) == METRIC_KEYS | INTERVAL_KEYS
        assert (
            metrics["accuracy_low"] <= metrics["accuracy"] <= metrics["accuracy_high"] and metrics["test_images"] == 12
        )
        rows = read_csv(tiny_repo.path / f"metrics/evaluate/predictions/{model_name}.csv")
        assert len(rows) == 12  # 6 test images per class
        assert all(0.5 <= float(row["probability"]) <= 1 for row in rows)  # of the predicted class, of two
        hand_count = sum(row["actual"] == row["predicted"] for row in rows) / len(rows)
        assert metrics["accuracy"] == pytest.approx(hand_count)


def test_dvc_metrics_show_prints_the_headline_in_a_terminal_s_width(tiny_repo):
    shown = json.loads(tiny_repo.dvc("metrics", "show", "--json").stdout)
    files = shown[0]["data"] if isinstance(shown, list) else shown[""]["data"]
    assert list(files) == ["metrics/headline.json"]
    headline = files["metrics/headline.json"]["data"]
    results = json.loads((tiny_repo.path / "metrics/evaluate.json").read_text())
    best = results["best_model"]
    assert headline == {
        "best_model": best,
        "accuracy": results[best]["accuracy"],
        "accuracy_low": results[best]["accuracy_low"],
        "accuracy_high": results[best]["accuracy_high"],
        "val_accuracy": json.loads((tiny_repo.path / f"metrics/{MODEL_STAGES[best]}/metrics.json").read_text())["val"][
            "accuracy"
        ],
        "test_images": 12,
    }
    table = tiny_repo.dvc("metrics", "show").stdout
    assert "best_model" in table and max(len(line) for line in table.splitlines()) <= 120, table


def test_plot_data_and_pictures_hold_what_they_should(tiny_repo):
    for model_name in MODEL_STAGES:
        with open(tiny_repo.path / f"metrics/evaluate/roc/{model_name}.csv", newline="") as file:
            points = [(float(row["fpr"]), float(row["tpr"])) for row in csv.DictReader(file)]
        assert points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0)
        assert all(a <= b for (a, _), (b, _) in zip(points, points[1:]))
    for picture in ("evaluate/most_wrong.png", "explain/activations.png", "explain/filters.png", "explain/gradcam.png"):
        with Image.open(tiny_repo.path / "metrics" / picture) as image:
            assert image.format == "PNG" and image.width > 200 and image.height > 200
    report = (tiny_repo.path / "metrics/report.md").read_text()
    for model_name in MODEL_STAGES:
        assert f"| {model_name} |" in report
    assert "0.975" in report and "0.970" in report  # the book's accuracies beside ours
    assert "(evaluate/most_wrong.png)" in report and "(explain/gradcam.png)" in report


def test_dvc_plots_show_writes_an_offline_page_whose_every_chart_renders(tiny_repo):
    tiny_repo.run(sys.executable, "-m", "classifier", "plots-page")  # as `make install` does
    try:
        tiny_repo.dvc("plots", "show", "-o", "plots_page")
    finally:
        tiny_repo.dvc("config", "--local", "--unset", "plots.html_template")
    page = (tiny_repo.path / "plots_page/index.html").read_text()
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)  # nothing loaded from the network
    assert "cdn.jsdelivr" not in page and "vegaEmbed" in page
    specs = [json.loads(spec) for spec in re.findall(r"var spec = (.*?);\s*vegaEmbed\('#", page, re.S)]
    titles = [spec["title"]["text"] for spec in specs]
    assert len(specs) == 2 * len(MODEL_STAGES) + len(MODEL_STAGES) + 4  # curves, confusion matrices, four more
    for stage in MODEL_STAGES.values():
        for metric in ("loss", "accuracy"):
            (spec,) = [spec for spec in specs if spec["title"]["text"] == f"{stage} {metric} (training, validation)"]
            assert {row["filename"] for row in spec["data"]["values"]} == {f"train/{metric}.tsv", f"val/{metric}.tsv"}
    for model_name in MODEL_STAGES:
        assert f"metrics/evaluate/predictions/{model_name}.csv" in titles  # its confusion matrix
    assert "confusion matrices, normalised (test)" in titles and "ROC curves (test)" in titles
    for title in ("ROC per class, the best model (test)", "precision and recall per class, the best model (test)"):
        (spec,) = [spec for spec in specs if spec["title"]["text"] == title]
        assert spec["encoding"]["color"]["field"] == "class"  # a colour per class
        assert {row["class"] for row in spec["data"]["values"]} == {"cat", "dog"}
    for spec in specs:  # drawn by Vega itself (vl-convert's engine), data and all
        svg = vl_convert.vegalite_to_svg(spec, vl_version=plots_page.VEGA_LITE)
        assert svg.startswith("<svg") and svg.count("<path") > 10, spec["title"]
    if shutil.which("node"):  # the inlined bundle is valid JavaScript
        module = re.search(r'<script type="module">(.*?)</script>', page, re.S).group(1)
        (tiny_repo.path / "plots_page/bundle.mjs").write_text(module)
        subprocess.run(["node", "--check", str(tiny_repo.path / "plots_page/bundle.mjs")], check=True)
    for picture in ("most_wrong.png", "activations.png", "filters.png", "gradcam.png"):
        assert picture in page
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser:  # a real browser, offline: every chart drawn on the page itself
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000"]
        url = (tiny_repo.path / "plots_page/index.html").as_uri()
        dom = subprocess.run([*command, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        assert dom.count('class="vega-embed') == len(specs) and dom.count("<svg") >= len(specs)


def test_predict_from_another_directory_takes_paths_from_there(tiny_repo, tmp_path):
    shutil.copyfile(needs(KAGGLE_IMAGES / "cat.2000.jpg"), tmp_path / "mine.jpg")  # a copy, links followed
    result = subprocess.run(
        [sys.executable, "-m", "classifier", "predict", "mine.jpg", "--top", "2"],
        cwd=tmp_path,
        env={**tiny_repo.env, "PYTHONPATH": str(tiny_repo.path)},  # the repository's `classifier`, as installed
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    label, probability, other, rest = result.stdout.strip().split(", ")[1:]
    assert result.stdout.startswith("mine.jpg, ") and {label, other} == {"cat", "dog"}
    assert float(probability) + float(rest) == pytest.approx(1, abs=2e-4)
    assert "predict: using " in result.stderr and "Traceback" not in result.stderr


def test_predict_on_real_images_and_a_corrupt_file(tiny_repo, tmp_path):
    copy_of(KAGGLE_IMAGES / "cat.2000.jpg", tmp_path)
    copy_of(KAGGLE_IMAGES / "dog.2000.jpg", tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    result = tiny_repo.run(sys.executable, "-m", "classifier", "predict", str(tmp_path), "--csv", check=False)
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if line.startswith("predict:")]  # not TensorFlow's lines
    assert len(ours) == 2 and "broken.jpg" in ours[1]
    assert ours[0].startswith("predict: using ") and ours[0].endswith(
        "the best model on the validation split (models/best.keras)"
    )
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [Path(row["path"]).name for row in rows] == ["cat.2000.jpg", "dog.2000.jpg"]
    assert all(float(row["cat"]) + float(row["dog"]) == pytest.approx(1, abs=2e-4) for row in rows)

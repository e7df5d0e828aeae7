"""classifier/models/training/fitting.py: fit() on (x, y) arrays logs each epoch with dvclive and keeps the
best one by validation loss (classifier.models.training.epoch_log), stops `patience` epochs after it, says
whether more epochs would help, resumes without more epochs once learning stopped, refuses inputs that are not
finite numbers, stops in one line after the first epoch whose loss is not one (keeping no summary or checkpoint),
and weighs the loss by class (class_weights). In a cluster only the first
process writes outputs, logs and checkpoints; one host writes everything whatever the environment says."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from classifier.core.backend import set_seed
from classifier.core.errors import StageError
from classifier.core.params import load_params
from classifier.core.paths import stage_metrics_dir
from classifier.intake.prepared.arrays import load_prepared, save_prepared
from classifier.models.training.batches import ArrayBatches
from classifier.models.training.cluster import writes_outputs
from classifier.models.training.fitting import class_weights, fit
from classifier.models.training.stage import TrainingStage
from tests.support.files import read_tsv, relative_files
from tests.support.models import tiny_model
from tests.support.paths import ROOT
from tests.support.training import checkpoint_state, noisy_problem, watched_fit

EPOCHS = 8


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """fit() once, in an empty folder: (folder, model, summary, validation arrays)."""
    folder = tmp_path_factory.mktemp("fit")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        set_seed(0)
        train_x, train_y, val_x, val_y = noisy_problem()
        model = tiny_model(learning_rate=0.1)
        summary = fit(
            model, "demo", (train_x, train_y), (val_x, val_y), epochs=EPOCHS, batch_size=16, seed=0, resume=False
        )
    return folder, model, summary, (val_x, val_y)


def logged(folder, split: str, metric: str) -> list[float]:
    rows = read_tsv(folder / stage_metrics_dir("demo") / "plots" / "metrics" / split / f"{metric}.tsv")
    assert [int(row["step"]) for row in rows] == list(range(len(rows)))
    return [float(row[metric]) for row in rows]


def test_fit_logs_one_row_per_epoch(fitted):
    folder = fitted[0]
    for split in ("train", "val"):
        for metric in ("loss", "accuracy"):
            values = logged(folder, split, metric)
            assert len(values) == EPOCHS, f"{split}/{metric}"
            assert all(math.isfinite(v) for v in values)
            if metric == "accuracy":
                assert all(0 <= v <= 1 for v in values)
    assert logged(folder, "train", "loss")[-1] < logged(folder, "train", "loss")[0]  # it learns


def test_fit_summary_is_the_epoch_with_the_lowest_val_loss(fitted):
    folder, _, summary, _ = fitted
    val_loss = logged(folder, "val", "loss")
    best = int(np.argmin(val_loss))
    assert 1 < summary["best_epoch"] < EPOCHS, f"the setup should peak mid-run: val loss {val_loss}"
    assert summary["best_epoch"] == best + 1
    assert summary["val"]["loss"] == pytest.approx(min(val_loss), rel=1e-6)
    assert summary["val"]["accuracy"] == pytest.approx(logged(folder, "val", "accuracy")[best], rel=1e-6)
    assert summary["train"]["loss"] == pytest.approx(logged(folder, "train", "loss")[best], rel=1e-6)
    assert summary["train"]["accuracy"] == pytest.approx(logged(folder, "train", "accuracy")[best], rel=1e-6)


def test_fit_writes_the_summary_to_metrics_json(fitted):
    folder, _, summary, _ = fitted
    written = json.loads((folder / stage_metrics_dir("demo") / "metrics.json").read_text())
    assert written["best_epoch"] == summary["best_epoch"]
    for split in ("train", "val"):
        assert set(written[split]) == {"loss", "accuracy"}
        for metric in ("loss", "accuracy"):
            assert written[split][metric] == pytest.approx(summary[split][metric], rel=1e-6)


def test_fit_leaves_the_model_with_the_best_epochs_weights(fitted):
    folder, model, summary, (val_x, val_y) = fitted
    loss, accuracy = model.evaluate(val_x, val_y.astype(np.float32), batch_size=16, verbose=0)
    assert loss == pytest.approx(summary["val"]["loss"], rel=1e-4)
    assert accuracy == pytest.approx(summary["val"]["accuracy"], abs=1e-6)
    last = logged(folder, "val", "loss")[-1]
    assert abs(loss - last) > 1e-3, "the last epoch's weights, not the best epoch's"


def fit_noisy(stage: str = "demo", **settings) -> dict:
    set_seed(0)
    train_x, train_y, val_x, val_y = noisy_problem()
    model = tiny_model(learning_rate=0.1)
    return fit(model, stage, (train_x, train_y), (val_x, val_y), batch_size=16, seed=0, **settings)


def test_patience_stops_that_many_epochs_after_the_best_and_keeps_the_best(fitted, tmp_path, monkeypatch, capsys):
    folder, _, full_run, _ = fitted
    best = full_run["best_epoch"]
    assert full_run["epochs_run"] == EPOCHS
    val_loss = logged(folder, "val", "loss")
    assert min(val_loss[best : best + 2]) > val_loss[best - 1], "two worse epochs follow the best one"
    monkeypatch.chdir(tmp_path)
    summary = fit_noisy(epochs=EPOCHS * 3, patience=2, resume=False)
    assert summary["best_epoch"] == best
    assert summary["epochs_run"] == best + 2 < EPOCHS
    assert summary["val"]["loss"] == pytest.approx(full_run["val"]["loss"], rel=1e-6)
    assert len(logged(tmp_path, "val", "loss")) == best + 2
    written = json.loads((stage_metrics_dir("demo") / "metrics.json").read_text())
    assert (written["best_epoch"], written["epochs_run"]) == (best, best + 2)
    assert "stopped early, 2 epochs without a lower validation loss" in capsys.readouterr().out


def test_a_stage_whose_last_epoch_is_its_best_says_more_epochs_would_help(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    summary = fit_noisy(epochs=1, patience=3, resume=False)
    assert (summary["best_epoch"], summary["epochs_run"]) == (1, 1)
    assert "more epochs would likely help (raise demo.epochs)" in capsys.readouterr().out


def test_a_fit_killed_after_learning_stopped_resumes_without_more_epochs(fitted, tmp_path, monkeypatch, capsys):
    """Killed after the epoch that ends learning, before the stage finished: the rerun trains no epoch."""
    best = fitted[2]["best_epoch"]
    monkeypatch.chdir(tmp_path)
    train_x, train_y, val_x, val_y = noisy_problem()
    settings = {"epochs": EPOCHS * 3, "patience": 2, "batch_size": 16, "seed": 0, "resume": True}
    splits = (train_x, train_y), (val_x, val_y)

    def model():
        set_seed(0)
        return tiny_model(learning_rate=0.1)

    watched_fit(model(), *splits, stop_after=best + 2, **settings)
    assert checkpoint_state()["epoch"] == best + 2
    capsys.readouterr()
    summary, watch = watched_fit(model(), *splits, **settings)
    assert f"resuming after epoch {best + 2}/{EPOCHS * 3}" in capsys.readouterr().out
    assert watch.weights == [], "no epoch trained after learning stopped"
    assert (summary["best_epoch"], summary["epochs_run"]) == (best, best + 2)


def test_inputs_that_are_not_finite_numbers_are_refused_before_the_first_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_x, train_y, val_x, val_y = noisy_problem()
    val_x[[3, 9], 1] = [np.nan, -np.inf]
    np.save("features.npy", train_x)
    with pytest.raises(StageError) as info:
        fit(tiny_model(0.1), "demo", (train_x, train_y), (val_x, val_y), epochs=2, batch_size=16, seed=0, resume=True)
    assert str(info.value) == (
        "the validation inputs hold values that are not finite numbers (NaN or infinity) in 2 of their 64 rows: a "
        "model learns nothing from them; make them again (the features: `dvc repro extract_features`, which refuses "
        "such values)"
    )
    mapped = np.lib.format.open_memmap("features.npy", mode="r+")
    mapped[7, 0] = np.inf
    mapped.flush()
    with pytest.raises(StageError, match=r"^the training inputs \(features.npy\) hold .* in 1 of their 64 rows"):
        fit(
            tiny_model(0.1),
            "demo",
            (np.load("features.npy", mmap_mode="r"), train_y),
            (train_x, train_y),
            epochs=2,
            batch_size=16,
            seed=0,
            resume=True,
        )
    assert relative_files(tmp_path) == {"features.npy"}  # no metrics, no checkpoint, no lock: nothing began


def test_a_fit_that_diverges_stops_after_that_epoch_and_keeps_no_summary_or_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_x, train_y, val_x, val_y = noisy_problem()
    with pytest.raises(StageError) as info:
        fit(
            tiny_model(1e38),
            "demo",
            (train_x, train_y),
            (val_x, val_y),
            epochs=5,
            batch_size=16,
            seed=0,
            resume=True,
            learning_rate="demo.learning_rate (now 1e+38)",
        )
    assert str(info.value) == (
        "the training loss is nan, not a finite number, after epoch 1: training diverged; lower "
        "demo.learning_rate (now 1e+38) and run it again (no model is kept from this run)"
    )
    assert not (tmp_path / stage_metrics_dir("demo") / "metrics.json").exists()
    assert not (tmp_path / ".dvc/tmp/checkpoints/demo").exists()
    assert len(read_tsv(tmp_path / stage_metrics_dir("demo") / "plots/metrics/train/loss.tsv")) == 1  # its curve


# --- class weights ------------------------------------------------------------------------------


def test_balanced_class_weights_make_every_class_weigh_the_same():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = class_weights("balanced", labels, 3)
    assert weights == pytest.approx({0: 10 / 18, 1: 10 / 9, 2: 10 / 3})
    totals = {label: weights[label] * int(np.sum(labels == label)) for label in weights}
    assert len({round(total, 9) for total in totals.values()}) == 1  # each class adds up to the same weight
    assert class_weights(None, labels, 3) is None


def test_fit_weighs_the_loss_by_class(tmp_path, monkeypatch):
    """With class weights the first epoch's loss is the weighted mean: not the plain one."""
    monkeypatch.chdir(tmp_path)
    train_x, train_y, val_x, val_y = noisy_problem()
    losses = []
    for weight in (None, {0: 1.0, 1: 5.0}):
        set_seed(0)
        model = tiny_model(1e-9)  # learns nothing: the loss is the initial weights' loss
        summary = fit(
            model,
            f"stage_{len(losses)}",
            (train_x, train_y),
            (val_x, val_y),
            epochs=1,
            batch_size=64,
            seed=0,
            resume=False,
            class_weight=weight,
        )
        losses.append(summary["train"]["loss"])
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)


# --- in a cluster ------------------------------------------------------------------------------


SIZE, BATCH = 16, 8
COUNTS = {"train": 24, "validation": 12}  # 3 batches of 8; validation's last batch of 4 splits 2 + 2


SECOND_PROCESS = {
    "KERAS_DISTRIBUTION_JOB_ADDRESSES": "localhost:1",
    "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    "KERAS_DISTRIBUTION_PROCESS_ID": "1",
}


def pooled_logistic() -> keras.Model:
    pixels = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(
        pixels, keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(pixels))
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def test_a_process_other_than_the_first_writes_no_output_checkpoint_or_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in SECOND_PROCESS.items():
        monkeypatch.setenv(name, value)
    assert not writes_outputs("multi_host") and writes_outputs("none")
    rng = np.random.default_rng(0)
    for split, count in COUNTS.items():
        save_prepared(split, rng.integers(0, 256, (count, SIZE, SIZE, 3)).astype(np.uint8), np.arange(count) % 2)
    inputs = relative_files(tmp_path)
    model = pooled_logistic()
    train, validation = load_prepared("train"), load_prepared("validation")
    summary = fit(
        model, "train_demo", train, validation, epochs=2, batch_size=BATCH, seed=0, resume=True, distribute="multi_host"
    )
    assert summary["epochs_run"] == 2
    params = load_params(ROOT / "params.yaml")
    params = params.model_copy(update={"training": params.training.model_copy(update={"distribute": "multi_host"})})
    stage = TrainingStage(params, "feature_extraction")
    stage.class_names = ["cat", "dog"]  # as stage.building() reads them from data/classes.json
    stage.save(model)
    assert relative_files(tmp_path) == inputs  # no metrics, no lock, no checkpoint, no model: process 0 writes them


def test_one_host_ignores_a_cluster_in_the_environment_and_writes_everything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in SECOND_PROCESS.items():
        monkeypatch.setenv(name, value)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, SIZE, SIZE, 3)).astype(np.uint8), np.arange(20) % 2
    batches = ArrayBatches(images, labels, BATCH)
    assert len(batches) == 3 and [len(batches[index][0]) for index in range(3)] == [8, 8, 4]  # whole batches
    model = pooled_logistic()
    fit(model, "train_demo", (images, labels), (images, labels), epochs=1, batch_size=BATCH, seed=0, resume=True)
    assert (tmp_path / "metrics/train_demo/metrics.json").is_file()
    assert (tmp_path / "metrics/train_demo/plots/metrics/train/loss.tsv").is_file()

"""classifier/models/training.py: fit with dvclive and the best epoch,
resuming from per-epoch checkpoints, seeding, devices and precision (model_scope)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # disable_op_determinism is not public

from classifier.core.backend import set_seed
from classifier.core.cli import StageError
from classifier.core.layout import CHECKPOINTS_DIR, stage_metrics_dir
from classifier.core.params import load_params
from classifier.core.schema import AugmentationParams, RunParams
from classifier.models.assembly import compile_model, small_convnet
from classifier.models.augmentation import augmentation, with_augmentation
from classifier.models.batches import ArrayBatches
from classifier.models.checkpoints import seed_states
from classifier.models.training import fit, model_scope

ROOT = Path(__file__).resolve().parents[2]


# --- fit ----------------------------------------------------------------------------------

EPOCHS = 8


def noisy_problem():
    """A linear problem whose validation labels are 30% flipped: as the weights grow, validation
    loss first falls, then rises (the flipped rows get confidently wrong), so the best epoch
    is neither the first nor the last."""
    rng = np.random.default_rng(0)
    direction = np.array([1.0, -2.0, 0.5, 1.5], dtype=np.float32)
    train_x = rng.normal(size=(64, 4)).astype(np.float32)
    val_x = rng.normal(size=(64, 4)).astype(np.float32)
    train_y = (train_x @ direction > 0).astype(np.uint8)
    val_y = (val_x @ direction > 0).astype(np.uint8)
    flipped = rng.permutation(64)[:19]
    val_y[flipped] = 1 - val_y[flipped]
    return train_x, train_y, val_x, val_y


def tiny_model(learning_rate: float, hidden: int = 0, dropout: float = 0.0) -> keras.Model:
    layers = [keras.Input(shape=(4,))]
    if hidden:
        layers += [keras.layers.Dense(hidden, activation="relu"), keras.layers.Dropout(dropout)]
    model = keras.Sequential([*layers, keras.layers.Dense(1, activation="sigmoid")])
    compile_model(model, learning_rate)
    return model


def read_tsv(path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file, delimiter="\t"))


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


# --- set_seed -----------------------------------------------------------------------------


def train_weights(seed: int) -> list[np.ndarray]:
    set_seed(seed)
    train_x, train_y, _, _ = noisy_problem()
    model = tiny_model(learning_rate=0.01, hidden=8, dropout=0.5)  # random init and dropout
    model.fit(ArrayBatches(train_x, train_y, 16, seed=seed), epochs=2, shuffle=False, verbose=0)
    return model.get_weights()


def test_set_seed_makes_training_repeatable():
    first, again, other = train_weights(0), train_weights(0), train_weights(1)
    assert len(first) == len(again) == 4
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


# --- resuming an interrupted fit ------------------------------------------------------------


class Interrupted(Exception):
    """Stands in for a stage killed between two epochs."""


class Watch(keras.callbacks.Callback):
    """Runs after EpochLog, so after its checkpoint: keeps each epoch's weights, stops after `stop_after` epochs."""

    def __init__(self, stop_after: int | None):
        super().__init__()
        self.stop_after, self.weights = stop_after, []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        if epoch + 1 == self.stop_after:
            raise Interrupted(f"after epoch {epoch + 1}")


def watched_fit(model, train, validation, *, stop_after: int | None = None, **settings) -> tuple[dict | None, Watch]:
    """training.fit on stage "demo" with a Watch after its callbacks: (summary, or None when interrupted; the Watch)."""
    watch = Watch(stop_after)
    keras_fit = keras.Model.fit

    def fit_watched(self, *args, callbacks=(), **kwargs):
        return keras_fit(self, *args, callbacks=[*callbacks, watch], **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", fit_watched)
        if stop_after is None:
            return fit(model, "demo", train, validation, **settings), watch
        with pytest.raises(Interrupted):
            fit(model, "demo", train, validation, **settings)
        return None, watch


def same_arrays(one: list[np.ndarray], other: list[np.ndarray]) -> bool:
    return len(one) == len(other) and all(np.array_equal(a, b) for a, b in zip(one, other))


def checkpoint_state() -> dict:
    return json.loads((CHECKPOINTS_DIR / "demo" / "state.json").read_text())


RESUME_EPOCHS = 5
AUGMENT = AugmentationParams(
    rotation_degrees=40, width_shift=0.2, height_shift=0.2, shear=0.2, zoom=0.2, horizontal_flip=True
)


def image_splits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """24 train and 8 validation random uint8 48x48 images with random labels."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (24, 48, 48, 3), dtype=np.uint8), rng.integers(0, 2, 24).astype(np.uint8)
    validation = rng.integers(0, 256, (8, 48, 48, 3), dtype=np.uint8), rng.integers(0, 2, 8).astype(np.uint8)
    return train, validation


def augmented_convnet() -> keras.Model:
    """The stages' augmented small convnet at 48x48: random init, augmentation and dropout, each with a seed state."""
    set_seed(3)
    model = with_augmentation(small_convnet(48, 0.5, 2), augmentation(AUGMENT, 3))
    compile_model(model, 1e-3)
    return model


CONVNET_SETTINGS = {"epochs": RESUME_EPOCHS, "batch_size": 8, "seed": 3, "resume": True}


def val_loss_rows(folder) -> list[dict]:
    return read_tsv(folder / stage_metrics_dir("demo") / "plots" / "metrics" / "val" / "loss.tsv")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The augmented convnet fitted for RESUME_EPOCHS epochs in one go, with resume on:
    (folder, model, summary, Watch)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        model = augmented_convnet()
        assert len(seed_states(model)) == 2, "augmentation and dropout"
        summary, watch = watched_fit(model, *image_splits(), **CONVNET_SETTINGS)
        assert not (CHECKPOINTS_DIR / "demo").exists()
    return folder, model, summary, watch


def test_a_resumed_fit_ends_bit_identical_to_an_uninterrupted_one(uninterrupted, tmp_path, monkeypatch, capsys):
    folder, model, summary, watch = uninterrupted
    monkeypatch.chdir(tmp_path)
    watched_fit(augmented_convnet(), *image_splits(), stop_after=2, **CONVNET_SETTINGS)
    state = checkpoint_state()
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert {path.name for path in (CHECKPOINTS_DIR / "demo").iterdir()} == {
        "state.json",
        "epoch-2.weights.h5",
        "epoch-2.npz",
    }, "only the last epoch's files are kept"
    capsys.readouterr()

    resumed = augmented_convnet()
    resumed_summary, resumed_watch = watched_fit(resumed, *image_splits(), **CONVNET_SETTINGS)
    out = capsys.readouterr().out
    assert f"demo: resuming after epoch 2/{RESUME_EPOCHS}" in out
    assert "Epoch 1/" not in out and "Epoch 3/" in out
    assert len(resumed_watch.weights) == RESUME_EPOCHS - 2, "only the epochs left are trained"
    assert same_arrays(resumed_watch.weights[-1], watch.weights[-1]), "the last epoch's weights"
    assert same_arrays(resumed.get_weights(), model.get_weights()), "the best epoch's weights, which fit leaves"
    assert resumed_summary == summary
    assert val_loss_rows(tmp_path) == val_loss_rows(folder)
    assert len(val_loss_rows(tmp_path)) == RESUME_EPOCHS
    for name in ("metrics.json", "plots/metrics/train/loss.tsv", "plots/metrics/val/accuracy.tsv"):
        assert (tmp_path / stage_metrics_dir("demo") / name).read_text() == (
            folder / stage_metrics_dir("demo") / name
        ).read_text()
    assert not (CHECKPOINTS_DIR / "demo").exists(), "removed once the fit is done"


def dense_problem(seed: int = 0) -> tuple[keras.Model, tuple, tuple]:
    """A seeded tiny model with dropout (a seed state) and the noisy problem: quick to fit a few epochs."""
    set_seed(seed)
    train_x, train_y, val_x, val_y = noisy_problem()
    return tiny_model(learning_rate=0.05, hidden=8, dropout=0.5), (train_x, train_y), (val_x, val_y)


def flip_first_label(train):
    x, y = train
    y = y.copy()
    y[0] = 1 - y[0]
    return x, y


# Each a different start for the same stage: (build arguments, settings, a change in the folder).
OTHER_STARTS = {
    "other data": ({"data": flip_first_label}, {}, None),
    "other batch size": ({}, {"batch_size": 8}, None),
    "other seed": ({"seed": 1}, {"seed": 1}, None),
    "params.yaml edited": ({}, {}, ("params.yaml", "lr: 0.001\n")),
    "stage code edited": ({}, {}, ("stages/train_scratch.py", "# edited\n")),
}
DENSE_SETTINGS = {"epochs": 4, "batch_size": 16, "seed": 0, "resume": True}


@pytest.mark.parametrize("change", sorted(OTHER_STARTS))
def test_a_checkpoint_from_another_start_is_discarded_and_all_epochs_train(change, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    watched_fit(*dense_problem(), stop_after=2, **DENSE_SETTINGS)
    assert checkpoint_state()["epoch"] == 2
    capsys.readouterr()

    build, settings, edit = OTHER_STARTS[change]
    model, train, validation = dense_problem(build.get("seed", 0))
    train = build.get("data", lambda arrays: arrays)(train)
    if edit:
        (tmp_path / edit[0]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / edit[0]).write_text(edit[1])
    _, watch = watched_fit(model, train, validation, **{**DENSE_SETTINGS, **settings})
    out = capsys.readouterr().out
    assert "discarding the checkpoint" in out
    assert "resuming" not in out and "Epoch 1/4" in out
    assert len(watch.weights) == DENSE_SETTINGS["epochs"]
    assert len(val_loss_rows(tmp_path)) == DENSE_SETTINGS["epochs"]
    assert not (CHECKPOINTS_DIR / "demo").exists()


def test_the_same_start_resumes_from_the_checkpoint(tmp_path, monkeypatch, capsys):
    """The control for the test above: nothing changed, so the checkpoint is used."""
    monkeypatch.chdir(tmp_path)
    watched_fit(*dense_problem(), stop_after=2, **DENSE_SETTINGS)
    capsys.readouterr()
    _, watch = watched_fit(*dense_problem(), **DENSE_SETTINGS)
    out = capsys.readouterr().out
    assert "resuming after epoch 2/4" in out and "discarding" not in out
    assert len(watch.weights) == 2
    assert len(val_loss_rows(tmp_path)) == DENSE_SETTINGS["epochs"]


def test_without_resume_no_checkpoint_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = {**DENSE_SETTINGS, "resume": False}
    watched_fit(*dense_problem(), stop_after=2, **settings)  # killed after EpochLog would have saved
    assert not (CHECKPOINTS_DIR / "demo").exists()
    _, watch = watched_fit(*dense_problem(), **settings)
    assert len(watch.weights) == DENSE_SETTINGS["epochs"], "a rerun starts over"
    assert not (CHECKPOINTS_DIR / "demo").exists()


def test_without_resume_an_old_checkpoint_is_not_used(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    watched_fit(*dense_problem(), stop_after=2, **DENSE_SETTINGS)
    capsys.readouterr()
    _, watch = watched_fit(*dense_problem(), **{**DENSE_SETTINGS, "resume": False})
    assert "resuming" not in capsys.readouterr().out
    assert len(watch.weights) == DENSE_SETTINGS["epochs"]


# --- model_scope ----------------------------------------------------------------------------


def run_params(**changes) -> RunParams:
    """params.yaml's `training` section, on one device in float32 unless `changes` say otherwise."""
    defaults = {
        "resume": False,
        "deterministic": True,
        "distribute": "none",
        "mixed_precision": False,
        "jit_compile": False,
    }
    return load_params(ROOT / "params.yaml").training.model_copy(update={**defaults, **changes})


@pytest.fixture
def float32_afterwards():
    """model_scope sets the global dtype policy; put it back for the other tests."""
    yield
    keras.mixed_precision.set_global_policy("float32")


def scoped_dense_model(run: RunParams) -> keras.Model:
    with model_scope(run, seed=0):
        return tiny_model(learning_rate=0.05, hidden=8, dropout=0.5)


def test_mirrored_scope_builds_the_model_under_mirrored_strategy_and_fit_trains_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = scoped_dense_model(run_params(distribute="mirrored"))
    strategy = model.distribute_strategy
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == max(1, len(tf.config.list_physical_devices("GPU")))  # the CPU here
    assert "MirroredStrategy with" in capsys.readouterr().out
    train_x, train_y, val_x, val_y = noisy_problem()
    summary = fit(model, "demo", (train_x, train_y), (val_x, val_y), epochs=2, batch_size=16, seed=0, resume=False)
    assert summary["best_epoch"] in (1, 2) and math.isfinite(summary["val"]["loss"])
    assert len(val_loss_rows(tmp_path)) == 2


def test_default_scope_is_no_mirrored_strategy(capsys):
    model = scoped_dense_model(run_params(distribute="none"))
    assert not isinstance(model.distribute_strategy, tf.distribute.MirroredStrategy)
    assert "MirroredStrategy" not in capsys.readouterr().out


def test_a_mirrored_fit_resumes_bit_identical(tmp_path, monkeypatch, capsys):
    mirrored, settings = run_params(distribute="mirrored"), {**DENSE_SETTINGS, "epochs": 3}
    train_x, train_y, val_x, val_y = noisy_problem()
    splits = (train_x, train_y), (val_x, val_y)
    monkeypatch.chdir(tmp_path)
    model = scoped_dense_model(mirrored)
    watched_fit(model, *splits, **settings)
    (tmp_path / "interrupted").mkdir()
    monkeypatch.chdir(tmp_path / "interrupted")
    watched_fit(scoped_dense_model(mirrored), *splits, stop_after=1, **settings)
    capsys.readouterr()
    resumed = scoped_dense_model(mirrored)
    watched_fit(resumed, *splits, **settings)
    assert "resuming after epoch 1/3" in capsys.readouterr().out
    assert same_arrays(resumed.get_weights(), model.get_weights())


def test_mixed_precision_scope_computes_in_float16_with_a_float32_output(float32_afterwards):
    with model_scope(run_params(mixed_precision=True), seed=0):
        model = small_convnet(48, 0.5, 2)
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convolutions) == 4
    for layer in convolutions:
        assert layer.dtype_policy.name == "mixed_float16"
        assert layer.compute_dtype == "float16" and layer.variable_dtype == "float32"
    output = model.get_layer("predictions")
    assert output.dtype_policy.name == "float32" and output.compute_dtype == "float32"
    assert model(np.zeros((1, 48, 48, 3), np.float32)).dtype == tf.float32


def test_full_precision_scope_computes_in_float32(float32_afterwards):
    keras.mixed_precision.set_global_policy("mixed_float16")  # whatever the process had before
    with model_scope(run_params(mixed_precision=False), seed=0):
        model = small_convnet(48, 0.5, 2)
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    assert keras.mixed_precision.global_policy().name == "mixed_float16"  # put back on leaving the scope


def test_a_fit_whose_validation_loss_is_never_a_number_stops_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_x, train_y, val_x, val_y = noisy_problem()
    val_x = np.full_like(val_x, np.nan)
    with pytest.raises(StageError, match="not a number in any epoch.*lower the learning rate"):
        fit(tiny_model(0.1), "demo", (train_x, train_y), (val_x, val_y), epochs=2, batch_size=16, seed=0, resume=True)


def test_without_determinism_jit_compile_asked_in_the_scope_is_kept(op_determinism_off):
    run = run_params(deterministic=False, jit_compile=True)
    with model_scope(run, seed=0):
        model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1, activation="sigmoid")])
        compile_model(model, 0.01, run.jit_compile)
    assert model.jit_compile is True
    assert not tf_config.is_op_determinism_enabled()


def test_deterministic_scope_turns_op_determinism_on(op_determinism_off):
    with model_scope(run_params(deterministic=True), seed=0):
        pass
    assert tf_config.is_op_determinism_enabled()


# --- class weights ------------------------------------------------------------------------------


def test_balanced_class_weights_make_every_class_weigh_the_same():
    from classifier.models.training import class_weights

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

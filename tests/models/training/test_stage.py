"""classifier/models/training/stage.py: what every training stage does. model_scope seeds (training is
repeatable), builds on the devices asked for (TensorFlow's MirroredStrategy, which fits and resumes
bit-identical) and in the precision asked for (mixed float16 with a float32 output), and sets op determinism;
TrainingStage.compile gives the book's RMSprop and loss by default and a schedule over the stage's epochs of
as many steps as its batches; and training.distribute: multi_host, a training stage run as two local JAX
processes of one cluster (`classifier local-cluster`), trains as one process does at the same global batch,
with one set of outputs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # disable_op_determinism is not public

from classifier.core.backend import set_seed
from classifier.core.errors import StageError
from classifier.core.params import load_params
from classifier.core.paths import MODEL_STAGES, training_summary
from classifier.core.schema import RunParams
from classifier.intake.prepared.arrays import save_prepared
from classifier.models import architecture, saving
from classifier.models.saving import load_model
from classifier.models.training.batches import ArrayBatches
from classifier.models.training.compiling import compile_model, one_hot_classes
from classifier.models.training.fitting import fit
from classifier.models.training.stage import TrainingStage, model_scope
from tests.support.files import relative_files
from tests.support.models import constant_model, pooled_base, tiny_model
from tests.support.params import BOOK_OPTIMIZER, write_params
from tests.support.paths import ROOT
from tests.support.training import DENSE_SETTINGS, noisy_problem, same_arrays, val_loss_rows, watched_fit

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
        model = architecture.small_convnet(48, 0.5, 2)
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
        model = architecture.small_convnet(48, 0.5, 2)
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    assert keras.mixed_precision.global_policy().name == "mixed_float16"  # put back on leaving the scope


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


# --- TrainingStage.compile ------------------------------------------------------------------


def compiled_by_stage(model: keras.Model, learning_rate: float, params, model_name: str, train) -> None:
    """TrainingStage.compile as the stage that trains `model_name` runs it, on the training data `train`
    (in the current folder: data/classes.json is written for it)."""
    Path("data").mkdir(exist_ok=True)
    Path("data/classes.json").write_text(json.dumps(["cat", "dog"]))
    stage = TrainingStage(params, model_name, data=lambda: (train, train))
    with stage.building():
        stage.compile(model, learning_rate)


@pytest.mark.parametrize("classes, loss", [(2, "binary_crossentropy"), (3, "sparse_categorical_crossentropy")])
def test_the_book_defaults_compile_today_s_rmsprop_at_a_constant_rate_and_loss(work, classes, loss):
    params = load_params(ROOT / "params.yaml")
    assert params.optimizer._section == BOOK_OPTIMIZER and params.training.label_smoothing == 0.0
    assert params.evaluate.tta is False
    staged, plain = architecture.small_convnet(16, 0.0, classes), architecture.small_convnet(16, 0.0, classes)
    images, labels = np.zeros((10, 16, 16, 3), np.uint8), np.zeros(10, np.uint8)
    compiled_by_stage(staged, 1e-4, params, "scratch", (images, labels))
    compile_model(plain, 1e-4)  # as before the knobs
    assert type(staged.optimizer) is keras.optimizers.RMSprop
    unnamed = [{**model.optimizer.get_config(), "name": None} for model in (staged, plain)]  # names are numbered
    assert unnamed[0] == unnamed[1]
    assert staged.optimizer.get_config()["weight_decay"] is None
    assert staged.optimizer.get_config()["learning_rate"] == pytest.approx(1e-4)  # a number: no schedule
    assert staged.loss == plain.loss == loss
    assert one_hot_classes(staged) is None  # integer labels, as before


def test_a_stage_s_schedule_spans_its_epochs_of_as_many_steps_as_its_batches(work):
    cosine = {"optimizer.schedule": "cosine", "optimizer.warmup_epochs": 1}
    params = load_params(write_params(work, {**cosine, "train_frozen.epochs": 5, "train_frozen.batch_size": 4}))
    train = (np.zeros((10, 2), np.float32), np.zeros(10, np.uint8))
    model = constant_model([0.5])
    compiled_by_stage(model, 2e-5, params, "frozen_augmented", train)
    steps = len(ArrayBatches(*train, 4))
    assert steps == 3
    schedule = model.optimizer._learning_rate  # the schedule itself (learning_rate is its current value)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert (schedule.warmup_steps, schedule.decay_steps) == (1 * steps, (5 - 1) * steps)
    assert schedule.warmup_target == pytest.approx(2e-5)
    fine_tune = load_params(write_params(work, {"optimizer.name": "adamw", "optimizer.weight_decay": 0.01}))
    compiled_by_stage(model, fine_tune.lr, fine_tune, "fine_tuned", train)
    assert type(model.optimizer) is keras.optimizers.AdamW
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-5)  # fine_tune's rate: the top-level lr


# --- training.distribute: multi_host ------------------------------------------------------------


SIZE, BATCH = 16, 8
COUNTS = {"train": 24, "validation": 12}  # 3 batches of 8; validation's last batch of 4 splits 2 + 2


def workspace(folder: Path, distribute: str) -> Path:
    """Prepared images in shards of 5 rows at most, a tiny random base, params for train_frozen."""
    rng = np.random.default_rng(0)
    for split, count in COUNTS.items():
        labels = np.arange(count) % 2
        images = rng.normal(90 + 80 * labels[:, None, None, None], 40, (count, SIZE, SIZE, 3)).clip(0, 255)
        save_prepared(split, images.astype(np.uint8), labels, folder / "data/prepared", shard_bytes=5 * SIZE * SIZE * 3)
    (folder / "data/classes.json").write_text(json.dumps(["dark", "bright"]))
    saving.save_model(pooled_base(), folder / "models/base.keras")
    changes = {"data.image_size": SIZE, "base.weights": None, "train_frozen.epochs": 2}
    write_params(folder, {**changes, "train_frozen.batch_size": BATCH, "training.distribute": distribute})
    return folder


def train_frozen_in(folder: Path, *launcher: str) -> subprocess.CompletedProcess:
    """stages.train_frozen run in `folder` on JAX (as `launcher` runs it, if given); it must succeed."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    command = [*launcher, sys.executable, "-m", "stages.train_frozen"]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.e2e
def test_two_local_processes_train_the_stage_as_one_process_does(tmp_path):
    one = workspace(tmp_path / "one", "none")
    two = workspace(tmp_path / "two", "multi_host")
    before = relative_files(two)
    train_frozen_in(one)
    result = train_frozen_in(two, sys.executable, "-m", "classifier", "local-cluster", "2", "--")

    assert "train_frozen: process 0 of 2 reads 4 rows of every batch" in result.stdout
    assert "DataParallel over 2 device(s) of every process" in result.stdout
    summaries = [json.loads((folder / "metrics/train_frozen/metrics.json").read_text()) for folder in (one, two)]
    assert summaries[0]["epochs_run"] == summaries[1]["epochs_run"] == 2
    assert summaries[0]["val"]["loss"] == pytest.approx(summaries[1]["val"]["loss"], abs=1e-5)
    steps = [
        (folder / "metrics/train_frozen/plots/metrics/train/loss.tsv").read_text().splitlines() for folder in (one, two)
    ]
    assert len(steps[0]) == len(steps[1]) == 3  # a header and one row per epoch
    weights = [saving.load_model(folder / "models/frozen_augmented.keras").get_weights() for folder in (one, two)]
    assert len(weights[0]) == len(weights[1]) == 8  # the preprocessing, the base's convolution, the head's two layers
    for ours, theirs in zip(*weights, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert (
        relative_files(two) - before == relative_files(one) - before
    )  # one set of outputs, nothing left by the second process
    assert not (two / ".dvc/tmp/checkpoints/train_frozen").exists()


# --- skipped: models.<name> false ------------------------------------------------------------------


def test_a_model_that_models_skipped_gets_placeholders_that_load_model_refuses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {"models.scratch": False, "models.feature_extraction": False})
    Path("models").mkdir()
    for name in MODEL_STAGES:  # models of an earlier run, replaced by the placeholders
        Path(f"models/{name}.keras").write_bytes(b"an earlier run's model")
    params = load_params()
    assert [name for name in MODEL_STAGES if TrainingStage(params, name).skipped()] == ["scratch", "feature_extraction"]
    placeholder = Path("models/feature_extraction.keras").read_text()
    assert placeholder == "not trained: models.feature_extraction is false in params.yaml\n"  # not empty: DVC warns
    assert json.loads(training_summary("train_classifier").read_text()) == {"skipped": True}
    curves = Path("metrics/train_scratch/plots/metrics")
    assert sorted(str(path.relative_to(curves)) for path in curves.rglob("*.tsv")) == [
        "train/accuracy.tsv",
        "train/loss.tsv",
        "val/accuracy.tsv",
        "val/loss.tsv",
    ]
    assert (curves / "val/loss.tsv").read_text() == "step\tloss\n"
    with pytest.raises(
        StageError, match=r"^models/scratch.keras is a placeholder: that model is not trained \(models.scratch"
    ):
        load_model(Path("models/scratch.keras"))

"""classifier/models/training/compiling.py: compile_model with the book's RMSprop and the cross-entropy that
fits the output layer (binary for one sigmoid unit, sparse categorical for a softmax), jit_compile passed
through; and the modern recipe's knobs, each one setting away from the book: the optimizer (RMSprop, Adam,
AdamW with decoupled weight decay), the cosine learning-rate schedule with warm-up, and label smoothing (a
smoothed softmax on one-hot labels). Also the knobs' ranges and rules as params.yaml is loaded
(classifier.core.rules), one line each."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from classifier.core.errors import ParamsError
from classifier.core.params import load_params
from classifier.core.schema import OptimizerParams
from classifier.models import architecture, saving
from classifier.models.training import compiling
from classifier.models.training.compiling import compile_model
from classifier.models.training.fitting import fit
from tests.support.models import constant_model, tiny_model
from tests.support.params import BOOK_OPTIMIZER, write_params


def dense_model() -> keras.Model:
    return keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1, activation="sigmoid")])


def optimizer(**changes) -> OptimizerParams:
    return BOOK_OPTIMIZER.model_copy(update=changes)


# --- the book's compile --------------------------------------------------------------------------------------


def test_compile_model_passes_jit_compile_through(op_determinism_off):
    default, asked, declined = dense_model(), dense_model(), dense_model()
    compile_model(default, 1e-3)
    compile_model(asked, 1e-3, jit_compile=True)
    compile_model(declined, 1e-3, jit_compile=False)
    assert default.jit_compile is False
    assert asked.jit_compile is True
    assert declined.jit_compile is False


def test_compile_model_is_rmsprop_with_binary_cross_entropy():
    model = tiny_model(1e-3)
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.loss == "binary_crossentropy"


def test_compile_model_picks_the_loss_from_the_output_layer(params):
    binary, categorical = architecture.small_convnet(48, 0.0, 2), architecture.small_convnet(48, 0.0, 10)
    compile_model(binary, 1e-3)
    compile_model(categorical, 1e-3)
    assert binary.loss == "binary_crossentropy"
    assert categorical.loss == "sparse_categorical_crossentropy"


def test_a_softmax_model_trains_on_integer_labels():
    keras.utils.set_random_seed(0)
    model = architecture.small_convnet(16, 0.0, 3)
    compile_model(model, 1e-3)
    images = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype(np.float32)
    history = model.fit(images, np.array([0, 1, 2, 0, 1, 2]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "accuracy" in history.history


# --- the optimizer -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, weight_decay, kind",
    [
        ("rmsprop", 0.0, keras.optimizers.RMSprop),
        ("adam", 0.0, keras.optimizers.Adam),
        ("adamw", 0.0, keras.optimizers.AdamW),
        ("adamw", 0.05, keras.optimizers.AdamW),
    ],
)
def test_the_optimizer_and_its_weight_decay_per_setting(name, weight_decay, kind):
    model = constant_model([0.5])
    compile_model(model, 1e-3, optimizer=optimizer(name=name, weight_decay=weight_decay))
    assert type(model.optimizer) is kind
    expected = weight_decay if name == "adamw" else None
    assert model.optimizer.weight_decay == (pytest.approx(expected) if expected is not None else None)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_adamw_decays_the_weights_by_rate_times_decay_each_step_decoupled_from_the_gradient():
    """With an input of zeros the kernel's gradient is 0, so Adam moves it not at all: what changes it is the
    decoupled decay alone, w <- w (1 - lr x weight_decay) = w x (1 - 0.1 x 0.5)."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    kernel = np.array([[0.4], [-2.0]], np.float32)
    model.layers[0].set_weights([kernel, np.zeros(1, np.float32)])
    compile_model(model, 0.1, optimizer=optimizer(name="adamw", weight_decay=0.5))
    model.train_on_batch(np.zeros((4, 2), np.float32), np.array([1, 0, 1, 1], np.float32))
    np.testing.assert_allclose(model.layers[0].get_weights()[0], kernel * 0.95, rtol=1e-6)
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    plain.layers[0].set_weights([kernel, np.zeros(1, np.float32)])
    compile_model(plain, 0.1, optimizer=optimizer(name="adamw"))  # weight_decay 0: Adam
    plain.train_on_batch(np.zeros((4, 2), np.float32), np.array([1, 0, 1, 1], np.float32))
    np.testing.assert_array_equal(plain.layers[0].get_weights()[0], kernel)


# --- the schedule -------------------------------------------------------------------------------------------


def schedule_at(schedule, step: int) -> float:
    return float(schedule(step))


def test_cosine_warms_up_linearly_then_decays_to_zero_at_the_last_epoch():
    """Peak 1e-3, 10 epochs of 5 steps, 2 of them warm-up: 10 steps up from 0, then 40 of cosine decay."""
    schedule = compiling.learning_rate_schedule(1e-3, "cosine", 2, 10, 5)
    expected = {
        0: 0.0,  # the warm-up starts from 0
        5: 0.5e-3,  # half-way up
        10: 1e-3,  # the end of warm-up: the peak
        20: 1e-3 * 0.5 * (1 + math.cos(math.pi / 4)),  # a quarter of the decay: 0.853553e-3
        30: 0.5e-3,  # mid-way through the decay: 0.5 (1 + cos(pi / 2))
        50: 0.0,  # the end of the last epoch
        60: 0.0,  # past it (a stage never gets there)
    }
    for step, rate in expected.items():
        assert schedule_at(schedule, step) == pytest.approx(rate, rel=1e-5, abs=1e-10), step


def test_cosine_without_warm_up_starts_at_the_peak():
    schedule = compiling.learning_rate_schedule(1e-3, "cosine", 0, 10, 5)
    assert [schedule_at(schedule, step) for step in (0, 25, 50)] == pytest.approx([1e-3, 0.5e-3, 0.0], abs=1e-10)
    assert compiling.learning_rate_schedule(1e-3, "constant", 0, 10, 5) == 1e-3


def test_a_model_compiled_with_the_knobs_opens_in_stock_keras_with_them(tmp_path):
    """train_scratch saves the model it compiled: its optimizer, schedule and loss are Keras' own classes."""
    model = architecture.small_convnet(16, 0.0, 3)
    cosine = optimizer(name="adamw", weight_decay=0.05, schedule="cosine", warmup_epochs=2)
    compile_model(model, 1e-3, optimizer=cosine, label_smoothing=0.1, epochs=10, steps_per_epoch=7)
    model.optimizer.build(model.trainable_variables)  # as after training: its variables are saved too
    saving.save_model(model, tmp_path / "scratch.keras", ["a", "b", "c"])
    loaded = keras.models.load_model(tmp_path / "scratch.keras", safe_mode=True)
    assert type(loaded.optimizer) is keras.optimizers.AdamW and loaded.optimizer.weight_decay == pytest.approx(0.05)
    schedule = loaded.optimizer._learning_rate
    assert (schedule.warmup_steps, schedule.decay_steps) == (14, 56)
    assert isinstance(loaded.loss, keras.losses.CategoricalCrossentropy)
    assert loaded.loss.get_config()["label_smoothing"] == pytest.approx(0.1)


# --- label smoothing ----------------------------------------------------------------------------------------


def val_loss(tmp_path, monkeypatch, model, labels, label_smoothing: float) -> dict:
    """fit() for one epoch at a rate too small to move a weight: the logged validation loss and accuracy."""
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    compile_model(model, 1e-10, label_smoothing=label_smoothing)
    x = np.random.default_rng(0).normal(size=(len(labels), 2)).astype(np.float32)
    summary = fit(model, "demo", (x, labels), (x, labels), epochs=1, batch_size=4, seed=0, resume=False)
    return summary["val"]


def test_label_smoothing_of_the_sigmoid_moves_each_target_by_half_of_it(tmp_path, monkeypatch):
    """P(label 1) = 0.8 for every image, labels 1, 0, 1, 1, smoothing 0.2: targets 0.9 and 0.1.
    Plain: (3 x -ln 0.8 - ln 0.2) / 4 = 0.569717. Smoothed: the label-1 rows -(0.9 ln 0.8 + 0.1 ln 0.2)
    = 0.361771, the label-0 row -(0.1 ln 0.8 + 0.9 ln 0.2) = 1.470812: (3 x 0.361771 + 1.470812) / 4 = 0.639032."""
    labels = np.array([1, 0, 1, 1], np.uint8)
    plain = val_loss(tmp_path / "plain", monkeypatch, constant_model([0.8]), labels, 0.0)
    smoothed = val_loss(tmp_path / "smoothed", monkeypatch, constant_model([0.8]), labels, 0.2)
    assert plain["loss"] == pytest.approx(0.569717, abs=2e-6)
    assert smoothed["loss"] == pytest.approx(0.639032, abs=2e-6)
    assert plain["accuracy"] == smoothed["accuracy"] == 0.75  # scored against the labels themselves


def test_label_smoothing_of_the_softmax_trains_on_one_hot_labels(tmp_path, monkeypatch):
    """P = (0.7, 0.2, 0.1) for every image, labels 0, 1, 2, 0, smoothing 0.3 over 3 classes: each target is
    0.7 x one-hot + 0.1. Plain: (2 x -ln 0.7 - ln 0.2 - ln 0.1) / 4 = 1.156343; smoothed:
    0.7 x 1.156343 + 0.3 x (-ln 0.7 - ln 0.2 - ln 0.1) / 3 = 0.809440 + 0.426870 = 1.236310."""
    labels = np.array([0, 1, 2, 0], np.uint8)
    plain_model, smoothed_model = constant_model([0.7, 0.2, 0.1]), constant_model([0.7, 0.2, 0.1])
    plain = val_loss(tmp_path / "plain", monkeypatch, plain_model, labels, 0.0)
    smoothed = val_loss(tmp_path / "smoothed", monkeypatch, smoothed_model, labels, 0.3)
    assert compiling.one_hot_classes(plain_model) is None and compiling.one_hot_classes(smoothed_model) == 3
    assert plain["loss"] == pytest.approx(1.156343, abs=2e-6)
    assert smoothed["loss"] == pytest.approx(1.236310, abs=2e-6)
    assert plain["accuracy"] == smoothed["accuracy"] == 0.5  # categorical accuracy on the one-hot rows


# --- params: ranges and rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"optimizer.name": "sgd"}, r"optimizer.name"),
        ({"optimizer.weight_decay": 2}, r"optimizer.weight_decay"),
        ({"optimizer.warmup_epochs": -1}, r"optimizer.warmup_epochs"),
        ({"training.label_smoothing": 0.6}, r"training.label_smoothing"),
        ({"evaluate.tta": "yes"}, r"evaluate.tta"),
        (
            {"optimizer.weight_decay": 0.01},
            r"^params.yaml: optimizer.weight_decay is 0.01 but optimizer.name is rmsprop: decoupled weight decay is "
            r"AdamW's; set optimizer.name: adamw, or optimizer.weight_decay: 0$",
        ),
        (
            {"optimizer.name": "adam", "optimizer.weight_decay": 0.01},
            r"optimizer.weight_decay is 0.01 but optimizer.name is adam",
        ),
        (
            {"optimizer.warmup_epochs": 2},
            r"^params.yaml: optimizer.warmup_epochs is 2 but optimizer.schedule is constant: warm-up is part of the "
            r"cosine schedule; set optimizer.schedule: cosine, or optimizer.warmup_epochs: 0$",
        ),
        (
            {"optimizer.schedule": "cosine", "optimizer.warmup_epochs": 30},
            r"^params.yaml: optimizer.warmup_epochs 30 leaves train_scratch \(train_scratch.epochs: 30\) no epoch to "
            r"decay over; lower optimizer.warmup_epochs below 30, or raise train_scratch.epochs$",
        ),
    ],
)
def test_out_of_range_and_inconsistent_knobs_are_one_line(tmp_path, changes, message):
    with pytest.raises(ParamsError, match=message) as info:
        load_params(write_params(tmp_path, changes))
    assert "\n" not in str(info.value)


def test_warm_up_is_checked_against_the_stages_that_train_only(tmp_path):
    changes = {"optimizer.schedule": "cosine", "optimizer.warmup_epochs": 30, "training.label_smoothing": 0.5}
    skipping = {"models.scratch": False, "models.feature_extraction": False, "models.frozen_augmented": False}
    skipping |= {"models.fine_tuned": False}  # left: train_scratch_augmented, 100 epochs
    params = load_params(write_params(tmp_path, changes | skipping))
    assert params.optimizer.warmup_epochs == 30 and params.training.label_smoothing == 0.5
    with pytest.raises(ParamsError, match=r"leaves train_scratch_augmented \(train_scratch_augmented.epochs: 30\)"):
        load_params(write_params(tmp_path, changes | skipping | {"train_scratch_augmented.epochs": 30}))

"""The modern recipe's knobs, each one setting away from the book: the optimizer (RMSprop, Adam, AdamW with
decoupled weight decay), the cosine learning-rate schedule with warm-up, label smoothing, test-time
augmentation (a mirrored view), and BatchNormalization kept in inference mode while fine-tuning."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import batchnorm_base
from PIL import Image

from classifier.core.params import ParamsError, load_params
from classifier.core.schema import HeadParams, OptimizerParams
from classifier.intake.images import decode_image
from classifier.intake.prepared import save_prepared
from classifier.models import assembly, graph, heads, saving, training
from classifier.models.batches import ArrayBatches
from classifier.models.checkpoints import Checkpoint
from classifier.models.prediction import predict_probabilities

ROOT = Path(__file__).resolve().parents[2]
BOOK = OptimizerParams(name="rmsprop", weight_decay=0.0, schedule="constant", warmup_epochs=0)


def optimizer(**changes) -> OptimizerParams:
    return BOOK.model_copy(update=changes)


def params_file(tmp_path: Path, changes: dict) -> Path:
    """params.yaml with {"section.key": value} changed, in tmp_path."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        place = raw
        for section in sections:
            place = place[section]
        place[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def constant_model(probabilities: list[float]) -> keras.Model:
    """Two inputs in, the same output for every row: sigmoid(bias) for one unit, softmax(bias) for more."""
    units = 1 if len(probabilities) == 1 else len(probabilities)
    p = np.array(probabilities, np.float64)
    bias = np.log(p / (1 - p)) if units == 1 else np.log(p)
    model = keras.Sequential([keras.Input((2,)), heads.output_layer(max(units, 2))])
    model.layers[-1].set_weights([np.zeros((2, units), np.float32), bias.astype(np.float32)])
    return model


# --- the book's defaults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("classes, loss", [(2, "binary_crossentropy"), (3, "sparse_categorical_crossentropy")])
def test_the_book_defaults_compile_today_s_rmsprop_at_a_constant_rate_and_loss(classes, loss):
    params = load_params(ROOT / "params.yaml")
    assert params.optimizer._section == BOOK and params.training.label_smoothing == 0.0
    assert params.evaluate.tta is False
    staged, plain = assembly.small_convnet(16, 0.0, classes), assembly.small_convnet(16, 0.0, classes)
    images, labels = np.zeros((10, 16, 16, 3), np.uint8), np.zeros(10, np.uint8)
    training.compile_stage(staged, 1e-4, params.train_scratch, params, (images, labels))
    assembly.compile_model(plain, 1e-4)  # as before the knobs
    assert type(staged.optimizer) is keras.optimizers.RMSprop
    unnamed = [{**model.optimizer.get_config(), "name": None} for model in (staged, plain)]  # names are numbered
    assert unnamed[0] == unnamed[1]
    assert staged.optimizer.get_config()["weight_decay"] is None
    assert staged.optimizer.get_config()["learning_rate"] == pytest.approx(1e-4)  # a number: no schedule
    assert staged.loss == plain.loss == loss
    assert assembly.one_hot_classes(staged) is None  # integer labels, as before


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
    assembly.compile_model(model, 1e-3, optimizer=optimizer(name=name, weight_decay=weight_decay))
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
    assembly.compile_model(model, 0.1, optimizer=optimizer(name="adamw", weight_decay=0.5))
    model.train_on_batch(np.zeros((4, 2), np.float32), np.array([1, 0, 1, 1], np.float32))
    np.testing.assert_allclose(model.layers[0].get_weights()[0], kernel * 0.95, rtol=1e-6)
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    plain.layers[0].set_weights([kernel, np.zeros(1, np.float32)])
    assembly.compile_model(plain, 0.1, optimizer=optimizer(name="adamw"))  # weight_decay 0: Adam
    plain.train_on_batch(np.zeros((4, 2), np.float32), np.array([1, 0, 1, 1], np.float32))
    np.testing.assert_array_equal(plain.layers[0].get_weights()[0], kernel)


# --- the schedule -------------------------------------------------------------------------------------------


def schedule_at(schedule, step: int) -> float:
    return float(schedule(step))


def test_cosine_warms_up_linearly_then_decays_to_zero_at_the_last_epoch():
    """Peak 1e-3, 10 epochs of 5 steps, 2 of them warm-up: 10 steps up from 0, then 40 of cosine decay."""
    schedule = assembly.learning_rate_schedule(1e-3, "cosine", 2, 10, 5)
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
    schedule = assembly.learning_rate_schedule(1e-3, "cosine", 0, 10, 5)
    assert [schedule_at(schedule, step) for step in (0, 25, 50)] == pytest.approx([1e-3, 0.5e-3, 0.0], abs=1e-10)
    assert assembly.learning_rate_schedule(1e-3, "constant", 0, 10, 5) == 1e-3


def test_a_stage_s_schedule_spans_its_epochs_of_as_many_steps_as_its_batches(tmp_path):
    params = load_params(params_file(tmp_path, {"optimizer.schedule": "cosine", "optimizer.warmup_epochs": 1}))
    settings = params.train_frozen.model_copy(update={"epochs": 5, "batch_size": 4})
    train = (np.zeros((10, 2), np.float32), np.zeros(10, np.uint8))
    model = constant_model([0.5])
    training.compile_stage(model, 2e-5, settings, params, train)
    steps = len(ArrayBatches(*train, 4))
    assert steps == 3
    schedule = model.optimizer._learning_rate  # the schedule itself (learning_rate is its current value)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert (schedule.warmup_steps, schedule.decay_steps) == (1 * steps, (5 - 1) * steps)
    assert schedule.warmup_target == pytest.approx(2e-5)
    fine_tune = load_params(params_file(tmp_path, {"optimizer.name": "adamw", "optimizer.weight_decay": 0.01}))
    training.compile_stage(model, fine_tune.lr, fine_tune.fine_tune, fine_tune, train)
    assert type(model.optimizer) is keras.optimizers.AdamW
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-5)  # fine_tune's rate: the top-level lr


def test_a_resumed_stage_continues_the_schedule_where_it_stopped(tmp_path, monkeypatch):
    """The checkpoint holds the optimizer's step count: the resumed run's rate is the one the
    uninterrupted run would have, not the schedule's start again."""
    monkeypatch.chdir(tmp_path)
    cosine = optimizer(name="adamw", weight_decay=0.01, schedule="cosine", warmup_epochs=1)
    x, y = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32), np.array([0, 1] * 6, np.float32)
    first, second = constant_model([0.5]), constant_model([0.5])
    for model in (first, second):
        assembly.compile_model(model, 1e-2, optimizer=cosine, epochs=4, steps_per_epoch=3)
    first.fit(x, y, batch_size=4, epochs=2, verbose=0)
    checkpoint = Checkpoint("demo", "fingerprint")
    checkpoint.save(first, {"epoch": 2, "history": [], "best_loss": 1.0, "best_epoch": 1}, first.get_weights())
    assert checkpoint.load(second) is not None
    assert int(second.optimizer.iterations) == int(first.optimizer.iterations) == 6
    assert float(second.optimizer.learning_rate) == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 3 / 9)))


def test_a_model_compiled_with_the_knobs_opens_in_stock_keras_with_them(tmp_path):
    """train_scratch saves the model it compiled: its optimizer, schedule and loss are Keras' own classes."""
    model = assembly.small_convnet(16, 0.0, 3)
    cosine = optimizer(name="adamw", weight_decay=0.05, schedule="cosine", warmup_epochs=2)
    assembly.compile_model(model, 1e-3, optimizer=cosine, label_smoothing=0.1, epochs=10, steps_per_epoch=7)
    model.optimizer.build(model.trainable_variables)  # as after training: its variables are saved too
    saving.save_model(model, tmp_path / "scratch.keras", ["a", "b", "c"])
    loaded = keras.models.load_model(tmp_path / "scratch.keras", safe_mode=True)
    assert type(loaded.optimizer) is keras.optimizers.AdamW and loaded.optimizer.weight_decay == pytest.approx(0.05)
    schedule = loaded.optimizer._learning_rate
    assert (schedule.warmup_steps, schedule.decay_steps) == (14, 56)
    assert isinstance(loaded.loss, keras.losses.CategoricalCrossentropy)
    assert loaded.loss.get_config()["label_smoothing"] == pytest.approx(0.1)


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
        load_params(params_file(tmp_path, changes))
    assert "\n" not in str(info.value)


def test_warm_up_is_checked_against_the_stages_that_train_only(tmp_path):
    changes = {"optimizer.schedule": "cosine", "optimizer.warmup_epochs": 30, "training.label_smoothing": 0.5}
    skipping = {"models.scratch": False, "models.feature_extraction": False, "models.frozen_augmented": False}
    skipping |= {"models.fine_tuned": False}  # left: train_scratch_augmented, 100 epochs
    params = load_params(params_file(tmp_path, changes | skipping))
    assert params.optimizer.warmup_epochs == 30 and params.training.label_smoothing == 0.5
    with pytest.raises(ParamsError, match=r"leaves train_scratch_augmented \(train_scratch_augmented.epochs: 30\)"):
        load_params(params_file(tmp_path, changes | skipping | {"train_scratch_augmented.epochs": 30}))


# --- label smoothing ----------------------------------------------------------------------------------------


def val_loss(tmp_path, monkeypatch, model, labels, label_smoothing: float) -> dict:
    """fit() for one epoch at a rate too small to move a weight: the logged validation loss and accuracy."""
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    assembly.compile_model(model, 1e-10, label_smoothing=label_smoothing)
    x = np.random.default_rng(0).normal(size=(len(labels), 2)).astype(np.float32)
    summary = training.fit(model, "demo", (x, labels), (x, labels), epochs=1, batch_size=4, seed=0, resume=False)
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
    assert assembly.one_hot_classes(plain_model) is None and assembly.one_hot_classes(smoothed_model) == 3
    assert plain["loss"] == pytest.approx(1.156343, abs=2e-6)
    assert smoothed["loss"] == pytest.approx(1.236310, abs=2e-6)
    assert plain["accuracy"] == smoothed["accuracy"] == 0.5  # categorical accuracy on the one-hot rows


def test_one_hot_batches_hold_the_same_rows_as_integer_ones():
    images = np.arange(5 * 2, dtype=np.uint8).reshape(5, 2)
    labels = np.array([2, 0, 1, 2, 1], np.uint8)
    for index in range(2):
        x, y = ArrayBatches(images, labels, 3, seed=7)[index]
        x_hot, y_hot = ArrayBatches(images, labels, 3, seed=7, one_hot=3)[index]
        np.testing.assert_array_equal(x, x_hot)
        np.testing.assert_array_equal(y_hot, np.eye(3, dtype=np.float32)[y.astype(int)])


# --- test-time augmentation ---------------------------------------------------------------------------------


def lopsided_model(classes: int) -> keras.Model:
    """A classifier of 4x4 images whose output depends on which side of the image is bright: a mirror
    image gets other probabilities."""
    pixels = keras.Input((4, 4, 3))
    x = keras.layers.Flatten()(pixels)
    model = keras.Model(pixels, heads.output_layer(classes)(x))
    kernel = np.random.default_rng(1).normal(scale=0.003, size=(48, model.output_shape[-1])).astype(np.float32)
    model.layers[-1].set_weights([kernel, np.full(model.output_shape[-1], 0.1, np.float32)])
    return model


def by_hand(model: keras.Model, images: np.ndarray) -> np.ndarray:
    kernel, bias = model.layers[-1].get_weights()
    logits = images.reshape(len(images), -1).astype(np.float64) @ kernel + bias
    if logits.shape[1] == 1:
        p = 1 / (1 + np.exp(-logits))
        return np.concatenate([1 - p, p], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [2, 3])
def test_tta_averages_each_image_with_its_mirror(tmp_path, classes):
    model = lopsided_model(classes)
    images = np.random.default_rng(2).integers(0, 256, (5, 4, 4, 3)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")  # as evaluate reads the test split
    own, mirror = by_hand(model, images), by_hand(model, images[:, :, ::-1])
    assert np.abs(own - mirror).max(axis=1).min() > 0.01  # the mirror changes every image's probabilities
    np.testing.assert_allclose(predict_probabilities(model, mapped, 2), own, atol=1e-5)
    averaged = predict_probabilities(model, mapped, 2, tta=True)  # batches of 2: the last one padded
    np.testing.assert_allclose(averaged, (own + mirror) / 2, atol=1e-5)
    np.testing.assert_allclose(averaged.sum(axis=1), 1, atol=1e-6)
    assert predict_probabilities(model, mapped[:0], 2, tta=True).shape == (0, classes)


def test_predict_tta_is_off_by_default_and_says_when_it_is_on(tmp_path, capsys):
    from stages import predict

    model = lopsided_model(2)
    path = tmp_path / "lopsided.keras"
    saving.save_model(model, path, ["left", "right"])
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (4, 4, 3)).astype(np.uint8)).save(tmp_path / "photo.png")
    pixels = decode_image((tmp_path / "photo.png").read_bytes(), 4)  # as predict decodes it
    own, mirror = by_hand(model, pixels[None]), by_hand(model, pixels[None, :, ::-1])
    for flags, expected, said in (([], own, False), (["--tta"], (own + mirror) / 2, True)):
        assert predict.main([str(tmp_path / "photo.png"), "--model", str(path), "--csv", *flags]) == 0
        out, err = capsys.readouterr()
        (row,) = list(csv.reader(io.StringIO(out)))[1:]
        np.testing.assert_allclose([float(row[2]), float(row[3])], expected[0], atol=6e-5)
        assert ("predict: test-time augmentation" in err) is said


# --- BatchNormalization while fine-tuning -------------------------------------------------------------------


@pytest.mark.parametrize("start_from", ["frozen_augmented", "feature_extraction"])
def test_fine_tune_keeps_batchnorm_frozen_in_inference_mode_with_the_modern_recipe(tmp_path, monkeypatch, start_from):
    """Stage fine_tune on a tiny workspace, with AdamW's weight decay, the cosine schedule and label smoothing,
    starting from the model fine_tune.start_from names (and only that file there): its BatchNormalization
    layers are not trainable and their moving statistics, scale and offset do not change, while the
    unfrozen convolution trains."""
    from stages import fine_tune

    monkeypatch.chdir(tmp_path)
    changes = {
        "fine_tune.start_from": start_from,
        "optimizer.name": "adamw",
        "optimizer.weight_decay": 0.1,
        "optimizer.schedule": "cosine",
        "optimizer.warmup_epochs": 1,
        "training.label_smoothing": 0.1,
        "training.deterministic": False,
        "training.resume": False,
        "base.fine_tune_from": "top_conv",
        "fine_tune.epochs": 2,
        "fine_tune.batch_size": 4,
        "lr": 0.05,
    }
    params_file(tmp_path, changes)
    rng = np.random.default_rng(0)
    Path("data/prepared").mkdir(parents=True)
    for split in ("train", "validation"):
        save_prepared(split, rng.integers(0, 256, (8, 16, 16, 3)).astype(np.uint8), np.array([0, 1] * 4, np.uint8))
    Path("data/classes.json").write_text(json.dumps(["cat", "dog"]))
    base = batchnorm_base()
    head = HeadParams(pooling="average", dense_units=4, dropout=0.0)
    frozen = assembly.with_classifier(base, heads.dense_classifier((12, 12, 4), head, 2), 16, "rescale")
    for bn in ("early_bn", "top_bn"):  # statistics far from a batch's, so that a training-mode step would move them
        layer = base.get_layer(bn)
        layer.set_weights([np.full(4, 2.0), np.full(4, 0.5), np.full(4, 30.0), np.full(4, 900.0)])
    base.trainable = False
    saving.save_model(frozen, Path(f"models/{start_from}.keras"), ["cat", "dog"])
    compiled = []
    compile_model = training.compile_model

    def recorded(model, *args, **kwargs):
        compiled.append(model)
        compile_model(model, *args, **kwargs)

    monkeypatch.setattr(training, "compile_model", recorded)

    fine_tune.main()

    (trained,) = compiled
    assert type(trained.optimizer) is keras.optimizers.AdamW and int(trained.optimizer.iterations) == 2 * 2
    assert isinstance(trained.loss, keras.losses.BinaryCrossentropy)
    before = graph.nested_base(saving.load_model(Path(f"models/{start_from}.keras")))
    after = graph.nested_base(saving.load_model(Path("models/fine_tuned.keras")))
    for bn in ("early_bn", "top_bn"):
        assert after.get_layer(bn).trainable is False
        for old, new in zip(before.get_layer(bn).get_weights(), after.get_layer(bn).get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)  # gamma, beta, moving mean, moving variance
    assert after.get_layer("top_conv").trainable is True
    assert not np.array_equal(
        before.get_layer("top_conv").get_weights()[0], after.get_layer("top_conv").get_weights()[0]
    )
    np.testing.assert_array_equal(  # below base.fine_tune_from: frozen
        before.get_layer("early_conv").get_weights()[0], after.get_layer("early_conv").get_weights()[0]
    )

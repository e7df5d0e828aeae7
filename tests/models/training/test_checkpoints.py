"""classifier/models/training/checkpoints.py: an interrupted fit resumes from its per-epoch checkpoint and ends
bit-identical to an uninterrupted one (weights, seed states, the epochs' log, the optimizer's step count and so
its schedule); a checkpoint from another start (data, batch size, seed, params.yaml, the stages' code) is
discarded; without `resume` none is written or used."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from classifier.core.backend import set_seed
from classifier.core.paths import CHECKPOINTS_DIR, stage_metrics_dir
from classifier.models.training.checkpoints import Checkpoint, seed_states
from classifier.models.training.compiling import compile_model
from tests.support.models import augmented_convnet, constant_model, tiny_model
from tests.support.params import BOOK_OPTIMIZER
from tests.support.training import (
    DENSE_SETTINGS,
    checkpoint_state,
    noisy_problem,
    same_arrays,
    val_loss_rows,
    watched_fit,
)

RESUME_EPOCHS = 5


def image_splits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """24 train and 8 validation random uint8 48x48 images with random labels."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (24, 48, 48, 3), dtype=np.uint8), rng.integers(0, 2, 24).astype(np.uint8)
    validation = rng.integers(0, 256, (8, 48, 48, 3), dtype=np.uint8), rng.integers(0, 2, 8).astype(np.uint8)
    return train, validation


CONVNET_SETTINGS = {"epochs": RESUME_EPOCHS, "batch_size": 8, "seed": 3, "resume": True}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The augmented convnet fitted for RESUME_EPOCHS epochs in one go, with resume on:
    (folder, model, summary, Watch)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        model = augmented_convnet(seed=3, learning_rate=1e-3)
        assert len(seed_states(model)) == 2, "augmentation and dropout"
        summary, watch = watched_fit(model, *image_splits(), **CONVNET_SETTINGS)
        assert not (CHECKPOINTS_DIR / "demo").exists()
    return folder, model, summary, watch


def test_a_resumed_fit_ends_bit_identical_to_an_uninterrupted_one(uninterrupted, tmp_path, monkeypatch, capsys):
    folder, model, summary, watch = uninterrupted
    monkeypatch.chdir(tmp_path)
    watched_fit(augmented_convnet(seed=3, learning_rate=1e-3), *image_splits(), stop_after=2, **CONVNET_SETTINGS)
    state = checkpoint_state()
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert {path.name for path in (CHECKPOINTS_DIR / "demo").iterdir()} == {
        "state.json",
        "epoch-2.weights.h5",
        "epoch-2.npz",
    }, "only the last epoch's files are kept"
    capsys.readouterr()

    resumed = augmented_convnet(seed=3, learning_rate=1e-3)
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


OTHER_STARTS = {
    "other data": ({"data": flip_first_label}, {}, None),
    "other batch size": ({}, {"batch_size": 8}, None),
    "other seed": ({"seed": 1}, {"seed": 1}, None),
    "params.yaml edited": ({}, {}, ("params.yaml", "lr: 0.001\n")),
    "stage code edited": ({}, {}, ("stages/train_scratch.py", "# edited\n")),
}


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


def test_a_resumed_stage_continues_the_schedule_where_it_stopped(tmp_path, monkeypatch):
    """The checkpoint holds the optimizer's step count: the resumed run's rate is the one the
    uninterrupted run would have, not the schedule's start again."""
    monkeypatch.chdir(tmp_path)
    changes = {"name": "adamw", "weight_decay": 0.01, "schedule": "cosine", "warmup_epochs": 1}
    cosine = BOOK_OPTIMIZER.model_copy(update=changes)
    x, y = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32), np.array([0, 1] * 6, np.float32)
    first, second = constant_model([0.5]), constant_model([0.5])
    for model in (first, second):
        compile_model(model, 1e-2, optimizer=cosine, epochs=4, steps_per_epoch=3)
    first.fit(x, y, batch_size=4, epochs=2, verbose=0)
    checkpoint = Checkpoint("demo", "fingerprint")
    checkpoint.save(first, {"epoch": 2, "history": [], "best_loss": 1.0, "best_epoch": 1}, first.get_weights())
    assert checkpoint.load(second) is not None
    assert int(second.optimizer.iterations) == int(first.optimizer.iterations) == 6
    assert float(second.optimizer.learning_rate) == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 3 / 9)))

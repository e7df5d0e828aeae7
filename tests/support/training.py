"""Fitting in a test: a small noisy problem whose best epoch is mid-run, fit() watched epoch by epoch (and
interrupted after any epoch, as a killed stage), and what a fit leaves in stage "demo"'s folders."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from classifier.core.paths import CHECKPOINTS_DIR, stage_metrics_dir
from classifier.models.training.fitting import fit
from tests.support.files import read_tsv

# A quick dense fit with resume on: 4 epochs of batches of 16 on the noisy problem.
DENSE_SETTINGS = {"epochs": 4, "batch_size": 16, "seed": 0, "resume": True}


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
    """fit() on stage "demo" with a Watch after its callbacks: (summary, or None when interrupted; the Watch)."""
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
    """Stage "demo"'s checkpoint state, in the current folder."""
    return json.loads((CHECKPOINTS_DIR / "demo" / "state.json").read_text())


def val_loss_rows(folder: Path) -> list[dict]:
    """The validation loss stage "demo" logged in `folder`, a row per epoch."""
    return read_tsv(folder / stage_metrics_dir("demo") / "plots" / "metrics" / "val" / "loss.tsv")

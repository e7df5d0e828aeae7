"""Training shared by the stages: seeding, batches from (memory-mapped) arrays, dvclive logging."""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live

from stages.common.layout import stage_metrics_dir


def set_seed(seed: int) -> None:
    """Same params, same machine -> same weights and metrics (op determinism is cheap on CPU)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class ArrayBatches(keras.utils.PyDataset):
    """(images, labels) batches from arrays or memory maps, reshuffled each epoch from `seed`.

    Only one batch is in memory at a time, so a memory-mapped split of any size fits.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int | None = None):
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.order = self.rng.permutation(len(labels)) if self.rng else np.arange(len(labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index: int):
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.images[rows].astype(np.float32), self.labels[rows].astype(np.float32)

    def on_epoch_end(self) -> None:
        if self.rng is not None:
            self.order = self.rng.permutation(len(self.labels))


class EpochLog(keras.callbacks.Callback):
    """Per-epoch train/val loss and accuracy to dvclive; remembers the best epoch by val loss."""

    def __init__(self, live: Live):
        super().__init__()
        self.live = live
        self.best_loss, self.best_epoch, self.best_logs, self.best_weights = math.inf, None, None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for name in ("loss", "accuracy"):
            self.live.log_metric(f"train/{name}", float(logs[name]))
            self.live.log_metric(f"val/{name}", float(logs[f"val_{name}"]))
        self.live.next_step()
        if logs["val_loss"] < self.best_loss:
            self.best_loss, self.best_epoch, self.best_logs = logs["val_loss"], epoch + 1, dict(logs)
            self.best_weights = self.model.get_weights()


def fit(model: keras.Model, stage: str, train: ArrayBatches, validation: ArrayBatches, epochs: int) -> dict:
    """Train, keep the epoch with the lowest validation loss, and write metrics/<stage>/metrics.json."""
    live = Live(dir=str(stage_metrics_dir(stage)), save_dvc_exp=False, dvcyaml=None, report=None)
    log = EpochLog(live)
    started = time.perf_counter()
    model.fit(train, validation_data=validation, epochs=epochs, callbacks=[log], verbose=2)
    seconds = time.perf_counter() - started
    model.set_weights(log.best_weights)
    summary = {
        "best_epoch": log.best_epoch,
        "train": {"loss": float(log.best_logs["loss"]), "accuracy": float(log.best_logs["accuracy"])},
        "val": {"loss": float(log.best_logs["val_loss"]), "accuracy": float(log.best_logs["val_accuracy"])},
    }
    live.summary = summary
    live.end()
    print(f"{stage}: best epoch {log.best_epoch}/{epochs}: val accuracy {summary['val']['accuracy']:.4f}, "
          f"val loss {summary['val']['loss']:.4f} ({seconds:.0f} s, {seconds / epochs:.1f} s/epoch)")
    return summary


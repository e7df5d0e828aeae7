"""Training shared by the stages: seeding, batches from (memory-mapped) arrays, dvclive logging."""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live

from stages.common.images import load_prepared
from stages.common.layout import stage_metrics_dir


def set_seed(seed: int) -> None:
    """Same params, same machine -> same weights and metrics (op determinism is cheap on CPU)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def array_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int | None = None) -> tf.data.Dataset:
    """(pixels float32, labels float32) batches from arrays or memory maps.

    Only a batch at a time is read, so a memory-mapped split of any size fits in RAM;
    with `seed`, the order is reshuffled every epoch, the same way on every run.
    (tf.data with prefetch: keras.utils.PyDataset measured 2-4x slower per step here.)
    """
    rng = np.random.default_rng(seed)

    def generate():  # tf.data calls this once per epoch
        order = rng.permutation(len(labels)) if seed is not None else np.arange(len(labels))
        for start in range(0, len(labels), batch_size):
            rows = np.sort(order[start : start + batch_size])  # sorted rows read a memory map sequentially
            yield images[rows].astype(np.float32), labels[rows].astype(np.float32)

    signature = (
        tf.TensorSpec((None, *images.shape[1:]), tf.float32),
        tf.TensorSpec((None,), tf.float32),
    )
    batches = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return batches.apply(tf.data.experimental.assert_cardinality(math.ceil(len(labels) / batch_size))).prefetch(2)


def prepared_batches(batch_size: int, seed: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(train batches shuffled from `seed`, validation batches) from the prepared image arrays."""
    train = array_batches(*load_prepared("train"), batch_size, seed=seed)
    validation = array_batches(*load_prepared("validation"), batch_size)
    return train, validation


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


def fit(model: keras.Model, stage: str, train: tf.data.Dataset, validation: tf.data.Dataset, epochs: int) -> dict:
    """Train, keep the epoch with the lowest validation loss, and write metrics/<stage>/metrics.json."""
    live = Live(dir=str(stage_metrics_dir(stage)), save_dvc_exp=False, dvcyaml=None, report=None)
    log = EpochLog(live)
    started = time.perf_counter()
    model.fit(train, validation_data=validation, epochs=epochs, callbacks=[log], shuffle=False, verbose=2)
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


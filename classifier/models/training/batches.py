"""Training batches from (memory-mapped) arrays, for any Keras backend and without TensorFlow.

`ArrayBatches` is a keras.utils.PyDataset: Keras feeds it to TensorFlow, JAX and torch alike,
and threads read the next batches while the model trains on this one.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np

from classifier.intake.prepared.shards import take_rows

READ_AHEAD_THREADS = 2  # enough to keep a train step fed from the page cache
READ_AHEAD_BATCHES = 8


class ArrayBatches(keras.utils.PyDataset):
    """(pixels float32, labels float32) batches from arrays or memory maps.

    Only a batch at a time is read, from the files of memory-mapped arrays rather than through the
    maps (classifier.intake.prepared.shards.take_rows), so a split of any size fits in RAM.
    With `seed`, each epoch has its own order, drawn from (seed, epoch): the same on every
    run and every backend, and the same again when a run resumes at a later epoch. Keras
    says which epoch it is through the callback `follow_epochs()` (it calls a PyDataset's
    own epoch hooks a varying number of times, and after its read-ahead threads started).
    """

    def __init__(
        self,
        images,
        labels,
        batch_size: int,
        seed: int | None = None,
        one_hot: int | None = None,
        share: tuple[int, int] = (0, 1),
    ):
        super().__init__(workers=READ_AHEAD_THREADS, use_multiprocessing=False, max_queue_size=READ_AHEAD_BATCHES)
        self.images, self.labels, self.batch_size, self.seed = images, labels, batch_size, seed
        self.one_hot = one_hot  # a number of classes: labels as one-hot rows (a loss with label smoothing)
        # (this process, processes) of a cluster: each reads the same part of every batch, as
        # keras.distribution puts the parts together in process order: the batch of one process.
        self.process, self.processes = share
        self.epoch = 0

    def __len__(self) -> int:
        last = len(self.labels) % self.batch_size
        return math.ceil(len(self.labels) / self.batch_size) - (0 < last < self.processes)  # a last batch too small

    @property
    def left_out(self) -> int:
        """Rows of the last batch that no process reads: the processes' parts must be of one size."""
        return len(self.labels) % self.batch_size % self.processes

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index >= len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        order = epoch_order(len(self.labels), self.seed, self.epoch)
        rows = np.sort(order[index * self.batch_size : (index + 1) * self.batch_size])  # sorted: a sequential read
        part = len(rows) // self.processes
        rows = rows[self.process * part : (self.process + 1) * part]
        images, labels = take_rows(self.images, rows).astype(np.float32), self.labels[rows]
        if self.one_hot:
            return images, np.eye(self.one_hot, dtype=np.float32)[labels.astype(np.int64)]
        return images, labels.astype(np.float32)

    def follow_epochs(self) -> keras.callbacks.Callback:
        """Pass to fit(): sets the epoch before Keras reads its first batch (initial_epoch included)."""
        return FollowEpochs(self)


class FollowEpochs(keras.callbacks.Callback):
    def __init__(self, batches: ArrayBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch


@functools.lru_cache(maxsize=4)
def epoch_order(count: int, seed: int | None, epoch: int) -> np.ndarray:
    """The rows of one epoch in the order they are read: shuffled by (seed, epoch), or as stored."""
    if seed is None:
        return np.arange(count)
    return np.random.default_rng((seed, epoch)).permutation(count)


def left_out_text(train: ArrayBatches, validation: ArrayBatches) -> str:
    """`; the last batch of each epoch leaves out 1 training image` and the like; empty when none is."""
    parts = [
        f"{count} {what} image(s)"
        for count, what in ((train.left_out, "training"), (validation.left_out, "validation"))
        if count
    ]
    return f"; the last batch of each epoch leaves out {' and '.join(parts)}" if parts else ""

"""classifier/models/training/batches.py: training batches from (memory-mapped) arrays, for any backend:
every row once per epoch in a seeded order, one-hot labels for a smoothed softmax, and each process's part
of every batch in a cluster. (The same batches under JAX and torch, without TensorFlow:
tests/core/test_backend.py.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from classifier.models.training.batches import ArrayBatches


def numbered(n: int, shape=(3, 2, 3)) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose pixels all equal the row number, and labels = row number."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1), (n, *shape)).copy()
    return images, np.arange(n, dtype=np.uint8)


def epoch_rows(batches: ArrayBatches, epoch: int = 0) -> list[int]:
    """One pass over epoch `epoch`: the row numbers in the order they come."""
    batches.epoch = epoch
    return [int(row) for index in range(len(batches)) for row in batches[index][1]]


def test_batches_have_float32_rows_with_their_labels_and_a_partial_last_batch():
    images, labels = numbered(10)
    batches = ArrayBatches(images, labels, 4)
    assert isinstance(batches, keras.utils.PyDataset)
    assert [len(batches[i][1]) for i in range(len(batches))] == [4, 4, 2]
    for index in range(len(batches)):
        x, y = batches[index]
        assert x.dtype.name == "float32" and y.dtype.name == "float32"
        assert x.shape == (len(y), *images.shape[1:])
        np.testing.assert_array_equal(x, images[y.astype(int)].astype(np.float32))
    with pytest.raises(IndexError):
        batches[3]


@pytest.mark.parametrize("n, batch_size", [(10, 4), (8, 4), (3, 5), (1, 1)])
def test_length_is_the_number_of_batches(n, batch_size):
    batches = ArrayBatches(*numbered(n), batch_size, seed=1)
    assert len(batches) == -(-n // batch_size)
    assert sorted(epoch_rows(batches)) == list(range(n))


def test_with_a_seed_every_row_comes_once_per_epoch_in_a_new_order():
    batches = ArrayBatches(*numbered(50), 8, seed=7)
    first, second = epoch_rows(batches, 0), epoch_rows(batches, 1)
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != list(range(50))
    assert second != first


def test_the_same_seed_gives_the_same_orders():
    one, two = ArrayBatches(*numbered(50), 8, seed=7), ArrayBatches(*numbered(50), 8, seed=7)
    assert [epoch_rows(one, 0), epoch_rows(one, 1)] == [epoch_rows(two, 0), epoch_rows(two, 1)]
    assert epoch_rows(ArrayBatches(*numbered(50), 8, seed=8)) != epoch_rows(ArrayBatches(*numbered(50), 8, seed=7))


def test_without_a_seed_rows_come_in_order_every_epoch():
    batches = ArrayBatches(*numbered(50), 8)
    assert epoch_rows(batches, 0) == epoch_rows(batches, 1) == list(range(50))


def test_reads_a_memory_mapped_uint8_file(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(13, 5, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", pixels)
    images = np.load(tmp_path / "images.npy", mmap_mode="r")
    assert isinstance(images, np.memmap)
    batches = ArrayBatches(images, np.arange(13, dtype=np.uint8), 4, seed=3)
    assert len(batches) == 4
    seen = {}
    for index in range(len(batches)):
        x, y = batches[index]
        seen.update(zip(y.astype(int), x))
    assert sorted(seen) == list(range(13))
    for row, x in seen.items():
        np.testing.assert_array_equal(x, pixels[row].astype(np.float32))


class Recorded(ArrayBatches):
    """Records which rows each batch held, under the epoch it was read in (by read-ahead threads)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: dict[int, dict[int, list[int]]] = {}

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        self.read.setdefault(self.epoch, {})[index] = [int(row) for row in y]
        return x, y


def test_keras_fit_reads_each_epoch_in_its_seeded_order():
    """Through Keras' own adapter and read-ahead threads: each epoch in its own seeded order (no
    batch read ahead under another epoch), and the validation data in stored order."""
    images, labels = np.arange(40, dtype=np.uint8).reshape(40, 1), np.arange(40, dtype=np.uint8)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    train, validation = Recorded(images, labels, 8, seed=5), Recorded(images[:12], labels[:12], 8)
    model.fit(
        train,
        validation_data=validation,
        initial_epoch=1,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[train.follow_epochs()],
    )
    for epoch in (1, 2, 3):  # as a run resumed after epoch 1 reads them
        rows = [row for index in sorted(train.read[epoch]) for row in train.read[epoch][index]]
        assert rows == epoch_rows(ArrayBatches(images, labels, 8, seed=5), epoch)
    assert len({tuple(epoch_rows(ArrayBatches(images, labels, 8, seed=5), epoch)) for epoch in (1, 2, 3)}) == 3
    assert all(
        [row for index in sorted(read) for row in read[index]] == list(range(12)) for read in validation.read.values()
    )


def test_one_hot_batches_hold_the_same_rows_as_integer_ones():
    images = np.arange(5 * 2, dtype=np.uint8).reshape(5, 2)
    labels = np.array([2, 0, 1, 2, 1], np.uint8)
    for index in range(2):
        x, y = ArrayBatches(images, labels, 3, seed=7)[index]
        x_hot, y_hot = ArrayBatches(images, labels, 3, seed=7, one_hot=3)[index]
        np.testing.assert_array_equal(x, x_hot)
        np.testing.assert_array_equal(y_hot, np.eye(3, dtype=np.float32)[y.astype(int)])


def test_each_process_reads_its_part_of_every_batch_and_together_the_one_process_batch():
    images = np.arange(22 * 2 * 2 * 3, dtype=np.uint8).reshape(22, 2, 2, 3)
    labels = np.arange(22) % 2
    whole = ArrayBatches(images, labels, 8, seed=3)
    parts = [ArrayBatches(images, labels, 8, seed=3, share=(process, 2)) for process in (0, 1)]
    assert len(whole) == len(parts[0]) == 3
    for batch in range(2):  # full batches: 4 rows each, in process order the one-process batch
        together = np.concatenate([part[batch][0] for part in parts])
        np.testing.assert_array_equal(together, whole[batch][0])
    assert [len(part[2][0]) for part in parts] == [3, 3]  # the last 6 rows split evenly
    assert parts[0].left_out == 0 and whole.left_out == 0
    odd = [ArrayBatches(images[:21], labels[:21], 8, share=(process, 2)) for process in (0, 1)]
    assert odd[0].left_out == 1 and [len(part[2][0]) for part in odd] == [2, 2]  # 5 rows: 2 + 2, one left out
    tiny = ArrayBatches(images[:17], labels[:17], 8, share=(0, 2))
    assert len(tiny) == 2 and tiny.left_out == 1  # a last batch of 1 row: no part for every process

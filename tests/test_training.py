"""stages/common/training.py: batches from (memory-mapped) arrays, fit with dvclive and the best epoch, seeding."""

from __future__ import annotations

import csv
import json
import math

import keras
import numpy as np
import pytest

from stages.common.layout import stage_metrics_dir
from stages.common.models import compile_binary
from stages.common.training import array_batches, fit, set_seed


def numbered(n: int, shape=(3, 2, 3)) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose pixels all equal the row number, and labels = row number."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1), (n, *shape)).copy()
    return images, np.arange(n, dtype=np.uint8)


def epoch_rows(dataset) -> list[int]:
    """One pass over the dataset (one epoch): the row numbers in the order they come."""
    return [int(row) for _, labels in dataset for row in labels.numpy()]


# --- array_batches ----------------------------------------------------------------------


def test_batches_have_float32_rows_with_their_labels_and_a_partial_last_batch():
    images, labels = numbered(10)
    batches = list(array_batches(images, labels, 4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    for x, y in batches:
        assert x.dtype.name == "float32" and y.dtype.name == "float32"
        assert x.shape[1:] == images.shape[1:]
        assert x.shape[0] == y.shape[0]
        np.testing.assert_array_equal(x.numpy(), images[y.numpy().astype(int)].astype(np.float32))


@pytest.mark.parametrize("n, batch_size", [(10, 4), (8, 4), (3, 5), (1, 1)])
def test_cardinality_is_the_number_of_batches(n, batch_size):
    dataset = array_batches(*numbered(n), batch_size, seed=1)
    assert int(dataset.cardinality()) == math.ceil(n / batch_size)
    assert len(list(dataset)) == math.ceil(n / batch_size)


def test_with_a_seed_every_row_comes_once_per_epoch_in_a_new_order():
    dataset = array_batches(*numbered(50), 8, seed=7)
    first, second = epoch_rows(dataset), epoch_rows(dataset)
    assert sorted(first) == list(range(50))
    assert sorted(second) == list(range(50))
    assert first != list(range(50))
    assert second != first


def test_the_same_seed_gives_the_same_orders():
    one, two = array_batches(*numbered(50), 8, seed=7), array_batches(*numbered(50), 8, seed=7)
    assert [epoch_rows(one), epoch_rows(one)] == [epoch_rows(two), epoch_rows(two)]
    assert epoch_rows(array_batches(*numbered(50), 8, seed=8)) != epoch_rows(array_batches(*numbered(50), 8, seed=7))


def test_without_a_seed_rows_come_in_order_every_epoch():
    dataset = array_batches(*numbered(50), 8)
    assert epoch_rows(dataset) == list(range(50))
    assert epoch_rows(dataset) == list(range(50))


def test_reads_a_memory_mapped_uint8_file(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(13, 5, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", pixels)
    images = np.load(tmp_path / "images.npy", mmap_mode="r")
    assert isinstance(images, np.memmap)
    labels = np.arange(13, dtype=np.uint8)
    dataset = array_batches(images, labels, 4, seed=3)
    assert int(dataset.cardinality()) == 4
    seen = {}
    for x, y in dataset:
        assert x.dtype.name == "float32"
        seen.update(zip(y.numpy().astype(int), x.numpy()))
    assert sorted(seen) == list(range(13))
    for row, x in seen.items():
        np.testing.assert_array_equal(x, pixels[row].astype(np.float32))


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
    compile_binary(model, learning_rate)
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
            model, "demo", array_batches(train_x, train_y, 16, seed=0), array_batches(val_x, val_y, 16), EPOCHS
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


# --- set_seed -----------------------------------------------------------------------------


def train_weights(seed: int) -> list[np.ndarray]:
    set_seed(seed)
    train_x, train_y, _, _ = noisy_problem()
    model = tiny_model(learning_rate=0.01, hidden=8, dropout=0.5)  # random init and dropout
    model.fit(array_batches(train_x, train_y, 16, seed=seed), epochs=2, shuffle=False, verbose=0)
    return model.get_weights()


def test_set_seed_makes_training_repeatable():
    first, again, other = train_weights(0), train_weights(0), train_weights(1)
    assert len(first) == len(again) == 4
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))

"""training.distribute: multi_host: a training stage run as two local JAX processes of one cluster
(tools/local_cluster.py) against the same stage as one process, at the same global batch; and what a
process other than the first writes (nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from classifier.core.schema import RunParams
from classifier.intake.prepared import load_prepared, save_prepared
from classifier.models import saving, training
from classifier.models.batches import ArrayBatches
from classifier.models.cluster import writes_outputs

ROOT = Path(__file__).resolve().parents[2]
SIZE, BATCH = 16, 8
COUNTS = {"train": 24, "validation": 12}  # 3 batches of 8; validation's last batch of 4 splits 2 + 2
SECOND_PROCESS = {
    "KERAS_DISTRIBUTION_JOB_ADDRESSES": "localhost:1",
    "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    "KERAS_DISTRIBUTION_PROCESS_ID": "1",
}


def workspace(folder: Path, distribute: str) -> Path:
    """Prepared images in shards of 5 rows at most, a tiny random base, params for train_frozen."""
    rng = np.random.default_rng(0)
    for split, count in COUNTS.items():
        labels = np.arange(count) % 2
        images = rng.normal(90 + 80 * labels[:, None, None, None], 40, (count, SIZE, SIZE, 3)).clip(0, 255)
        save_prepared(split, images.astype(np.uint8), labels, folder / "data/prepared", shard_bytes=5 * SIZE * SIZE * 3)
    (folder / "data/classes.json").write_text(json.dumps(["dark", "bright"]))
    keras.utils.set_random_seed(0)
    pixels = keras.Input((None, None, 3))
    features = keras.layers.MaxPooling2D(4)(keras.layers.Conv2D(4, 3, activation="relu", name="conv")(pixels))
    saving.save_model(keras.Model(pixels, features, name="tiny_base"), folder / "models/base.keras")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["image_size"] = SIZE
    params["base"]["weights"] = None
    params["train_frozen"].update({"epochs": 2, "batch_size": BATCH})
    params["training"]["distribute"] = distribute
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def run_stage(folder: Path, *launcher: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    command = [*launcher, sys.executable, "-m", "stages.train_frozen"]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def pooled_logistic() -> keras.Model:
    pixels = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(
        pixels, keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(pixels))
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


@pytest.mark.e2e
def test_two_local_processes_train_the_stage_as_one_process_does(tmp_path):
    one = workspace(tmp_path / "one", "none")
    two = workspace(tmp_path / "two", "multi_host")
    before = files(two)
    run_stage(one)
    result = run_stage(two, sys.executable, str(ROOT / "tools/local_cluster.py"), "2", "--")

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
    assert files(two) - before == files(one) - before  # one set of outputs, nothing left by the second process
    assert not (two / ".dvc/tmp/checkpoints/train_frozen").exists()


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


def test_a_process_other_than_the_first_writes_no_output_checkpoint_or_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in SECOND_PROCESS.items():
        monkeypatch.setenv(name, value)
    assert not writes_outputs("multi_host") and writes_outputs("none")
    rng = np.random.default_rng(0)
    for split, count in COUNTS.items():
        save_prepared(split, rng.integers(0, 256, (count, SIZE, SIZE, 3)).astype(np.uint8), np.arange(count) % 2)
    inputs = files(tmp_path)
    model = pooled_logistic()
    train, validation = load_prepared("train"), load_prepared("validation")
    summary = training.fit(
        model, "train_demo", train, validation, epochs=2, batch_size=BATCH, seed=0, resume=True, distribute="multi_host"
    )
    assert summary["epochs_run"] == 2
    run = RunParams.model_validate(
        {**yaml.safe_load((ROOT / "params.yaml").read_text())["training"], "distribute": "multi_host"}
    )
    training.save_trained(model, "feature_extraction", ["cat", "dog"], run)
    assert files(tmp_path) == inputs  # no metrics, no lock, no checkpoint, no model: process 0 writes them


def test_one_host_ignores_a_cluster_in_the_environment_and_writes_everything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in SECOND_PROCESS.items():
        monkeypatch.setenv(name, value)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, SIZE, SIZE, 3)).astype(np.uint8), np.arange(20) % 2
    batches = ArrayBatches(images, labels, BATCH)
    assert len(batches) == 3 and [len(batches[index][0]) for index in range(3)] == [8, 8, 4]  # whole batches
    model = pooled_logistic()
    training.fit(
        model, "train_demo", (images, labels), (images, labels), epochs=1, batch_size=BATCH, seed=0, resume=True
    )
    assert (tmp_path / "metrics/train_demo/metrics.json").is_file()
    assert (tmp_path / "metrics/train_demo/plots/metrics/train/loss.tsv").is_file()

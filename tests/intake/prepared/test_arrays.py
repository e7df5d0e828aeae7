"""The prepared arrays and the cached features as later stages read them (classifier.intake.prepared.arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.core.errors import StageError
from classifier.intake.prepared.arrays import load_features, load_prepared
from classifier.intake.prepared.checks import FEATURES_FIX


def test_load_prepared_without_arrays(tmp_path):
    with pytest.raises(StageError, match=r"train/labels.npy is missing: run `dvc repro prepare` first"):
        load_prepared("train", tmp_path)


def test_load_features_checks_each_file_and_one_label_per_row(tmp_path):
    np.save(tmp_path / "train_features.npy", np.zeros((6, 2, 2, 4), np.float32))
    np.save(tmp_path / "train_labels.npy", np.arange(6) % 2)
    features, labels = load_features("train", tmp_path)
    assert isinstance(features, np.memmap) and features.shape == (6, 2, 2, 4) and labels.tolist() == [0, 1] * 3

    np.save(tmp_path / "train_labels.npy", np.arange(5) % 2)  # another run's
    with pytest.raises(StageError) as info:
        load_features("train", tmp_path)
    assert str(info.value) == (
        f"{tmp_path}/train_features.npy holds 6x2x2x4 features, train_labels.npy 5 labels, not one label per row: "
        f"{FEATURES_FIX}"
    )
    data = (tmp_path / "train_features.npy").read_bytes()
    (tmp_path / "train_features.npy").write_bytes(data[:-16])  # a copy cut short
    with pytest.raises(StageError, match=r"train_features.npy is cut short: its header says 6x2x2x4 float32"):
        load_features("train", tmp_path)

"""The prepared arrays as later stages read them (classifier.intake.prepared.arrays)."""

from __future__ import annotations

import pytest

from classifier.intake.prepared.arrays import load_prepared


def test_load_prepared_without_arrays(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro prepare"):
        load_prepared("train", tmp_path)

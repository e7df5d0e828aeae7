"""Numbers that are not numbers: NaN or infinite features trained for epochs at a constant loss and exited 0
(a ReLU turns NaN into 0: the loss stays at log 2 and nothing says the model learnt nothing). Now what
extract_features writes, what a training stage reads and the loss of every epoch are finite numbers, or the
stage stops in one line and keeps nothing of the run. prepare writes uint8 pixels: always finite numbers.

Runs the stages' main() on the tiny features workspace (tests.support.features).

 1. a base whose weights are finite but so large that its features overflow
    to infinity, or to inf - inf = NaN                                       -> extract_features refuses, naming the
                                                                                split, how many rows, the base's
                                                                                weights or preprocessing; an
                                                                                earlier run's data/features whole
 1a. a base whose weights are NaN (behind a ReLU its features would all be
    0: finite and worthless)                                                 -> refused as it loads (any model file
                                                                                is, by classifier.models.saving)
 2. features with NaN rows (train), or an infinity (validation)            -> train_classifier refuses before the
                                                                                first epoch, naming the file, how
                                                                                many rows and the fix; nothing written
 3. finite features so large that the loss overflows in the first epoch    -> train_classifier stops after that
                                                                                epoch, naming it and
                                                                                train_classifier.learning_rate; no
                                                                                model, no metrics.json, no checkpoint
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifier.core.paths import CHECKPOINTS_DIR
from classifier.models import saving
from stages import extract_features, train_classifier
from tests.support.features import COUNTS, extract, features_workspace
from tests.support.files import save_array, snapshot
from tests.support.stages import refused, stage_error


def save_base(*kernels: float) -> None:
    """models/base.keras: a convolution of 4 3x3 filters, each filter's weights all kernels[i % len(kernels)],
    summed by a 1x1 convolution of weights 1; nothing after (a ReLU would turn NaN into 0)."""
    import keras

    pixels = keras.Input((None, None, 3))
    first = keras.layers.Conv2D(4, 3, name="first")(pixels)
    base = keras.Model(pixels, keras.layers.Conv2D(1, 1, name="sum")(first))
    kernel, bias = base.get_layer("first").get_weights()
    for index in range(4):
        kernel[..., index] = kernels[index % len(kernels)]
    base.get_layer("first").set_weights([kernel, bias])
    kernel, bias = base.get_layer("sum").get_weights()
    base.get_layer("sum").set_weights([np.ones_like(kernel), bias])
    saving.save_model(base, Path("models/base.keras"))


# --- 1: what extract_features writes -----------------------------------------------------------------------------


@pytest.mark.parametrize("kernels", [(1e38,), (1e38, -1e38)], ids=["infinity", "inf - inf = NaN"])
def test_a_base_giving_features_that_are_not_numbers_writes_none(work, kernels):
    features_workspace(work)
    earlier = extract(work)
    save_base(*kernels)
    message = refused(extract_features.main, "stages/extract_features.py", work)
    assert message == (
        f"the base gives features that are not finite numbers (NaN or infinity) for {COUNTS['train']} of the "
        f"{COUNTS['train']} train rows: its weights (models/base.keras) or its preprocessing (base.preprocessing: "
        f"native) do not fit these images; nothing is written: check base.weights and base.preprocessing, then run "
        f"`dvc repro` again"
    )
    assert {path.name: path.read_bytes() for path in Path("data/features").iterdir()} == earlier
    assert not list(Path("data").glob(".features.*"))


def test_a_base_whose_weights_are_not_numbers_is_refused_as_it_loads(work):
    features_workspace(work)
    save_base(np.nan)  # behind a ReLU its features would be 0 for every image: finite, and worthless
    assert refused(extract_features.main, "stages/extract_features.py", work) == (
        "models/base.keras holds weights that are not finite numbers (NaN or infinity: 108 of its 117): refused; "
        "give a model made of Keras layers, such as one this pipeline trained"
    )


# --- 2-3: what a training stage reads, and its loss -----------------------------------------------------------------


def with_features(split: str, change) -> Path:
    """data/features/<split>_features.npy as `change(features)` leaves it (a copy changed in memory)."""
    path = Path(f"data/features/{split}_features.npy")
    features = np.load(path)
    change(features)
    return save_array(path, features)


def test_features_with_nan_rows_are_refused_before_training(work):
    features_workspace(work)
    extract(work)

    def nan_rows(features):
        features[[1, 4, 6], 0, 0, 0] = np.nan

    with_features("train", nan_rows)
    assert refused(train_classifier.main, "stages/train_classifier.py", work) == (
        "the training inputs (data/features/train_features.npy) hold values that are not finite numbers (NaN or "
        "infinity) in 3 of their 10 rows: a model learns nothing from them; make them again (the features: "
        "`dvc repro extract_features`, which refuses such values)"
    )


def test_validation_features_with_an_infinity_are_refused_before_training(work):
    features_workspace(work)
    extract(work)

    def one_infinity(features):
        features[2].flat[5] = -np.inf

    with_features("validation", one_infinity)
    message = refused(train_classifier.main, "stages/train_classifier.py", work)
    assert message.startswith("the validation inputs (data/features/validation_features.npy) hold values that are ")
    assert " in 1 of their 5 rows: " in message


def test_a_loss_that_overflows_stops_training_after_that_epoch_keeping_nothing(work):
    features_workspace(work)
    extract(work)
    for split in ("train", "validation"):
        with_features(split, lambda features: features.fill(3e38))  # finite, but the first layer's sums are not
    before = snapshot(work / "data")
    message = stage_error(train_classifier.main, "stages/train_classifier.py")
    assert message == (
        "the training loss is nan, not a finite number, after epoch 1: training diverged; lower "
        "train_classifier.learning_rate (now 2e-05) and run it again (no model is kept from this run)"
    )
    assert snapshot(work / "data") == before
    assert not Path("models/feature_extraction.keras").exists()
    assert not Path("metrics/train_classifier/metrics.json").exists()
    assert not (CHECKPOINTS_DIR / "train_classifier").exists()

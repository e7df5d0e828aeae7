"""Stage fine_tune (stages/fine_tune.py) with the modern recipe (AdamW's weight decay, the cosine schedule,
label smoothing), starting from the model fine_tune.start_from names: BatchNormalization stays frozen in
inference mode while the layers from base.fine_tune_from on train, and those below stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from classifier.core.schema import HeadParams
from classifier.intake.prepared.arrays import save_prepared
from classifier.models import architecture, graph, saving
from classifier.models.training import stage as training_stage
from stages import fine_tune
from tests.support.models import batchnorm_base
from tests.support.params import write_params


@pytest.mark.parametrize("start_from", ["frozen_augmented", "feature_extraction"])
def test_fine_tune_keeps_batchnorm_frozen_in_inference_mode_with_the_modern_recipe(tmp_path, monkeypatch, start_from):
    """Stage fine_tune on a tiny workspace, with AdamW's weight decay, the cosine schedule and label smoothing,
    starting from the model fine_tune.start_from names (and only that file there): its BatchNormalization
    layers are not trainable and their moving statistics, scale and offset do not change, while the
    unfrozen convolution trains."""
    monkeypatch.chdir(tmp_path)
    changes = {
        "fine_tune.start_from": start_from,
        "optimizer.name": "adamw",
        "optimizer.weight_decay": 0.1,
        "optimizer.schedule": "cosine",
        "optimizer.warmup_epochs": 1,
        "training.label_smoothing": 0.1,
        "training.deterministic": False,
        "training.resume": False,
        "base.fine_tune_from": "top_conv",
        "fine_tune.epochs": 2,
        "fine_tune.batch_size": 4,
        "lr": 0.05,
    }
    write_params(tmp_path, changes)
    rng = np.random.default_rng(0)
    Path("data/prepared").mkdir(parents=True)
    for split in ("train", "validation"):
        save_prepared(split, rng.integers(0, 256, (8, 16, 16, 3)).astype(np.uint8), np.array([0, 1] * 4, np.uint8))
    Path("data/classes.json").write_text(json.dumps(["cat", "dog"]))
    base = batchnorm_base()
    head = HeadParams(pooling="average", dense_units=4, dropout=0.0)
    frozen = architecture.with_classifier(base, architecture.dense_classifier((12, 12, 4), head, 2), 16, "rescale")
    for bn in ("early_bn", "top_bn"):  # statistics far from a batch's, so that a training-mode step would move them
        layer = base.get_layer(bn)
        layer.set_weights([np.full(4, 2.0), np.full(4, 0.5), np.full(4, 30.0), np.full(4, 900.0)])
    base.trainable = False
    saving.save_model(frozen, Path(f"models/{start_from}.keras"), ["cat", "dog"])
    compiled = []
    compile_model = training_stage.compile_model

    def recorded(model, *args, **kwargs):
        compiled.append(model)
        compile_model(model, *args, **kwargs)

    monkeypatch.setattr(training_stage, "compile_model", recorded)

    fine_tune.main()

    (trained,) = compiled
    assert type(trained.optimizer) is keras.optimizers.AdamW and int(trained.optimizer.iterations) == 2 * 2
    assert isinstance(trained.loss, keras.losses.BinaryCrossentropy)
    before = graph.nested_base(saving.load_model(Path(f"models/{start_from}.keras")))
    after = graph.nested_base(saving.load_model(Path("models/fine_tuned.keras")))
    for bn in ("early_bn", "top_bn"):
        assert after.get_layer(bn).trainable is False
        for old, new in zip(before.get_layer(bn).get_weights(), after.get_layer(bn).get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)  # gamma, beta, moving mean, moving variance
    assert after.get_layer("top_conv").trainable is True
    assert not np.array_equal(
        before.get_layer("top_conv").get_weights()[0], after.get_layer("top_conv").get_weights()[0]
    )
    np.testing.assert_array_equal(  # below base.fine_tune_from: frozen
        before.get_layer("early_conv").get_weights()[0], after.get_layer("early_conv").get_weights()[0]
    )

"""classifier/models/graph.py: freezing the base and unfreezing it from a layer on, as train_frozen and
fine_tune do (the book's trainable tensor counts for VGG16), BatchNormalization kept in inference mode while
fine-tuning, and an unknown layer refused by name."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from classifier.core.errors import StageError
from classifier.models import architecture, graph
from classifier.models.training.compiling import compile_model
from stages import train_frozen
from tests.support.models import batchnorm_base


def test_trainable_tensors_30_then_4_frozen_then_10_fine_tuned(params, vgg16):
    base = keras.models.clone_model(vgg16)
    classifier = architecture.dense_classifier((4, 4, 512), params.head, 2)
    unfrozen = architecture.with_classifier(base, classifier, 150, "vgg16")
    assert len(unfrozen.trainable_weights) == 30
    model = train_frozen.build(params, base, 2)  # what stage train_frozen trains
    assert len(model.trainable_weights) == 4
    graph.unfreeze_from(graph.nested_base(model), "block5_conv1")  # what stage fine_tune trains
    assert len(model.trainable_weights) == 10
    trainable = [layer.name for layer in graph.nested_base(model).layers if layer.trainable and layer.weights]
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3"]


def test_fine_tuning_keeps_batchnorm_in_inference_mode(params):
    """Regression: Keras 3's fit overrides base(x, training=False) (keras-team/keras#20285)."""
    base = batchnorm_base()
    model = architecture.with_classifier(
        base, architecture.dense_classifier((12, 12, 4), params.head, 2), 16, "rescale"
    )
    graph.unfreeze_from(graph.nested_base(model), "top_conv")
    compile_model(model, 1e-2)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in base.layers if layer.weights}
    rng = np.random.default_rng(0)
    model.fit(rng.uniform(0, 255, (8, 16, 16, 3)), rng.integers(0, 2, 8).astype("float32"), epochs=2, verbose=0)
    after = {layer.name: layer.get_weights() for layer in base.layers if layer.weights}
    assert all(np.array_equal(a, b) for a, b in zip(before["top_bn"], after["top_bn"]))  # moving stats too
    assert all(np.array_equal(a, b) for a, b in zip(before["early_conv"], after["early_conv"]))
    assert not np.array_equal(before["top_conv"][0], after["top_conv"][0])


def test_unknown_fine_tune_layer_is_refused_with_its_name(vgg16):
    with pytest.raises(StageError, match="block6_conv1.*not a layer"):
        graph.unfreeze_from(vgg16, "block6_conv1")

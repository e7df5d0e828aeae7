"""Stage train_classifier (stages/train_classifier.py): on the features of extract_features' augmented views it
trains on every view, shuffled across views, with the class weights of one view; the saved model takes raw
pixels (the base under the trained head). Runs the stages' main() on a tiny workspace (tests.support.features)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from classifier.models import saving
from classifier.models.training.batches import ArrayBatches
from classifier.models.training.fitting import class_weights
from stages import train_classifier
from tests.support.features import N, extract, features_workspace


def test_train_classifier_trains_on_every_view_mixed_with_the_same_class_weights(work):
    workspace = features_workspace(work)
    extract(workspace, views=3)
    train = np.load("data/features/train_features.npy", mmap_mode="r"), np.load("data/features/train_labels.npy")
    balanced_one_view = class_weights("balanced", np.arange(N) % 2, 2)
    assert class_weights("balanced", train[1], 2) == balanced_one_view
    imbalanced = np.array([0, 0, 0, 1])
    assert class_weights("balanced", np.tile(imbalanced, 3), 2) == class_weights("balanced", imbalanced, 2)

    batches = ArrayBatches(*train, 8, seed=42)
    rows_seen = [batches[index][0] for index in range(len(batches))]
    assert sum(len(batch) for batch in rows_seen) == 3 * N
    flat = train[0].reshape(3 * N, -1)
    views_in = [
        {int(np.flatnonzero((flat == row).all(axis=1))[0]) // N for row in batch.reshape(len(batch), -1)}
        for batch in rows_seen
    ]
    assert any(len(views) > 1 for views in views_in)  # shuffled across views, not a view at a time

    train_classifier.main()
    summary = json.loads(Path("metrics/train_classifier/metrics.json").read_text())
    assert summary["epochs_run"] == 1 and 0 <= summary["val"]["accuracy"] <= 1
    assert saving.load_model(Path("models/feature_extraction.keras")).output_shape == (None, 1)

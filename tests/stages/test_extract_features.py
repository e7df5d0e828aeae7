"""Stage extract_features (stages/extract_features.py), its augmented views: with `extract_features.views: k`
the training split's features hold the plain view and k-1 augmented ones of each image (view-major, labels
repeated), through the layer the training stages augment with, seeded from (seed, view), written a batch at a
time into a memory map, the same bytes on a rerun; validation and test keep the plain view; views out of range
are one line. Each case runs the stage's main() on a tiny workspace (tests.support.features): random pixels,
a random conv base."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from classifier.core.errors import ParamsError
from classifier.core.params import load_params
from classifier.intake.prepared.arrays import load_prepared
from classifier.models import augmentation, saving
from classifier.models.architecture import feature_extractor
from stages import extract_features
from tests.support.features import BATCH, COUNTS, SIZE, N, extract, features_workspace, write_feature_params
from tests.support.files import spy_memmaps


def features(split: str) -> np.ndarray:
    return np.load(f"data/features/{split}_features.npy")


def labels(split: str) -> np.ndarray:
    return np.load(f"data/features/{split}_labels.npy")


def test_three_views_give_three_rows_per_training_image_view_major_with_the_plain_view_first(work, monkeypatch):
    workspace = features_workspace(work)
    plain_files = extract(workspace, views=1)
    plain = features("train")
    assert plain.shape[0] == N and list(labels("train")) == [i % 2 for i in range(N)]

    opened = spy_memmaps(monkeypatch)
    files = extract(workspace, views=3)
    assert [(name, mode, shape[0]) for name, mode, shape in opened] == [
        ("train_features.npy", "w+", 3 * N),  # written a batch at a time into a memory map
        ("validation_features.npy", "w+", COUNTS["validation"]),
        ("test_features.npy", "w+", COUNTS["test"]),
    ]
    train = features("train")
    assert train.shape == (3 * N, *plain.shape[1:]) and train.dtype == np.float32
    np.testing.assert_array_equal(labels("train"), np.tile(np.arange(N) % 2, 3))
    np.testing.assert_array_equal(train[:N], plain)  # view 0 is the plain image, bit for bit
    views = train.reshape(3, N, -1)
    for one, other in ((0, 1), (0, 2), (1, 2)):
        assert all(not np.array_equal(views[one][i], views[other][i]) for i in range(N)), (one, other)
    for split in ("validation", "test"):  # one plain view, as with views: 1
        for name in (f"{split}_features.npy", f"{split}_labels.npy"):
            assert files[name] == plain_files[name]
        assert features(split).shape[0] == COUNTS[split]


def test_a_rerun_writes_the_same_bytes(work):
    workspace = features_workspace(work)
    first = extract(workspace, views=3)
    assert extract(workspace, views=3) == first


def test_an_augmented_view_is_the_training_augmentation_seeded_from_seed_and_view(work):
    workspace = features_workspace(work)
    extract(workspace, views=3)
    train = features("train")
    params = load_params()
    extractor = feature_extractor(saving.load_model(Path("models/base.keras")), SIZE, "vgg16")
    images = load_prepared("train")[0][:BATCH].astype(np.float32)
    for view in (1, 2):
        layer = augmentation.augmentation(params.augmentation, augmentation.view_seed(params.seed, view))
        expected = extractor.predict_on_batch(np.asarray(layer(images, training=True)))  # its first batch
        np.testing.assert_array_equal(train[view * N : view * N + BATCH], expected)

    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["seed"] += 1
    Path("params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    extract_features.main()
    other = features("train")
    np.testing.assert_array_equal(other[:N], train[:N])  # the plain view depends on no seed
    assert not np.allclose(other[N:], train[N:])


RANGE = "(views of each training image: the plain one, then augmented ones) must be between 1 and 32"


@pytest.mark.parametrize(
    ("views", "end"),
    [
        (0, f"{RANGE}; got 0"),
        (33, f"{RANGE}; got 33"),
        (2.0, "must be an integer; got 2.0"),
        (True, "must be an integer; got True"),
    ],
)
def test_views_out_of_range_or_not_an_integer_is_one_line(work, views, end):
    workspace = features_workspace(work)
    write_feature_params(workspace, views=views)
    with pytest.raises(ParamsError) as info:
        load_params()
    assert str(info.value) == f"params.yaml: extract_features.views {end}"

"""extract_features' augmented views: with `extract_features.views: k` the training split's features hold the
plain view and k-1 augmented ones of each image (view-major, labels repeated), through the layer the training
stages augment with, seeded from (seed, view); validation and test keep the plain view; train_classifier
trains on all of them. Each case runs the stage's main() on a tiny workspace: random pixels, a random conv base.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from classifier.core.params import load_params
from classifier.core.rules import ParamsError
from classifier.intake.prepared import load_prepared, save_prepared
from classifier.models import augmentation, prediction, saving
from classifier.models.assembly import feature_extractor
from classifier.models.batches import ArrayBatches
from classifier.models.training import class_weights
from stages import extract_features, train_classifier

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32
COUNTS = {"train": 10, "validation": 5, "test": 6}  # 10 train images: batches of 4, the last one padded
BATCH = 4
N = COUNTS["train"]


def write_params(folder: Path, **extract) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["image_size"] = SIZE
    raw["base"]["weights"] = None
    raw["extract_features"].update({"batch_size": BATCH, **extract})
    raw["train_classifier"].update({"epochs": 1, "batch_size": 8})
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """Prepared arrays of random pixels, two classes, and a random conv base: what extract_features reads."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Path("data/prepared").mkdir(parents=True)
    for split, count in COUNTS.items():
        save_prepared(split, rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8), np.arange(count) % 2)
    Path("data/classes.json").write_text(json.dumps(["cat", "dog"]))
    keras.utils.set_random_seed(0)
    pixels = keras.Input((None, None, 3))
    features = keras.layers.MaxPooling2D(4)(keras.layers.Conv2D(4, 3, activation="relu", name="conv")(pixels))
    saving.save_model(keras.Model(pixels, features, name="tiny_base"), Path("models/base.keras"))
    write_params(tmp_path)
    return tmp_path


def extract(folder: Path, **extract_params) -> dict[str, bytes]:
    """Run the stage with these extract_features params; every file it wrote, as bytes."""
    write_params(folder, **extract_params)
    extract_features.main()
    return {path.name: path.read_bytes() for path in sorted(Path("data/features").iterdir())}


def spy_memmaps(monkeypatch) -> list[tuple[str, str, tuple]]:
    """(file name, mode, shape) of each .npy file memory-mapped from now on to be written (np.load's maps read)."""
    opened, open_memmap = [], np.lib.format.open_memmap

    def spy(path, *args, **kwargs):
        if kwargs.get("mode") != "r":
            opened.append((Path(path).name, kwargs.get("mode"), kwargs.get("shape")))
        return open_memmap(path, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", spy)
    return opened


def features(split: str) -> np.ndarray:
    return np.load(f"data/features/{split}_features.npy")


def labels(split: str) -> np.ndarray:
    return np.load(f"data/features/{split}_labels.npy")


def test_three_views_give_three_rows_per_training_image_view_major_with_the_plain_view_first(workspace, monkeypatch):
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


def test_a_rerun_writes_the_same_bytes(workspace):
    first = extract(workspace, views=3)
    assert extract(workspace, views=3) == first


def test_an_augmented_view_is_the_training_augmentation_seeded_from_seed_and_view(workspace):
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


def test_predict_to_file_writes_view_major_rows_through_a_memory_map_released_as_it_goes(tmp_path, monkeypatch):
    pixels = keras.Input((2, 2, 3))
    model = keras.Model(pixels, keras.ops.sum(pixels, axis=(1, 2, 3)))  # one number per image: its pixel sum
    images = np.arange(7 * 12, dtype=np.uint8).reshape(7, 2, 2, 3)
    opened, released = spy_memmaps(monkeypatch), []
    monkeypatch.setattr(prediction, "release", lambda array: released.append(type(array)))
    monkeypatch.setattr(prediction, "RELEASE_EVERY", 4)
    views = (None, lambda batch: batch + 1, lambda batch: batch * 2)
    prediction.predict_to_file(model, images, 3, tmp_path / "out.npy", views)

    assert opened == [("out.npy", "w+", (21,))]
    sums = images.reshape(7, -1).sum(axis=1).astype(np.float32)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.concatenate([sums, sums + 12, sums * 2]))
    # every 4 rows written, across the views' boundaries: 21 rows cross 4, 8, 12, 16 and 20
    assert released.count(np.memmap) == 5


def test_train_classifier_trains_on_every_view_mixed_with_the_same_class_weights(workspace):
    extract(workspace, views=3)
    train = np.load("data/features/train_features.npy", mmap_mode="r"), labels("train")
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
def test_views_out_of_range_or_not_an_integer_is_one_line(workspace, views, end):
    write_params(workspace, views=views)
    with pytest.raises(ParamsError) as info:
        load_params()
    assert str(info.value) == f"params.yaml: extract_features.views {end}"

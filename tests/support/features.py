"""A tiny workspace for extract_features and train_classifier (the stages after load_base): prepared arrays
of random pixels in two classes, data/classes.json, a random conv base in models/base.keras, and params.yaml
for them; and extract_features run there with some of its params changed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from classifier.intake.prepared.arrays import save_prepared
from classifier.models import saving
from stages import extract_features
from tests.support.models import pooled_base
from tests.support.params import write_params

SIZE = 32
COUNTS = {"train": 10, "validation": 5, "test": 6}  # 10 train images: batches of 4, the last one padded
BATCH = 4
N = COUNTS["train"]


def write_feature_params(folder: Path, **extract) -> None:
    """folder/params.yaml for the tiny workspace, with these extract_features params."""
    changes = {"data.image_size": SIZE, "base.weights": None, "extract_features.batch_size": BATCH}
    changes |= {f"extract_features.{key}": value for key, value in extract.items()}
    write_params(folder, changes | {"train_classifier.epochs": 1, "train_classifier.batch_size": 8})


def features_workspace(folder: Path) -> Path:
    """The tiny workspace in `folder`, the current folder: what extract_features reads."""
    rng = np.random.default_rng(0)
    Path("data/prepared").mkdir(parents=True)
    for split, count in COUNTS.items():
        save_prepared(split, rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8), np.arange(count) % 2)
    Path("data/classes.json").write_text(json.dumps(["cat", "dog"]))
    saving.save_model(pooled_base(), Path("models/base.keras"))
    write_feature_params(folder)
    return folder


def extract(folder: Path, **extract_params) -> dict[str, bytes]:
    """Run the stage with these extract_features params; every file it wrote, as bytes."""
    write_feature_params(folder, **extract_params)
    extract_features.main()
    return {path.name: path.read_bytes() for path in sorted(Path("data/features").iterdir())}

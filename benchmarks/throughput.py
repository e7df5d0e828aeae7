"""Throughput rows: prepare, extract_features and train_frozen, each against this machine's limit
or the usual Keras way, on the same images in this process."""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

from benchmarks import ROOT, SHARED
from benchmarks.harness import Row, best_of, speed_row
from benchmarks.images import CLASSES, lay_out_split, prepare_train

SHARED_BASE = SHARED / "models/efficientnet_lite0_notop.keras"
LEARNING_RATE = 2e-5


class Base(NamedTuple):
    model: object  # keras.Model
    mode: str  # its preprocessing (classifier.models.bases.preprocessing_mode)
    params: object  # classifier.core.params.BaseParams that name it, as params.yaml would
    description: str


def load_base() -> Base:
    import keras

    from classifier.core.schema import BaseParams

    if SHARED_BASE.is_file():
        model, mode, name, description = (
            keras.models.load_model(SHARED_BASE, compile=False),
            "none",
            str(SHARED_BASE),
            "EfficientNet-Lite0 (ImageNet)",
        )
    else:
        model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(None, None, 3))
        mode, name, description = "mobilenet_v2", "mobilenet_v2", "MobileNetV2 (random weights)"
    params = BaseParams(name=name, weights=None, output_layer=None, fine_tune_from=None, preprocessing="native")
    return Base(model, mode, params, description)


def frozen_classifier(base, mode: str, size: int, params):
    """The frozen base with a fresh dense head: the model stage train_frozen saves."""
    from classifier.models.architecture import dense_classifier, with_classifier
    from classifier.models.graph import freeze

    freeze(base)
    head = dense_classifier(base.compute_output_shape((None, size, size, 3))[1:], params.head, len(CLASSES))
    return with_classifier(base, head, size, mode)


def for_training(model, params, seed: int, augment: bool = True):
    """`model` as stages train_frozen and fine_tune train it: the augmentation in front, compiled."""
    from classifier.models.augmentation import augmentation, with_augmentation
    from classifier.models.training.compiling import compile_model

    trained = with_augmentation(model, augmentation(params.augmentation, seed)) if augment else model
    compile_model(trained, LEARNING_RATE)
    return trained


def bench_prepare(split: str, rows: list[dict], size: int, rounds: int) -> Row:
    from classifier.intake.decoding import decode_image
    from classifier.intake.preparation import prepare_split

    paths = [Path("data/split") / row["path"] for row in rows]
    Path("data/prepared").mkdir(parents=True, exist_ok=True)

    def plain_loop():
        for path in paths:
            decode_image(path.read_bytes(), size)

    def stage():
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:  # as the stage does, start-up included
            prepare_split(split, rows, size, list(CLASSES), pool)

    seconds = best_of(rounds, {"plain": plain_loop, "stage": stage})
    note = f"{len(rows)} images -> {size}x{size}, {os.cpu_count()} cores"
    return speed_row("prepare", len(rows), seconds, "plain", "PIL loop, 1 process", 1.7, note)


def bench_extract(images, base, mode: str, batch_size: int, out: Path, rounds: int) -> Row:
    import numpy as np

    from classifier.models.architecture import feature_extractor
    from classifier.models.prediction import predict_to_file

    extractor = feature_extractor(base, images.shape[1], mode)
    in_memory = np.asarray(images, dtype=np.float32)
    extractor.predict(in_memory[:batch_size], batch_size=batch_size, verbose=0)  # trace both paths once
    extractor.predict_on_batch(in_memory[:batch_size])
    seconds = best_of(
        rounds,
        {
            "limit": lambda: extractor.predict(in_memory, batch_size=batch_size, verbose=0),
            "stage": lambda: predict_to_file(extractor, images, batch_size, out),
        },
    )
    note = f"{len(images)} images, batch {batch_size}"
    return speed_row("extract_features", len(images), seconds, "limit", "predict, float32 in memory", 0.9, note)


def bench_train_frozen(images, labels, base, mode: str, batch_size: int, seed: int, rounds: int) -> list[Row]:
    import keras
    import numpy as np
    import tensorflow as tf

    from classifier.core.params import load_params
    from classifier.models.training.batches import ArrayBatches

    params = load_params(ROOT / "params.yaml")
    size = images.shape[1]

    def model(augment: bool) -> keras.Model:  # augmented: as stage train_frozen trains it
        return for_training(frozen_classifier(base, mode, size, params), params, seed, augment)

    tensors = tf.constant(np.asarray(images, np.float32)), tf.constant(labels.astype(np.float32))
    from_directory = keras.utils.image_dataset_from_directory(
        "data/split/train",
        labels="inferred",
        label_mode="binary",
        class_names=list(CLASSES),
        image_size=(size, size),
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        verbose=False,
    )
    runs = {  # (model, one epoch of its data)
        "stage": (model(True), ArrayBatches(images, labels, batch_size, seed=seed)),
        "limit": (model(False), tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size)),
        "usual": (model(True), from_directory.prefetch(tf.data.AUTOTUNE)),
    }
    for trained, data in runs.values():  # the first epoch traces the train step
        trained.fit(data, epochs=1, verbose=0)
    seconds = best_of(
        rounds,
        {
            name: (lambda trained=trained, data=data: trained.fit(data, epochs=1, verbose=0))
            for name, (trained, data) in runs.items()
        },
    )
    n = len(labels)
    note = f"{n} images, batch {batch_size}, best epoch of {rounds} after a warm-up one"
    in_memory, usual = (
        "train step on in-memory tensors, no augmentation",
        "image_dataset_from_directory + same augmentation",
    )
    return [
        speed_row("train_frozen (a)", n, seconds, "limit", in_memory, 0.75, note),
        speed_row("train_frozen (b)", n, seconds, "usual", usual, 1.0, "JPEGs decoded every epoch"),
    ]


def throughput_rows(
    rows: list[Row], folder: Path, images: Path, distinct: int, per_class: int, size: int, rounds: int
) -> str:
    """Append the throughput rows to `rows` as they are measured, working in `folder`; return the base's description."""
    folder.mkdir()
    with contextlib.chdir(folder):
        # prepare on the book's whole split (4,000 images); the other rows on 1,000 of them.
        book_split = lay_out_split(images, "test", 4 * per_class, cycle=distinct)
        rows.append(bench_prepare("test", book_split, size, rounds))
        prepare_train(images, per_class, size)

        from classifier.core.backend import set_seed
        from classifier.intake.prepared.arrays import load_prepared

        set_seed(0)  # as every stage: seeded, the backend's ops deterministic
        base = load_base()
        prepared, labels = load_prepared("train")
        rows.append(bench_extract(prepared, base.model, base.mode, 32, folder / "features.npy", rounds))
        rows += bench_train_frozen(prepared, labels, base.model, base.mode, 20, seed=0, rounds=rounds)
    return base.description

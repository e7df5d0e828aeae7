"""Run by tests/core/test_backend.py in a process of its own, with KERAS_BACKEND set (and, usually,
TensorFlow made unimportable by tests/no_tensorflow): a training stage's code path on a tiny
image problem. Prints one JSON line: what the tests compare across runs and backends.

    python tests/core/backend_training.py WORK_FOLDER [--stop-after N] [--distribute mirrored]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import keras
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SIZE, EPOCHS = 16, 3


def image_problem(folder: Path):
    """Bright vs dark 16x16 images with noise, as memory-mapped uint8 files (as prepare writes them)."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in (("train", 48), ("validation", 16)):
        labels = (np.arange(count) % 2).astype(np.int32)
        images = rng.normal(90 + 80 * labels[:, None, None, None], 40, (count, SIZE, SIZE, 3)).clip(0, 255)
        if not (folder / f"{split}_images.npy").is_file():  # a resumed run's checkpoint is tied to these files
            np.save(folder / f"{split}_images.npy", images.astype(np.uint8))
        splits[split] = np.load(folder / f"{split}_images.npy", mmap_mode="r"), labels
    return splits["train"], splits["validation"]


class Stop(keras.callbacks.Callback):
    """Stands in for a stage killed after epoch `after` (once its checkpoint is written)."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--distribute", default="none")
    args = parser.parse_args()
    os.chdir(args.work)

    from classifier.core.params import load_params
    from classifier.models.architecture import small_convnet
    from classifier.models.augmentation import augmentation, with_augmentation
    from classifier.models.saving import save_model
    from classifier.models.training.compiling import compile_model
    from classifier.models.training.fitting import fit
    from classifier.models.training.stage import model_scope

    params = load_params(ROOT / "params.yaml")
    run = params.training.model_copy(update={"resume": True, "deterministic": True, "distribute": args.distribute})
    train, validation = image_problem(args.work)
    with model_scope(run, seed=0):
        model = small_convnet(SIZE, 0.5, 2)  # Dropout and augmentation: the random parts
        trained = with_augmentation(model, augmentation(params.augmentation, seed=0))
        compile_model(trained, 1e-3)
    if args.stop_after:
        keras_fit = keras.Model.fit
        keras.Model.fit = lambda self, *a, callbacks=(), **k: keras_fit(
            self, *a, callbacks=[*callbacks, Stop(args.stop_after)], **k
        )
        try:
            fit(trained, "demo", train, validation, epochs=EPOCHS, batch_size=8, seed=0, resume=True)
        except KeyboardInterrupt:
            print(json.dumps({"stopped": True}))
            return
    summary = fit(trained, "demo", train, validation, epochs=EPOCHS, batch_size=8, seed=0, resume=True)
    save_model(model, args.work / "model.keras", ["dark", "bright"])
    np.save(args.work / "predictions.npy", model.predict(np.asarray(validation[0], np.float32), verbose=0))
    weights = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "summary": summary,
                "weights": weights,
                "tensorflow_imported": sys.modules.get("tensorflow") is not None,
                "metrics": sorted(path.name for path in (args.work / "metrics/demo").rglob("*") if path.is_file()),
            }
        )
    )


if __name__ == "__main__":
    main()

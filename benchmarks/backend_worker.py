"""One Keras backend's measurements, in a process of its own (Keras reads KERAS_BACKEND when it
is first imported, so a process runs on one backend only):

    KERAS_BACKEND=jax python -m benchmarks.backend_worker --batch-size 20 --extract-batch-size 32

Run in a folder holding data/prepared/train_*. Each measurement is the stage's own code path,
as the throughput rows run it: warmed up with one untimed pass (tracing, compiling), then timed
once. Prints one JSON line last: {"backend", "base", "images", "seconds": {measurement: s},
"failed": {measurement: the error's last line}}; a measurement that fails does not stop the others.
"""

from __future__ import annotations

import argparse
import json
import traceback
from pathlib import Path

from benchmarks import ROOT
from benchmarks.harness import best_of

MEASUREMENTS = ("extract_features", "train_frozen", "fine_tune")


def last_line(error: BaseException) -> str:
    return traceback.format_exception_only(error)[-1].strip()


def measure(batch_size: int, extract_batch_size: int, seed: int = 0) -> dict:
    import keras

    from benchmarks.throughput import for_training, frozen_classifier, load_base
    from classifier.core.backend import set_seed
    from classifier.core.params import load_params
    from classifier.intake.prepared.arrays import load_prepared
    from classifier.models.architecture import feature_extractor
    from classifier.models.bases import fine_tune_layer
    from classifier.models.graph import nested_base, unfreeze_from
    from classifier.models.prediction import predict_to_file
    from classifier.models.training.batches import ArrayBatches

    set_seed(seed)  # as every stage
    params = load_params(ROOT / "params.yaml")
    base = load_base()
    images, labels = load_prepared("train")
    size = images.shape[1]

    def extract_features():
        extractor = feature_extractor(base.model, size, base.mode)
        return lambda: predict_to_file(extractor, images, extract_batch_size, Path("features.npy"))

    def epoch(unfreeze_top: bool):
        """One epoch of stage train_frozen's model or, with `unfreeze_top`, of stage fine_tune's."""
        model = frozen_classifier(base.model, base.mode, size, params)
        if unfreeze_top:
            layer, _ = fine_tune_layer(base.params, nested_base(model))
            unfreeze_from(nested_base(model), layer)
        trained = for_training(model, params, seed)  # compiled after unfreezing, as stage fine_tune does
        batches = ArrayBatches(images, labels, batch_size, seed=seed)
        return lambda: trained.fit(batches, epochs=1, verbose=0)

    report = {
        "backend": keras.backend.backend(),
        "base": base.description,
        "images": len(labels),
        "seconds": {},
        "failed": {},
    }
    setups = {
        "extract_features": extract_features,
        "train_frozen": lambda: epoch(False),
        "fine_tune": lambda: epoch(True),
    }
    for name, setup in setups.items():
        try:
            run = setup()
            run()  # warm-up: tracing, compiling
            report["seconds"][name] = best_of(1, {name: run})[name]
        except Exception as error:  # noqa: BLE001 - reported in the table, the other measurements go on
            traceback.print_exc()
            report["failed"][name] = last_line(error)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=20, help="train_frozen and fine_tune (default 20)")
    parser.add_argument("--extract-batch-size", type=int, default=32, help="extract_features (default 32)")
    args = parser.parse_args()
    report = measure(args.batch_size, args.extract_batch_size)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()

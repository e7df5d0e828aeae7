"""Classify your own images with a trained model (not a pipeline stage).

    python -m stages.predict IMAGE_OR_FOLDER [...] [--model fine_tuned] [--csv] [--top K]

Prints `path, label, probability` per image: the most likely class and its probability;
`--top K` adds the next most likely classes; `--csv` prints `path,label` and one probability
column per class. Class names come from the model file. Any format PIL opens, any size
(resized to the model's input like the training images). A folder is searched recursively.
A file that cannot be read gets a one-line error on stderr and the others are still
predicted; the exit status is then 1. Models load in Keras safe mode: no code from the
model file runs.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from stages.common.cli import StageError
from stages.common.images import BadImage, decode_image
from stages.common.layout import MODEL_STAGES, model_path
from stages.common.prediction import predict_probabilities
from stages.common.saving import load_model, saved_class_names

BATCH_SIZE = 32


def image_files(targets: list[Path]) -> list[Path]:
    files = []
    for target in targets:
        if target.is_dir():
            files += sorted(path for path in target.rglob("*") if path.is_file())
        else:
            files.append(target)  # a missing file is reported when it is read
    return files


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stages.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER")
    parser.add_argument(
        "--model", default="fine_tuned",
        help=f"one of {', '.join(MODEL_STAGES)} (in models/), or the path of a .keras model (default: fine_tuned)",
    )
    parser.add_argument("--csv", action="store_true", help="print CSV: path, label, one probability column per class")
    parser.add_argument("--top", type=int, default=1, metavar="K", help="show the K most likely classes (default 1)")
    args = parser.parse_args(argv)
    if not args.model.endswith(".keras") and args.model not in MODEL_STAGES:
        parser.error(f"--model {args.model!r}: use one of {', '.join(MODEL_STAGES)} or a .keras file")
    if args.top < 1:
        parser.error(f"--top {args.top}: give 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = Path(args.model) if args.model.endswith(".keras") else model_path(args.model)
    if args.model.endswith(".keras") and not path.is_file():
        sys.exit(f"predict: error: --model {path} is not a file")
    try:
        model = load_model(path)
    except StageError as err:
        sys.exit(f"predict: error: {err}")
    classes = max(model.output_shape[-1], 2)
    # A model from elsewhere may carry no names: its labels are then shown as numbers.
    class_names = saved_class_names(path) or [str(label) for label in range(classes)]
    size = model.input_shape[1]

    readable, pixels, failures = [], [], 0
    for file in image_files(args.targets):
        try:
            pixels.append(decode_image(file.read_bytes(), size))
            readable.append(file)
        except (OSError, BadImage) as err:
            print(f"predict: error: {file}: {getattr(err, 'strerror', None) or err}", file=sys.stderr)
            failures += 1
    probabilities = predict_probabilities(model, np.stack(pixels), BATCH_SIZE) if pixels else []

    writer = csv.writer(sys.stdout) if args.csv else None
    if writer:
        writer.writerow(("path", "label", *class_names))
    for file, row in zip(readable, probabilities):
        ranked = np.argsort(-row, kind="stable")[: args.top]
        if writer:
            writer.writerow((str(file), class_names[ranked[0]], *(f"{p:.4f}" for p in row)))
        else:
            print(", ".join([str(file), *(f"{class_names[label]}, {row[label]:.4f}" for label in ranked)]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Classify your own images with a trained model (not a pipeline stage).

    python -m stages.predict IMAGE_OR_FOLDER [...] [--model fine_tuned] [--csv]

Prints `path, label, P(dog)` per image. Any format PIL opens, any size (resized to the
model's input like the training images). A folder is searched recursively. A file that
cannot be read gets a one-line error on stderr and the others are still predicted; the
exit status is then 1. Models load in Keras safe mode: no code from the model file runs.
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
from stages.common.models import load_model, predict_p_dog
from stages.common.raw_images import LABELS

BATCH_SIZE = 32


def image_files(targets: list[Path]) -> list[Path]:
    files = []
    for target in targets:
        if target.is_dir():
            files += sorted(path for path in target.rglob("*") if path.is_file())
        else:
            files.append(target)  # a missing file is reported when it is read
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER")
    parser.add_argument(
        "--model", default="fine_tuned",
        help=f"one of {', '.join(MODEL_STAGES)} (in models/), or the path of a .keras model (default: fine_tuned)",
    )
    parser.add_argument("--csv", action="store_true", help="print CSV with a header row")
    args = parser.parse_args(argv)

    path = Path(args.model) if args.model.endswith(".keras") else model_path(args.model)
    if not args.model.endswith(".keras") and args.model not in MODEL_STAGES:
        parser.error(f"--model {args.model!r}: use one of {', '.join(MODEL_STAGES)} or a .keras file")
    if args.model.endswith(".keras") and not path.is_file():
        sys.exit(f"predict: error: --model {path} is not a file")
    try:
        model = load_model(path)
    except StageError as err:
        sys.exit(f"predict: error: {err}")
    size = model.input_shape[1]

    readable, pixels, failures = [], [], 0
    for file in image_files(args.targets):
        try:
            pixels.append(decode_image(file.read_bytes(), size))
            readable.append(file)
        except (OSError, BadImage) as err:
            print(f"predict: error: {file}: {getattr(err, 'strerror', None) or err}", file=sys.stderr)
            failures += 1
    p_dog = predict_p_dog(model, np.stack(pixels), BATCH_SIZE) if pixels else []

    writer = csv.writer(sys.stdout) if args.csv else None
    if writer:
        writer.writerow(("path", "label", "p_dog"))
    for file, p in zip(readable, p_dog):
        shown = round(float(p), 4)  # the label agrees with the printed probability
        row = (str(file), LABELS[int(shown >= 0.5)], f"{shown:.4f}")
        writer.writerow(row) if writer else print(", ".join(row))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

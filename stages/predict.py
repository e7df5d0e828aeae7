"""Classify your own images with a trained model (not a pipeline stage).

    python -m stages.predict IMAGE_OR_FOLDER [...] [--model best] [--csv] [--top K] [--tta]
    python path/to/repository/stages/predict.py IMAGE_OR_FOLDER [...]   # from any directory

Prints `path, label, probability` per image: the most likely class and its probability;
`--top K` adds the next most likely classes; `--csv` prints `path,label` and one probability
column per class (a field that would start a spreadsheet formula starts with an apostrophe);
`--tta` averages each image's probabilities with its mirror image's (test-time augmentation, as
`evaluate.tta`; off by default: a model file does not say how it was evaluated), and says so on stderr.
Class names come from the model file; one with a control character is printed quoted (as
Python's repr). Any format PIL opens, decoded as `prepare` decodes the training images (turned
upright as its EXIF orientation says, resized to the model's input); an image of more than
--max-pixels pixels (default 89,478,485, as data.max_pixels) is refused from its header, before
decoding. A folder is searched recursively, following symbolic links; each folder once, so a
link loop is reported, not followed.
A file that cannot be read, an empty folder, a link loop get one line each on stderr
(`predict: error: ...`) and the other images are still predicted; the exit status is then 1.
Models load in Keras safe mode: no code from the model file runs; a file that is refused
(not a .keras archive, a Lambda layer, a class this Keras does not know, a base without a
classifier) ends predict with one line saying what it is and what to give.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # models/ and metrics/ are the repository's; images are the user's
if not __package__:  # run as a file, from any directory: the repository's packages, and what stages/__init__.py
    sys.path[0] = str(ROOT)  # does for `python -m`: Ctrl-C's one line, the backend checked, TensorFlow quiet
    from classifier.core.cli import stage_starting
    from stages._startup_log import quiet_tensorflow_startup

    stage_starting("predict", "predict: interrupted")
    quiet_tensorflow_startup()

import numpy as np  # noqa: E402

from classifier.core.cli import INTERRUPTED, StageError, closed_pipe, interrupt  # noqa: E402
from classifier.core.layout import BEST, MODEL_STAGES, model_path  # noqa: E402
from classifier.core.schema import MAX_MAX_PIXELS, MIN_MAX_PIXELS  # noqa: E402
from classifier.intake.images import DEFAULT_MAX_PIXELS  # noqa: E402
from classifier.intake.names import CsvWriter, terminal_text  # noqa: E402
from classifier.models.choice import using, which_model  # noqa: E402
from classifier.models.prediction import class_names_of, predict_probabilities  # noqa: E402
from classifier.models.saving import load_model  # noqa: E402
from classifier.serving.image_files import image_files  # noqa: E402
from classifier.serving.predicting import check_classifier, decoded_images  # noqa: E402

BATCH_SIZE = 32


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stages.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER")
    parser.add_argument(
        "--model",
        default=BEST,
        help=f"{BEST} (the best on validation), one of {', '.join(MODEL_STAGES)} (in models/), or the path of a "
        f".keras model (default: {BEST})",
    )
    parser.add_argument("--csv", action="store_true", help="print CSV: path, label, one probability column per class")
    parser.add_argument("--top", type=int, default=1, metavar="K", help="show the K most likely classes (default 1)")
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image's probabilities with its mirror image's (default: off)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"refuse an image of more than N pixels, width x height (default {DEFAULT_MAX_PIXELS})",
    )
    args = parser.parse_args(argv)
    if not args.model.endswith(".keras") and args.model not in (BEST, *MODEL_STAGES):
        parser.error(f"--model {args.model!r}: use {BEST}, one of {', '.join(MODEL_STAGES)} or a .keras file")
    if args.top < 1:
        parser.error(f"--top {args.top}: give 1 or more")
    if not MIN_MAX_PIXELS <= args.max_pixels <= MAX_MAX_PIXELS:
        parser.error(f"--max-pixels {args.max_pixels}: give {MIN_MAX_PIXELS} to {MAX_MAX_PIXELS} (width x height)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shown = args.model if args.model.endswith(".keras") else str(model_path(args.model))  # as messages name it
    path = Path(args.model).resolve() if args.model.endswith(".keras") else ROOT / shown
    if args.model.endswith(".keras") and not path.is_file():
        sys.exit(f"predict: error: --model {args.model} is not a file")
    if not args.model.endswith(".keras"):
        try:
            with contextlib.chdir(ROOT):
                chosen = which_model(args.model)
        except StageError as err:
            sys.exit(f"predict: error: {err}")
        with contextlib.chdir(ROOT):
            print(f"predict: {using(args.model, chosen)}", file=sys.stderr)  # stdout stays the table
    files, problems = image_files(args.targets)  # as given: relative to where the user stands
    for problem in problems:
        print(f"predict: error: {problem}", file=sys.stderr)
    if not files:
        return 1
    try:
        model = load_model(path, label=shown)  # one line for any file Keras refuses (saving.load_model)
        check_classifier(model, Path(shown))
    except StageError as err:
        sys.exit(f"predict: error: {err}")
    class_names = class_names_of(model, path)
    size = model.input_shape[1]

    readable, pixels, undecodable = decoded_images(files, size, args.max_pixels)
    failures = len(problems) + undecodable
    if args.tta:  # stderr: stdout stays the table
        print("predict: test-time augmentation: each image's probabilities averaged with its mirror's", file=sys.stderr)
    probabilities = predict_probabilities(model, pixels, BATCH_SIZE, tta=args.tta) if pixels is not None else []

    writer = CsvWriter(sys.stdout) if args.csv else None
    if writer:
        writer.writerow(("path", "label", *class_names))
    for file, row in zip(readable, probabilities):
        ranked = np.argsort(-row, kind="stable")[: args.top]
        if writer:
            writer.writerow((str(file), class_names[ranked[0]], *(f"{p:.4f}" for p in row)))
        else:
            shown = (f"{terminal_text(class_names[label])}, {row[label]:.4f}" for label in ranked)
            print(", ".join([terminal_text(file), *shown]))
    return 1 if failures else 0


def run() -> int:
    """main() as the command runs: Ctrl-C or SIGTERM end it with one line (exit 130); a reader that
    stops early (`| head -2`) ends it quietly, with the status SIGPIPE gives (141), as for `cat`."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        status = main()
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except KeyboardInterrupt:
        print("predict: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return closed_pipe()
    return status


if __name__ == "__main__":
    sys.exit(run())

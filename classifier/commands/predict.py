"""`classifier predict`: classify your own images with a trained model of this repository, from any folder.

    classifier predict IMAGE_OR_FOLDER [...] [--model best] [--csv] [--top K] [--tta]

Prints `path, label, probability` per image: the most likely class and its probability;
`--top K` adds the next most likely classes; `--csv` prints `path,label` and one probability
column per class (a field that would start a spreadsheet formula starts with an apostrophe);
`--tta` averages each image's probabilities with its mirror image's (test-time augmentation, as
`evaluate.tta`; off by default: a model file does not say how it was evaluated), and says so on stderr.
Class names come from the model file; one with a control character is printed quoted (as
Python's repr). Where the terminal cannot show a character (PYTHONIOENCODING=ascii), the lines
write it as an escape (`\\u0444`); the CSV is UTF-8 whatever the terminal's encoding. Any format
PIL opens, decoded as `prepare` decodes the training images (turned upright as its EXIF
orientation says, resized to the model's input); an image of more than
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
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from classifier.core.errors import StageError
from classifier.core.paths import PROJECT_ROOT, model_path
from classifier.intake.escaping import CsvWriter, terminal_text
from classifier.models.architecture import class_names_of
from classifier.models.best_model import using, which_model
from classifier.models.prediction import predict_probabilities
from classifier.models.saving import load_model
from classifier.serving.image_files import image_files
from classifier.serving.predicting import check_classifier, decoded_images

BATCH_SIZE = 32


def run(args: argparse.Namespace) -> int:
    shown = args.model if args.model.endswith(".keras") else str(model_path(args.model))  # as messages name it
    path = Path(args.model).resolve() if args.model.endswith(".keras") else PROJECT_ROOT / shown
    if args.model.endswith(".keras") and not path.is_file():
        raise StageError(f"--model {args.model} is not a file")
    if not args.model.endswith(".keras"):
        with contextlib.chdir(PROJECT_ROOT):
            chosen = which_model(args.model)
            print(f"predict: {using(args.model, chosen)}", file=sys.stderr)  # stdout stays the table
    files, problems = image_files(args.targets)  # as given: relative to where the user stands
    for problem in problems:
        print(f"predict: error: {problem}", file=sys.stderr)
    if not files:
        return 1
    model = load_model(path, label=shown)  # one line for any file Keras refuses (saving.load_model)
    check_classifier(model, Path(shown))
    class_names = class_names_of(model, path)
    size = model.input_shape[1]

    readable, pixels, undecodable = decoded_images(files, size, args.max_pixels)
    failures = len(problems) + undecodable
    if args.tta:  # stderr: stdout stays the table
        print("predict: test-time augmentation: each image's probabilities averaged with its mirror's", file=sys.stderr)
    probabilities = predict_probabilities(model, pixels, BATCH_SIZE, tta=args.tta) if pixels is not None else []

    writer = CsvWriter(utf8_stdout()) if args.csv else None
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


def utf8_stdout() -> TextIO:
    """stdout for the CSV: UTF-8 whatever the terminal's encoding (PYTHONIOENCODING=ascii, a Latin-1 locale),
    so that a path or class name is written as it is, as a CSV file is read; escapes would change a name.
    A name's bytes that are not UTF-8 at all (undecodable in a file name) are escaped."""
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
    return sys.stdout

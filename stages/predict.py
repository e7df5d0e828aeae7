"""Classify your own images with a trained model (not a pipeline stage).

    python -m stages.predict IMAGE_OR_FOLDER [...] [--model fine_tuned] [--csv] [--top K]

Prints `path, label, probability` per image: the most likely class and its probability;
`--top K` adds the next most likely classes; `--csv` prints `path,label` and one probability
column per class. Class names come from the model file. Any format PIL opens, any size
(resized to the model's input like the training images). A folder is searched recursively,
following symbolic links; each folder once, so a link loop is reported, not followed.
A file that cannot be read, an empty folder, a link loop get one line each on stderr
(`predict: error: ...`) and the other images are still predicted; the exit status is then 1.
Models load in Keras safe mode: no code from the model file runs; a file that is refused
(not a .keras archive, a Lambda layer, a class this Keras does not know, a base without a
classifier) ends predict with one line saying what it is and what to give.
"""

from __future__ import annotations

import argparse
import csv
import errno
import os
import sys
from pathlib import Path

import numpy as np

from classifier.core.cli import StageError
from classifier.intake.images import BadImage, decode_image
from classifier.core.layout import MODEL_STAGES, model_path
from classifier.models.prediction import class_names_of, predict_probabilities
from classifier.models.saving import load_model

BATCH_SIZE = 32


def image_files(targets: list[Path]) -> tuple[list[Path], list[str]]:
    """The files to predict, and a line for each problem met on the way (an empty folder, a
    symbolic link loop, a broken link, a folder that cannot be listed). Folders are searched
    recursively, following symbolic links, each folder once: a link back to a folder that
    leads to it is a loop, reported and not followed; a second link to a folder adds nothing."""
    files, problems = [], []
    for target in targets:
        if target.is_dir():
            found = search(target, problems)
            if not found:
                problems.append(f"no images in {target}")
            files += sorted(found)
        elif target.exists() and not target.is_file():
            problems.append(f"{target}: not a regular file (a FIFO, socket or device): skipped")
        else:
            files.append(target)  # a missing or unreadable file is reported when it is read
    return files, problems


def search(top: Path, problems: list[str]) -> list[Path]:
    """The files under `top`, depth first without recursion (any depth); folders are known by
    (device, inode), so a link loop is seen however it is spelt."""
    found, searched = [], set()
    stack = [(top, frozenset())]  # a folder, and the folders that lead to it
    while stack:
        folder, ancestors = stack.pop()
        try:
            status = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as err:
            problems.append(f"{folder}: {err.strerror or err}")
            continue
        key = (status.st_dev, status.st_ino)
        if key in searched:
            continue
        searched.add(key)
        ancestors = ancestors | {key}
        subfolders = []
        for entry in entries:
            path = folder / entry.name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
                leads_to = os.stat(path) if is_dir else None
            except OSError as err:
                loop = err.errno == errno.ELOOP
                problems.append(f"{path}: {'a symbolic link loop' if loop else err.strerror or err}: skipped")
                continue
            if is_dir and (leads_to.st_dev, leads_to.st_ino) in ancestors:
                problems.append(f"{path}: a symbolic link loop (it leads back to {folder_of(path)}): not followed")
            elif is_dir:
                subfolders.append(path)
            elif is_file:
                found.append(path)
            elif entry.is_symlink():
                problems.append(f"{path}: a broken symbolic link (to {os.readlink(path)}): skipped")
            else:
                problems.append(f"{path}: not a regular file (a FIFO, socket or device): skipped")
        stack.extend((subfolder, ancestors) for subfolder in reversed(subfolders))
    return found


def folder_of(link: Path) -> str:
    """Where a looping symbolic link leads, as written in the link."""
    return os.path.normpath(link.parent / os.readlink(link)) if link.is_symlink() else str(link)


def check_classifier(model, path: Path) -> None:
    """Predict needs an image classifier: (None, S, S, 3) pixels in, (None, classes) out."""
    trained = f"one of the five trained models ({', '.join(MODEL_STAGES)}) or a .keras classifier this pipeline trained"
    try:
        output, inputs = model.output_shape, model.input_shape
    except (AttributeError, ValueError):  # a Sequential model saved before it was built
        raise StageError(f"{path} is not an image classifier (it has no defined input and output): give {trained}") from None
    if isinstance(output, list) or isinstance(inputs, list):
        raise StageError(f"{path} is not an image classifier (it has several inputs or outputs): give {trained}")
    if len(output) == 4:
        raise StageError(f"{path} is a convolutional base without a classifier (output {output}): give {trained}")
    if len(output) != 2 or len(inputs) != 4 or inputs[-1] != 3 or inputs[1] is None or inputs[1] != inputs[2]:
        raise StageError(
            f"{path} is not an image classifier of this pipeline (input {inputs}, output {output}): give {trained}"
        )


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
    files, problems = image_files(args.targets)
    for problem in problems:
        print(f"predict: error: {problem}", file=sys.stderr)
    if not files:
        return 1
    try:
        model = load_model(path)  # one line for any file Keras refuses (saving.load_model)
        check_classifier(model, path)
    except StageError as err:
        sys.exit(f"predict: error: {err}")
    class_names = class_names_of(model, path)
    size = model.input_shape[1]

    readable, pixels, failures = [], [], len(problems)
    for file in files:
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

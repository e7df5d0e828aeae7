"""Image arrays with a labels table: per split an `.npy` (N x H x W x 3 or N x H x W, uint8) and a
`.csv` with one row per image, `data.label_column` naming the label column; a pair belongs to the
split its file names say (`train.npy` + `train.csv`, `x_train.npy` + `y_train.csv`), a single pair
naming no split is an unsplit collection. Each row becomes a lossless PNG under data/split.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from functools import partial

import numpy as np
from PIL import Image

from classifier.core.errors import RawDataError
from classifier.intake.raw.collection import INTEGER, SPLIT_NAMES, RawImage
from classifier.intake.raw.files import RawFile
from classifier.intake.raw.tree import RawTree


def array_images(tree: RawTree, parts: list[RawFile], label_column: str) -> list[RawImage]:
    pairs = pair_arrays(tree, parts)
    arrays = {split: load_image_array(tree, npy) for split, (npy, _) in pairs.items()}
    tables = {split: read_labels(tree, table, label_column) for split, (_, table) in pairs.items()}
    labels = {split: values for split, (values, _) in tables.items()}
    for split, (npy, table) in pairs.items():
        if len(labels[split]) != len(arrays[split]):
            trailing = tables[split][1]
            empty = f" (and empty lines at its end: {', '.join(map(str, trailing))})" if trailing else ""
            raise RawDataError(
                f"{tree.shown(table.source)} has {len(labels[split])} label rows{empty} but {tree.shown(npy.source)} "
                f"holds {len(arrays[split])} images; give one row per image, in the array's order"
            )
    every_label = [label for values in labels.values() for label in values]
    if all(INTEGER.match(label) for label in every_label):  # 3 and 03 are one class, named 3
        labels = {split: [str(int(label)) for label in values] for split, values in labels.items()}
    return [
        array_row(array, row, class_name, f"{pairs[split][0].source}:{row}", split)
        for split, array in arrays.items()
        for row, class_name in enumerate(labels[split])
    ]


def array_row(array: np.ndarray, row: int, class_name: str, source: str, split: str | None) -> RawImage:
    name = f"{class_name}.{row}.png"
    return RawImage(
        class_name, name, name, source, partial(png_bytes, array, row), lambda: array[row].tobytes(), split=split
    )


def png_bytes(array: np.ndarray, row: int) -> bytes:
    """A row as a PNG: lossless, so data/split holds exactly the array's pixels."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array[row])).save(buffer, "PNG")
    return buffer.getvalue()


def split_named(file: RawFile, tree: RawTree) -> str | None:
    """The split a file's name says (train.npy, x_train.npy, train_labels.csv), or None."""
    words = {SPLIT_NAMES[word] for word in file.path.stem.lower().split("_") if word in SPLIT_NAMES}
    if len(words) > 1:
        raise RawDataError(
            f"{tree.shown(file.source)} names more than one split ({', '.join(sorted(words))}); "
            f"name each array and labels table after one split, e.g. train.npy + train.csv"
        )
    return words.pop() if words else None


def pair_arrays(tree: RawTree, parts: list[RawFile]) -> dict[str | None, tuple[RawFile, RawFile]]:
    """{split (None: unsplit): (.npy, .csv)}, each pair named after the same split."""
    found: dict[str | None, dict[str, RawFile]] = defaultdict(dict)
    for file in parts:
        split, kind = split_named(file, tree), file.path.suffix.lower()
        if kind in found[split]:
            raise RawDataError(
                f"{tree.shown(found[split][kind].source)} and {tree.shown(file.source)} are both {kind} files for "
                f"{split or 'the unsplit collection'}; keep one, or name each after its split (train, validation, test)"
            )
        found[split][kind] = file
    for split, pair in found.items():
        if ".csv" not in pair:
            raise RawDataError(
                f"{tree.shown(pair['.npy'].source)} has no labels table: add a .csv beside it with one row per image, "
                f"named after the same split ({split or pair['.npy'].path.stem}.csv, or e.g. y_{split or 'train'}.csv)"
            )
        if ".npy" not in pair:
            raise RawDataError(
                f"{tree.shown(pair['.csv'].source)} labels no image array: add the .npy it labels, named after the "
                f"same split (e.g. {split or pair['.csv'].path.stem}.npy), or remove the .csv"
            )
    if None in found and len(found) > 1 or None not in found and "train" not in found:
        names = ", ".join(tree.shown(pair[".npy"].source) for pair in found.values())
        raise RawDataError(
            f"the image arrays in data.raw_dir ({names}) must be one unsplit pair (images.npy + labels.csv) or be "
            f"named after their splits, train among them (train.npy + train.csv, test.npy + test.csv, ...)"
        )
    return {split: (pair[".npy"], pair[".csv"]) for split, pair in found.items()}


def load_image_array(tree: RawTree, file: RawFile) -> np.ndarray:
    shown = tree.shown(file.source)
    try:
        array = np.load(tree.local_path(file), mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise RawDataError(f"{shown} is not a readable .npy array ({err}); save it with np.save") from None
    is_images = isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.ndim in (3, 4)
    if not is_images or array.shape[3:] not in ((), (3,)):
        what = f"{array.dtype} of shape {array.shape}" if isinstance(array, np.ndarray) else "no single array"
        raise RawDataError(
            f"{shown} holds {what}; an image array must be uint8 of shape N x H x W x 3 (RGB) or N x H x W (grayscale)"
        )
    return array


def read_labels(tree: RawTree, file: RawFile, column: str) -> tuple[list[str], list[int]]:
    """The label column's values exactly as written (`NaN`, `None`, `NA` are labels like any other), spaces
    around them aside, and the numbers of the empty lines at the table's end. Every value must come from one
    line of its own: an empty line between rows, an empty label, a quote that runs on past its line, a second
    column of the label column's name or a row with more values than the header are refused, naming the line."""
    shown = tree.shown(file.source)
    try:
        text = file.read().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RawDataError(f"{shown} is not a readable UTF-8 CSV file ({err})") from None
    lines = list(numbered_rows(csv.reader(io.StringIO(text, newline=""), strict=True), shown))
    while lines and not lines[0][2]:  # empty lines before the header
        lines.pop(0)
    trailing = []
    while lines and not lines[-1][2]:
        trailing.insert(0, lines.pop()[0])
    if not lines:
        raise RawDataError(f"{shown} is empty; give it a header line naming its columns ({column} among them)")
    header = [name.strip() for name in lines[0][2]]
    if column not in header:
        raise RawDataError(
            f"data.label_column is {column!r}, which {shown} does not have; its columns are: {', '.join(header)}"
        )
    if header.count(column) > 1:
        numbers = " and ".join(str(n + 1) for n, name in enumerate(header) if name == column)
        raise RawDataError(
            f"{shown} has {header.count(column)} columns named {column!r} (columns {numbers}): it is not clear "
            f"which holds the labels; rename or remove the others"
        )
    at, values = header.index(column), []
    for start, end, row in lines[1:]:
        if end > start:
            raise RawDataError(
                f"{shown}: line {start} has a quoted value that runs on to line {end}; a label has no line break: "
                f'close the quote (") on its line, or remove it'
            )
        if not row:
            raise RawDataError(
                f"{shown}: line {start} is empty; give each image one row, in the array's order, with its label "
                f"in column {column!r}, and no empty line between rows"
            )
        if any(value.strip() for value in row[len(header) :]):
            raise RawDataError(
                f"{shown}: line {start} has {len(row)} values but the header names {len(header)} columns; "
                f'quote a value that holds a comma ("a, b")'
            )
        value = row[at].strip() if at < len(row) else ""
        if not value:
            raise RawDataError(f"{shown}: line {start} has no {column!r} value; give every image a label")
        values.append(value)
    return values, trailing


def numbered_rows(reader, shown: str) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, values) of each row of a CSV file; RawDataError naming the line of a bad one."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            why = 'a quote (") that is never closed' if "unexpected end of data" in str(err) else str(err)
            raise RawDataError(f"{shown}: line {start} is not valid CSV ({why}); fix that line") from None
        yield start, reader.line_num, row

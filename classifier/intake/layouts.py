"""The labelled images in `data.raw_dir`, in whichever of four layouts it holds.

1. Kaggle's Dogs vs. Cats naming: `cat.N.jpg` / `dog.N.jpg` at any depth (loose, or in
   Kaggle's train.zip or dogs-vs-cats.zip); other files are ignored.
2. A folder per class: `<class>/**/<image>`.
3. Already split: `{train, validation or val, test}/<class>/**/<image>`; a missing
   validation or test split is carved out of train by `split`.
4. Image arrays with a labels table: per split an `.npy` (N x H x W x 3 or N x H x W,
   uint8) and a `.csv` with one row per image; `data.label_column` names the label column.
   A pair belongs to the split its file names say (`train.npy` + `train.csv`,
   `x_train.npy` + `y_train.csv`); a single pair naming no split is an unsplit collection.

Images have one of IMAGE_EXTENSIONS (any letter case). The folder is read as one tree of
loose files and zip members (classifier.intake.raw_files). A single top folder with no
image or array beside it or directly in it (flower_photos.zip's `flower_photos/`), and
not named as a split, is looked into first.
Then, in this order: `.npy` files mean arrays; Kaggle-named images that are not already
sorted into folders named after their class (`cat/`, `cats/`) mean Kaggle; top folders
holding images that are all split names, train among them, mean already split; any other
folders holding images are a folder per class.

Near misses of Kaggle's naming (`cat.3.JPG`, `cat.3.jpeg`, `Cat.1.jpg`, a folder named
`cat.4.jpg`) do not count as Kaggle's: beside Kaggle-named images they are ignored, and
`split`'s line about ignored files names them with the reason; in a folder no layout
fits, the one-line error names them with the reason. A class folder named like an image
file (`cat.4.jpg/`) is refused.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from classifier.intake.classes import DOGS_VS_CATS
from classifier.intake.raw_files import IMAGE_EXTENSIONS, RawDataError, RawFile, RawTree, duplicate_error

KAGGLE_CLASSES = tuple(DOGS_VS_CATS)  # label 0 cat, 1 dog
KAGGLE_NAME = re.compile(rf"^({'|'.join(KAGGLE_CLASSES)})\.(\d+)\.jpg$")
NEAR_KAGGLE_NAME = re.compile(rf"^({'|'.join(KAGGLE_CLASSES)})\.(\d+)\.(jpe?g)$", re.IGNORECASE)  # or exactly it
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
INTEGER = re.compile(r"^[+-]?\d+$")
SHOWN = 3  # examples named in a message

KAGGLE = "Kaggle's cat.N.jpg / dog.N.jpg"
CLASS_FOLDERS = "a folder per class"
SPLIT_FOLDERS = "split folders of class folders"
ARRAYS = "image arrays with a labels table"

KAGGLE_DOWNLOAD = "`kaggle competitions download -c dogs-vs-cats -p data/raw` (accept the competition rules first)"
LAYOUTS_ACCEPTED = (
    f"{KAGGLE} files (loose, train.zip or dogs-vs-cats.zip: {KAGGLE_DOWNLOAD}); "
    "a folder per class (<class>/<image>); train/, validation/ (or val/) and test/ folders of class folders; "
    "or per split an .npy image array with a labels .csv (train.npy + train.csv, ...); "
    f"images are {' '.join(IMAGE_EXTENSIONS)}, zips of any of these are read in place"
)


@dataclass(frozen=True)
class RawImage:
    class_name: str
    name: str  # its file name under data/split/<split>/<class>/: unique among its class's images
    name_in_group: str  # the same where classes share a folder (data.class_groups): unique among all images
    source: str  # relative to data.raw_dir: a path, `archive.zip:member`, or `train.npy:17` for an array row
    read: Callable[[], bytes]  # the file written under data/split
    content: Callable[[], bytes]  # what is hashed to choose its split: the file's bytes, an array row's pixels
    split: str | None = None  # the split the collection already puts it in
    index: int | None = None  # Kaggle's N, for data.split index ranges


@dataclass(frozen=True)
class Collection:
    layout: str  # KAGGLE, CLASS_FOLDERS, SPLIT_FOLDERS or ARRAYS
    images: list[RawImage]
    given_splits: frozenset[str]  # the splits the collection brings; empty when it is not split
    ignored: list[str]  # sources of the files that hold none of its images
    takes: str  # what the layout reads, to say why the others are ignored
    near_misses: list[str] = field(default_factory=list)  # Kaggle's layout: `name (why it does not count)`


@contextmanager
def raw_collection(raw_dir: str | Path, label_column: str) -> Iterator[Collection]:
    """The collection in raw_dir; its images can be read until the context exits."""
    if not Path(raw_dir).is_dir():
        raise RawDataError(
            f"data.raw_dir {str(raw_dir)!r} is not a folder; point it at your labelled images: {LAYOUTS_ACCEPTED}"
        )
    with RawTree(raw_dir) as tree:
        yield recognise(tree, label_column)


def is_image(file: RawFile) -> bool:
    return file.path.suffix.lower() in IMAGE_EXTENSIONS


def is_array(file: RawFile) -> bool:
    return file.path.suffix.lower() == ".npy"


def is_array_part(file: RawFile) -> bool:
    return is_array(file) or file.path.suffix.lower() == ".csv"


def is_kaggle(file: RawFile) -> bool:
    return KAGGLE_NAME.match(file.path.name) is not None


def recognise(tree: RawTree, label_column: str) -> Collection:
    files, folders, outside = looked_into(tree)
    images = [file for file in files if is_image(file)]
    has_arrays = any(is_array(file) for file in files)

    def collection(layout, found, given, takes, taken, near=()) -> Collection:
        ignored = outside + [file.source for file in files if not taken(file)]
        return Collection(layout, found, frozenset(given), ignored, takes, list(near))

    if has_arrays and images:
        raise layout_error(tree, "it is ambiguous: it mixes .npy arrays and image files")
    if has_arrays:
        found = array_images(tree, [file for file in files if is_array_part(file)], label_column)
        given = {image.split for image in found} - {None}
        return collection(ARRAYS, found, given, ".npy arrays or their .csv labels", is_array_part)
    if kaggle_named(images):
        found = kaggle_images(tree, images)
        return collection(KAGGLE, found, (), "named cat.N.jpg / dog.N.jpg", is_kaggle, near_misses(tree))
    if not images:
        raise layout_error(tree, "it holds no images and no .npy arrays")
    if all(len(file.path.parts) == 1 for file in images):
        raise layout_error(tree, "its images are in no folder and not named cat.N.jpg / dog.N.jpg")
    split_folders = given_split_folders(tree, folders, images)
    takes = f"images ({' '.join(IMAGE_EXTENSIONS)})"
    if split_folders:
        found = [image for folder in split_folders for image in class_folder_images(tree, images, folders, folder)]
        return collection(SPLIT_FOLDERS, found, {SPLIT_NAMES[f.name] for f in split_folders}, takes, is_image)
    found = class_folder_images(tree, images, folders, PurePosixPath())
    return collection(CLASS_FOLDERS, found, (), takes, is_image)


def looked_into(tree: RawTree) -> tuple[list[RawFile], set[PurePosixPath], list[str]]:
    """The files and folders under the wrapped root, with paths relative to it, and the sources outside it."""
    root = wrapped_root(tree.files, tree.folders)
    files = [replace(file, path=file.path.relative_to(root)) for file in tree.files if root in file.path.parents]
    folders = {folder.relative_to(root) for folder in tree.folders if root in folder.parents}
    outside = [file.source for file in tree.files if root not in file.path.parents]
    return files, folders, outside


def wrapped_root(files: list[RawFile], folders: set[PurePosixPath]) -> PurePosixPath:
    """The folder to read: the tree's root or, while the root holds a single folder and no image
    or array beside it, that folder (a zip of `flower_photos/<class>/...`), unless it is a split's."""
    root = PurePosixPath()
    while True:
        tops = {folder for folder in folders if folder.parent == root}
        if len(tops) != 1:
            return root
        (top,) = tops
        if top.name in SPLIT_NAMES:
            return root
        if any(file.path.parent in (root, top) and (is_image(file) or is_array(file)) for file in files):
            return root
        root = top


def layout_error(tree: RawTree, problem: str) -> RawDataError:
    """A folder that is in none of the layouts, with what it holds."""
    images = [file for file in tree.files if is_image(file)]
    loose = [file.path.name for file in images if len(file.path.parts) == 1]
    arrays = [file for file in tree.files if is_array(file)]
    tops = sorted(folder.name for folder in tree.folders if len(folder.parts) == 1)
    found = (
        f"{len(images)} images ({len(loose)} directly in it{examples(loose)}), {len(arrays)} .npy arrays, "
        f"{len(tree.files) - len(images) - len(arrays)} other files, top folders: {', '.join(tops[:10]) or 'none'}"
        f"{' ...' if len(tops) > 10 else ''}"
    )
    near = near_misses(tree)
    near_text = f"; near misses of Kaggle's naming, which do not count ({len(near)}){examples(near)}" if near else ""
    return RawDataError(
        f"data.raw_dir {str(tree.raw_dir)!r}: {problem} (found {found}){near_text}; "
        f"it must hold one of: {LAYOUTS_ACCEPTED}"
    )


def examples(names: list[str]) -> str:
    return f": {', '.join(names[:SHOWN])}{' ...' if len(names) > SHOWN else ''}" if names else ""


# --- 1. Kaggle's naming ------------------------------------------------------------------------------------


def kaggle_named(images: list[RawFile]) -> bool:
    """Kaggle's naming, unless every such image is already in a folder named after its class."""
    return any(is_kaggle(file) and not in_own_class_folder(file) for file in images)


def near_miss(name: str) -> str | None:
    """Why a name that is nearly Kaggle's (case aside, or .jpeg) does not count; None for any other name."""
    match = NEAR_KAGGLE_NAME.match(name)
    if match is None or KAGGLE_NAME.match(name):
        return None
    label, index, extension = match.groups()
    reasons = [
        *(["the class must be lower case"] if label != label.lower() else []),
        *(["the extension must be .jpg, lower case"] if extension != "jpg" else []),
    ]
    return f"{' and '.join(reasons)}: rename it {label.lower()}.{index}.jpg"


def near_misses(tree: RawTree) -> list[str]:
    """`source (why it does not count)` for the files and folders named nearly as Kaggle's images."""
    files = [f"{file.source} ({reason})" for file in tree.files if (reason := near_miss(file.path.name))]
    folders = [
        f"{folder.as_posix()} (is a folder, not a file)"
        for folder in sorted(tree.folders)
        if NEAR_KAGGLE_NAME.match(folder.name)
    ]
    return files + folders


def in_own_class_folder(file: RawFile) -> bool:
    label = KAGGLE_NAME.match(file.path.name).group(1)
    return file.path.parent.name in (label, f"{label}s")


def kaggle_images(tree: RawTree, images: list[RawFile]) -> list[RawImage]:
    found: dict[tuple[str, int], RawImage] = {}
    for file in images:
        match = KAGGLE_NAME.match(file.path.name)
        if match is None:
            continue
        label, index = match.group(1), int(match.group(2))
        name = f"{label}.{index}.jpg"
        if (label, index) in found:
            raise duplicate_error(name, tree.shown(found[label, index].source), tree.shown(file.source))
        found[label, index] = RawImage(label, name, name, file.source, file.read, file.read, index=index)
    return [found[key] for key in sorted(found)]


# --- 2. and 3. a folder per class, maybe inside split folders ---------------------------------------------


def given_split_folders(tree: RawTree, folders, images: list[RawFile]) -> list[PurePosixPath]:
    """The split folders, when the top folders holding images are all named as splits."""
    holding = sorted({file.path.parts[0] for file in images if len(file.path.parts) > 1})
    named = [top for top in holding if top in SPLIT_NAMES]
    if not named:
        return []
    others = [top for top in holding if top not in SPLIT_NAMES]
    if others or "train" not in named:
        problem = (
            f"it is ambiguous: its top folders holding images mix split names ({', '.join(named)}) and "
            f"others ({', '.join(others)})" if others else
            f"it has split folders ({', '.join(named)}) but no train/"
        )  # fmt: skip
        raise layout_error(tree, problem)
    if {"val", "validation"} <= set(named):
        raise RawDataError(f"data.raw_dir {str(tree.raw_dir)!r} has both val/ and validation/; merge them into one")
    return sorted(folder for folder in folders if len(folder.parts) == 1 and folder.name in SPLIT_NAMES)


def class_folder_images(tree: RawTree, images: list[RawFile], folders, base: PurePosixPath) -> list[RawImage]:
    """The images under `base`/<class>/...: base is the root, or a split folder."""
    split = SPLIT_NAMES.get(base.name)
    where = f"{base.as_posix()}/<class>/<image>" if split else "<class>/<image>"
    by_class: dict[str, list[RawImage]] = defaultdict(list)
    for file in images:
        if base not in file.path.parents:
            continue
        below = file.path.relative_to(base).parts
        if len(below) == 1:
            reason = near_miss(file.path.name)
            kaggle = f"; nor does it count as Kaggle's naming ({reason})" if reason else ""
            raise RawDataError(f"{tree.shown(file.source)} is in no class folder: put every image in {where}{kaggle}")
        class_name, name = below[0], "__".join(below[1:])
        if PurePosixPath(class_name).suffix.lower() in IMAGE_EXTENSIONS:
            raise RawDataError(
                f"the class folder {tree.shown((base / class_name).as_posix())} is named like an image file (it is a "
                f"folder, not a file); name a class folder after its class, or if it should be the image "
                f"{class_name}, put the file there instead of the folder"
            )
        by_class[class_name].append(
            RawImage(class_name, name, f"{class_name}__{name}", file.source, file.read, file.read, split=split)
        )
    empty = sorted(folder for folder in folders if folder.parent == base and folder.name not in by_class)
    if not by_class or empty:
        kind, folder = ("split folder", base) if not by_class else ("class folder", empty[0])
        raise RawDataError(
            f"the {kind} {tree.shown(folder.as_posix())} holds no images ({' '.join(IMAGE_EXTENSIONS)}); "
            f"add its images, or remove it"
        )
    return [image for class_name in sorted(by_class) for image in by_class[class_name]]


# --- 4. image arrays with a labels table -----------------------------------------------------------------


def array_images(tree: RawTree, parts: list[RawFile], label_column: str) -> list[RawImage]:
    pairs = pair_arrays(tree, parts)
    arrays = {split: load_image_array(tree, npy) for split, (npy, _) in pairs.items()}
    labels = {split: read_labels(tree, table, label_column) for split, (_, table) in pairs.items()}
    for split, (npy, table) in pairs.items():
        if len(labels[split]) != len(arrays[split]):
            raise RawDataError(
                f"{tree.shown(table.source)} has {len(labels[split])} label rows but {tree.shown(npy.source)} holds "
                f"{len(arrays[split])} images; give one row per image, in the array's order"
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


def read_labels(tree: RawTree, file: RawFile, column: str) -> list[str]:
    shown = tree.shown(file.source)
    try:
        rows = csv.DictReader(io.StringIO(file.read().decode("utf-8-sig")))
        columns = rows.fieldnames or []
        values = [row[column] for row in rows] if column in columns else None
    except (UnicodeDecodeError, csv.Error) as err:
        raise RawDataError(f"{shown} is not a readable UTF-8 CSV file ({err})") from None
    if values is None:
        raise RawDataError(
            f"data.label_column is {column!r}, which {shown} does not have; its columns are: {', '.join(columns)}"
        )
    missing = [number for number, value in enumerate(values, start=2) if not (value or "").strip()]
    if missing:
        raise RawDataError(f"{shown}: line {missing[0]} has no {column!r} value; give every image a label")
    return [value.strip() for value in values]

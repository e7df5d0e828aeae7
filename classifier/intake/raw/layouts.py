"""The labelled images in `data.raw_dir`, in whichever of four layouts it holds.

1. Kaggle's Dogs vs. Cats naming: `cat.N.jpg` / `dog.N.jpg` at any depth (loose, or in
   Kaggle's train.zip or dogs-vs-cats.zip); other files are ignored.
2. A folder per class: `<class>/**/<image>`.
3. Already split: `{train, validation (or valid, val), test}/<class>/**/<image>`, the split
   folders in any letter case (`Train/`, `VAL/`); a missing validation or test split is
   carved out of train by `split`. Two folders for one split (`val/` and `validation/`,
   `train/` and `Train/`) are refused, and so are top folders that only look like splits
   (`training_set/`, `test_set/`): renamed, they are read as split folders.
4. Image arrays with a labels table: per split an `.npy` (N x H x W x 3 or N x H x W,
   uint8) and a `.csv` with one row per image; `data.label_column` names the label column.
   A pair belongs to the split its file names say (`train.npy` + `train.csv`,
   `x_train.npy` + `y_train.csv`); a single pair naming no split is an unsplit collection.

Images have one of IMAGE_EXTENSIONS (any letter case). The folder is read as one tree of
loose files and zip members (classifier.intake.raw.tree). A single top folder with no
image or array beside it or directly in it (flower_photos.zip's `flower_photos/`), and
not named as a split, is looked into first.
Then, in this order: `.npy` files mean arrays; Kaggle-named images that are not already
sorted into folders named after their class (`cat/`, `cats/`) mean Kaggle, unless every one
of them is in a class folder and not every class folder is named after Kaggle's classes
(`good/cat.0.jpg`, `other/dog.0.jpg`: photos from Kaggle sorted into classes of the user's
own): then the folders say the class, and split says so in a line. Kaggle's names that would
leave out a folder of other images while one of them is in no class folder are refused,
naming both readings (never a class folder dropped). Top folders holding
images that are all split names, train among them, mean already split; any other folders
holding images are a folder per class.

Near misses of Kaggle's naming (`cat.3.JPG`, `cat.3.jpeg`, `Cat.1.jpg`, a folder named
`cat.4.jpg`) do not count as Kaggle's: beside Kaggle-named images they are ignored, and
`split`'s line about ignored files names them with the reason; in a folder no layout
fits, the one-line error names them with the reason. A class folder named like an image
file (`cat.4.jpg/`) is refused, and so are two classes whose names differ only in letter
case (`Cat/` and `cat/`): one class most likely, and one folder where case is ignored.

Layouts 2 and 3 are read here; Kaggle's naming in classifier.intake.raw.kaggle, the arrays in
classifier.intake.raw.arrays.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath

from classifier.core.errors import RawDataError
from classifier.intake.raw.arrays import array_images
from classifier.intake.raw.collection import (
    ARRAYS,
    CLASS_FOLDERS,
    KAGGLE,
    SPLIT_FOLDERS,
    SPLIT_NAMES,
    Collection,
    RawImage,
    examples,
    split_name,
)
from classifier.intake.raw.files import IMAGE_EXTENSIONS, RawFile
from classifier.intake.raw.kaggle import (
    KAGGLE_DOWNLOAD,
    is_kaggle,
    kaggle_images,
    kaggle_reading,
    near_miss,
    near_misses,
)
from classifier.intake.raw.tree import RawTree

LAYOUTS_ACCEPTED = (
    f"{KAGGLE} files (loose, train.zip or dogs-vs-cats.zip: {KAGGLE_DOWNLOAD}); "
    "a folder per class (<class>/<image>); train/, validation/ (or val/) and test/ folders of class folders "
    "(valid/ too, any letter case); "
    "or per split an .npy image array with a labels .csv (train.npy + train.csv, ...); "
    f"images are {' '.join(IMAGE_EXTENSIONS)}, zips of any of these are read in place"
)


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


def recognise(tree: RawTree, label_column: str) -> Collection:
    collection = recognise_layout(tree, label_column)
    check_letter_case(tree, collection.images)
    return collection


def recognise_layout(tree: RawTree, label_column: str) -> Collection:
    root, files, folders, outside = looked_into(tree)
    images = [file for file in files if is_image(file)]
    has_arrays = any(is_array(file) for file in files)
    notes: list[str] = []  # how the layout was chosen, where another could read the folder

    def collection(layout, found, given, takes, taken, near=()) -> Collection:
        ignored = outside + [file.source for file in files if not taken(file)]
        return Collection(layout, found, frozenset(given), ignored, takes, list(near), list(tree.hidden), notes)

    if has_arrays and images:
        raise layout_error(tree, "it is ambiguous: it mixes .npy arrays and image files")
    if has_arrays:
        found = array_images(tree, [file for file in files if is_array_part(file)], label_column)
        given = {image.split for image in found} - {None}
        return collection(ARRAYS, found, given, ".npy arrays or their .csv labels", is_array_part)
    by_names, notes = kaggle_reading(tree, root, images)
    if by_names:
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
        return collection(SPLIT_FOLDERS, found, {split_name(f.name) for f in split_folders}, takes, is_image)
    check_split_look_alikes(tree, images)
    found = class_folder_images(tree, images, folders, PurePosixPath())
    return collection(CLASS_FOLDERS, found, (), takes, is_image)


def looked_into(tree: RawTree) -> tuple[PurePosixPath, list[RawFile], set[PurePosixPath], list[str]]:
    """The wrapped root, the files and folders under it, with paths relative to it, and the sources outside it."""
    root = wrapped_root(tree.files, tree.folders)
    files = [replace(file, path=file.path.relative_to(root)) for file in tree.files if root in file.path.parents]
    folders = {folder.relative_to(root) for folder in tree.folders if root in folder.parents}
    outside = [file.source for file in tree.files if root not in file.path.parents]
    return root, files, folders, outside


def wrapped_root(files: list[RawFile], folders: set[PurePosixPath]) -> PurePosixPath:
    """The folder to read: the tree's root or, while the root holds a single folder and no image
    or array beside it, that folder (a zip of `flower_photos/<class>/...`), unless it is a split's."""
    root = PurePosixPath()
    while True:
        tops = {folder for folder in folders if folder.parent == root}
        if len(tops) != 1:
            return root
        (top,) = tops
        if split_name(top.name):
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


# --- a folder per class, maybe inside split folders ---------------------------------------------------------


def given_split_folders(tree: RawTree, folders, images: list[RawFile]) -> list[PurePosixPath]:
    """The split folders, when the top folders holding images are all named as splits."""
    holding = sorted({file.path.parts[0] for file in images if len(file.path.parts) > 1})
    named = [top for top in holding if split_name(top)]
    if not named:
        return []
    others = [top for top in holding if not split_name(top)]
    if others or "train" not in map(split_name, named):
        problem = (
            f"it is ambiguous: its top folders holding images mix split names ({', '.join(named)}) and "
            f"others ({', '.join(others)})" if others else
            f"it has split folders ({', '.join(named)}) but no train/"
        )  # fmt: skip
        raise layout_error(tree, problem)
    tops = sorted(folder for folder in folders if len(folder.parts) == 1 and split_name(folder.name))
    for split in ("train", "validation", "test"):
        same = [top.name for top in tops if split_name(top.name) == split]
        if len(same) > 1:
            raise RawDataError(
                f"data.raw_dir {str(tree.raw_dir)!r} has {'both ' if len(same) == 2 else ''}"
                f"{' and '.join(f'{name}/' for name in same)}, "
                f"each read as the {split} split; merge them into one"
            )
    return tops


# Words of folder names that suggest a split (training_set/, test_set/, val2017/), and the split they suggest.
LOOK_ALIKE_WORDS = {"training": "train", "testing": "test", **SPLIT_NAMES}


def check_split_look_alikes(tree: RawTree, images: list[RawFile]) -> None:
    """Refuse top folders that would be read as classes but all suggest splits, train among them
    (Kaggle's cat-and-dog download: training_set/ and test_set/)."""
    holding = sorted({file.path.parts[0] for file in images if len(file.path.parts) > 1})
    suggested = [{LOOK_ALIKE_WORDS.get(word) for word in re.findall("[a-z]+", top.lower())} - {None} for top in holding]
    every = set().union(*suggested)
    if all(suggested) and "train" in every and len(every) > 1:
        raise RawDataError(
            f"data.raw_dir {str(tree.raw_dir)!r}: its top folders ({', '.join(f'{top}/' for top in holding)}) look "
            f"like splits, but would be read as classes: rename them train/, validation/ (or valid/, val/) and "
            f"test/ (any letter case) to have them read as splits; if they are classes, rename them so that they "
            f"do not look like splits"
        )


def check_letter_case(tree: RawTree, images: list[RawImage]) -> None:
    """Refuse two classes whose names differ only in letter case (Cat/ and cat/): they are most likely one
    class, and their folders under data/split would be one folder where letter case is ignored (macOS, Windows)."""
    first: dict[str, RawImage] = {}
    for image in images:
        seen = first.setdefault(image.class_name.casefold(), image)
        if seen.class_name != image.class_name:
            raise RawDataError(
                f"the classes {seen.class_name!r} and {image.class_name!r} differ only in letter case (e.g. "
                f"{tree.shown(seen.source)} and {tree.shown(image.source)}); they would share one folder where "
                f"letter case is ignored: give them one name (merge their folders, or fix the labels), or rename one"
            )


def class_folder_images(tree: RawTree, images: list[RawFile], folders, base: PurePosixPath) -> list[RawImage]:
    """The images under `base`/<class>/...: base is the root, or a split folder."""
    split = split_name(base.name)
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

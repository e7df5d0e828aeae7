"""Kaggle's Dogs vs. Cats naming, `cat.N.jpg` / `dog.N.jpg` at any depth, and its near misses
(`cat.3.JPG`, `Cat.1.jpg`, a folder named `cat.4.jpg`), which do not count and are named with the reason;
the folders of Kaggle's own sorting (`cat/`, `dogs/`) and its unlabelled test images (`test1/`); and
`kaggle_reading`, which classifier.intake.raw.layouts asks whether the names or the folders say the
classes where both could: one reading, never a class folder dropped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import PurePosixPath

from classifier.core.catalog import DOGS_VS_CATS
from classifier.core.errors import RawDataError
from classifier.intake.raw.collection import SHOWN, RawImage, examples, split_name
from classifier.intake.raw.files import RawFile, duplicate_error
from classifier.intake.raw.tree import RawTree

KAGGLE_CLASSES = DOGS_VS_CATS  # label 0 cat, 1 dog
KAGGLE_NAME = re.compile(rf"^({'|'.join(KAGGLE_CLASSES)})\.(\d+)\.jpg$")
KAGGLE_TEST_FOLDER = re.compile(r"^test\d*$")  # dogs-vs-cats.zip's test1.zip: test1/1.jpg ...
NEAR_KAGGLE_NAME = re.compile(rf"^({'|'.join(KAGGLE_CLASSES)})\.(\d+)\.(jpe?g)$", re.IGNORECASE)  # or exactly it

KAGGLE_DOWNLOAD = "`kaggle competitions download -c dogs-vs-cats -p data/raw` (accept the competition rules first)"


def is_kaggle(file: RawFile) -> bool:
    return KAGGLE_NAME.match(file.path.name) is not None


def kaggle_folder_label(name: str) -> str | None:
    """The Kaggle class a folder is named after (`cat/`, `Cats/`: cat), or None."""
    lowered = name.lower()
    return next((label for label in KAGGLE_CLASSES if lowered in (label, f"{label}s")), None)


def is_kaggle_test_folder(name: str) -> bool:
    """Kaggle's unlabelled test images (`test1/1.jpg`, from test1.zip), which its naming leaves out by design."""
    return KAGGLE_TEST_FOLDER.match(name) is not None


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


# --- Kaggle's names or the folders: one reading -------------------------------------------------------------


def kaggle_reading(tree: RawTree, root: PurePosixPath, images: list[RawFile]) -> tuple[bool, list[str]]:
    """Whether Kaggle's file names say the classes, rather than folders, and a note when the folders win over
    names in Kaggle's form. Folders win wherever every such image is in a class folder (`good/cat.0.jpg`,
    `other/dog.0.jpg`: a folder per class whose photos came from Kaggle), unless the class folders are Kaggle's
    own sorting (`cat/`, `dogs/`: then the names say it, as ever). Kaggle's names are read where one of them is
    in no class folder (loose, or directly in `train/`: Kaggle's own layout), and refused in one line, naming both
    readings, where they would leave out a folder of other images: never a class folder dropped."""
    named = [file for file in images if is_kaggle(file)]
    if not named or all(in_own_class_folder(file) for file in named):
        return False, []  # no Kaggle names, or each in a folder named after its class: both readings agree
    unplaced = [file for file in named if class_folder(file.path) is None]
    left_out = left_out_folders(images)
    placing = {folder for file in images if (folder := class_folder(file.path))}
    if unplaced and left_out:
        raise two_readings_error(tree, root, unplaced, left_out)
    if unplaced or (all(kaggle_folder_label(folder.name) for folder in placing) and not left_out):
        return True, []
    misread = [file.source for file in named if not in_own_class_folder(file)]
    return False, [
        f"{counted(len(misread), 'image')} named like Kaggle's cat.N.jpg / dog.N.jpg "
        f"{'is in a class folder of another name' if len(misread) == 1 else 'are in class folders of other names'} "
        f"({', '.join(misread[:SHOWN])}{' ...' if len(misread) > SHOWN else ''}): the folders say the class, not "
        f"the names; to have Kaggle's names say it, put the images loose in one folder (as Kaggle's train/)"
    ]


def class_folder(path: PurePosixPath) -> PurePosixPath | None:
    """The folder that says an image's class in a folder layout (`<class>/...`, `<split>/<class>/...`), or None
    for an image in none: loose, directly in a split folder, or one more split folder down (`train/train/`,
    Kaggle's train.zip unpacked into train/)."""
    parts = path.parts
    below = 1 if len(parts) > 1 and split_name(parts[0]) else 0
    if len(parts) < below + 2 or split_name(parts[below]):
        return None
    return PurePosixPath(*parts[: below + 1])


def left_out_folders(images: list[RawFile]) -> dict[PurePosixPath, list[RawFile]]:
    """The class folders that hold images but none in Kaggle's naming, which Kaggle's reading would leave out
    (nor near misses of it, which are named with the reason; nor Kaggle's unlabelled test1/; nor the targets of
    links named like Kaggle's, read through them)."""
    named = {class_folder(file.path) for file in images if is_kaggle(file)}
    linked = {file.disk_path for file in images if is_kaggle(file) and file.disk_path}  # read through a Kaggle name
    left_out: dict[PurePosixPath, list[RawFile]] = defaultdict(list)
    for file in images:
        folder = class_folder(file.path)
        if folder is None or folder in named or is_kaggle_test_folder(folder.name) or near_miss(file.path.name):
            continue
        if file.disk_path and file.disk_path in linked:
            continue
        left_out[folder].append(file)
    return dict(sorted(left_out.items()))


def two_readings_error(tree: RawTree, root, unplaced: list[RawFile], left_out: dict) -> RawDataError:
    folders = [f"{(root / folder).as_posix()}/" for folder in left_out]
    others = [tree.shown(file.source) for files in left_out.values() for file in files]
    shown = [tree.shown(file.source) for file in unplaced]
    return RawDataError(
        f"data.raw_dir {str(tree.raw_dir)!r} can be read two ways, and neither reads all of it: by Kaggle's file "
        f"names (cat.N.jpg / dog.N.jpg), which leaves out {'the folder' if len(folders) == 1 else 'the folders'} "
        f"{', '.join(folders[:SHOWN])}{' ...' if len(folders) > SHOWN else ''} ({counted(len(others), 'image')}, "
        f"e.g. {others[0]}), or as a folder per class, which has no class folder for {counted(len(shown), 'image')} "
        f"named like Kaggle's{examples(shown)}; to read a folder per class, put every image in its class folder "
        f"(<class>/<image>); to read Kaggle's names, move the other folders out of data.raw_dir"
    )


def counted(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"

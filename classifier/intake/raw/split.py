"""The split: the chosen raw images copied into data/split/<split>/<label>/ with a manifest (stage `split`).

`data.raw_dir` holds one of the layouts of classifier.intake.raw.layouts. A collection that is
not split (or lacks a validation or test split) is split per class by `data.split`:

- fractions (train: 0.8, validation: 0.1, test: 0.1): each image goes by a hash of its
  content (sha256 of its bytes; of its pixels for an array row) mapped to [0, 1) and
  compared with the cumulative fractions, train first. So the assignment is stable:
  adding or removing images never moves another image to another split, and identical
  images always share one. The shares are exact only on average: a class of n images
  gets about fraction * n of them, give or take sqrt(n * fraction * (1 - fraction)).
  A missing validation or test split of an already split collection is carved out of
  train this way; train keeps the rest.
- index ranges [start, end), for Kaggle's cat.N.jpg naming only: the book's cat.0-999 /
  1000-1499 / 1500-1999. Images outside the ranges are ignored, so adding raw images
  changes nothing downstream.

A collection that brings all three splits keeps them, and `data.split` is not used.
`data.classes` picks and orders the classes (null: every class found, by name);
`data.class_groups` trains on groups of classes instead. The label names, in label
order, go to data/classes.json. Every split must get at least one image of every label.
A class or group name becomes a folder name: one that is empty, starts with '.', has '/', '\\',
'..', a control character, or is over 255 bytes long is refused; any other (`a,b "q" |pipe|`,
`=1+1`, `<b>`) is kept, and escaped wherever it is written (classifier.intake.escaping).

Files keep readable names: Kaggle's `cat.N.jpg`; in a folder layout the path below the
class folder with `/` as `__` (after `<class>__` when classes share a group's folder);
`<class>.<row>.png` for an array row. A name another image of the folder has already
(whatever the letter case) gets part of the image's sha256. manifest.csv has a row per
image: split, label, class (the original one), path (under data/split), source (where in
data.raw_dir: a path, `archive.zip:member`, `train.npy:17`) and sha256 (a field that would
start a spreadsheet formula starts with an apostrophe: classifier.intake.escaping). Every problem is
found before anything is written: the intake refuses links out of data.raw_dir, zip bombs and
the like as it reads the folder (classifier.intake.raw.tree), every image chosen is read once
(its content hashed), identical images are found (classifier.intake.raw.duplicates), and every
name is checked before a new data/split replaces the old one (classifier.intake.raw.writing).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import accumulate
from pathlib import PurePosixPath

from classifier.core.errors import RawDataError
from classifier.core.paths import SPLIT_DIR, SPLITS
from classifier.core.schema import SplitParams
from classifier.intake.escaping import MAX_NAME_BYTES, folder_name_problem, terminal_text
from classifier.intake.raw.collection import INTEGER, KAGGLE, Collection, RawImage, examples
from classifier.intake.raw.kaggle import KAGGLE_DOWNLOAD

SHOWN_MISSING = 5
SHOWN_NAME = 60  # characters of a long name shown in a message


@dataclass(frozen=True)
class Labels:
    names: list[str]  # label i's name: a class, or a group with data.class_groups
    of_class: dict[str, str]  # each class used -> its label
    grouped: bool


# --- classes -----------------------------------------------------------------------------------------------


def sorted_names(names) -> list[str]:
    """By name, or by number when every name is an integer (CIFAR's 0-99)."""
    names = set(names)
    return sorted(names, key=int) if all(INTEGER.match(name) for name in names) else sorted(names)


def choose_labels(found: set[str], classes: list[str] | None, groups: dict[str, list[str]] | None) -> Labels:
    """The labels to train on, from the classes found and data.classes / data.class_groups."""
    found = sorted_names(found)
    if len(found) < 2:
        raise RawDataError(
            f"data.raw_dir holds {len(found)} class ({', '.join(map(terminal_text, found))}); a classifier needs "
            f"at least 2: add the images of another class"
        )
    check_known(classes or [], found, "data.classes")
    chosen = classes or found
    if groups is None:
        labels = Labels(list(chosen), {name: name for name in chosen}, grouped=False)
    else:
        for group, members in groups.items():
            check_known(members, found, f"data.class_groups.{group}")
        of_class = {member: group for group, members in groups.items() for member in members}
        left_out = [name for name in chosen if name not in of_class]
        if left_out:
            shown = ", ".join(map(terminal_text, left_out))
            print(f"split: data.class_groups leaves out {len(left_out)} classes: {shown}")
        labels = Labels(list(groups), of_class, grouped=True)
    for name in [*labels.names, *labels.of_class]:
        check_safe(name)
    return labels


def check_known(names: list[str], found: list[str], key: str) -> None:
    unknown = [name for name in names if name not in found]
    if unknown:
        raise RawDataError(
            f"{key} names {', '.join(map(repr, unknown))}, which data.raw_dir does not hold; "
            f"the classes found are: {', '.join(map(terminal_text, found))}"
        )


def check_safe(name: str) -> None:
    """Class and group names become folder names under data/split, and go into every output."""
    problem = folder_name_problem(name)
    if problem:
        shown = repr(name) if len(name) <= SHOWN_NAME else f"{name[:SHOWN_NAME]!r}..."
        raise RawDataError(
            f"the class or group name {shown} cannot be a folder name: it {problem}; rename it in data.raw_dir "
            f"(its folder, or its label in the labels table) or in params.yaml (data.classes, data.class_groups)"
        )


# --- splits ------------------------------------------------------------------------------------------------


def assign_splits(images: list[RawImage], collection: Collection, shares: SplitParams, raw_dir: str):
    """[(split, image, sha256 of its content)] for every image chosen, each read once here: one that cannot
    be read (a zip member that fails its CRC, a file gone since the tree was built) stops the stage before
    anything is written. The hashes choose the splits by fractions and find identical images."""
    if collection.given_splits == set(SPLITS):
        chosen = [(image.split, image) for image in images]
    elif not shares.is_ranges:
        chosen = [(None, image) for image in images]
    elif collection.layout != KAGGLE:
        raise RawDataError(
            f"data.split gives index ranges [start, end), which only Kaggle's cat.N.jpg naming has, but data.raw_dir "
            f"holds {collection.layout}; give fractions of each class instead, "
            f"e.g. train: 0.8, validation: 0.1, test: 0.1"
        )
    else:
        chosen = select_ranges(images, shares.as_dict(), raw_dir)
    assigned, fractions = [], shares.as_dict()
    for split, image in chosen:
        digest = hashlib.sha256(image.content()).digest()
        split = split or split_by_content(image, digest, fractions, collection.given_splits)
        assigned.append((split, image, digest.hex()))
    return assigned


def split_by_content(image: RawImage, digest: bytes, fractions: dict[str, float], given: frozenset[str]) -> str:
    """The split the hash of the image's content falls in; an image of a given split other than
    train stays there, and one of train stays there unless its split is missing."""
    if image.split not in (None, "train"):
        return image.split
    share = int.from_bytes(digest[:8], "big") / 2**64  # in [0, 1)
    bounds = dict(zip(SPLITS, accumulate(fractions[split] for split in SPLITS)))
    split = next((split for split in SPLITS[:-1] if share < bounds[split]), SPLITS[-1])
    return "train" if split in given else split


def select_ranges(images: list[RawImage], ranges: dict[str, tuple[int, int]], raw_dir: str):
    """[(split, image)] for every class and index in the ranges; RawDataError lists any missing."""
    by_key = {(image.class_name, image.index): image for image in images}
    classes = sorted({image.class_name for image in images})
    selected, missing = [], []
    for split in SPLITS:
        start, end = ranges[split]
        for class_name in classes:
            for index in range(start, end):
                image = by_key.get((class_name, index))
                if image is None:
                    missing.append((split, f"{class_name}.{index}.jpg"))
                else:
                    selected.append((split, image))
    if missing:
        shown = ", ".join(f"{name} (data.split.{split})" for split, name in missing[:SHOWN_MISSING])
        more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
        have = "; ".join(_describe_available(by_key, class_name) for class_name in classes)
        raise RawDataError(
            f"{len(missing)} images that data.split asks for are not in {raw_dir}: {shown}{more}. It has {have}. "
            f"Narrow data.split in params.yaml to what is there, or get more: {KAGGLE_DOWNLOAD}"
        )
    return selected


def _describe_available(by_key, class_name: str) -> str:
    indices = [index for (name, index) in by_key if name == class_name]
    return f"{len(indices)} {class_name}s (highest index {max(indices)})"


def count_images(assigned, labels: Labels) -> dict[str, dict[str, int]]:
    counts = {split: {label: 0 for label in labels.names} for split in SPLITS}
    for split, image, _ in assigned:
        counts[split][labels.of_class[image.class_name]] += 1
    return counts


def check_every_split_has_every_label(counts: dict[str, dict[str, int]], labels: Labels) -> None:
    for label in labels.names:
        if any(counts[split][label] == 0 for split in SPLITS):
            per_split = ", ".join(f"{split} {counts[split][label]}" for split in SPLITS)
            raise RawDataError(
                f"{'group' if labels.grouped else 'class'} {label!r} has too few images for a train, validation "
                f"and test split ({per_split}); add images of it, or leave it out with data.classes"
            )


FEW_TO_JUDGE_BY = 10  # below this, one image moves a class's validation or test accuracy by over 10 points
IMBALANCE = 3  # the largest class over the smallest: past this, the loss is dominated by the large ones


def balance_warnings(counts: dict[str, dict[str, int]]) -> list[str]:
    """A line for classes with too few images to judge them by, and one for very unequal classes."""
    lines = []
    few = {split: [f"{label} {n}" for label, n in counts[split].items() if n < FEW_TO_JUDGE_BY] for split in SPLITS[1:]}
    if any(few.values()):
        listed = "; ".join(f"{split}: {', '.join(names)}" for split, names in few.items() if names)
        lines.append(
            f"split: warning: under {FEW_TO_JUDGE_BY} images of a class to judge it by ({listed}): its accuracy "
            "moves by over 10 points per image; add images, or give validation and test larger data.split shares"
        )
    totals = {label: sum(counts[split][label] for split in SPLITS) for label in counts[SPLITS[0]]}
    largest, smallest = max(totals, key=totals.get), min(totals, key=totals.get)
    if totals[largest] > IMBALANCE * totals[smallest]:
        lines.append(
            f"split: warning: the classes are unequal: {largest} has {totals[largest]} images, {smallest} "
            f"{totals[smallest]} (over {IMBALANCE} times fewer); `training.class_weight: balanced` weighs them evenly"
        )
    return lines


# --- names and lines ---------------------------------------------------------------------------------------


def unique_path(folder: str, name: str, digest: str, taken: set[str]) -> str:
    """folder/name or, where another image has that name (whatever the letter case: some file
    systems ignore it), the name with part of this image's sha256 in it."""
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    candidate, tries = name, 0
    while f"{folder}/{candidate}".lower() in taken:
        tries += 1
        tail = f".{digest[:8]}{suffix}" if tries == 1 else f".{digest[:8]}-{tries}{suffix}"
        room = max(0, MAX_NAME_BYTES - len(tail.encode()))
        candidate = stem.encode()[:room].decode(errors="ignore") + tail  # whole characters, within a file name's limit
    taken.add(f"{folder}/{candidate}".lower())
    return f"{folder}/{candidate}"


def report_ignored(collection: Collection, raw_dir: str) -> None:
    """A line for each note on how the layout was read (folders that won over names in Kaggle's form);
    one line: how many files hold none of the images, and why; near misses of Kaggle's naming with the reason;
    one line for the hidden files and folders (`.cache/`), which are never read, so that no class goes unnoticed."""
    ignored, near = collection.ignored, collection.near_misses
    for note in collection.notes:
        print(f"split: {note}")
    near_text = f" ({len(near)}), rename them to use them{examples(near)}"
    if ignored:
        near_misses = f"; near misses of that naming{near_text}" if near else ""
        why = f"that are not {collection.takes}{examples(ignored)}{near_misses}"
        print(f"split: ignored {len(ignored)} files in {raw_dir} {why}")
    elif near:
        print(f"split: ignored near misses of Kaggle's naming in {raw_dir}{near_text}")
    if collection.hidden:
        folders_first = sorted(collection.hidden, key=lambda name: not name.endswith("/"))  # a folder may be a class
        names = [name if name.isprintable() else ascii(name) for name in folders_first]
        print(
            f"split: left out {len(names)} hidden files and folders in {raw_dir} (their names start with '.', or "
            f"are macOS's __MACOSX; nothing in them is read){examples(names)}"
        )


def summary(layout: str, labels: Labels, counts: dict[str, dict[str, int]]) -> str:
    per_split = {split: sum(counts[split].values()) for split in SPLITS}
    kind = f"groups of {len(labels.of_class)} classes" if labels.grouped else "classes"
    return (
        f"split: {layout}: {sum(per_split.values())} images of {len(labels.names)} {kind} into {SPLIT_DIR}/ "
        f"({', '.join(f'{split} {count}' for split, count in per_split.items())})"
    )

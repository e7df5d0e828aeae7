"""Writing data/split: every file's path planned and checked first, then the whole folder written
beside the old one, which it replaces only once it is complete; and the class list, data/classes.json.

The names come from data.raw_dir (a class folder or a label in a table, the path below a class
folder with `/` as `__`), so each is checked against the file system's limit on a name (NAME_MAX,
255 bytes on most) before anything is written, and one over it is refused by name. The new folder
is written under data/ as a hidden folder (on the same file system, so that renaming it into place
moves nothing) and renamed to data/split once complete: a name the file system still refuses,
a full disk or Ctrl-C while writing leaves the old data/split as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from classifier.core.errors import RawDataError
from classifier.core.outputs import replacing
from classifier.core.paths import CLASSES_FILE, SPLIT_DIR, SPLIT_MANIFEST, SPLITS
from classifier.intake.escaping import MAX_NAME_BYTES, write_csv_file
from classifier.intake.raw.collection import RawImage
from classifier.intake.raw.split import Labels, unique_path

MANIFEST_COLUMNS = ("split", "label", "class", "path", "source", "sha256")
SHOWN_NAME = 60  # characters of a too long name shown in the message


@dataclass(frozen=True)
class Planned:
    split: str
    label: str
    image: RawImage
    path: str  # under data/split: <split>/<label>/<file name>


def plan_split(assigned, labels: Labels) -> list[Planned]:
    """Each image's path under data/split, split by split and label by label; RawDataError for a name
    the file system cannot hold."""
    order = {label: position for position, label in enumerate(labels.names)}
    assigned = sorted(assigned, key=lambda item: (SPLITS.index(item[0]), order[labels.of_class[item[1].class_name]]))
    taken: set[str] = set()
    planned = []
    for split, image, digest in assigned:
        label = labels.of_class[image.class_name]
        name = image.name_in_group if labels.grouped else image.name
        planned.append(Planned(split, label, image, unique_path(f"{split}/{label}", name, digest, taken)))
    check_names_fit(planned, labels)
    return planned


def name_max() -> int:
    """The longest file name, in bytes, that the file system of data/split takes."""
    folder = next(place for place in (SPLIT_DIR, *SPLIT_DIR.parents) if place.exists())
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or the file system does not say
        return MAX_NAME_BYTES
    return limit if limit > 0 else MAX_NAME_BYTES


def check_names_fit(planned: list[Planned], labels: Labels) -> None:
    limit = name_max()
    kind = "group" if labels.grouped else "class"
    fix = (
        "rename the group in data.class_groups"
        if labels.grouped
        else "rename the class (its folder in data.raw_dir, or its value in the labels table)"
    )
    for label in labels.names:
        if _size(label) > limit:
            raise RawDataError(
                f"the {kind} name {_shown(label)} is {_size(label)} bytes, over the {limit} bytes a folder name can "
                f"have on this file system, and it names folders of data/split; {fix}"
            )
    too_long = [item for item in planned if _size(item.path.rsplit("/", 1)[1]) > limit]
    if too_long:
        first = too_long[0]
        name = first.path.rsplit("/", 1)[1]
        more = f" (and {len(too_long) - 1} more)" if len(too_long) > 1 else ""
        raise RawDataError(
            f"{first.image.source}{more} would be written under data/split/{first.split}/ as {_shown(name)}, "
            f"{_size(name)} bytes, over the {limit} bytes a file name can have on this file system; shorten the "
            f"names in data.raw_dir it is made of (a file's: the path below its class folder, with / as __; an "
            f"array row's: <class>.<row>.png)"
        )


def _size(name: str) -> int:
    return len(os.fsencode(name))


def _shown(name: str) -> str:
    return repr(name) if len(name) <= SHOWN_NAME else f"{name[:SHOWN_NAME]!r}... ({len(name)} characters)"


def write_split(planned: list[Planned]) -> None:
    """Copy the images and write the manifest into a new folder, then swap it for data/split (a full disk:
    one line naming the space free, classifier.core.outputs; Ctrl-C or any error: the old data/split stays)."""
    try:
        with replacing(SPLIT_DIR) as new:
            rows = [_write(item, new) for item in planned]
            write_csv_file(new / SPLIT_MANIFEST.relative_to(SPLIT_DIR), MANIFEST_COLUMNS, rows)
    except OSError as err:
        raise RawDataError(
            f"{SPLIT_DIR} is unchanged: writing the new one failed ({err}); fix that and run split again"
        ) from None


def _write(item: Planned, folder: Path) -> tuple:
    data = item.image.read()
    target = folder / item.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return (
        item.split,
        item.label,
        item.image.class_name,
        item.path,
        item.image.source,
        hashlib.sha256(data).hexdigest(),
    )


def write_classes(names: list[str]) -> None:
    """data/classes.json: the label names in label order, which every later stage reads."""
    CLASSES_FILE.parent.mkdir(parents=True, exist_ok=True)
    CLASSES_FILE.write_text(json.dumps(list(names), indent=2) + "\n")

"""Everything stage split finds out about `data.raw_dir` before it writes a file, in one place: the
layout (classifier.intake.raw.layouts), the classes and labels, the split of every image (each read once
and hashed), the counts per split and label, the identical images (classifier.intake.raw.duplicates) and
every name it would write (classifier.intake.raw.writing). Stage split writes what this plans; `classifier
own` (`make own`) runs the same check on the user's folder before it changes anything, so that a folder
split would refuse is refused there, in the same words.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from classifier.intake.raw import split
from classifier.intake.raw.collection import Collection
from classifier.intake.raw.duplicates import duplicate_warnings
from classifier.intake.raw.layouts import raw_collection
from classifier.intake.raw.writing import Planned, plan_split


@dataclass(frozen=True)
class CheckedSplit:
    collection: Collection
    labels: split.Labels
    counts: dict[str, dict[str, int]]  # split -> label -> images
    planned: list[Planned]  # every image's path under data/split
    warnings: list[str]  # the duplicates' lines (the balance lines come from the counts)


@contextmanager
def checked_split(data) -> Iterator[CheckedSplit]:
    """The split of `data.raw_dir` as `data` (the params' data section) asks, every problem found (a
    RawDataError of one line) and nothing written; its images can be read until the context exits.
    split's lines about ignored files and left-out classes are printed on the way, as the stage prints them."""
    raw_dir = data.raw_dir
    with raw_collection(raw_dir, data.label_column) as collection:
        split.report_ignored(collection, raw_dir)
        found = {image.class_name for image in collection.images}
        labels = split.choose_labels(found, data.classes, data.class_groups)
        images = [image for image in collection.images if image.class_name in labels.of_class]
        assigned = split.assign_splits(images, collection, data.split, raw_dir)
        counts = split.count_images(assigned, labels)
        split.check_every_split_has_every_label(counts, labels)
        warnings = duplicate_warnings(assigned, labels, data.on_duplicate_across_splits)
        yield CheckedSplit(collection, labels, counts, plan_split(assigned, labels), warnings)

"""Identical images among those chosen: the same content (a file's bytes, an array row's pixels; by the
sha256 the split computes for each) more than once. Only exact copies: a re-encoded or resized copy is
another image.

- In two splits: a leak. The model is validated or tested on images it trained on, and its accuracy
  is inflated. Fractions put identical images in one split, so a leak comes from the splits a
  collection brings (split folders, arrays per split) or from Kaggle's index ranges. The stage
  stops, unless `data.on_duplicate_across_splits: warn` (a benchmark's own splits, kept as they are).
- In two classes (two labels: groups, with data.class_groups): the copies teach opposite answers and
  one of them is always wrong. A warning: real collections have a few (the flower photos have one in
  roses and tulips), and they lower the accuracy a little rather than inflate it.
- Within a class, in one split: each copy counts again in training and in the metrics. A warning.

Each warning is one line, with a few of the copies and the count.
"""

from __future__ import annotations

from collections import defaultdict

from classifier.core.errors import RawDataError
from classifier.core.paths import SPLITS
from classifier.intake.raw.split import Labels

SHOWN = 3  # groups of copies named in a line, and copies named per group


def duplicate_warnings(assigned, labels: Labels, on_across_splits: str) -> list[str]:
    """A line for each kind of copies found; RawDataError for copies in two splits unless on_across_splits
    is 'warn'. `assigned`: [(split, image, content sha256)]."""
    by_content = defaultdict(list)
    for split, image, digest in assigned:
        by_content[digest].append((SPLITS.index(split), split, labels.of_class[image.class_name], image.source))
    groups = sorted(sorted(copies) for copies in by_content.values() if len(copies) > 1)  # train first, by source
    groups = [[copy[1:] for copy in copies] for copies in groups]
    kind = "group" if labels.grouped else "class"
    leaks = [copies for copies in groups if len({split for split, _, _ in copies}) > 1]
    conflicts = [copies for copies in groups if len({label for _, label, _ in copies}) > 1]
    repeated = [copies for copies in groups if len({(split, label) for split, label, _ in copies}) < len(copies)]
    lines = []
    if leaks:
        listed = _listed(leaks, lambda split, label, source: f"{source} ({split})")
        if on_across_splits != "warn":
            raise RawDataError(
                f"{_images(leaks)} in more than one split ({listed}): the model would be validated or tested "
                f"on images it trained on, which inflates its accuracy; remove the copies from data.raw_dir, or set "
                f"data.on_duplicate_across_splits: warn to keep them"
            )
        lines.append(
            f"split: warning: {_images(leaks)} in more than one split ({listed}): they inflate the validation "
            f"and test accuracy (data.on_duplicate_across_splits: warn); remove the copies from data.raw_dir"
        )
    if conflicts:
        listed = _listed(conflicts, lambda split, label, source: f"{source} ({label})")
        lines.append(
            f"split: warning: {_images(conflicts)} in more than one {kind} ({listed}): the copies teach "
            f"opposite answers and one of them is always wrong; keep each image in its own {kind} only"
        )
    if repeated:
        copies = sum(len(group) for group in repeated)
        listed = _listed(repeated, lambda split, label, source: source)
        lines.append(
            f"split: warning: identical copies within a {kind}: {_count(len(repeated), 'image')}, {copies} files "
            f"({listed}): "
            f"each copy counts again in training and in the metrics; remove the copies from data.raw_dir"
        )
    return lines


def _listed(groups, shown) -> str:
    """'a = b; c = d = e ...; and 4 more': the first groups, each as its first copies."""
    parts = []
    for copies in groups[:SHOWN]:
        named = " = ".join(shown(*copy) for copy in copies[:SHOWN])
        parts.append(named + (f" = ... ({len(copies)} copies)" if len(copies) > SHOWN else ""))
    more = f"; and {len(groups) - SHOWN} more" if len(groups) > SHOWN else ""
    return "; ".join(parts) + more


def _images(groups: list) -> str:
    return f"{_count(len(groups), 'image')} {'is' if len(groups) == 1 else 'are'}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"

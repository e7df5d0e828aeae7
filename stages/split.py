"""Stage `split`: copy the selected raw images into data/split/<split>/<label>/ with a manifest.

Per class, `data.split.<split>` is an index range [start, end): the defaults take
cat.0-999 / dog.0-999 for training, 1000-1499 for validation and 1500-1999 for
test, as in the book. Images outside the ranges are ignored, so adding more raw
images changes nothing downstream.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

from stages.common.cli import run_stage
from stages.common.layout import METRICS_DIR, SPLIT_DIR, SPLIT_MANIFEST
from stages.common.params import SPLITS, load_params
from stages.common.raw_images import GET_THE_DATA, LABELS, RawDataError, RawImage, RawImages

MANIFEST_COLUMNS = ("split", "label", "index", "path", "sha256")
SHOWN_MISSING = 5


def select(images: dict[tuple[str, int], RawImage], ranges: dict[str, tuple[int, int]], raw_dir: str):
    """[(split, RawImage)] for every label and index in the ranges; RawDataError lists any missing."""
    selected, missing = [], []
    for split in SPLITS:
        start, end = ranges[split]
        for label in LABELS:
            for index in range(start, end):
                image = images.get((label, index))
                if image is None:
                    missing.append((split, f"{label}.{index}.jpg"))
                else:
                    selected.append((split, image))
    if missing:
        shown = ", ".join(f"{name} (data.split.{split})" for split, name in missing[:SHOWN_MISSING])
        more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
        have = "; ".join(_describe_available(images, label) for label in LABELS)
        raise RawDataError(
            f"{len(missing)} images that data.split asks for are not in {raw_dir}: {shown}{more}. "
            f"It has {have}. Narrow data.split in params.yaml to what is there, or {GET_THE_DATA}"
        )
    return selected


def _describe_available(images, label: str) -> str:
    indices = [index for (lab, index) in images if lab == label]
    return f"{len(indices)} {label}s (highest index {max(indices)})" if indices else f"no {label}s"


def write_split(selected) -> dict[str, dict[str, int]]:
    """Copy images under SPLIT_DIR, write the manifest, return counts per split and label."""
    if SPLIT_DIR.exists():
        shutil.rmtree(SPLIT_DIR)
    counts = {split: {label: 0 for label in LABELS} for split in SPLITS}
    rows = []
    for split, image in selected:
        data = image.read()
        relative = f"{split}/{image.label}/{image.name}"
        target = SPLIT_DIR / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        rows.append((split, image.label, image.index, relative, hashlib.sha256(data).hexdigest()))
        counts[split][image.label] += 1
    with open(SPLIT_MANIFEST, "w", newline="") as manifest:
        writer = csv.writer(manifest)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    return counts


def main() -> None:
    params = load_params()
    ranges = {split: getattr(params.data.split, split) for split in SPLITS}
    with RawImages(params.data.raw_dir) as raw:
        selected = select(raw.images, ranges, params.data.raw_dir)
        counts = write_split(selected)
    METRICS_DIR.mkdir(exist_ok=True)
    (METRICS_DIR / "split.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(f"split: {len(selected)} images into {SPLIT_DIR}/ " + json.dumps(counts))


if __name__ == "__main__":
    run_stage(main, __file__)

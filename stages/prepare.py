"""Stage `prepare`: decode and resize every split image once into uint8 arrays.

For each split it writes data/prepared/<split>/: the images, (N, S, S, 3) uint8 with
S = data.image_size, as shards images-00000.npy, ... of at most data.shard_mb megabytes each (cut
where the images' paths say, so that adding images changes only the shards they fall into:
classifier.intake.prepared.shards), beside each its table images-00000.csv, ..., which maps each row back to
its image, and labels.npy (label i = the i-th name in data/classes.json). Every later stage reads
these arrays, never the JPEGs. Images are decoded on all cores and streamed into memory-mapped files, so
memory stays bounded by a batch, not by the data set.

Each image is turned upright as its EXIF orientation says, and a large one decoded reduced
(classifier.intake.decoding). A corrupt or truncated image, or one of more than data.max_pixels
pixels (refused from its header, before decoding), fails the stage with the list of bad files
(data.on_bad_image: fail), or is left out and listed in data/prepared/skipped.csv (skip), with
a line and metrics/prepare.json counting the skipped images per class. Skipping that leaves a
split, or a class in a split, without any image fails the stage. A stage that refuses the data
leaves neither shard tables nor metrics/prepare.json (not even an earlier run's). The new arrays are
written beside data/prepared and replace it only once complete: a full disk, a file-size limit or
Ctrl-C leaves the earlier ones whole, with one line naming the space needed.
"""

import json
import os
import shutil
from pathlib import Path

from classifier.core.errors import StageError
from classifier.core.outputs import replacing, writing
from classifier.core.params import load_params
from classifier.core.paths import METRICS_DIR, PREPARED_DIR, SPLIT_DIR, SPLITS
from classifier.core.startup import run_stage
from classifier.intake import preparation
from classifier.intake.prepared.arrays import MEGABYTE, read_classes, split_folder

REPORT = METRICS_DIR / "prepare.json"


def main() -> None:
    params = load_params()
    size = params.data.image_size
    preparation.check_split_manifest()
    class_names = read_classes()
    shard_bytes = params.data.shard_mb * MEGABYTE
    refused = None
    # The arrays are written beside data/prepared, which they replace only once complete: a full disk, a
    # file-size limit, Ctrl-C or a crash leaves the earlier run's arrays (and metrics/prepare.json) as they were.
    with replacing(PREPARED_DIR, preparation.prepared_bytes(size)) as new:
        kept, report, all_bad, totals = preparation.prepare_splits(
            size, class_names, params.data.max_pixels, shard_bytes, new
        )
        emptied = preparation.emptied_classes(totals, all_bad, class_names)
        try:
            check_what_is_left(params.data.on_bad_image, report, all_bad, emptied, new)
        except StageError as err:
            # The data is refused: data/prepared keeps no record of any arrays, an earlier run's included
            # (only skipped.csv, where it lists the images left out), and there is no metrics/prepare.json.
            refused = err
            for split in SPLITS:
                shutil.rmtree(split_folder(split, new), ignore_errors=True)
        else:
            staged = staged_report(report)
    if refused is not None:
        REPORT.unlink(missing_ok=True)
        raise refused
    os.replace(staged, REPORT)
    for row in all_bad:
        print(f"prepare: warning: skipped {SPLIT_DIR / row['path']}: {row['error']}")
    if all_bad:
        print(
            f"prepare: warning: skipped {len(all_bad)} images that cannot be decoded (data.on_bad_image: skip), "
            f"per class: {preparation.skipped_per_class(report, class_names)}; listed in {PREPARED_DIR}/skipped.csv"
        )
    print(f"prepare: {kept} images at {size}x{size} into {PREPARED_DIR}/")


def staged_report(report: dict) -> Path:
    """metrics/prepare.json's new text, in a hidden file beside it until the new data/prepared is in place."""
    REPORT.parent.mkdir(exist_ok=True)
    staged = REPORT.with_name(f".{REPORT.name}.new")
    try:
        with writing(REPORT):
            staged.write_text(json.dumps(report, indent=2) + "\n")
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def check_what_is_left(on_bad: str, report: dict, all_bad: list[dict], emptied: list[str], prepared) -> None:
    """Stop the stage, in one message, on an image that cannot be decoded (data.on_bad_image: fail), or
    when skipping them left a split or a class in a split without any image; list the skipped ones in
    `prepared` (the new data/prepared)."""
    if all_bad and on_bad == "fail":
        listing = "\n".join(f"  {SPLIT_DIR / row['path']}: {row['error']}" for row in all_bad)
        raise StageError(
            f"{len(all_bad)} images cannot be decoded:\n{listing}\n"
            f"Replace or delete them in data.raw_dir, or set data.on_bad_image: skip to leave them out"
        )
    columns = ("split", "label", "class", "path", "source", "error")
    preparation.write_csv(prepared / "skipped.csv", columns, all_bad)
    empty = [split for split in SPLITS if report[split]["images"] == 0]
    if empty:
        raise StageError(f"no decodable image left in split(s) {', '.join(empty)}; see {PREPARED_DIR}/skipped.csv")
    if emptied:
        raise StageError(
            f"data.on_bad_image: skip left no image of class {', '.join(emptied)}; every class needs images in "
            f"every split: replace the bad images in data.raw_dir (listed in {PREPARED_DIR}/skipped.csv), or "
            f"leave the class out with data.classes"
        )


if __name__ == "__main__":
    run_stage(main, __file__)

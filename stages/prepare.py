"""Stage `prepare`: decode and resize every split image once into uint8 arrays.

For each split it writes data/prepared/<split>_images.npy, (N, S, S, 3) uint8 with
S = data.image_size, and <split>_labels.npy (label i = the i-th name in data/classes.json);
manifest.csv maps each array row back to its image. Every later stage reads these arrays, never the
JPEGs. Images are decoded on all cores and streamed into memory-mapped files, so
memory stays bounded by a batch, not by the data set.

Each image is turned upright as its EXIF orientation says, and a large one decoded reduced
(classifier.intake.images). A corrupt or truncated image, or one of more than data.max_pixels
pixels (refused from its header, before decoding), fails the stage with the list of bad files
(data.on_bad_image: fail), or is left out and listed in data/prepared/skipped.csv (skip), with
a line and metrics/prepare.json counting the skipped images per class. Skipping that leaves a
split, or a class in a split, without any image fails the stage. A stage that fails leaves
neither manifest.csv nor metrics/prepare.json (not even an earlier run's).
"""

import json

from classifier.core.cli import StageError, run_stage
from classifier.core.layout import METRICS_DIR, PREPARED_DIR, SPLIT_DIR, SPLITS
from classifier.core.params import load_params
from classifier.intake.classes import read_classes
from classifier.intake.preparation import (
    emptied_classes,
    prepare_splits,
    read_split_manifest,
    skipped_per_class,
    write_csv,
)


def main() -> None:
    params = load_params()
    size, on_bad = params.data.image_size, params.data.on_bad_image
    rows = read_split_manifest()
    class_names = read_classes()
    PREPARED_DIR.mkdir(parents=True, exist_ok=True)
    for record in (PREPARED_DIR / "manifest.csv", METRICS_DIR / "prepare.json"):
        record.unlink(missing_ok=True)  # the arrays are rewritten: a run that fails must leave no record of old ones
    manifest, report, all_bad = prepare_splits(rows, size, class_names, params.data.max_pixels)
    if all_bad and on_bad == "fail":
        listing = "\n".join(f"  {SPLIT_DIR / row['path']}: {row['error']}" for row in all_bad)
        raise StageError(
            f"{len(all_bad)} images cannot be decoded:\n{listing}\n"
            f"Replace or delete them in data.raw_dir, or set data.on_bad_image: skip to leave them out"
        )
    write_csv(PREPARED_DIR / "skipped.csv", ("split", "label", "class", "path", "source", "error"), all_bad)
    empty = [split for split in SPLITS if report[split]["images"] == 0]
    if empty:
        raise StageError(f"no decodable image left in split(s) {', '.join(empty)}; see {PREPARED_DIR}/skipped.csv")
    emptied = emptied_classes(rows, all_bad, class_names)
    if emptied:
        raise StageError(
            f"data.on_bad_image: skip left no image of class {', '.join(emptied)}; every class needs images in "
            f"every split: replace the bad images in data.raw_dir (listed in {PREPARED_DIR}/skipped.csv), or "
            f"leave the class out with data.classes"
        )
    write_csv(PREPARED_DIR / "manifest.csv", ("split", "row", "label", "class", "path", "source"), manifest)
    METRICS_DIR.mkdir(exist_ok=True)
    (METRICS_DIR / "prepare.json").write_text(json.dumps(report, indent=2) + "\n")
    for row in all_bad:
        print(f"prepare: warning: skipped {SPLIT_DIR / row['path']}: {row['error']}")
    if all_bad:
        print(
            f"prepare: warning: skipped {len(all_bad)} images that cannot be decoded (data.on_bad_image: skip), "
            f"per class: {skipped_per_class(report, class_names)}; listed in {PREPARED_DIR}/skipped.csv"
        )
    print(f"prepare: {len(manifest)} images at {size}x{size} into {PREPARED_DIR}/")


if __name__ == "__main__":
    run_stage(main, __file__)

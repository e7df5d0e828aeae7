"""Stage `split`: copy the chosen raw images into data/split/<split>/<label>/ with a manifest.

`data.raw_dir` holds labelled images in any layout the intake reads (classifier.intake.layouts);
a collection that is not split is split per class by `data.split` (fractions, by a hash of each
image's content, or Kaggle's index ranges), as classifier.intake.split describes. The label
names, in label order, go to data/classes.json; the counts per split and label to metrics/split.json.
Every problem is found before anything is written, and a new data/split replaces the old one only
once it is complete (classifier.intake.writing).
"""

import json

from classifier.core.cli import run_stage
from classifier.core.layout import METRICS_DIR
from classifier.core.params import load_params
from classifier.intake.classes import write_classes
from classifier.intake.duplicates import duplicate_warnings
from classifier.intake.layouts import raw_collection
from classifier.intake.split import (
    assign_splits,
    balance_warnings,
    check_every_split_has_every_label,
    choose_labels,
    count_images,
    report_ignored,
    summary,
)
from classifier.intake.writing import plan_split, write_split


def main() -> None:
    params = load_params()
    raw_dir = params.data.raw_dir
    with raw_collection(raw_dir, params.data.label_column) as collection:
        report_ignored(collection, raw_dir)
        found = {image.class_name for image in collection.images}
        labels = choose_labels(found, params.data.classes, params.data.class_groups)
        images = [image for image in collection.images if image.class_name in labels.of_class]
        assigned = assign_splits(images, collection, params.data.split, raw_dir)
        counts = count_images(assigned, labels)
        check_every_split_has_every_label(counts, labels)
        warnings = duplicate_warnings(assigned, labels, params.data.on_duplicate_across_splits)
        write_split(plan_split(assigned, labels))
    write_classes(labels.names)
    METRICS_DIR.mkdir(exist_ok=True)
    (METRICS_DIR / "split.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(summary(collection.layout, labels, counts))
    for warning in [*balance_warnings(counts), *warnings]:
        print(warning)


if __name__ == "__main__":
    run_stage(main, __file__)

"""Stage `split`: copy the chosen raw images into data/split/<split>/<label>/ with a manifest.

`data.raw_dir` holds labelled images in any layout the intake reads (classifier.intake.raw.layouts);
a collection that is not split is split per class by `data.split` (fractions, by a hash of each
image's content, or Kaggle's index ranges), as classifier.intake.raw.split describes. The label
names, in label order, go to data/classes.json; the counts per split and label to metrics/split.json.
Every problem is found before anything is written, and a new data/split replaces the old one only
once it is complete (classifier.intake.raw.writing).
"""

import json

from classifier.core.params import load_params
from classifier.core.paths import METRICS_DIR
from classifier.core.startup import run_stage
from classifier.intake.raw import split
from classifier.intake.raw.duplicates import duplicate_warnings
from classifier.intake.raw.layouts import raw_collection
from classifier.intake.raw.writing import plan_split, write_classes, write_split


def main() -> None:
    params = load_params()
    raw_dir = params.data.raw_dir
    with raw_collection(raw_dir, params.data.label_column) as collection:
        split.report_ignored(collection, raw_dir)
        found = {image.class_name for image in collection.images}
        labels = split.choose_labels(found, params.data.classes, params.data.class_groups)
        images = [image for image in collection.images if image.class_name in labels.of_class]
        assigned = split.assign_splits(images, collection, params.data.split, raw_dir)
        counts = split.count_images(assigned, labels)
        split.check_every_split_has_every_label(counts, labels)
        warnings = duplicate_warnings(assigned, labels, params.data.on_duplicate_across_splits)
        write_split(plan_split(assigned, labels))
    write_classes(labels.names)
    METRICS_DIR.mkdir(exist_ok=True)
    (METRICS_DIR / "split.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(split.summary(collection.layout, labels, counts))
    for warning in [*split.balance_warnings(counts), *warnings]:
        print(warning)


if __name__ == "__main__":
    run_stage(main, __file__)

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
from classifier.intake.raw.check import checked_split
from classifier.intake.raw.writing import write_classes, write_split


def main() -> None:
    params = load_params()
    with checked_split(params.data) as checked:  # every problem found before anything is written
        write_split(checked.planned)
    write_classes(checked.labels.names)
    METRICS_DIR.mkdir(exist_ok=True)
    (METRICS_DIR / "split.json").write_text(json.dumps(checked.counts, indent=2) + "\n")
    print(split.summary(checked.collection.layout, checked.labels, checked.counts))
    for warning in [*split.balance_warnings(checked.counts), *checked.warnings]:
        print(warning)


if __name__ == "__main__":
    run_stage(main, __file__)

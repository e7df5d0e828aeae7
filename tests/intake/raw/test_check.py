"""classifier/intake/raw/check.py: stage split's whole check of data.raw_dir in one function, which
`classifier own` runs too: the plan it gives, and a refusal before anything is written."""

from __future__ import annotations

import pytest

from classifier.core.errors import RawDataError
from classifier.core.params import load_params
from classifier.intake.raw.check import checked_split
from tests.support.files import png, snapshot, write_files
from tests.support.params import split_params, write_params

SHARES = {"train": 0.34, "validation": 0.33, "test": 0.33}


def test_the_plan_is_every_image_with_its_split_and_path(work, raw):
    write_files(
        raw,
        {
            f"{name}/{index}.png": png(100 * number + index)
            for number, name in enumerate(("cat", "dog"))
            for index in range(12)
        },
    )
    write_params(work, split_params(raw, SHARES))
    with checked_split(load_params().data) as checked:
        assert checked.labels.names == ["cat", "dog"] and checked.collection.layout
        assert sum(sum(per_label.values()) for per_label in checked.counts.values()) == len(checked.planned) == 24
        assert {item.path.split("/")[0] for item in checked.planned} == {"train", "validation", "test"}
        assert checked.warnings == []
    assert not (work / "data").exists()  # nothing written


def test_a_problem_is_raised_before_anything_is_written(work, raw):
    write_files(raw, {f"cat/{index}.png": png(index) for index in range(12)})
    write_params(work, split_params(raw, SHARES))
    before = snapshot(work.parent)
    with pytest.raises(RawDataError, match=r"^data.raw_dir holds 1 class \(cat\)"), checked_split(load_params().data):
        pass
    assert snapshot(work.parent) == before

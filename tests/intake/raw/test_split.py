"""Choosing the split (classifier.intake.raw.split): Kaggle's index ranges, names told apart whatever
their letter case, and the warnings on a split's balance. The stage that runs it: tests/stages/test_split.py."""

from __future__ import annotations

import pytest

from classifier.core.errors import RawDataError
from classifier.core.paths import SPLITS
from classifier.intake.raw.collection import RawImage
from classifier.intake.raw.split import balance_warnings, select_ranges, unique_path
from tests.support.files import kaggle_jpeg

RANGES = {"train": (0, 3), "validation": (3, 5), "test": (5, 6)}


def fake_images(counts: dict[str, int]) -> list[RawImage]:
    def image(label, i):
        read = lambda: kaggle_jpeg(label, i)  # noqa: E731
        return RawImage(label, f"{label}.{i}.jpg", f"{label}.{i}.jpg", f"{label}.{i}.jpg", read, read, index=i)

    return [image(label, i) for label, n in counts.items() for i in range(n)]


# --- Kaggle's naming with index ranges ----------------------------------------------------------------------


def test_select_ranges_takes_exactly_each_range_per_class():
    images = fake_images({"cat": 10, "dog": 10})
    selected = select_ranges(images, RANGES, "raw")

    chosen = {}
    for name, image in selected:
        chosen.setdefault(name, {}).setdefault(image.class_name, []).append(image.index)
    assert chosen == {
        "train": {"cat": [0, 1, 2], "dog": [0, 1, 2]},
        "validation": {"cat": [3, 4], "dog": [3, 4]},
        "test": {"cat": [5], "dog": [5]},
    }
    assert len(selected) == 12
    assert all(image in images for _, image in selected)


def test_select_ranges_with_ranges_that_skip_indices():
    ranges = {"train": (10, 12), "validation": (0, 1), "test": (20, 21)}
    selected = select_ranges(fake_images({"cat": 30, "dog": 30}), ranges, "raw")
    assert sorted((name, image.class_name, image.index) for name, image in selected) == sorted(
        [("train", label, i) for label in ("cat", "dog") for i in (10, 11)]
        + [("validation", label, 0) for label in ("cat", "dog")]
        + [("test", label, 20) for label in ("cat", "dog")]
    )


def test_missing_images_are_listed_with_what_is_there():
    images = fake_images({"cat": 4, "dog": 6})  # cats 0-3, dogs 0-5; ranges need 0-5
    with pytest.raises(RawDataError) as info:
        select_ranges(images, RANGES, "data/raw")
    message = str(info.value)
    assert "2 images that data.split asks for are not in data/raw" in message
    assert "cat.4.jpg (data.split.validation)" in message
    assert "cat.5.jpg (data.split.test)" in message
    assert "dog." not in message.split("It has")[0]  # every dog is there
    assert "4 cats (highest index 3)" in message
    assert "6 dogs (highest index 5)" in message
    assert "Narrow data.split in params.yaml" in message
    assert "kaggle competitions download" in message


def test_many_missing_images_are_summarised():
    with pytest.raises(RawDataError) as info:
        select_ranges(fake_images({"cat": 1, "dog": 1}), RANGES, "raw")
    message = str(info.value)
    assert "10 images" in message
    assert "and 5 more" in message
    assert message.count("(data.split.") == 5


# --- names --------------------------------------------------------------------------------------------------


def test_unique_path_ignores_letter_case():
    taken: set[str] = set()
    assert unique_path("train/a", "X.jpg", "0123456789", taken) == "train/a/X.jpg"
    assert unique_path("train/a", "x.jpg", "abcdef0123", taken) == "train/a/x.abcdef01.jpg"
    assert unique_path("train/a", "x.jpg", "abcdef0123", taken) == "train/a/x.abcdef01-2.jpg"
    assert unique_path("train/b", "x.jpg", "abcdef0123", taken) == "train/b/x.jpg"


# --- warnings on the split's balance ----------------------------------------------------------------------


def split_counts(per_class: dict[str, tuple[int, int, int]]) -> dict[str, dict[str, int]]:
    return {split: {label: n[i] for label, n in per_class.items()} for i, split in enumerate(SPLITS)}


def test_a_balanced_split_with_enough_images_warns_nothing():
    assert balance_warnings(split_counts({"cat": (80, 10, 10), "dog": (240, 30, 30)})) == []


def test_classes_with_under_ten_validation_or_test_images_get_one_line():
    (line,) = balance_warnings(split_counts({"a": (40, 5, 12), "b": (40, 12, 4), "c": (40, 10, 10)}))
    assert line.startswith("split: warning: under 10 images of a class to judge it by (validation: a 5; test: b 4)")
    assert "data.split" in line


def test_a_class_over_three_times_another_suggests_balanced_class_weights():
    (line,) = balance_warnings(split_counts({"cat": (24, 10, 10), "dog": (112, 14, 14), "fox": (60, 10, 10)}))
    assert line == (
        "split: warning: the classes are unequal: dog has 140 images, cat 44 (over 3 times fewer); "
        "`training.class_weight: balanced` weighs them evenly"
    )

"""classifier/core/schema.py: what each key of params.yaml accepts: its range, its allowed values, the
split's ranges and fractions, class names, and numbers as `dvc exp run -S` writes them."""

from __future__ import annotations

import pytest
import yaml

from classifier.core.params import load_params
from tests.support.params import edited_params, params_error, setter
from tests.support.paths import ROOT

COMMITTED = ROOT / "params.yaml"


# --- ranges ---------------------------------------------------------------------------------------


def test_image_size_below_the_minimum(tmp_path):
    message = params_error(tmp_path, setter("data", "image_size", 15))
    assert (
        "data.image_size (pixels per side; the small convnet halves it four times) must be between 16 and 1024; got 15"
        in message
    )


def test_image_size_at_the_minimum_loads(tmp_path):
    assert load_params(edited_params(tmp_path, setter("data", "image_size", 16))).data.image_size == 16


@pytest.mark.parametrize(
    "keys, value, expected",
    [
        (("head", "dropout"), 1.0, "head.dropout must be between 0 and 0.99; got 1.0"),
        (("augmentation", "rotation_degrees"), 181, "augmentation.rotation_degrees must be between 0 and 180"),
        (("lr",), -1.0, "lr (the fine-tuning learning rate) must be > 0 and <= 1; got -1.0"),
        (("train_frozen", "epochs"), 0, "train_frozen.epochs must be between 1 and 1000; got 0"),
        (("seed",), -1, "seed must be between 0 and 4294967295"),
    ],
)
def test_out_of_range(tmp_path, keys, value, expected):
    assert expected in params_error(tmp_path, setter(*keys, value))


def test_top_k_is_at_least_one(tmp_path):
    assert "evaluate.top_k" in params_error(tmp_path, setter("evaluate", "top_k", 0))


# --- allowed values -------------------------------------------------------------------------------


def test_on_bad_image_skip_loads(tmp_path):
    assert load_params(edited_params(tmp_path, setter("data", "on_bad_image", "skip"))).data.on_bad_image == "skip"


def test_class_weight_is_balanced_or_null(tmp_path):
    assert (
        load_params(edited_params(tmp_path, setter("training", "class_weight", "balanced"))).training.class_weight
        == "balanced"
    )
    message = params_error(tmp_path, setter("training", "class_weight", "inverse"))
    assert "training.class_weight must be one of balanced; got 'inverse'" in message


# --- the split: a range or a fraction per split ---------------------------------------------------


@pytest.mark.parametrize("value", [[0, 1000, 2000], [0], [0, 1.5], [True, 5]])
def test_split_that_is_not_a_pair(tmp_path, value):
    message = params_error(tmp_path, setter("data", "split", "train", value))
    assert "data.split.train must be a [start, end) pair of integers like [0, 1000]" in message


@pytest.mark.parametrize("value", ["0-1000", None, True, {"a": 1}])
def test_split_that_is_neither_a_fraction_nor_a_range(tmp_path, value):
    message = params_error(tmp_path, setter("data", "split", "train", value))
    assert "data.split.train must be a fraction of each class like 0.8 or, for Kaggle's cat.N.jpg naming, " in message


def test_fractions_load_as_floats(tmp_path):
    split = load_params(
        edited_params(tmp_path, setter("data", "split", {"train": 0.8, "validation": 0.1, "test": "1e-1"}))
    ).data.split
    assert not split.is_ranges
    assert split.as_dict() == {"train": 0.8, "validation": 0.1, "test": 0.1}


def test_ranges_are_ranges():
    assert load_params(COMMITTED).data.split.is_ranges


# --- classes and groups ---------------------------------------------------------------------------


def test_classes_pick_and_order(tmp_path):
    assert load_params(edited_params(tmp_path, setter("data", "classes", ["tulips", "daisy"]))).data.classes == [
        "tulips",
        "daisy",
    ]


def test_integer_class_names_from_a_labels_csv_are_strings(tmp_path):
    assert load_params(edited_params(tmp_path, setter("data", "classes", [3, 5]))).data.classes == ["3", "5"]


def test_a_class_listed_twice_is_refused(tmp_path):
    message = params_error(tmp_path, setter("data", "classes", ["daisy", "roses", "daisy"]))
    assert "data.classes lists 'daisy' more than once" in message


def test_groups_load_in_their_order(tmp_path):
    groups = {"vehicle": ["ship", "truck"], "animal": ["cat", "dog"]}
    loaded = load_params(edited_params(tmp_path, setter("data", "class_groups", groups))).data.class_groups
    assert list(loaded) == ["vehicle", "animal"] and loaded["animal"] == ["cat", "dog"]


def test_a_group_must_list_classes(tmp_path):
    message = params_error(tmp_path, setter("data", "class_groups", {"animal": "cat", "vehicle": ["ship"]}))
    assert "data.class_groups.animal must be a non-empty list" in message


# --- what `dvc exp run -S lr=1e-5` writes ---------------------------------------------------------


def test_lr_written_by_dvc_exp_run_loads_as_a_float(tmp_path):
    # PyYAML (YAML 1.1) reads an exponent without a dot as a string.
    assert yaml.safe_load("lr: 1e-05")["lr"] == "1e-05"
    text = COMMITTED.read_text()
    lines = [("lr: 1e-05" if line.startswith("lr:") else line) for line in text.splitlines()]
    assert lines != text.splitlines()
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert yaml.safe_load(path.read_text())["lr"] == "1e-05"

    lr = load_params(path).lr
    assert isinstance(lr, float)
    assert lr == 1e-5


def test_learning_rate_given_as_a_string_loads_as_a_float(tmp_path):
    rate = load_params(
        edited_params(tmp_path, setter("train_frozen", "learning_rate", "3e-04"))
    ).train_frozen.learning_rate
    assert isinstance(rate, float) and rate == 3e-4

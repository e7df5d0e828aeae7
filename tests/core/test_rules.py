"""classifier/core/rules.py: the rules of params.yaml across keys, one ParamsError each: split ranges that
overlap, fractions that do not add up, classes and groups, the base and where its files are, jit_compile
under op determinism, and models that cannot be made."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.core.catalog import KERAS_BASES
from classifier.core.params import load_params
from classifier.core.paths import MODEL_STAGES
from tests.support.params import changed_params, edited_params, params_error, setter

# --- the split ranges -----------------------------------------------------------------------------


def test_empty_split_range(tmp_path):
    message = params_error(tmp_path, setter("data", "split", "test", [5, 5]))
    assert "data.split.test is [5, 5)" in message
    assert "0 <= start < end" in message


def test_reversed_split_range(tmp_path):
    message = params_error(tmp_path, setter("data", "split", "test", [2000, 1500]))
    assert "data.split.test is [2000, 1500)" in message


def test_negative_split_start(tmp_path):
    message = params_error(tmp_path, setter("data", "split", "train", [-1, 1000]))
    assert "data.split.train is [-1, 1000)" in message
    assert "0 <= start < end" in message


def test_overlapping_splits_name_both(tmp_path):
    message = params_error(tmp_path, setter("data", "split", "validation", [900, 1500]))
    assert "data.split.train [0, 1000) overlaps data.split.validation [900, 1500)" in message
    assert "must not be in two splits" in message


def test_overlap_between_train_and_test(tmp_path):
    message = params_error(tmp_path, setter("data", "split", "test", [999, 1000]))
    assert "data.split.train" in message and "data.split.test" in message
    assert "overlaps" in message


def test_touching_splits_do_not_overlap(tmp_path):
    def change(raw):
        raw["data"]["split"] = {"train": [0, 4], "validation": [4, 6], "test": [6, 8]}

    split = load_params(edited_params(tmp_path, change)).data.split
    assert (split.train, split.validation, split.test) == ((0, 4), (4, 6), (6, 8))


def test_splits_in_any_order(tmp_path):
    def change(raw):
        raw["data"]["split"] = {"train": [100, 200], "validation": [0, 50], "test": [50, 100]}

    assert load_params(edited_params(tmp_path, change)).data.split.validation == (0, 50)


# --- split fractions ------------------------------------------------------------------------------


def fractions(train, validation, test):
    return setter("data", "split", {"train": train, "validation": validation, "test": test})


def test_fractions_must_add_up_to_one(tmp_path):
    message = params_error(tmp_path, fractions(0.8, 0.1, 0.2))
    assert "data.split fractions add up to 1.1, not 1" in message


@pytest.mark.parametrize("train, test", [(1.0, 0.0), (1.2, -0.3)])
def test_each_fraction_is_between_0_and_1(tmp_path, train, test):
    message = params_error(tmp_path, fractions(train, 0.1 if train == 1.2 else 0.0, test))
    assert "must be between 0 and 1 (exclusive)" in message


def test_ranges_and_fractions_cannot_mix(tmp_path):
    message = params_error(tmp_path, fractions([0, 10], 0.1, 0.1))
    assert "data.split mixes index ranges and fractions" in message


# --- classes and groups ---------------------------------------------------------------------------


def test_a_single_class_is_refused(tmp_path):
    message = params_error(tmp_path, setter("data", "classes", ["daisy"]))
    assert "data.classes lists one class ('daisy'); a classifier needs at least 2" in message


def test_a_class_in_two_groups_is_refused(tmp_path):
    message = params_error(tmp_path, setter("data", "class_groups", {"a": ["cat", "dog"], "b": ["dog", "ship"]}))
    assert "class 'dog' is in two groups of data.class_groups ('a' and 'b')" in message


def test_a_single_group_is_refused(tmp_path):
    message = params_error(tmp_path, setter("data", "class_groups", {"animal": ["cat", "dog"]}))
    assert "data.class_groups has one group ('animal')" in message


def test_groups_must_use_the_picked_classes(tmp_path):
    def change(raw):
        raw["data"]["classes"] = ["cat", "dog", "ship"]
        raw["data"]["class_groups"] = {"animal": ["cat", "dog"], "vehicle": ["ship", "truck"]}

    message = params_error(tmp_path, change)
    assert "data.class_groups uses 'truck', which data.classes leaves out" in message


# --- the base -------------------------------------------------------------------------------------


def test_unknown_base_lists_the_known_ones(tmp_path):
    message = params_error(tmp_path, setter("base", "name", "vgg17"))
    assert "base.name 'vgg17' is not a known base" in message
    assert "vgg16, vgg19, resnet50, mobilenet_v2, efficientnetb0" in message
    assert ".keras" in message


def test_keras_file_base_with_imagenet_weights(tmp_path):
    message = params_error(tmp_path, setter("base", "name", "bases/my_base.keras"))
    assert "base.weights is 'imagenet'" in message
    assert "set base.weights: null" in message


@pytest.mark.parametrize("weights, fine_tune_from", [(None, None), ("random", "conv_9"), ("bases/a.weights.h5", None)])
def test_keras_file_base_in_bases_loads(tmp_path, weights, fine_tune_from):
    def change(raw):
        raw["base"].update(
            name="bases/my_base.keras", weights=weights, fine_tune_from=fine_tune_from, output_layer="pool"
        )

    base = load_params(edited_params(tmp_path, change)).base
    assert base.is_file and base.weights == weights and base.fine_tune_from == fine_tune_from
    assert base.output_layer == "pool"


@pytest.mark.parametrize(
    "key, value, extra",
    [
        ("name", "../shared/models/lite0.keras", {"weights": None}),
        ("name", "models/scratch.keras", {"weights": None}),
        ("name", "/tmp/base.keras", {"weights": None}),
        ("name", "bases/../models/base.keras", {"weights": None}),
        ("weights", "vgg16.weights.h5", {}),
    ],
)
def test_base_files_outside_bases_are_refused_with_the_commands_to_fix_it(tmp_path, key, value, extra):
    """DVC reruns load_base for a new version of a file only if it is a dependency: bases/ is."""

    def change(raw):
        raw["base"].update({key: value, **extra})

    message = params_error(tmp_path, change)
    file_name = Path(value).name
    assert f"base.{key} {value!r} is outside bases/" in message
    assert f"cp {value} bases/ && dvc add bases/{file_name}, then set base.{key}: bases/{file_name}" in message


def test_output_layer_of_a_keras_application_is_refused(tmp_path):
    message = params_error(tmp_path, setter("base", "output_layer", "block4_pool"))
    assert "base.output_layer is 'block4_pool', but it only applies to a .keras base" in message
    assert "set base.output_layer: null" in message


def test_every_known_base_loads(tmp_path):
    for name in KERAS_BASES:
        assert load_params(edited_params(tmp_path, setter("base", "name", name))).base.name == name


# --- training -------------------------------------------------------------------------------------


def test_jit_compile_with_op_determinism_is_refused(tmp_path):
    message = params_error(tmp_path, setter("training", "jit_compile", True))
    assert "training.jit_compile" in message and "training.deterministic: false" in message


def test_jit_compile_without_op_determinism_loads(tmp_path):
    def change(raw):
        raw["training"].update(jit_compile=True, deterministic=False)

    assert load_params(edited_params(tmp_path, change)).training.jit_compile is True


# --- which models are trained ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            [setter("models", name, False) for name in changed_params({})["models"]],
            "params.yaml: models: every model is false; set at least one true",
        ),
        (
            [setter("models", "frozen_augmented", False)],
            "params.yaml: models.fine_tuned is true but models.frozen_augmented is false: fine_tune starts from it",
        ),
        (
            [setter("fine_tune", "start_from", "feature_extraction"), setter("models", "feature_extraction", False)],
            "params.yaml: models.fine_tuned is true but models.feature_extraction is false: fine_tune starts from it "
            "(fine_tune.start_from); set models.feature_extraction: true, another start_from, or "
            "models.fine_tuned: false",
        ),
        (
            [setter("fine_tune", "start_from", "scratch")],
            "params.yaml: fine_tune.start_from must be one of frozen_augmented, feature_extraction; got 'scratch'",
        ),
        (
            [setter("models", "scratch", False), setter("export", "model", "scratch")],
            "params.yaml: export.model scratch is not trained (models.scratch: false): set export.model: best, or "
            "one of scratch_augmented, feature_extraction, frozen_augmented, fine_tuned",
        ),
        ([setter("models", "scratch", "no")], "params.yaml: models.scratch must be true or false; got 'no'"),
    ],
)
def test_models_that_cannot_be_made_are_refused(tmp_path, changes, expected):
    def change(raw):
        for one in changes:
            one(raw)

    assert params_error(tmp_path, change).startswith(expected)


def test_the_transfer_models_alone_load(tmp_path):
    params = load_params(
        edited_params(
            tmp_path, lambda raw: raw["models"].update(scratch=False, scratch_augmented=False, fine_tuned=False)
        )
    )
    assert [name for name in MODEL_STAGES if getattr(params.models, name)] == ["feature_extraction", "frozen_augmented"]

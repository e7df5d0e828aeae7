"""params.yaml schema: the committed defaults, and one clear ParamsError per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from classifier.core.catalog import KERAS_BASES
from classifier.core.cli import StageError
from classifier.core.layout import MODEL_STAGES
from classifier.core.params import ParamsError, load_params

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "params.yaml"


def committed() -> dict:
    return yaml.safe_load(COMMITTED.read_text())


def write(tmp_path: Path, raw) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def load_modified(tmp_path: Path, change):
    raw = committed()
    change(raw)
    return load_params(write(tmp_path, raw))


def error_for(tmp_path: Path, change) -> str:
    with pytest.raises(ParamsError) as info:
        load_modified(tmp_path, change)
    return str(info.value)


def setter(*keys_and_value):
    *keys, value = keys_and_value

    def change(raw):
        target = raw
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


# --- the committed file -------------------------------------------------------------------------


def test_committed_params_have_the_book_defaults():
    params = load_params(COMMITTED)
    assert params.data.image_size == 150
    assert params.data.split.train == (0, 1000)
    assert params.data.split.validation == (1000, 1500)
    assert params.data.split.test == (1500, 2000)
    assert params.base.name == "vgg16"
    assert params.base.weights == "imagenet"
    assert params.base.fine_tune_from == "block5_conv1"
    assert not params.base.is_file
    assert isinstance(params.lr, float)
    assert params.lr == pytest.approx(1e-5, rel=0, abs=1e-12)


def test_default_path_is_params_yaml_in_the_working_directory(monkeypatch):
    monkeypatch.chdir(REPO)
    assert load_params() == load_params(COMMITTED)


def test_an_unmodified_dump_loads_the_same(tmp_path):
    # The helpers below rely on dump/load round-tripping the committed file unchanged.
    assert load_modified(tmp_path, lambda raw: None) == load_params(COMMITTED)


def test_params_error_is_a_stage_error():
    assert issubclass(ParamsError, StageError)


# --- keys -----------------------------------------------------------------------------------------


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    def rename(raw):
        raw["data"]["imagesize"] = raw["data"].pop("image_size")

    message = error_for(tmp_path, rename)
    assert "unknown key data.imagesize" in message
    assert "did you mean data.image_size?" in message
    assert (
        "raw_dir, image_size, on_bad_image, max_pixels, shard_mb, split, classes, class_groups, label_column" in message
    )  # the allowed keys


def test_unknown_top_level_key(tmp_path):
    message = error_for(tmp_path, setter("seeds", 1))
    assert "unknown key seeds" in message
    assert "did you mean seed?" in message


def test_missing_key_is_named(tmp_path):
    message = error_for(tmp_path, lambda raw: raw["base"].pop("preprocessing"))
    assert "missing key base.preprocessing" in message
    assert "name, weights, output_layer, fine_tune_from, preprocessing" in message


def test_missing_section_is_named(tmp_path):
    message = error_for(tmp_path, lambda raw: raw.pop("head"))
    assert "missing key head" in message


def test_section_that_is_not_a_mapping(tmp_path):
    message = error_for(tmp_path, setter("augmentation", [1, 2]))
    assert "augmentation must be a mapping" in message
    assert "horizontal_flip" in message


# --- types and ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, value, expected",
    [
        (("data", "image_size"), "big", "data.image_size must be an integer; got 'big'"),
        (("data", "image_size"), 150.0, "data.image_size must be an integer"),
        (("augmentation", "horizontal_flip"), "yes", "augmentation.horizontal_flip must be true or false; got 'yes'"),
        (("augmentation", "horizontal_flip"), 1, "augmentation.horizontal_flip must be true or false"),
        (("seed",), True, "seed must be an integer; got True"),
        (("lr",), "fast", "lr must be a number; got 'fast'"),
        (("lr",), True, "lr must be a number"),
        (("data", "raw_dir"), "", "data.raw_dir must be a non-empty string"),
        (("data", "raw_dir"), 7, "data.raw_dir must be a non-empty string"),
    ],
)
def test_wrong_type(tmp_path, keys, value, expected):
    assert expected in error_for(tmp_path, setter(*keys, value))


def test_image_size_below_the_minimum(tmp_path):
    message = error_for(tmp_path, setter("data", "image_size", 15))
    assert (
        "data.image_size (pixels per side; the small convnet halves it four times) must be between 16 and 1024; got 15"
        in message
    )


def test_image_size_at_the_minimum_loads(tmp_path):
    assert load_modified(tmp_path, setter("data", "image_size", 16)).data.image_size == 16


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
    assert expected in error_for(tmp_path, setter(*keys, value))


def test_on_bad_image_lists_the_allowed_values(tmp_path):
    message = error_for(tmp_path, setter("data", "on_bad_image", "ignore"))
    assert "data.on_bad_image must be one of fail, skip; got 'ignore'" in message


def test_on_bad_image_skip_loads(tmp_path):
    assert load_modified(tmp_path, setter("data", "on_bad_image", "skip")).data.on_bad_image == "skip"


def test_preprocessing_lists_the_allowed_values(tmp_path):
    message = error_for(tmp_path, setter("base", "preprocessing", "caffe"))
    assert "base.preprocessing must be one of native, rescale" in message


# --- the split ranges ------------------------------------------------------------------------------


def test_empty_split_range(tmp_path):
    message = error_for(tmp_path, setter("data", "split", "test", [5, 5]))
    assert "data.split.test is [5, 5)" in message
    assert "0 <= start < end" in message


def test_reversed_split_range(tmp_path):
    message = error_for(tmp_path, setter("data", "split", "test", [2000, 1500]))
    assert "data.split.test is [2000, 1500)" in message


def test_negative_split_start(tmp_path):
    message = error_for(tmp_path, setter("data", "split", "train", [-1, 1000]))
    assert "data.split.train is [-1, 1000)" in message
    assert "0 <= start < end" in message


def test_overlapping_splits_name_both(tmp_path):
    message = error_for(tmp_path, setter("data", "split", "validation", [900, 1500]))
    assert "data.split.train [0, 1000) overlaps data.split.validation [900, 1500)" in message
    assert "must not be in two splits" in message


def test_overlap_between_train_and_test(tmp_path):
    message = error_for(tmp_path, setter("data", "split", "test", [999, 1000]))
    assert "data.split.train" in message and "data.split.test" in message
    assert "overlaps" in message


def test_touching_splits_do_not_overlap(tmp_path):
    def change(raw):
        raw["data"]["split"] = {"train": [0, 4], "validation": [4, 6], "test": [6, 8]}

    split = load_modified(tmp_path, change).data.split
    assert (split.train, split.validation, split.test) == ((0, 4), (4, 6), (6, 8))


def test_splits_in_any_order(tmp_path):
    def change(raw):
        raw["data"]["split"] = {"train": [100, 200], "validation": [0, 50], "test": [50, 100]}

    assert load_modified(tmp_path, change).data.split.validation == (0, 50)


@pytest.mark.parametrize("value", [[0, 1000, 2000], [0], [0, 1.5], [True, 5]])
def test_split_that_is_not_a_pair(tmp_path, value):
    message = error_for(tmp_path, setter("data", "split", "train", value))
    assert "data.split.train must be a [start, end) pair of integers like [0, 1000]" in message


@pytest.mark.parametrize("value", ["0-1000", None, True, {"a": 1}])
def test_split_that_is_neither_a_fraction_nor_a_range(tmp_path, value):
    message = error_for(tmp_path, setter("data", "split", "train", value))
    assert "data.split.train must be a fraction of each class like 0.8 or, for Kaggle's cat.N.jpg naming, " in message


# --- split fractions -----------------------------------------------------------------------------


def fractions(train, validation, test):
    return setter("data", "split", {"train": train, "validation": validation, "test": test})


def test_fractions_load_as_floats(tmp_path):
    split = load_modified(tmp_path, fractions(0.8, 0.1, "1e-1")).data.split
    assert not split.is_ranges
    assert split.as_dict() == {"train": 0.8, "validation": 0.1, "test": 0.1}


def test_ranges_are_ranges():
    assert load_params(COMMITTED).data.split.is_ranges


def test_fractions_must_add_up_to_one(tmp_path):
    message = error_for(tmp_path, fractions(0.8, 0.1, 0.2))
    assert "data.split fractions add up to 1.1, not 1" in message


@pytest.mark.parametrize("train, test", [(1.0, 0.0), (1.2, -0.3)])
def test_each_fraction_is_between_0_and_1(tmp_path, train, test):
    message = error_for(tmp_path, fractions(train, 0.1 if train == 1.2 else 0.0, test))
    assert "must be between 0 and 1 (exclusive)" in message


def test_ranges_and_fractions_cannot_mix(tmp_path):
    message = error_for(tmp_path, fractions([0, 10], 0.1, 0.1))
    assert "data.split mixes index ranges and fractions" in message


# --- classes and groups ---------------------------------------------------------------------------


def test_classes_and_groups_default_to_null():
    data = load_params(COMMITTED).data
    assert (data.classes, data.class_groups, data.label_column) == (None, None, "label")


def test_classes_pick_and_order(tmp_path):
    assert load_modified(tmp_path, setter("data", "classes", ["tulips", "daisy"])).data.classes == ["tulips", "daisy"]


def test_integer_class_names_from_a_labels_csv_are_strings(tmp_path):
    assert load_modified(tmp_path, setter("data", "classes", [3, 5])).data.classes == ["3", "5"]


def test_a_single_class_is_refused(tmp_path):
    message = error_for(tmp_path, setter("data", "classes", ["daisy"]))
    assert "data.classes lists one class ('daisy'); a classifier needs at least 2" in message


def test_a_class_listed_twice_is_refused(tmp_path):
    message = error_for(tmp_path, setter("data", "classes", ["daisy", "roses", "daisy"]))
    assert "data.classes lists 'daisy' more than once" in message


def test_groups_load_in_their_order(tmp_path):
    groups = {"vehicle": ["ship", "truck"], "animal": ["cat", "dog"]}
    loaded = load_modified(tmp_path, setter("data", "class_groups", groups)).data.class_groups
    assert list(loaded) == ["vehicle", "animal"] and loaded["animal"] == ["cat", "dog"]


def test_a_class_in_two_groups_is_refused(tmp_path):
    message = error_for(tmp_path, setter("data", "class_groups", {"a": ["cat", "dog"], "b": ["dog", "ship"]}))
    assert "class 'dog' is in two groups of data.class_groups ('a' and 'b')" in message


def test_a_single_group_is_refused(tmp_path):
    message = error_for(tmp_path, setter("data", "class_groups", {"animal": ["cat", "dog"]}))
    assert "data.class_groups has one group ('animal')" in message


def test_a_group_must_list_classes(tmp_path):
    message = error_for(tmp_path, setter("data", "class_groups", {"animal": "cat", "vehicle": ["ship"]}))
    assert "data.class_groups.animal must be a non-empty list" in message


def test_groups_must_use_the_picked_classes(tmp_path):
    def change(raw):
        raw["data"]["classes"] = ["cat", "dog", "ship"]
        raw["data"]["class_groups"] = {"animal": ["cat", "dog"], "vehicle": ["ship", "truck"]}

    message = error_for(tmp_path, change)
    assert "data.class_groups uses 'truck', which data.classes leaves out" in message


def test_class_weight_is_balanced_or_null(tmp_path):
    assert load_modified(tmp_path, setter("training", "class_weight", "balanced")).training.class_weight == "balanced"
    message = error_for(tmp_path, setter("training", "class_weight", "inverse"))
    assert "training.class_weight must be one of balanced; got 'inverse'" in message


def test_top_k_is_at_least_one(tmp_path):
    assert "evaluate.top_k" in error_for(tmp_path, setter("evaluate", "top_k", 0))


# --- the base ----------------------------------------------------------------------------------------


def test_unknown_base_lists_the_known_ones(tmp_path):
    message = error_for(tmp_path, setter("base", "name", "vgg17"))
    assert "base.name 'vgg17' is not a known base" in message
    assert "vgg16, vgg19, resnet50, mobilenet_v2, efficientnetb0" in message
    assert ".keras" in message


def test_keras_file_base_with_imagenet_weights(tmp_path):
    message = error_for(tmp_path, setter("base", "name", "bases/my_base.keras"))
    assert "base.weights is 'imagenet'" in message
    assert "set base.weights: null" in message


@pytest.mark.parametrize("weights, fine_tune_from", [(None, None), ("random", "conv_9"), ("bases/a.weights.h5", None)])
def test_keras_file_base_in_bases_loads(tmp_path, weights, fine_tune_from):
    def change(raw):
        raw["base"].update(
            name="bases/my_base.keras", weights=weights, fine_tune_from=fine_tune_from, output_layer="pool"
        )

    base = load_modified(tmp_path, change).base
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

    message = error_for(tmp_path, change)
    file_name = Path(value).name
    assert f"base.{key} {value!r} is outside bases/" in message
    assert f"cp {value} bases/ && dvc add bases/{file_name}, then set base.{key}: bases/{file_name}" in message


def test_output_layer_of_a_keras_application_is_refused(tmp_path):
    message = error_for(tmp_path, setter("base", "output_layer", "block4_pool"))
    assert "base.output_layer is 'block4_pool', but it only applies to a .keras base" in message
    assert "set base.output_layer: null" in message


def test_every_known_base_loads(tmp_path):
    for name in KERAS_BASES:
        assert load_modified(tmp_path, setter("base", "name", name)).base.name == name


# --- what `dvc exp run -S lr=1e-5` writes ---------------------------------------------------------------


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
    rate = load_modified(tmp_path, setter("train_frozen", "learning_rate", "3e-04")).train_frozen.learning_rate
    assert isinstance(rate, float) and rate == 3e-4


# --- the file itself -------------------------------------------------------------------------------------


def test_missing_params_file(tmp_path):
    path = tmp_path / "nope" / "params.yaml"
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(path) in str(info.value)
    assert "not found" in str(info.value)
    assert "repository root" in str(info.value)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: [1, 2\nlr: 1\n")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert f"{path} is not valid YAML" in str(info.value)


def test_empty_params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("")
    with pytest.raises(ParamsError, match="the top level must be a mapping"):
        load_params(path)


# --- training ------------------------------------------------------------------------------------


def test_training_defaults_resume_deterministically_on_one_device():
    training = load_params(COMMITTED).training
    assert (training.resume, training.deterministic, training.distribute) == (True, True, "none")
    assert (training.mixed_precision, training.jit_compile) == (False, False)


def test_jit_compile_with_op_determinism_is_refused(tmp_path):
    message = error_for(tmp_path, setter("training", "jit_compile", True))
    assert "training.jit_compile" in message and "training.deterministic: false" in message


def test_jit_compile_without_op_determinism_loads(tmp_path):
    def change(raw):
        raw["training"].update(jit_compile=True, deterministic=False)

    assert load_modified(tmp_path, change).training.jit_compile is True


def test_distribute_lists_the_allowed_values(tmp_path):
    message = error_for(tmp_path, setter("training", "distribute", "multi_worker"))
    assert "training.distribute" in message and "none, mirrored" in message


# --- which models are trained ---------------------------------------------------------------------


def test_the_book_trains_all_five_models():
    models = load_params(COMMITTED).models
    assert [name for name in committed()["models"] if getattr(models, name) is True] == list(MODEL_STAGES)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            [setter("models", name, False) for name in committed()["models"]],
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

    assert error_for(tmp_path, change).startswith(expected)


def test_the_transfer_models_alone_load(tmp_path):
    params = load_modified(
        tmp_path, lambda raw: raw["models"].update(scratch=False, scratch_augmented=False, fine_tuned=False)
    )
    assert [name for name in MODEL_STAGES if getattr(params.models, name)] == ["feature_extraction", "frozen_augmented"]

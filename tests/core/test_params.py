"""classifier/core/params.py: loading params.yaml (the committed defaults, the file itself) and its
one-line messages for each kind of mistake: an unknown or missing key, a wrong type, a value not allowed."""

from __future__ import annotations

import pytest

from classifier.core.errors import ParamsError, StageError
from classifier.core.params import load_params
from classifier.core.paths import MODEL_STAGES
from tests.support.params import changed_params, edited_params, params_error, setter
from tests.support.paths import ROOT

COMMITTED = ROOT / "params.yaml"


# --- the committed file ---------------------------------------------------------------------------


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
    monkeypatch.chdir(ROOT)
    assert load_params() == load_params(COMMITTED)


def test_an_unmodified_dump_loads_the_same(tmp_path):
    # The helpers below rely on dump/load round-tripping the committed file unchanged.
    assert load_params(edited_params(tmp_path, lambda raw: None)) == load_params(COMMITTED)


def test_params_error_is_a_stage_error():
    assert issubclass(ParamsError, StageError)


def test_classes_and_groups_default_to_null():
    data = load_params(COMMITTED).data
    assert (data.classes, data.class_groups, data.label_column) == (None, None, "label")


def test_training_defaults_resume_deterministically_on_one_device():
    training = load_params(COMMITTED).training
    assert (training.resume, training.deterministic, training.distribute) == (True, True, "none")
    assert (training.mixed_precision, training.jit_compile) == (False, False)


def test_the_book_trains_all_five_models():
    models = load_params(COMMITTED).models
    assert [name for name in changed_params({})["models"] if getattr(models, name) is True] == list(MODEL_STAGES)


# --- keys -----------------------------------------------------------------------------------------


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    def rename(raw):
        raw["data"]["imagesize"] = raw["data"].pop("image_size")

    message = params_error(tmp_path, rename)
    assert "unknown key data.imagesize" in message
    assert "did you mean data.image_size?" in message
    assert (
        "raw_dir, image_size, on_bad_image, max_pixels, shard_mb, split, classes, class_groups, label_column" in message
    )  # the allowed keys


def test_unknown_top_level_key(tmp_path):
    message = params_error(tmp_path, setter("seeds", 1))
    assert "unknown key seeds" in message
    assert "did you mean seed?" in message


def test_missing_key_is_named(tmp_path):
    message = params_error(tmp_path, lambda raw: raw["base"].pop("preprocessing"))
    assert "missing key base.preprocessing" in message
    assert "name, weights, output_layer, fine_tune_from, preprocessing" in message


def test_missing_section_is_named(tmp_path):
    message = params_error(tmp_path, lambda raw: raw.pop("head"))
    assert "missing key head" in message


def test_section_that_is_not_a_mapping(tmp_path):
    message = params_error(tmp_path, setter("augmentation", [1, 2]))
    assert "augmentation must be a mapping" in message
    assert "horizontal_flip" in message


# --- types and allowed values ---------------------------------------------------------------------


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
    assert expected in params_error(tmp_path, setter(*keys, value))


def test_on_bad_image_lists_the_allowed_values(tmp_path):
    message = params_error(tmp_path, setter("data", "on_bad_image", "ignore"))
    assert "data.on_bad_image must be one of fail, skip; got 'ignore'" in message


def test_preprocessing_lists_the_allowed_values(tmp_path):
    message = params_error(tmp_path, setter("base", "preprocessing", "caffe"))
    assert "base.preprocessing must be one of native, rescale" in message


def test_distribute_lists_the_allowed_values(tmp_path):
    message = params_error(tmp_path, setter("training", "distribute", "multi_worker"))
    assert "training.distribute" in message and "none, mirrored" in message


# --- the file itself ------------------------------------------------------------------------------


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

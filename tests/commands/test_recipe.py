"""`classifier recipe` (classifier/commands/recipe.py) and recipes/: overrides applied to params.yaml with its
comments kept, checked first; the book's recipe is params.yaml's defaults and undoes any other; `--set` is the
same run as applying."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from classifier.commands import recipe
from classifier.core.errors import ParamsError
from classifier.core.params import load_params
from tests.support.paths import ROOT

RECIPES = recipe.recipe_names()


@pytest.fixture
def params_file(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the params check resolves bases/ from the repository root
    copy = ROOT / f".params-{tmp_path.name}.yaml"
    shutil.copyfile(ROOT / "params.yaml", copy)
    yield copy
    copy.unlink(missing_ok=True)


def test_the_recipes_are_book_laptop_and_demo_and_book_names_every_key_the_others_change():
    assert {"book", "laptop", "demo"} <= set(RECIPES)
    book = set(recipe.leaves(recipe.load_recipe("book")))
    for name in RECIPES:
        assert set(recipe.leaves(recipe.load_recipe(name))) - {"data.raw_dir"} <= book, name


def test_the_book_recipe_is_params_yaml_s_defaults_byte_for_byte(params_file):
    assert recipe.apply("book", params_file) == []
    assert params_file.read_bytes() == (ROOT / "params.yaml").read_bytes()


@pytest.mark.parametrize("name", [name for name in RECIPES if name != "book"])
def test_a_recipe_changes_its_keys_only_keeps_comments_and_book_undoes_it(params_file, name):
    overrides = recipe.leaves(recipe.load_recipe(name))
    changed = recipe.apply(name, params_file)
    assert changed and set(changed) <= set(overrides)
    applied = recipe.leaves(yaml.safe_load(params_file.read_text()))
    assert {key: applied[key] for key in overrides} == overrides  # as PyYAML reads them: 1.0e-5 stays a float
    assert load_params(params_file).data.image_size == applied["data.image_size"]
    original = yaml.safe_load((ROOT / "params.yaml").read_text())
    untouched = {key for key in recipe.leaves(original) if key not in overrides}
    assert {key: applied[key] for key in untouched} == {key: recipe.leaves(original)[key] for key in untouched}
    assert params_file.read_text().count("#") == (ROOT / "params.yaml").read_text().count("#")
    recipe.apply("book", params_file)
    if "data.raw_dir" in overrides:
        recipe.write_overrides({"data.raw_dir": original["data"]["raw_dir"]}, params_file, "test")
    assert params_file.read_bytes() == (ROOT / "params.yaml").read_bytes()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"head.poling": "average"}, r"^test: head.poling is not a params.yaml key"),
        ({"nohead.pooling": "average"}, r"^test: nohead.pooling is not a params.yaml key \(no section 'nohead'"),
        ({"head.pooling": "mean"}, r"^test: .*head.pooling.*'mean'"),
        ({"fine_tune.epochs": -3}, r"^test: .*fine_tune.epochs"),
    ],
)
def test_a_bad_key_or_value_is_named_and_nothing_is_written(params_file, overrides, message):
    before = params_file.read_bytes()
    with pytest.raises(ParamsError, match=message):
        recipe.write_overrides(overrides, params_file, "test")
    assert params_file.read_bytes() == before
    assert not list(params_file.parent.glob("tmp*.yaml"))  # the checked copy is gone too


def test_an_unknown_recipe_names_the_ones_there():
    names = "book, cifar10, demo, dogs-vs-cats, flowers, laptop"
    with pytest.raises(ParamsError, match=rf"^no recipe 'lapto' in recipes/: choose one of {names}"):
        recipe.load_recipe("lapto")


def test_set_arguments_are_book_then_the_recipe_and_give_what_applying_gives(params_file):
    arguments = shlex.split(
        subprocess.run(
            [sys.executable, "-m", "classifier", "recipe", "laptop", "--set"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert arguments[::2] == ["-S"] * (len(arguments) // 2)
    settings = dict(argument.split("=", 1) for argument in arguments[1::2])
    assert set(settings) == set(recipe.leaves(recipe.load_recipe("book")))  # every book key: independent of params
    recipe.apply("laptop", params_file)
    applied = recipe.leaves(yaml.safe_load(params_file.read_text()))
    assert {key: yaml.safe_load(value) for key, value in settings.items()} == {key: applied[key] for key in settings}


@pytest.mark.parametrize("value", [2e-5, 1e-4, 1.5e-7, 0.8, None, True, [0, 1000], "vgg16"])
def test_values_are_written_as_pyyaml_reads_them_back(value):
    assert yaml.safe_load(recipe.flow_yaml(value)) == value


def test_a_mapping_that_is_a_value_is_one_leaf_and_is_written_whole(params_file):
    overrides = recipe.leaves({"data": {"class_groups": {"pets": ["cat", "dog"]}, "image_size": 32}})
    assert overrides == {"data.class_groups": {"pets": ["cat", "dog"]}, "data.image_size": 32}
    assert recipe.leaves({"unknown": {"nested": 1}}) == {"unknown.nested": 1}  # not in the schema: opened


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("it's", r"'it\'s'"),
        ("end\\", "'end\\\\'"),
        ("${x}", r"'\${x}'"),
        ("null", "'null'"),
        (None, "null"),
        (1e-5, "1.0e-5"),
        ([1, "a,b"], "[1,'a,b']"),
        ({"pets": ["фото"]}, "{pets:['фото']}"),
    ],
)
def test_override_values_are_quoted_for_dvc_s_grammar(value, written):
    assert recipe.override_value(value, "test") == written


def test_a_mapping_key_the_grammar_cannot_hold_is_refused():
    with pytest.raises(ParamsError, match=r"^recipes/x.yaml: data.class_groups: the key 'a b' cannot be given"):
        recipe.override_value({"a b": ["c"]}, "recipes/x.yaml: data.class_groups")

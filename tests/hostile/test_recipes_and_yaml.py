"""Recipes are names in recipes/, nothing else, and the YAML a user gives (params.yaml, a recipe) is read with
a cap on what its aliases expand to: each case one line, within a second, in little memory.

1. RECIPE a path: `../params`, an absolute path, `recipes/laptop`, `laptop.yaml`, `.hidden`, `..`
                                                        -> refused by `classifier own` and `classifier recipe`,
                                                           naming the recipes; the file is never read
2. a recipe of nine lines of nested aliases (nine levels of nine: 387,420,489 values) -> refused in one line
3. params.yaml the same bomb                            -> refused by every stage's params check and by
                                                           `classifier own` (before it writes params.yaml)
4. an alias inside the value it names (a list that holds itself) -> refused in one line
5. lists nested 100,000 deep (PyYAML's scanner would take minutes), mappings nested 1,000 deep
                                                        -> refused in one line (no RecursionError)
6. a recipe that shares a value through an alias        -> read as before (far under the cap)
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from classifier.commands import own, recipe
from classifier.core.errors import ParamsError
from classifier.core.params import load_params
from classifier.core.yaml_files import MAX_YAML_NODES, read_yaml
from tests.support.commands import command_error
from tests.support.paths import ROOT

BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9 if previous else ['x'] * 9)}]\n"
    for previous, name in zip([None, *"abcdefgh"], "abcdefghi")
)
HOLDS_ITSELF = "seed: 42\nloop: &loop [1, *loop]\n"
DEEP = "seed: " + "[" * 100_000 + "]" * 100_000 + "\n"
DEEP_BLOCKS = "".join(f"{' ' * level}k{level}:\n" for level in range(1000)) + " " * 1000 + "v\n"
RECIPES = "book, cifar10, demo, dogs-vs-cats, flowers, laptop"
BOMB_LINE = (
    f"holds over {MAX_YAML_NODES:,} values once its aliases (&name, *name) are followed, far more than any params "
    "file (an alias bomb?); write the values out, or restore it: git checkout "
)


class Quick:
    """A block that must end within a second; `in_little_memory`: in under 20 MB of new Python memory too
    (tracemalloc, which slows a deep recursion down many times over: not for those)."""

    def __init__(self, in_little_memory: bool = False):
        self.in_little_memory = in_little_memory

    def __enter__(self):
        if self.in_little_memory:
            tracemalloc.start()
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self.start
        assert seconds < 1, seconds
        if self.in_little_memory:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak < 20 * 2**20, peak


@pytest.fixture
def recipes(tmp_path, monkeypatch) -> Path:
    """recipes/ for the test: the repository's, and the test's own."""
    folder = tmp_path / "repo" / "recipes"
    folder.mkdir(parents=True)
    for path in (ROOT / "recipes").glob("*.yaml"):
        (folder / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(recipe, "RECIPES_DIR", folder)
    return folder


def test_the_bomb_is_what_the_issue_names():
    assert len(BOMB.splitlines()) == 9 and BOMB.count("*h") == 9


# --- 1: a recipe is a name ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../params", "{outside}", "recipes/laptop", "laptop.yaml", ".hidden", ".."])
def test_a_recipe_given_as_a_path_is_refused_naming_the_recipes(recipes, tmp_path, name):
    outside = tmp_path / "outside.yaml"
    outside.write_text(BOMB)
    (recipes / ".hidden.yaml").write_text(BOMB)
    (recipes.parent / "params.yaml").write_text(BOMB)
    name = name.format(outside=outside)
    expected = (
        f"recipe '{name}' is not a name of recipes/: a recipe is named by its file's name there, without .yaml "
        f"(never a path); choose one of {RECIPES}"
    )
    with Quick():
        assert command_error(["recipe", name]) == f"recipe: error: {expected}"
        assert command_error(["own", f"--recipe={name}", "--", str(tmp_path)]) == f"own: error: {expected}"


# --- 2-6: YAML ------------------------------------------------------------------------------------------------


def test_a_recipe_of_nested_aliases_is_refused_in_a_second(recipes, tmp_path):
    (recipes / "bomb.yaml").write_text(BOMB)
    with Quick(in_little_memory=True):
        assert (
            command_error(["recipe", "bomb", "--set"])
            == f"recipe: error: recipes/bomb.yaml {BOMB_LINE}recipes/bomb.yaml"
        )
        line = command_error(["own", "--recipe=bomb", "--", str(tmp_path)])
    assert line == f"own: error: recipes/bomb.yaml {BOMB_LINE}recipes/bomb.yaml"


def test_params_yaml_of_nested_aliases_is_refused_by_the_stages_and_by_own(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text(BOMB)
    monkeypatch.setattr(own, "ROOT", repo)
    monkeypatch.chdir(repo)
    with Quick(in_little_memory=True):
        with pytest.raises(ParamsError) as info:
            load_params()
        line = command_error(["own", "--recipe=laptop", "--", str(tmp_path)])
    assert str(info.value) == f"params.yaml {BOMB_LINE}params.yaml"
    assert line == f"own: error: params.yaml {BOMB_LINE}params.yaml"
    assert (repo / "params.yaml").read_text() == BOMB


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (HOLDS_ITSELF, "holds an alias inside the value it names (a value that contains itself); write the values out"),
        (DEEP, "nests its values too deeply to be params; fix it there"),
        (DEEP_BLOCKS, "nests its values too deeply to be params; fix it there"),
    ],
    ids=["an alias inside itself", "100,000 lists", "1,000 mappings"],
)
def test_yaml_that_holds_itself_or_nests_too_deep_is_one_line(tmp_path, text, problem):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with Quick(), pytest.raises(ParamsError) as info:
        read_yaml(path, "params.yaml")
    assert str(info.value) == f"params.yaml {problem}, or restore it: git checkout params.yaml"


def test_a_recipe_that_shares_a_value_through_an_alias_is_read_as_before(recipes):
    (recipes / "shared.yaml").write_text(
        "train_classifier: &same {epochs: 3, batch_size: 8}\nfine_tune: *same\nhead: {dense_units: 16}\n"
    )
    settings = recipe.leaves(recipe.load_recipe("shared"))
    assert settings == {
        "train_classifier.epochs": 3,
        "train_classifier.batch_size": 8,
        "fine_tune.epochs": 3,
        "fine_tune.batch_size": 8,
        "head.dense_units": 16,
    }

"""What a user types as a value (a photo folder, a base file, a recipe, experiment names) is data: no make
target or command runs what it says, and it reaches the program, and params.yaml, exactly as typed.
The names hold backticks, `$(...)`, make's `$(shell ...)` and `${...}`, quotes of both kinds, spaces,
`#`, `,`, `=`, brackets, `:` and non-ASCII letters.

Injection through make variables (the real targets, in a scratch copy of the project):
1. `make own DATA=<name>`, a folder that is not there    -> nothing runs; own's one line quotes the name exactly
2. `make own BASE=<name>.keras`                           -> the same, for BASE
3. `make own RECIPE=<name>`                               -> the same, for RECIPE (no such recipe)
4. `make compare EXPS='e1 <name>'`                        -> nothing runs; each word reaches compare as it is
5. DATA that starts with `-` (`--help`, `-x`)             -> a folder name, not an option; no DATA: named
6. any other variable on make's command line (FOO=, VENV=, TEST_WORKERS=, TF_CPP_MIN_LOG_LEVEL=): make
   would export it to every recipe, expanding it (running its `$(shell ...)`) first
                                                               -> never expanded; exported only where a
                                                                  recipe needs it, as typed

Values that DVC's override grammar (Hydra's, `dvc exp run -S`) cannot take:
7. `classifier own` with a photo folder and a base file of that name -> params.yaml holds data.raw_dir and
   base.name exactly, the base is in bases/ under its name, and the run is `dvc exp run` with no -S
8. a recipe's values of any content through `dvc exp run -S` (`make demo`, `classifier recipe --set`)
                                                               -> quoted for the grammar: DVC's own parser
                                                                  writes each into params.yaml as it is
"""

from __future__ import annotations

import filecmp
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from classifier.commands import own, recipe
from classifier.core.params import load_params
from tests.support.commands import in_repository, run_command, users_environment
from tests.support.models import conv_base
from tests.support.repos import OWN_RECIPE, own_photos, own_repo, workspace_state

# Each injection would leave a file named pwned-N in the folder it runs in (the repository).
NAME = "a`touch pwned-1`b $(touch pwned-2) $(shell touch pwned-3) ${HOME} \"dq\" 'sq' #h ,c =e [b] {x} :c фото"
VENV = Path(sys.executable).parent.parent  # this venv: nothing is installed, make is told it is up to date
# A variable nobody reads, and one the recipes' environment holds: neither may run what it says.
NOT_RUN = ["FOO=$(shell touch pwned-0)", "TF_CPP_MIN_LOG_LEVEL=$(shell touch pwned-8)"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return own_repo(tmp_path_factory.mktemp("own") / "repo")


def make(repo, *arguments: str) -> subprocess.CompletedProcess:
    """A target of the scratch copy's Makefile, with this venv, nothing (re)installed."""
    command = ["make", "--no-print-directory", "-o", f"{VENV}/installed", *arguments, f"VENV={VENV}", *NOT_RUN]
    return subprocess.run(
        command, cwd=repo.path, capture_output=True, text=True, env=users_environment(LC_ALL="C.UTF-8")
    )


def refused_line(result: subprocess.CompletedProcess, command: str) -> str:
    """The one line `command` stopped with, make's own line about the failed target left aside."""
    assert result.returncode == 2, result.stderr  # make's status for a failed recipe
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), result.stderr
    return lines[0]


def nothing_ran(repo, before) -> None:
    assert workspace_state(repo.path) == before
    assert not list(repo.path.parent.rglob("pwned-*"))


def nothing_ran_but_dvc(repo, before) -> None:
    """As nothing_ran, but for DVC's own lock files in .dvc/tmp (a command that runs `dvc exp show`)."""
    files, status = workspace_state(repo.path)
    assert status == before[1]
    assert {name: value for name, value in files.items() if not name.startswith(".dvc/tmp/")} == {
        name: value for name, value in before[0].items() if not name.startswith(".dvc/tmp/")
    }
    assert not list(repo.path.parent.rglob("pwned-*"))


# --- 1-6: make's variables ----------------------------------------------------------------------------------


def test_a_folder_name_is_neither_make_nor_shell_text(repo, tmp_path):
    before = workspace_state(repo.path)
    data = tmp_path / NAME
    line = refused_line(make(repo, "own", f"DATA={data}"), "own")
    assert (
        line == f"own: error: DATA={data}: not a folder; give the folder of your labelled photos (DATA=path/to/photos)"
    )
    nothing_ran(repo, before)


def test_a_base_file_name_is_neither_make_nor_shell_text(repo, tmp_path):
    before = workspace_state(repo.path)
    base = tmp_path / f"{NAME}.keras"
    line = refused_line(make(repo, "own", f"DATA={tmp_path}", f"BASE={base}"), "own")
    assert line == f"own: error: BASE={base}: not a .keras file; give a saved Keras base, or BASE=imagenet"
    nothing_ran(repo, before)


def test_a_recipe_name_is_neither_make_nor_shell_text(repo, tmp_path):
    before = workspace_state(repo.path)
    line = refused_line(make(repo, "own", f"DATA={tmp_path}", f"RECIPE={NAME}"), "own")
    assert line.startswith(f"own: error: no recipe '{NAME}' in recipes/: choose one of book, cifar10, demo,")
    nothing_ran(repo, before)


def test_experiment_names_reach_compare_word_by_word(repo):
    before = workspace_state(repo.path)
    words = ["e1", "`touch", "pwned-5`", "$(shell", "touch", "pwned-6)", "it's", '"q"', "фото"]
    result = make(repo, "compare", f"EXPS={' '.join(words)}")
    assert result.returncode == 0, result.stderr
    assert f"compare: not found: {', '.join(words)}; see `dvc exp show`" in result.stderr.splitlines()
    nothing_ran_but_dvc(repo, before)


@pytest.mark.parametrize("data", ["--help", "-x"])
def test_a_folder_name_that_starts_with_a_dash_is_a_folder_name(repo, data):
    line = refused_line(make(repo, "own", f"DATA={data}"), "own")
    assert line.startswith(f"own: error: DATA={data}: not a folder")


def test_no_folder_at_all_is_named_as_such(repo):
    line = refused_line(make(repo, "own"), "own")
    assert line == "own: error: DATA is empty: give the folder of your labelled photos (make own DATA=path/to/photos)"


def test_no_variable_on_make_s_command_line_is_expanded_or_exported(repo):
    before = workspace_state(repo.path)
    workers = "$(shell touch pwned-7)"
    planned = make(repo, "-n", "-o", f"{VENV}/installed-test", "unit", f"TEST_WORKERS={workers}")
    assert planned.returncode == 0, planned.stderr
    assert f"python -m pytest -n '{workers}' --dist loadscope -m 'not e2e'" in planned.stdout.splitlines()
    nothing_ran(repo, before)


# --- 7-8: DVC's override grammar ------------------------------------------------------------------------------


def test_own_writes_any_folder_and_base_name_into_params_yaml_and_runs_dvc_without_overrides(
    repo, tmp_path, monkeypatch
):
    photos = own_photos(tmp_path / NAME)
    base = tmp_path / f"{NAME}.keras"
    conv_base().save(base)
    in_repository(monkeypatch, repo.path)
    ran = []
    monkeypatch.setattr(own, "run_dvc", lambda command, stops: ran.append(command) or 0)
    monkeypatch.setattr(own, "print_results", lambda: None)
    try:
        status = run_command(["own", f"--base={base}", f"--recipe={OWN_RECIPE}", "--", str(photos)])
        assert status == 0 and ran == [[sys.executable, "-m", "dvc", "exp", "run"]]
        written = yaml.safe_load((repo.path / "params.yaml").read_text(encoding="utf-8"))
        assert written["data"]["raw_dir"] == os.path.relpath(photos, repo.path)
        assert written["base"]["name"] == f"bases/{NAME}.keras" and written["base"]["weights"] is None
        assert (repo.path / written["data"]["raw_dir"]).resolve() == photos.resolve()
        assert filecmp.cmp(repo.path / "bases" / f"{NAME}.keras", base, shallow=False)
        assert (repo.path / "bases" / f"{NAME}.keras.dvc").is_file()
        assert load_params(repo.path / "params.yaml").data.raw_dir == written["data"]["raw_dir"]
    finally:
        repo.run("git", "reset", "-q", "--hard")
        repo.run("git", "clean", "-fdq", "bases")


VALUES = [NAME, "back\\slash", "end\\", "a\\'b", "${x}", "\\${x}", "null", "1e5", "", "a\ttab", "x\n"]


def test_a_recipe_s_values_reach_params_yaml_through_dvc_s_own_parser(tmp_path, monkeypatch, capsys):
    from dvc.utils.hydra import apply_overrides  # DVC's `dvc exp run -S`: Hydra's grammar, then OmegaConf

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("book", "hostile"):
        (recipes / f"{name}.yaml").write_text(
            yaml.safe_dump({"data": {"classes": VALUES, "raw_dir": NAME, "class_groups": {"g1": VALUES[:3]}}})
        )
    monkeypatch.setattr(recipe, "RECIPES_DIR", recipes)
    run_command(["recipe", "hostile", "--set"])
    arguments = shlex.split(capsys.readouterr().out)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"classes": None, "raw_dir": "data/raw", "class_groups": None}}))
    apply_overrides(params, arguments[1::2])
    written = yaml.safe_load(params.read_text(encoding="utf-8"))["data"]
    assert written == {"classes": VALUES, "raw_dir": NAME, "class_groups": {"g1": VALUES[:3]}}

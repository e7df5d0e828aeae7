"""classifier/cli.py, the command line `classifier` (`python -m classifier`, and .venv/bin/classifier once the
project is installed): --help lists every command and each command's --help is its module's docstring; a bad
argument is argparse's error, one line and exit 2; a command's StageError is one line `<command>: error: ...`
and exit 1."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from classifier import cli
from classifier.commands import results
from classifier.core.paths import MODEL_STAGES
from tests.support.commands import run_command
from tools.scratch_repo import Repo


def classifier(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m classifier ...` run from `cwd`, as a user runs the command from any folder."""
    return subprocess.run([sys.executable, "-m", "classifier", *arguments], cwd=cwd, capture_output=True, text=True)


def first_docstring_line(name: str) -> str:
    return importlib.import_module(cli.module_name(name)).__doc__.splitlines()[0]


def test_help_lists_every_command_from_any_folder(tmp_path):
    shown = classifier("--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: classifier [-h] COMMAND ...")
    listed = [line.split()[0] for line in shown.stdout.splitlines() if line.startswith("    ") and line.split()]
    assert [name for name in listed if name in cli.COMMANDS] == list(cli.COMMANDS)  # each once, in order
    for name, (help_line, _) in cli.COMMANDS.items():
        assert " ".join(help_line.split()[:3]) in " ".join(shown.stdout.split()), name


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_commands_help_is_its_modules_docstring(name, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main([name, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: classifier {name} [-h]")
    assert first_docstring_line(name).startswith(f"`classifier {name}`")
    assert f"\n{first_docstring_line(name)}\n" in out  # as written: a raw description


@pytest.mark.parametrize(
    "argv, error",
    [
        (["predict", "photo.jpg", "--top", "0"], "classifier predict: error: argument --top: 0: give 1 or more"),
        (
            ["predict", "photo.jpg", "--model", "nope"],
            f"classifier predict: error: argument --model: 'nope': use best, one of {', '.join(MODEL_STAGES)} "
            "or a .keras file",
        ),
        (
            ["local-cluster", "2"],
            "classifier local-cluster: error: give a number of processes, then -- and the command",
        ),
        (
            ["local-cluster", "2", "--"],
            "classifier local-cluster: error: give a number of processes, then -- and the command",
        ),
        (["no-such-command"], "classifier: error: argument COMMAND: invalid choice: 'no-such-command'"),
    ],
)
def test_a_bad_argument_is_one_error_line_after_the_usage_and_exit_2(argv, error, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_command(argv)
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("usage: classifier")
    assert lines[-1].startswith(error), lines[-1]
    assert [line for line in lines if ": error:" in line] == [lines[-1]]


def test_a_bad_argument_exits_2_in_its_own_process(tmp_path):
    refused = classifier("predict", "photo.jpg", "--top", "0", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.splitlines()[-1] == "classifier predict: error: argument --top: 0: give 1 or more"


def test_a_commands_stage_error_is_one_line_and_exit_1(tmp_path):
    refused = classifier("recipe", "nope", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "recipe: error: no recipe 'nope' in recipes/: choose one of book, cifar10, demo, dogs-vs-cats, flowers, laptop"
    ]


def test_results_of_an_experiment_that_is_not_there_in_a_scratch_repository(tmp_path, monkeypatch):
    repo = Repo(tmp_path / "repo")
    repo.path.mkdir()
    repo.run("git", "init", "-q", "-b", "main")
    repo.dvc("init", "-q")
    repo.commit("an empty project")
    monkeypatch.setattr(results, "PROJECT_ROOT", repo.path)  # the repository the command reads
    with pytest.raises(SystemExit) as stopped:
        run_command(["results", "--exp", "no-such"])
    assert stopped.value.code == "results: error: no experiment named 'no-such'; see `dvc exp show`"


def test_the_installed_command_is_beside_python():
    try:
        distribution = importlib.metadata.distribution("dvc-transfer-learning")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the project is not installed (make install)")
    scripts = {entry.name: entry.value for entry in distribution.entry_points if entry.group == "console_scripts"}
    assert scripts == {"classifier": "classifier.cli:main"}
    script = Path(sys.executable).parent / "classifier"
    assert script.is_file() and os.access(script, os.X_OK)
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert all(name in shown.stdout for name in cli.COMMANDS)

"""dvc.yaml's structure, checked in a second without running anything: the stage list, the params
check first, declared keys that exist (the training stages' shared ones too), outs that match the
layout, metrics and plots that are outs, data deps that some stage makes. Whether each stage declares
exactly what it reads, writes and uses is shown by running it: tests/e2e/test_dvc_deps_e2e.py.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

from classifier.core import paths
from tests.support.paths import ROOT as REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
STAGES: dict[str, dict] = DVC["stages"]
# The one stage that declares the whole of params.yaml (`params.yaml:`), so that any change to it, an
# unknown key included, runs it: it checks the file and writes nothing. Every other stage declares keys.
PARAMS_CHECK = "check_params"
KEYED_STAGES = [stage for stage in STAGES if stage != PARAMS_CHECK]
TEMPLATE = re.compile(r"\$\{\s*([\w.]+)\s*\}")
# Data deps that no stage makes: what people put in (besides data.raw_dir).
USER_INPUTS = {
    ("load_base", str(paths.BASES_DIR)): (
        "the .keras bases and weights files that base.name and base.weights may name; the params check "
        "refuses them anywhere else, so that a new version of one reruns load_base"
    ),
}


def lookup(key: str):
    value = PARAMS
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(key)
        value = value[part]
    return value


def declared_params(stage: str) -> list[str]:
    """The keys a stage declares: each named alone, or in a `{params.yaml: [...]}` entry (the training
    stages' shared keys, one YAML anchor)."""
    keys = []
    for entry in STAGES[stage].get("params", []):
        if isinstance(entry, str):
            keys.append(entry)
            continue
        ((file, listed),) = entry.items()
        assert file == "params.yaml" and listed, f"{stage}: params from other files are not expected: {entry}"
        keys += listed
    return keys


def cmd_argv(stage: str) -> list[str]:
    argv = shlex.split(STAGES[stage]["cmd"])
    assert argv[:2] == ["python", "-m"] and argv[2].startswith("stages."), f"{stage}: cmd {argv}"
    return argv


def script(stage: str) -> str:
    return cmd_argv(stage)[2].replace(".", "/") + ".py"


def data_deps(stage: str) -> list[str]:
    return [dep for dep in STAGES[stage]["deps"] if PurePosixPath(dep).parts[0] not in ("stages", "classifier")]


def outs(stage: str) -> list[str]:
    return [out if isinstance(out, str) else next(iter(out)) for out in STAGES[stage].get("outs", [])]


def inside(path, folder) -> bool:
    """`path` is `folder` or lies in it."""
    path, folder = PurePosixPath(path), PurePosixPath(folder)
    return path == folder or folder in path.parents


# --- the stages ------------------------------------------------------------------------------------


def test_stages_run_their_own_script():
    for stage in STAGES:
        assert (REPO / script(stage)).is_file(), f"{stage}: no {script(stage)}"
        assert Path(script(stage)).stem in (stage, stage.removesuffix("_augmented")), stage
        assert script(stage) in STAGES[stage]["deps"], f"{stage} does not declare its own script"


def test_dvc_lists_every_stage():
    dvc = Path(sys.executable).with_name("dvc")  # the venv's own dvc (requirements.txt pins it)
    command = [str(dvc)] if dvc.is_file() else [sys.executable, "-m", "dvc"]
    result = subprocess.run([*command, "stage", "list"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert listed == list(STAGES)


def imports(path: Path) -> set[str]:
    """The modules a file imports (`from x import y`: x)."""
    tree = ast.parse(path.read_text())
    found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return found | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


def test_packages_hold_docstrings_only():
    """Importing classifier.x runs the packages' __init__.py, which dvc.yaml leaves out of every stage's
    deps where it names modules one by one: so they hold a docstring and nothing else. stages' own only
    calls the start-up (start_stage of classifier.core.startup: Ctrl-C's one line, the backend checked,
    TensorFlow's start-up lines filtered), in classifier/core, a folder every stage declares; the start-up
    imports nothing of the project outside it. classifier/__main__.py, `python -m classifier`, is the one
    file of the packages besides them that is not a module a stage may import: no stage declares it."""
    for init in sorted((REPO / "classifier").rglob("__init__.py")):
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), init
    stages_init = ast.parse((REPO / "stages/__init__.py").read_text())
    imported = {
        (node.module, alias.name)
        for node in ast.walk(stages_init)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {("classifier.core.startup", "start_stage")}
    assert all("classifier/core" in stage["deps"] for stage in STAGES.values())
    project = {"stages", "classifier", "tools", "benchmarks"}
    startup_imports = [m for m in imports(REPO / "classifier/core/startup.py") if m.split(".")[0] in project]
    assert startup_imports and all(module.startswith("classifier.core.") for module in startup_imports)
    dunders = {path.relative_to(REPO).as_posix() for path in (REPO / "classifier").rglob("__*__.py")}
    assert {path for path in dunders if not path.endswith("/__init__.py")} == {"classifier/__main__.py"}
    assert not any(inside("classifier/__main__.py", dep) for stage in STAGES.values() for dep in stage["deps"])


# --- params -----------------------------------------------------------------------------------------


def test_the_params_check_declares_the_whole_file_and_runs_first():
    assert list(STAGES)[0] == PARAMS_CHECK  # DVC runs independent stages in the file's order
    assert STAGES[PARAMS_CHECK]["params"] == [{"params.yaml": None}]
    assert not STAGES[PARAMS_CHECK].get("outs")
    assert "load_params()" in (REPO / script(PARAMS_CHECK)).read_text()


def test_the_training_stages_share_how_training_runs():
    """One list, a YAML anchor named by every training stage: the `training` section but resume (a resumed
    run ends with the same weights) and join_timeout (how long a cluster waits for its processes), and the
    optimizer."""
    shared = [
        entry["params.yaml"]
        for stage in paths.MODEL_STAGES.values()
        for entry in STAGES[stage]["params"]
        if isinstance(entry, dict)
    ]
    assert len(shared) == len(set(paths.MODEL_STAGES.values())) and all(keys == shared[0] for keys in shared)
    unshared = ("resume", "join_timeout")  # they change how a stage runs, not what it writes
    assert set(shared[0]) == {f"training.{key}" for key in PARAMS["training"] if key not in unshared} | {"optimizer"}
    others = [stage for stage in KEYED_STAGES if stage not in paths.MODEL_STAGES.values()]
    assert not [stage for stage in others if any(isinstance(entry, dict) for entry in STAGES[stage]["params"])]


@pytest.mark.parametrize("stage", KEYED_STAGES)
def test_declared_params_exist(stage):
    keys = declared_params(stage)
    assert len(keys) == len(set(keys)), f"{stage}: duplicate params {keys}"
    for key in keys:
        try:
            lookup(key)
        except KeyError:
            pytest.fail(f"{stage}: params key {key} is not in params.yaml")
    for earlier in keys:  # `head` and `head.dropout` together say the same twice
        assert not any(later.startswith(earlier + ".") for later in keys), f"{stage}: {earlier} declared twice"


# --- data and outs ------------------------------------------------------------------------------------


def test_outs_match_layout():
    assert str(paths.SPLIT_DIR) in outs("split")
    assert str(paths.PREPARED_DIR) in outs("prepare")
    assert str(paths.FEATURES_DIR) in outs("extract_features")
    assert str(paths.BASE_MODEL) in outs("load_base")
    assert set(paths.MODEL_STAGES.values()) <= set(STAGES)
    for model, stage in paths.MODEL_STAGES.items():
        assert str(paths.model_path(model)) in outs(stage), f"{stage} does not declare {model}"
        assert str(paths.stage_metrics_dir(stage)) in outs(stage), f"{stage} does not declare its dvclive folder"
    models = {out for stage in STAGES for out in outs(stage) if inside(out, paths.MODELS_DIR)}
    expected = {str(paths.model_path(m)) for m in paths.MODEL_STAGES}
    assert str(paths.model_path(paths.BEST)) in outs("evaluate")
    assert models == {str(paths.BASE_MODEL), str(paths.EXPORT_DIR), str(paths.model_path(paths.BEST))} | expected


def test_no_out_is_declared_twice_or_nested():
    declared = [(stage, out) for stage in STAGES for out in outs(stage)]
    for i, (stage, out) in enumerate(declared):
        for other_stage, other in declared[i + 1 :]:
            assert not (inside(out, other) or inside(other, out)), f"{stage}: {out} and {other_stage}: {other}"


def plot_files() -> list[str]:
    files = []
    for item in DVC.get("plots", []):
        if isinstance(item, str):
            files.append(item)
            continue
        ((name, config),) = item.items()
        config = config or {}
        named = [path for axis in ("x", "y") if isinstance(config.get(axis), dict) for path in config[axis]]
        files += named or [name]
    return files


def test_metrics_and_plots_are_stage_outs():
    shown = list(DVC["metrics"]) + plot_files()
    assert len(shown) > len(DVC["metrics"])
    every_out = [out for stage in STAGES for out in outs(stage)]
    for path in shown:
        assert any(inside(path, out) for out in every_out), f"{path} is no stage's out"
    assert DVC["metrics"] == [paths.HEADLINE.as_posix()]  # one row in `dvc metrics show`; details are plain JSON
    for stage in paths.MODEL_STAGES.values():
        folder = paths.stage_metrics_dir(stage)
        for curve in ("train/accuracy", "val/accuracy", "train/loss", "val/loss"):
            tsv = (folder / f"plots/metrics/{curve}.tsv").as_posix()
            assert any(inside(tsv, path) for path in shown), f"{stage}'s per-epoch {curve} is not plotted"
    for model in paths.MODEL_STAGES:  # a confusion matrix per model
        predictions = (paths.EVALUATION_DIR / "predictions" / f"{model}.csv").as_posix()
        assert any(inside(predictions, path) for path in shown), f"{model}'s confusion matrix is not plotted"


@pytest.mark.parametrize("stage", STAGES)
def test_data_deps_are_other_stages_outs_or_the_raw_data(stage):
    for dep in data_deps(stage):
        if (stage, dep) in USER_INPUTS:
            continue
        templates = TEMPLATE.findall(dep)
        if dep.startswith("${"):  # ${data.raw_dir}: the stage must declare that param
            assert all(key in declared_params(stage) for key in templates), f"{stage}: {dep}"
            assert (REPO / TEMPLATE.sub(lambda m: str(lookup(m.group(1))), dep)).resolve().is_relative_to(REPO), dep
            continue
        for key in templates:  # models/${export.model}.keras: the key picks which stage's out it is
            assert any(key == declared or key.startswith(declared + ".") for declared in declared_params(stage))
        resolved = TEMPLATE.sub(lambda m: str(lookup(m.group(1))), dep)
        producers = [other for other in STAGES if other != stage and any(inside(resolved, out) for out in outs(other))]
        assert producers, f"{stage}: no stage makes {dep}"


def test_user_inputs_are_declared():
    for (stage, dep), reason in USER_INPUTS.items():
        assert reason and dep in data_deps(stage)

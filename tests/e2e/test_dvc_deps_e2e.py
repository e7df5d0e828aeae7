"""dvc.yaml keeps its promise, shown by what the stages do: each stage's deps, outs and params are
exactly what it reads, writes and uses.

The session's tiny pipeline runs every stage with tests/observe on PYTHONPATH, whose audit hook
logs each file a stage process opens, lists, creates, renames or removes in the repository, each
params key it reads, and the repository's modules it imported. Three more runs take the branches the
tiny params do not: a .keras base from bases/ with `base.fine_tune_from: null` (load_base,
fine_tune), the export of a model trained from scratch, and augmented feature views (extract_features).
Then, per stage: the modules imported are the code deps; nothing read is undeclared and each declared
data dep is read; nothing is written outside the outs; the params keys read are the declared ones.

What the hook cannot see or the stages rightly leave undeclared is listed below, each with its reason.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import yaml

from classifier.core.paths import MODEL_STAGES
from tests.support.paths import ROOT
from tests.support.repos import observed
from tools.scratch_repo import set_params

pytestmark = pytest.mark.e2e

STAGES: dict[str, dict] = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PARAMS_CHECK = "check_params"  # declares all of params.yaml, reads it through load_params' checks
CODE = ("stages", "classifier")
TEMPLATE = re.compile(r"\$\{\s*([\w.]+)\s*\}")

# Modules a stage imports that change nothing it writes, so dvc.yaml leaves them out (besides the
# packages' __init__.py files, which hold docstrings only: tests/test_dvc_yaml.py checks).
NOT_CODE_DEPS = {
    "stages/__init__.py": (
        "calls the start-up of classifier/core/startup.py (Ctrl-C's one line, the backend checked, TensorFlow's "
        "start-up lines filtered), which every stage declares with classifier/core, and nothing else"
    ),
}
# Files a stage touches that are not the pipeline's data.
NOT_DATA = {
    ".dvc/tmp/": "DVC's scratch folder: the training checkpoints and locks, and dvclive's step marker",
    ".dvc/": "DVC's config, read by dvclive to find the repository (it writes the same metrics either way)",
    ".git/": "git's own files, read by dvclive to find the repository",
    ".dvcignore": "read by dvclive with DVC's config",
    ".gitignore": "read by dvclive with git's",
    "params.yaml": "params are declared by key; which keys each stage reads is checked below",
    "__editable__.": (
        "the entry that the editable install of `make install` puts on sys.path for its import hook: a name that "
        "Python's import system tries as a path (relative, so seen as in the repository), no file"
    ),
}
# (stage, key) read on purpose without being declared.
EXEMPT_PARAMS = {
    ("load_base", "base.fine_tune_from"): (
        "load_base checks the layer name so that a typo fails in seconds rather than after hours of "
        "training; models/base.keras does not depend on it (fine_tune declares it)"
    ),
    **{
        (stage, "training.resume"): (
            "checkpoints change how a stage runs, not what it produces: a resumed run ends with the same "
            "weights as an uninterrupted one (tests/models/training/test_checkpoints.py), so switching it "
            "reruns nothing"
        )
        for stage in MODEL_STAGES.values()
    },
    **{
        (stage, "training.join_timeout"): (
            "how long a process of a multi_host cluster waits for the others to join changes when it gives up, "
            "not what a stage that ran produces"
        )
        for stage in MODEL_STAGES.values()
    },
}
NEVER_DECLARED = {"training.resume", "training.join_timeout"}  # exempt keys no stage declares: they change no output
# Exempt keys read only by runs the observation does not make (training.distribute: multi_host).
UNOBSERVED = {"training.join_timeout"}

BASE_FILE = "bases/observed_base.keras"
# Runs besides the session's: (params changed, stages run with their dvc.yaml cmd, in order).
VARIANTS = {
    "a .keras base": (
        {("base", "name"): BASE_FILE, ("base", "weights"): None, ("base", "fine_tune_from"): None},
        ["load_base", "fine_tune"],
    ),
    "a model from scratch exported": ({("export", "model"): "scratch"}, ["export"]),
    "augmented feature views": ({("extract_features", "views"): 2}, ["extract_features"]),
}


# --- the logs ------------------------------------------------------------------------------------------


@dataclass
class Observed:
    """What one stage did in one run: paths (relative to the repository) by kind of event, and params keys."""

    paths: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    params: set[str] = field(default_factory=set)

    def of(self, *kinds: str) -> set[str]:
        return set().union(*(self.paths[kind] for kind in kinds))


@dataclass
class Run:
    params: dict  # the params.yaml the stages ran with
    stages: dict[str, Observed]


def read_logs(logs: Path, params: dict) -> Run:
    by_cmd = {tuple(shlex.split(stage["cmd"])[1:]): name for name, stage in STAGES.items()}
    stages: dict[str, Observed] = defaultdict(Observed)
    for log in sorted(logs.glob("*.tsv")):
        lines = log.read_text().splitlines()
        argv = json.loads(lines[0].split("\t", 1)[1])
        observed_stage = stages[by_cmd[tuple(argv[argv.index("-m") :])]]  # forked workers share their stage's
        for line in lines[1:]:
            kind, path = line.split("\t", 1)
            if kind == "params":
                observed_stage.params.add(path)
            elif kind != "argv":
                observed_stage.paths[kind].add(path)
    return Run(params, dict(stages))


@pytest.fixture(scope="module")
def runs(tiny_repo, tmp_path_factory) -> list[Run]:
    params = yaml.safe_load((tiny_repo.path / "params.yaml").read_text())
    found = [read_logs(tiny_repo.observed_logs, params)]
    for changes, stages in VARIANTS.values():
        logs = tmp_path_factory.mktemp("observed_variant")
        try:
            shutil.copy2(tiny_repo.path / "models/scratch.keras", tiny_repo.path / BASE_FILE)
            set_params(tiny_repo.path, changes)
            with observed(tiny_repo, logs):
                for stage in stages:
                    tiny_repo.run(*shlex.split(STAGES[stage]["cmd"]))
            found.append(read_logs(logs, yaml.safe_load((tiny_repo.path / "params.yaml").read_text())))
        finally:
            (tiny_repo.path / BASE_FILE).unlink(missing_ok=True)
            tiny_repo.reset()
    return found


def stage_runs(runs: list[Run], stage: str) -> list[tuple[Run, Observed]]:
    return [(run, run.stages[stage]) for run in runs if stage in run.stages]


# --- dvc.yaml ------------------------------------------------------------------------------------------


def lookup(params: dict, key: str):
    value = params
    for part in key.split("."):
        value = value[part]
    return value


def resolved(path: str, params: dict) -> str:
    return TEMPLATE.sub(lambda m: str(lookup(params, m.group(1))), path)


def entries(stage: str, kind: str) -> list[str]:
    """The paths of a stage's deps or outs, or the keys of its params. An entry is a string, or a mapping
    of one: a path with its options (an out), or for params a file with its keys (`{params.yaml: [...]}`,
    the training stages' shared keys) or with none, the whole file (check_params' `params.yaml:`)."""
    found = []
    for entry in STAGES[stage].get(kind, []):
        if isinstance(entry, str):
            found.append(entry)
            continue
        ((name, value),) = entry.items()
        found += value if kind == "params" and value else [name]
    return found


def code_deps(stage: str) -> set[str]:
    """The .py files a stage's code deps name: a file, or every module under a folder, its subfolders'
    too (DVC hashes a folder dep whole), but the __init__.py files."""
    found = set()
    for dep in entries(stage, "deps"):
        folder = ROOT / dep
        if dep.endswith(".py"):
            found.add(dep)
        elif dep.startswith(f"{CODE[1]}/") and folder.is_dir():
            found |= {path.relative_to(ROOT).as_posix() for path in folder.rglob("*.py") if path.name != "__init__.py"}
    return found


def data_deps(stage: str, params: dict) -> list[str]:
    return [resolved(dep, params) for dep in entries(stage, "deps") if not is_code(dep)]


def is_code(path: str) -> bool:
    return PurePosixPath(path).parts[0] in CODE


def inside(path: str, folder: str) -> bool:
    """`path` is `folder` or lies in it."""
    return path == folder or PurePosixPath(folder) in PurePosixPath(path).parents


def leaves(params: dict, key: str) -> set[str]:
    value = lookup(params, key)
    if not isinstance(value, dict):
        return {key}
    return set().union(*(leaves(params, f"{key}.{name}") for name in value))


def declared_params(stage: str, params: dict) -> set[str]:
    return set().union(*(leaves(params, key) for key in entries(stage, "params")))


# --- what each stage touched -----------------------------------------------------------------------------


def not_data(path: str) -> bool:
    return is_code(path) or any(path == name or path.startswith(name) for name in NOT_DATA)


def temporaries(seen: Observed) -> set[str]:
    """What the stage made and then removed or moved away (a temporary folder and all in it)."""
    gone = seen.of("removed", "moved_from")
    return {path for path in seen.of("write", "created") if any(inside(path, away) for away in gone)}


def data_reads(seen: Observed, stage: str) -> set[str]:
    """Paths read or listed that are the pipeline's data: not the stage's own outputs, nor what it
    wrote itself, nor anything in what it removed or moved away (its temporary folders)."""
    own = entries(stage, "outs") + sorted(seen.of("removed", "moved_from"))
    return {
        path
        for path in seen.of("read", "list")
        if not not_data(path) and not any(inside(path, mine) for mine in own) and path not in seen.of("write")
    }


# --- the tests ----------------------------------------------------------------------------------------


def test_every_stage_ran_observed(runs):
    assert set(runs[0].stages) == set(STAGES)
    for name, (_, stages) in VARIANTS.items():
        assert set(runs[list(VARIANTS).index(name) + 1].stages) == set(stages), name


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_are_the_modules_the_stage_imports(runs, stage):
    imported = set().union(*(seen.of("import") for _, seen in stage_runs(runs, stage)))
    imported = {path for path in imported if PurePosixPath(path).name != "__init__.py"} - set(NOT_CODE_DEPS)
    declared = code_deps(stage)
    assert sorted(imported - declared) == [], f"{stage} imports modules dvc.yaml does not declare"
    assert sorted(declared - imported) == [], f"{stage} declares modules it does not import"
    assert len(entries(stage, "deps")) == len(set(entries(stage, "deps")))


@pytest.mark.parametrize("stage", STAGES)
def test_nothing_read_is_undeclared(runs, stage):
    for run, seen in stage_runs(runs, stage):
        deps = data_deps(stage, run.params)
        undeclared = sorted(path for path in data_reads(seen, stage) if not any(inside(path, dep) for dep in deps))
        assert undeclared == [], f"{stage} reads what dvc.yaml does not declare"


@pytest.mark.parametrize("stage", STAGES)
def test_every_declared_data_dep_is_read(runs, stage):
    templates = [dep for dep in entries(stage, "deps") if not is_code(dep)]
    for template in templates:
        read_in = [
            run
            for run, seen in stage_runs(runs, stage)
            if any(inside(path, resolved(template, run.params)) for path in data_reads(seen, stage))
        ]
        assert read_in, f"{stage} declares {template} but never reads it"


@pytest.mark.parametrize("stage", STAGES)
def test_nothing_is_written_outside_the_outs(runs, stage):
    outs = entries(stage, "outs")
    for _, seen in stage_runs(runs, stage):
        made = seen.of("write", "created", "removed") - temporaries(seen)
        stray = sorted(
            path
            for path in made
            if not not_data(path)
            and not any(inside(path, out) for out in outs)
            and not (path in seen.paths["created"] and any(inside(out, path) for out in outs))  # a folder for an out
        )
        assert stray == [], f"{stage} writes or removes what dvc.yaml does not declare as its outs"


@pytest.mark.parametrize("stage", [stage for stage in STAGES if stage != PARAMS_CHECK])
def test_params_read_are_the_declared_ones(runs, stage):
    params = runs[0].params
    declared = declared_params(stage, params)
    exempt = {key for (exempt_stage, key) in EXEMPT_PARAMS if exempt_stage == stage}
    read = set()
    for _, seen in stage_runs(runs, stage):
        assert sorted(seen.params - declared - exempt) == [], f"{stage} reads params it does not declare"
        read |= seen.params
    unread = declared - read
    if stage == "export":  # it quotes the params of the model it exports (`best`: any); it declares every model's
        exported = {run.params["export"]["model"] for run, _ in stage_runs(runs, stage)}
        others = [name for name in MODEL_STAGES if name not in exported or "best" in exported]
        unread -= set().union(*(leaves(params, MODEL_STAGES[name]) for name in others))
        unread -= {"lr"} if "fine_tuned" in others else set()  # fine_tune's learning rate is the top-level lr
    assert sorted(unread) == [], f"{stage} declares params it never reads"


def test_the_params_check_reads_only_the_file_it_declares_whole(runs):
    assert STAGES[PARAMS_CHECK]["params"] == [{"params.yaml": None}]
    seen = runs[0].stages[PARAMS_CHECK]
    assert seen.params == {"base.weights"}  # it checks every key through load_params; uses only this (offline?)
    assert "params.yaml" in seen.of("read") and not data_reads(seen, PARAMS_CHECK)


def test_exemptions_are_still_needed(runs):
    params = runs[0].params
    for (stage, key), reason in EXEMPT_PARAMS.items():
        assert reason
        read = any(key in seen.params for _, seen in stage_runs(runs, stage))
        if key in UNOBSERVED:
            assert not read, f"{stage} reads {key} in the observed runs: drop it from UNOBSERVED"
        else:
            assert read, f"{stage} no longer reads {key}"
        assert key not in declared_params(stage, params), f"{stage} declares {key}: drop the exemption"
        elsewhere = any(key in declared_params(other, params) for other in STAGES if other not in (stage, PARAMS_CHECK))
        assert elsewhere != (key in NEVER_DECLARED), key


def test_what_the_observation_sees(runs):
    """Pins on the logs themselves, so that a hook that sees nothing cannot pass the tests above."""
    first = runs[0].stages
    assert "data/raw/cat.0.jpg" in first["split"].of("read") and "data/raw" in first["split"].of("list")
    assert "data/split/train/dog/dog.11.jpg" in first["prepare"].of("read")  # by a forked worker
    assert "models/best.keras" in first["export"].of("read") and "models/export" in first["export"].of("write")
    assert {"augmentation.zoom", "train_scratch_augmented.dropout", "seed"} <= first["train_scratch_augmented"].params
    assert "stages/train_scratch.py" in first["train_scratch_augmented"].of("import")
    based = runs[1].stages
    assert BASE_FILE in based["load_base"].of("read") and "base.output_layer" in based["load_base"].params
    assert "base.name" in based["fine_tune"].params
    assert "train_scratch.learning_rate" in runs[2].stages["export"].params
    assert "augmentation.zoom" not in first["extract_features"].params  # one view: the plain images only
    assert {"augmentation.zoom", "seed", "extract_features.views"} <= runs[3].stages["extract_features"].params

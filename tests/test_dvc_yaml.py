"""dvc.yaml keeps its promise: every stage declares exactly the code, params and data it reads/writes.

The checks are static (the `ast` of each stage script), so they run in a second and
need no data. What a static read cannot see is spelled out in small tables below,
each with its reason, and each table is itself checked against the source so that
it cannot silently go stale:

- HELPER_PARAMS: the params keys a helper reads from the section it is given;
- PATH_HELPERS: the layout path a helper reads or writes;
- EXEMPT_READS: a key a stage reads on purpose without declaring it;
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

from classifier.core import layout

REPO = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
STAGES: dict[str, dict] = DVC["stages"]
# The one stage that declares the whole of params.yaml (`params.yaml:`), so that any change to it, an
# unknown key included, runs it: it checks the file and writes nothing. Every other stage declares keys.
PARAMS_CHECK = "check_params"
KEYED_STAGES = [stage for stage in STAGES if stage != PARAMS_CHECK]
TEMPLATE = re.compile(r"\$\{\s*([\w.]+)\s*\}")

# Helpers in stages/common that take a params section (their first argument) and
# read these keys of it. `is_file` is BaseParams' property over `name`.
HELPER_PARAMS = {
    "preprocessing_mode": ("preprocessing", "name"),
    "fine_tune_layer": ("fine_tune_from", "name"),
    "build_base": ("weights", "name", "output_layer"),
    "model_scope": ("deterministic", "mixed_precision", "distribute", "jit_compile"),
}

# Helpers in stages/common that read or write a layout path on a stage's behalf:
# name -> (the layout name it uses, how to get the path from the call's arguments).
PATH_HELPERS = {
    "load_prepared": ("PREPARED_DIR", lambda args: layout.PREPARED_DIR),
    "prepared_paths": ("PREPARED_DIR", lambda args: layout.PREPARED_DIR),
    "prepared_splits": ("PREPARED_DIR", lambda args: layout.PREPARED_DIR),
    "fit": ("stage_metrics_dir", lambda args: layout.stage_metrics_dir(args[1])),
    "read_classes": ("CLASSES_FILE", lambda args: layout.CLASSES_FILE),
    "write_classes": ("CLASSES_FILE", lambda args: layout.CLASSES_FILE),
}

# Data deps that no stage makes and no script names: what people put in (besides data.raw_dir).
USER_INPUTS = {
    ("load_base", str(layout.BASES_DIR)): (
        "the .keras bases and weights files that base.name and base.weights may name; params.py refuses "
        "them anywhere else, so that a new version of one reruns load_base"
    ),
}

# (stage, key) read but deliberately not declared.
EXEMPT_READS = {
    ("load_base", "base.fine_tune_from"): (
        "load_base checks the layer name only so that a typo fails in seconds rather than after "
        "hours of training; models/base.keras does not depend on it (fine_tune declares it)"
    ),
    **{
        (stage, "training.resume"): (
            "checkpoints change how a stage runs, not what it produces: a resumed run ends with the "
            "same weights as an uninterrupted one (tests/test_training.py), so switching it reruns nothing"
        )
        for stage in ("train_classifier", "train_frozen", "fine_tune", "train_scratch", "train_scratch_augmented")
    },
}
# Exempt keys that no stage declares: they cannot change any output.
NEVER_DECLARED = {"training.resume"}

# (stage, key) read but missing from dvc.yaml today: a bug, shown as an XFAIL by
# test_known_bug. Strict: once dvc.yaml is fixed it XPASSes and fails, as a reminder to
# delete the entry.


# --- dvc.yaml and params.yaml ------------------------------------------------------------


def lookup(key: str):
    value = PARAMS
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(key)
        value = value[part]
    return value


def resolve(path: str) -> str:
    """A dvc.yaml path with its `${key}` templates filled in from params.yaml."""
    return TEMPLATE.sub(lambda m: str(lookup(m.group(1))), path)


def leaves(key: str) -> set[str]:
    """Every leaf key under `key` (a scalar or a list is a leaf)."""
    value = lookup(key) if key else PARAMS
    if not isinstance(value, dict):
        return {key}
    return set().union(*(leaves(f"{key}.{k}" if key else k) for k in value))


def declared_params(stage: str) -> list[str]:
    keys = STAGES[stage].get("params", [])
    assert all(isinstance(key, str) for key in keys), f"{stage}: params from other files are not expected: {keys}"
    return keys


def cmd_argv(stage: str) -> list[str]:
    argv = shlex.split(STAGES[stage]["cmd"])
    assert argv[:2] == ["python", "-m"] and argv[2].startswith("stages."), f"{stage}: cmd {argv}"
    return argv


def script(stage: str) -> str:
    return module_file(cmd_argv(stage)[2])


def module_file(module: str) -> str:
    return module.replace(".", "/") + ".py"


def code_deps(stage: str) -> list[str]:
    return [dep for dep in STAGES[stage]["deps"] if dep.endswith(".py")]


def data_deps(stage: str) -> list[str]:
    return [dep for dep in STAGES[stage]["deps"] if not dep.endswith(".py")]


def outs(stage: str) -> list[str]:
    return [out if isinstance(out, str) else next(iter(out)) for out in STAGES[stage].get("outs", [])]


def inside(path, folder) -> bool:
    """`path` is `folder` or lies in it."""
    path, folder = PurePosixPath(path), PurePosixPath(folder)
    return path == folder or folder in path.parents


def parse(relative: str) -> ast.Module:
    return ast.parse((REPO / relative).read_text(), filename=relative)


# --- imports -------------------------------------------------------------------------


def stages_imports(relative: str) -> set[str]:
    """Modules of the `stages` package that a file imports (absolute or relative imports)."""
    package = PurePosixPath(relative).parent.as_posix().replace("/", ".")
    found = set()
    for node in ast.walk(parse(relative)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            found.add(module)
            # `from stages.common import training` imports the submodule.
            found |= {f"{module}.{alias.name}" for alias in node.names if (REPO / module_file(f"{module}.{alias.name}")).is_file()}
    return {
        module for module in found
        if module.startswith("stages.") and (REPO / module_file(module)).is_file()  # packages: see test_packages_are_empty
    }


def code_closure(relative: str) -> set[str]:
    seen, todo = {relative}, [relative]
    while todo:
        for module in stages_imports(todo.pop()):
            path = module_file(module)
            if path not in seen:
                seen.add(path)
                todo.append(path)
    return seen


# --- what a script reads: params keys and layout paths -----------------------------------


def helper_defs() -> dict[str, ast.FunctionDef]:
    defs = {}
    for path in sorted((REPO / "stages/common").glob("*.py")):
        for node in parse(path.relative_to(REPO).as_posix()).body:
            if isinstance(node, ast.FunctionDef):
                defs[node.name] = node
    return defs


class ScriptReads(ast.NodeVisitor):
    """Params keys and layout paths a stage script uses, for the flags in the stage's cmd.

    `params.a.b`, `getattr(params, NAME)` with a constant NAME, and aliases such as
    `settings = params.fine_tune` are followed; `if flag` / `x if flag else y` on a
    command-line flag only visits the branch the stage's cmd selects. Any other use of
    a params object (passed whole to a function) counts as reading all keys under it.
    """

    def __init__(self, stage: str):
        self.stage = stage
        self.path = script(stage)
        self.flags = {arg[2:].replace("-", "_"): True for arg in cmd_argv(stage)[3:] if arg.startswith("--")}
        self.tree = parse(self.path)
        self.local_functions = {node.name: node for node in self.tree.body if isinstance(node, ast.FunctionDef)}
        self.layout_names = set()
        for node in self.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "classifier.core.layout":
                self.layout_names |= {alias.asname or alias.name for alias in node.names}
        self.flag_names = set()  # names bound to a parsed command-line flag
        self.aliases: dict[str, tuple[str, ...]] = {}
        self.constants: dict[str, object] = {}
        self.params: set[str] = set()  # dotted keys ("" = the whole params)
        self.paths: set[str] = set()
        self.visit(self.tree)

    # Constants and flags.

    def flag(self, node) -> bool | None:
        if isinstance(node, ast.Name) and node.id in self.flag_names:
            return self.flags.get(node.id, False)
        return None

    def constant(self, node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        if isinstance(node, ast.Tuple):
            values = [self.constant(element) for element in node.elts]
            return None if None in values else tuple(values)
        if isinstance(node, ast.IfExp) and self.flag(node.test) is not None:
            return self.constant(node.body if self.flag(node.test) else node.orelse)
        return None

    # Params.

    def params_path(self, node) -> tuple[str, ...] | None:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            return () if node.id == "params" else self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.params_path(node.value)
            return None if base is None else (*base, node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) == 2:
            base = self.params_path(node.args[0])
            if base is None:
                return None
            name = self.constant(node.args[1])
            return (*base, name) if isinstance(name, str) else base  # unknown name: all of it
        return None

    # Layout paths.

    def layout_path(self, node) -> PurePosixPath | None:
        if isinstance(node, ast.Name) and node.id in self.layout_names:
            value = getattr(layout, node.id)
            return PurePosixPath(value.as_posix()) if isinstance(value, Path) else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            base, name = self.layout_path(node.left), self.constant(node.right)
            if base is not None:
                return base / name if isinstance(name, str) else base
        if isinstance(node, ast.Attribute):  # BASE_MODEL.parent.mkdir(): the path it names
            return self.layout_path(node.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = [self.constant(arg) for arg in node.args]
            function = node.func.id
            if function in self.layout_names and callable(getattr(layout, function)) and None not in args:
                return PurePosixPath(getattr(layout, function)(*args).as_posix())
            if function in PATH_HELPERS and function not in self.local_functions:
                try:
                    return PurePosixPath(PATH_HELPERS[function][1](args).as_posix())
                except (IndexError, TypeError, AttributeError):
                    return None
        return None

    # Visiting.

    def visit(self, node):
        if isinstance(node, ast.expr):
            key = self.params_path(node)
            if key is not None:
                self.params.add(".".join(key))
                return
            path = self.layout_path(node)
            if path is not None:
                self.paths.add(path.as_posix())
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.layout_names:
                    return
        super().visit(node)

    def visit_Assign(self, node):
        single_name = len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        if not (single_name and self.params_path(node.value) is not None):  # an alias reads nothing yet
            self.visit(node.value)
        for target in node.targets:
            self.bind(target, node.value)

    def bind(self, target, value):
        if isinstance(target, ast.Name):
            # `augmented = parser.parse_args().augmented`: a flag.
            if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Call) and ast.unparse(value.value.func).endswith("parse_args"):
                self.flag_names.add(target.id)
            elif self.params_path(value) is not None:
                self.aliases[target.id] = self.params_path(value)
            elif self.constant(value) is not None:
                self.constants[target.id] = self.constant(value)
        elif isinstance(target, ast.Tuple):
            values = self.constant(value)
            if isinstance(values, tuple) and len(values) == len(target.elts):
                for element, element_value in zip(target.elts, values):
                    if isinstance(element, ast.Name):
                        self.constants[element.id] = element_value

    def visit_For(self, node):
        # `for name in MODEL_STAGES:`: a loop over a layout collection visits its body once per value.
        over_layout = isinstance(node.iter, ast.Name) and node.iter.id in self.layout_names
        if not (over_layout and isinstance(node.target, ast.Name)):
            return self.generic_visit(node)
        for value in getattr(layout, node.iter.id):
            self.constants[node.target.id] = value
            for statement in node.body:
                self.visit(statement)
        self.constants.pop(node.target.id, None)
        for statement in node.orelse:
            self.visit(statement)

    def visit_IfExp(self, node):
        chosen = self.flag(node.test)
        if chosen is None:
            return self.generic_visit(node)
        self.visit(node.body if chosen else node.orelse)

    def visit_If(self, node):
        chosen = self.flag(node.test)
        if chosen is None:
            return self.generic_visit(node)
        for statement in node.body if chosen else node.orelse:
            self.visit(statement)

    def visit_Call(self, node):
        function = node.func.id if isinstance(node.func, ast.Name) else None
        if function in HELPER_PARAMS and node.args and self.params_path(node.args[0]) is not None:
            section = self.params_path(node.args[0])
            self.params |= {".".join((*section, key)) for key in HELPER_PARAMS[function]}
            for arg in node.args[1:] + [keyword.value for keyword in node.keywords]:
                self.visit(arg)
            return
        if function in self.local_functions:  # its body is visited anyway, with the same names
            names = [arg.arg for arg in self.local_functions[function].args.args]
            for position, arg in enumerate(node.args):
                passes_params = isinstance(arg, ast.Name) and arg.id == "params"
                if not (passes_params and position < len(names) and names[position] == "params"):
                    self.visit(arg)
            for keyword in node.keywords:
                self.visit(keyword.value)
            return
        self.generic_visit(node)


READS = {stage: ScriptReads(stage) for stage in STAGES}


def read_params(stage: str) -> set[str]:
    """Leaf keys the stage's script reads."""
    reads = READS[stage].params
    assert "" not in reads, f"{stage}: {script(stage)} passes the whole params object somewhere"
    return set().union(*(leaves(key) for key in reads))


def declared_leaves(stage: str) -> set[str]:
    return set().union(*(leaves(key) for key in declared_params(stage)))


# --- tests: the structure ------------------------------------------------------------------


def test_stages_run_their_own_script():
    for stage in STAGES:
        assert (REPO / script(stage)).is_file(), f"{stage}: no {script(stage)}"
        assert Path(script(stage)).stem in (stage, stage.removesuffix("_augmented")), stage


def test_dvc_lists_every_stage():
    dvc = Path(sys.executable).with_name("dvc")  # the venv's own dvc (requirements.txt pins it)
    command = [str(dvc)] if dvc.is_file() else [sys.executable, "-m", "dvc"]
    result = subprocess.run([*command, "stage", "list"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert listed == list(STAGES)


# --- tests: code ---------------------------------------------------------------------------


def test_import_scanner_follows_every_import_form(tmp_path, monkeypatch):
    """The scanner sees `from x import y`, `import x`, `from pkg import module` and relative imports."""
    assert stages_imports("stages/prepare.py") == {
        "classifier.intake.classes", "classifier.core.cli", "classifier.intake.images", "classifier.core.layout",
        "classifier.core.params",
    }
    assert code_closure("classifier/intake/images.py") == {"classifier/intake/images.py", "classifier/core/layout.py"}
    package = tmp_path / "stages" / "common"
    package.mkdir(parents=True)
    for name in ("a", "b", "c", "d"):
        (package / f"{name}.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text(
        "import stages.common.a\nfrom stages.common import b\nfrom .common.c import x\nimport os\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert stages_imports("stages/s.py") == {"stages.common.a", "stages.common.b", "stages.common.c"}


def test_packages_hold_only_the_log_filter():
    """Importing stages.x runs the packages' __init__.py; dvc.yaml leaves them out. stages/common's
    is empty; stages' only starts the stderr filter (stages/_startup_log.py), which decides
    which of TensorFlow's start-up lines are shown and cannot change any output: a change to it
    reruns nothing, on purpose. Any other code added there must become a dep of every stage."""
    body = parse("stages/common/__init__.py").body
    assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body), "has code"
    assert stages_imports("stages/__init__.py") == {"stages._startup_log"}
    assert stages_imports("stages/_startup_log.py") == set()
    for stage in STAGES:
        assert "stages/_startup_log.py" not in code_closure(script(stage)), stage


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_are_the_script_and_what_it_imports(stage):
    deps = code_deps(stage)
    assert len(deps) == len(set(deps)), f"{stage}: duplicate deps {deps}"
    expected = code_closure(script(stage))
    assert not expected - set(deps), f"{stage}: missing code deps"
    assert not set(deps) - expected, f"{stage}: superfluous code deps"


# --- tests: params -------------------------------------------------------------------------


def test_the_params_check_declares_the_whole_file_and_runs_first():
    assert list(STAGES)[0] == PARAMS_CHECK  # DVC runs independent stages in the file's order
    assert STAGES[PARAMS_CHECK]["params"] == [{"params.yaml": None}]
    assert not STAGES[PARAMS_CHECK].get("outs")
    assert READS[PARAMS_CHECK].params == set()  # it calls load_params(), which checks every key
    assert "load_params()" in (REPO / script(PARAMS_CHECK)).read_text()


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


@pytest.mark.parametrize("stage", KEYED_STAGES)
def test_declared_params_are_exactly_what_the_script_reads(stage):
    for key in READS[stage].params:
        try:
            lookup(key)
        except KeyError:
            pytest.fail(f"{stage}: {script(stage)} reads params.{key}, which params.yaml does not have")
    read, declared = read_params(stage), declared_leaves(stage)
    exempt = {key for (exempt_stage, key) in EXEMPT_READS if exempt_stage == stage}
    assert sorted(read - declared - exempt) == [], f"{stage}: reads params it does not declare"
    assert sorted(declared - read) == [], f"{stage}: declares params it never reads"




def test_params_reads_of_known_stages():
    """Pins the scanner itself on two stages with aliases, helpers, flags and getattr."""
    run = leaves("training")
    assert read_params("train_scratch") == run | {
        "seed", "data.image_size",
        "train_scratch.epochs", "train_scratch.batch_size", "train_scratch.learning_rate", "train_scratch.dropout",
    }
    assert read_params("train_scratch_augmented") == leaves("augmentation") | leaves("train_scratch_augmented") | run | {
        "seed", "data.image_size",
    }
    assert read_params("load_base") == {"seed", "base.name", "base.weights", "base.output_layer", "base.fine_tune_from"}
    assert read_params("split") == {
        "data.raw_dir", "data.split.train", "data.split.validation", "data.split.test",
        "data.classes", "data.class_groups", "data.label_column",
    }


def test_exempt_reads_are_read_and_declared_elsewhere():
    for (stage, key), reason in EXEMPT_READS.items():
        assert reason
        assert key in read_params(stage), f"{stage} no longer reads {key}: drop the exemption"
        assert key not in declared_leaves(stage), f"{stage} declares {key}: drop the exemption"
        declared_elsewhere = any(key in declared_leaves(other) for other in KEYED_STAGES if other != stage)
        assert declared_elsewhere != (key in NEVER_DECLARED), key


def test_helper_tables_match_the_helpers():
    """HELPER_PARAMS and PATH_HELPERS say what the helpers' source does."""
    defs = helper_defs()
    properties = {}  # properties of the params classes (BaseParams.is_file) -> the fields they read
    for node in ast.walk(parse("classifier/core/params.py")):
        if isinstance(node, ast.FunctionDef) and any(ast.unparse(d) == "property" for d in node.decorator_list):
            properties[node.name] = {
                n.attr for n in ast.walk(node)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
            }
    for name, keys in HELPER_PARAMS.items():
        function = defs[name]
        section = function.args.args[0].arg
        attributes = set()
        for node in ast.walk(function):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == section:
                attributes |= properties.get(node.attr, {node.attr})
            if isinstance(node, ast.Call):
                passed = [arg for arg in node.args if isinstance(arg, ast.Name) and arg.id == section]
                assert not passed, f"{name} passes {section} on to {ast.unparse(node.func)}: extend HELPER_PARAMS"
        assert attributes == set(keys), f"HELPER_PARAMS[{name!r}]"
    for name, (layout_name, _) in PATH_HELPERS.items():
        used = {n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name)}
        # directly, or through another helper of the table that names the same path
        through = {other for other in used if PATH_HELPERS.get(other, (None,))[0] == layout_name}
        assert layout_name in used or through, f"PATH_HELPERS[{name!r}]"


# --- tests: data and outs ------------------------------------------------------------------


def test_outs_match_layout():
    assert str(layout.SPLIT_DIR) in outs("split")
    assert str(layout.PREPARED_DIR) in outs("prepare")
    assert str(layout.FEATURES_DIR) in outs("extract_features")
    assert str(layout.BASE_MODEL) in outs("load_base")
    assert set(layout.MODEL_STAGES.values()) <= set(STAGES)
    for model, stage in layout.MODEL_STAGES.items():
        assert str(layout.model_path(model)) in outs(stage), f"{stage} does not declare {model}"
        assert str(layout.stage_metrics_dir(stage)) in outs(stage), f"{stage} does not declare its dvclive folder"
    models = {out for stage in STAGES for out in outs(stage) if inside(out, layout.MODELS_DIR)}
    assert models == {str(layout.BASE_MODEL), str(layout.EXPORT_DIR)} | {str(layout.model_path(m)) for m in layout.MODEL_STAGES}


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
    paths = list(DVC["metrics"]) + plot_files()
    assert len(paths) > len(DVC["metrics"])
    every_out = [out for stage in STAGES for out in outs(stage)]
    for path in paths:
        assert any(inside(path, out) for out in every_out), f"{path} is no stage's out"
    for stage in layout.MODEL_STAGES.values():
        folder = layout.stage_metrics_dir(stage)
        assert (folder / "metrics.json").as_posix() in DVC["metrics"], f"{stage}'s metrics.json is not a metric"
        for curve in ("train/accuracy", "val/accuracy", "train/loss", "val/loss"):
            tsv = (folder / f"plots/metrics/{curve}.tsv").as_posix()
            assert any(inside(tsv, path) for path in paths), f"{stage}'s per-epoch {curve} is not plotted"
    for model in layout.MODEL_STAGES:  # a confusion matrix per model
        predictions = (layout.EVALUATION_DIR / "predictions" / f"{model}.csv").as_posix()
        assert any(inside(predictions, path) for path in paths), f"{model}'s confusion matrix is not plotted"


@pytest.mark.parametrize("stage", STAGES)
def test_data_deps_are_other_stages_outs_or_the_raw_data(stage):
    for dep in data_deps(stage):
        if (stage, dep) in USER_INPUTS:
            continue
        templates = TEMPLATE.findall(dep)
        if templates:  # ${data.raw_dir}: the stage must read and declare that param
            for key in templates:
                assert key in READS[stage].params and key in declared_params(stage), f"{stage}: {dep}"
            assert (REPO / resolve(dep)).resolve().is_relative_to(REPO), dep
            continue
        producers = [other for other in STAGES if other != stage and any(inside(dep, out) for out in outs(other))]
        assert producers, f"{stage}: no stage makes {dep}"


@pytest.mark.parametrize("stage", STAGES)
def test_data_deps_and_outs_are_what_the_script_names(stage):
    """Every layout path the script names is a dep or out (or a folder it creates for one),
    and every data dep and out is named by the script."""
    named = READS[stage].paths
    declared = [dep for dep in data_deps(stage) if not TEMPLATE.search(dep) and (stage, dep) not in USER_INPUTS]
    declared += outs(stage)
    for path in named:
        assert any(inside(path, d) for d in declared) or any(inside(out, path) for out in outs(stage)), (
            f"{stage}: {script(stage)} uses {path}, which it does not declare"
        )
    for path in declared:
        assert any(inside(n, path) for n in named), f"{stage}: declares {path}, which {script(stage)} never uses"


def test_path_reads_of_known_stages():
    assert READS["train_scratch_augmented"].paths == {
        "data/classes.json", "data/prepared", "models/scratch_augmented.keras", "metrics/train_scratch_augmented",
    }
    assert READS["prepare"].paths >= {"data/split/manifest.csv", "metrics/prepare.json", "data/prepared/manifest.csv"}

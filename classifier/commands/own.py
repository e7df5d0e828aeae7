"""`classifier own` (`make own`): train and evaluate on your own labelled photos as a DVC experiment in
the workspace.

    classifier own [--base imagenet|path/to/base.keras] [--recipe laptop] [--] DATA

DATA is a folder in any layout stage split accepts (a folder per class, train/validation/test
folders of class folders, Kaggle's naming, arrays with a labels CSV). The run is `dvc exp run`
with the recipe's params (recipes/<name>.yaml, over the book's) and DATA as data.raw_dir, so the
models land in models/ and `dvc exp show` lists it. A base file is copied into bases/ and tracked
with `dvc add` (a new version of it reruns load_base).

Every input is checked before anything changes, as the stages would check it: the params; DATA as
stage split reads it (layout, classes, images per split, names, identical images); the base file as
load_base loads it (a Keras zip, safe mode, known layers, a convolutional feature map, the layers
named by base.output_layer and base.fine_tune_from); and a base file named as one bases/ holds
already with other content is refused (experiments that used that one name it). Only then, holding
the workspace's lock (a second `make own` meanwhile is refused), does the base go into bases/ and
params.yaml take the values (its comments kept; `git checkout params.yaml` undoes them), and
`dvc exp run` runs with nothing to parse: a folder name reaches params.yaml as it is, whatever it
holds. Ctrl-C or SIGTERM stops the whole run (DVC and its stage too) and exits 130 or 143.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import filecmp
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from classifier.commands.experiment_runs import DVC_EXP_RUN, Stops, run_dvc
from classifier.commands.recipe import BOOK, leaves, load_recipe, write_overrides
from classifier.commands.results import print_results
from classifier.core.errors import ParamsError, StageError
from classifier.core.params import PARAMS_FILE
from classifier.core.paths import BASES_DIR, PROJECT_ROOT
from classifier.intake.escaping import terminal_text
from classifier.intake.raw.check import checked_split
from classifier.models.downloads import imagenet_weights_problem

ROOT = PROJECT_ROOT

IMAGENET = "imagenet"
LOCK = Path(".dvc/tmp/own.lock")  # held (flock) for the whole of a run: one `make own` per workspace
CHUNK = 1 << 20
NEXT = """
Next (after `. .venv/bin/activate`):
  classifier predict path/to/photos            # the best model on new photos
  dvc plots show && open dvc_plots/index.html  # training curves, confusion matrices, ROC
  cat models/export/README.md                  # the exported model (SavedModel, LiteRT) and how to load it
  make compare                                 # this experiment beside the others"""


def run(args: argparse.Namespace) -> int:
    stops = Stops()
    with stops.handling():
        try:
            return own(args.data, args.base, args.recipe, stops)
        except KeyboardInterrupt:  # SIGINT or SIGTERM while checking: nothing was changed
            return stops.interrupted("nothing was changed")


def own(data: str, base: str, recipe: str, stops: Stops) -> int:
    folder, source = data_folder(data), base_file(base)  # as given, from the folder the command runs in
    os.chdir(ROOT)  # params.yaml, bases/ and the paths params.yaml names are the repository's
    refuse_a_second_run()
    settings = run_settings(folder, source, recipe)
    params = checked_params(settings, base, recipe)
    check_photos(params)
    if source is not None:
        check_base(source, params)
    copy_base = base_to_copy(source, base)
    with workspace_lock(data, base, recipe):
        stops.changing = True  # from here on, a change is made whole before a signal is acted on
        store_base(source, copy_base)
        write_overrides(settings, ROOT / PARAMS_FILE, f"make own RECIPE={recipe}")
        if stops.received:
            return stops.interrupted("params.yaml and bases/ hold this run's values; nothing ran: run it again")
        return run_experiment(settings, params, recipe, stops)


def run_experiment(settings: dict[str, object], params, recipe: str, stops: Stops) -> int:
    print(
        f"own: dvc exp run with recipes/{recipe}.yaml over recipes/{BOOK}.yaml, "
        f"data.raw_dir={shown(settings['data.raw_dir'])}, base.name={shown(params.base.name)} "
        "(params.yaml keeps these values; `git checkout params.yaml` undoes them)",
        flush=True,
    )
    status = run_dvc(DVC_EXP_RUN, stops)
    if stops.received:
        return stops.interrupted(
            "dvc exp run is stopped and saved no experiment; run it again to go on (finished stages are not rerun)"
        )
    if status != 0:
        print("own: the run stopped (above: why); fix it and run again: finished stages are not rerun", file=sys.stderr)
        return 1
    print_results()
    print(NEXT, flush=True)
    return stops.interrupted("after the run, which is saved") if stops.received else 0


def shown(value: str) -> str:
    """A value as the user typed it, where it is printable; escaped where not (a newline, an escape code)."""
    return terminal_text(value)


# --- the inputs -------------------------------------------------------------------------------------------


def data_folder(data: str) -> Path:
    if not data:
        raise ParamsError("DATA is empty: give the folder of your labelled photos (make own DATA=path/to/photos)")
    folder = Path(data).expanduser()
    if not folder.is_dir():
        raise ParamsError(
            f"DATA={shown(data)}: not a folder; give the folder of your labelled photos (DATA=path/to/photos)"
        )
    return folder.resolve()


def base_file(base: str) -> Path | None:
    """None for imagenet (the recipe's base), else the .keras file BASE names."""
    if base == IMAGENET:
        return None
    source = Path(base).expanduser()
    if not source.is_file() or source.suffix != ".keras":
        raise ParamsError(f"BASE={shown(base)}: not a .keras file; give a saved Keras base, or BASE=imagenet")
    return source.resolve()


def run_settings(folder: Path, source: Path | None, recipe: str) -> dict[str, object]:
    """{dotted key: value} for params.yaml: the book's keys, the recipe's over them, DATA as data.raw_dir
    (relative to the repository) and a base file as base.name (its place in bases/), values as they are."""
    settings = leaves(load_recipe(BOOK)) | leaves(load_recipe(recipe))
    settings["data.raw_dir"] = os.path.relpath(folder, ROOT.resolve())
    if source is not None:
        settings |= {"base.name": (BASES_DIR / source.name).as_posix(), "base.weights": None}
    return settings


def checked_params(settings: dict[str, object], base: str, recipe: str):
    """The params the run will have, checked as every stage checks them (nothing written), and the base
    they name: its ImageNet weights at hand, or the base file the recipe names given."""
    _, params = write_overrides(settings, ROOT / PARAMS_FILE, f"make own RECIPE={recipe}", check_only=True)
    offline = imagenet_weights_problem(params.base)
    if offline:
        raise ParamsError(offline)
    if base == IMAGENET and params.base.is_file and not (ROOT / params.base.name).is_file():
        raise ParamsError(
            f"recipes/{recipe}.yaml names the base file {params.base.name}, which is not there: give it "
            f"with BASE=path/to/{Path(params.base.name).name} (it is copied into {BASES_DIR}/)"
        )
    return params


def check_photos(params) -> None:
    """Stage split's whole check of data.raw_dir (classifier.intake.raw.check), nothing written; its lines
    about ignored files are left to the stage, which prints them in the run."""
    with contextlib.redirect_stdout(io.StringIO()), checked_split(params.data):
        pass


def check_base(source: Path, params) -> None:
    """load_base's whole check of the base file (Keras: imported only for a base file)."""
    from classifier.models.bases import check_base_file

    check_base_file(str(source), params.base)


# --- bases/ -----------------------------------------------------------------------------------------------


def base_to_copy(source: Path | None, base: str) -> bool:
    """Whether the base file is new to bases/. One with the same name and the same content is used as it
    is; one with the same name and other content is refused: experiments that used the one there name it
    in base.name, and would name another model. Compared by streaming, never read whole."""
    if source is None:
        return False
    target = ROOT / BASES_DIR / source.name
    tracked = target.with_name(f"{target.name}.dvc")
    if target.exists():
        same = filecmp.cmp(source, target, shallow=False)
    elif tracked.is_file():
        same = tracked_md5(tracked) == file_md5(source)
    else:
        return True
    if not same:
        renamed = source.with_name(f"{source.stem}-2{source.suffix}")
        raise ParamsError(
            f"BASE={shown(base)}: {BASES_DIR}/{source.name} holds another model already (experiments that used "
            f"it name it in base.name); give this one a name of its own: cp {shown(str(source))} "
            f"{shown(str(renamed))}, then BASE={shown(str(renamed))}"
        )
    return False


def tracked_md5(dvc_file: Path) -> str | None:
    try:
        outs = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"]
        return outs[0]["md5"]
    except (OSError, ValueError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return None


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def store_base(source: Path | None, copy: bool) -> None:
    """The base file into bases/ (written beside, then renamed into place), tracked with `dvc add`."""
    if source is None:
        return
    target = ROOT / BASES_DIR / source.name
    if copy:
        partial = target.with_name(f".{target.name}.partial")
        try:
            shutil.copyfile(source, partial)
            partial.replace(target)
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise StageError(f"could not copy BASE into {BASES_DIR}/ ({err}); nothing else was changed") from None
    elif target.with_name(f"{target.name}.dvc").is_file():
        return
    added = subprocess.run(
        [sys.executable, "-m", "dvc", "add", "--quiet", str(target.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        errors="replace",
    )
    if added.returncode != 0:
        if copy:
            target.unlink(missing_ok=True)
        why = (added.stderr.strip().splitlines() or ["no message"])[-1]
        raise StageError(f"dvc add {BASES_DIR}/{source.name} failed ({why}); params.yaml was not changed")


# --- one run at a time ------------------------------------------------------------------------------------


def refuse_a_second_run() -> None:
    """At once, before any check: another `make own` that holds the lock is named."""
    path = ROOT / LOCK
    if not path.is_file():
        return
    with open(path) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StageError(running_line(lock)) from None


@contextlib.contextmanager
def workspace_lock(data: str, base: str, recipe: str):
    """The workspace's lock, held until the run ends (the process's end releases it, however it ends)."""
    path = ROOT / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StageError(running_line(lock)) from None
        lock.truncate(0)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        lock.write(json.dumps({"pid": os.getpid(), "started": started, "data": data, "base": base, "recipe": recipe}))
        lock.flush()
        yield


def running_line(lock) -> str:
    lock.seek(0)
    try:
        holder = json.loads(lock.read())
        who = (
            f"process {int(holder['pid'])}, since {shown(str(holder['started']))}: DATA={shown(str(holder['data']))} "
            f"BASE={shown(str(holder['base']))} RECIPE={shown(str(holder['recipe']))}"
        )
        stop = f"stop it: kill {int(holder['pid'])}"
    except (ValueError, KeyError, TypeError):
        who, stop = "its process is starting", "stop it"
    return (
        f"another `make own` is running in this workspace ({who}); two at once would change params.yaml under "
        f"each other: wait for it to end, or {stop}"
    )

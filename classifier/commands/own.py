"""`classifier own` (`make own`): train and evaluate on your own labelled photos as a DVC experiment in
the workspace.

    classifier own DATA [--base imagenet|path/to/base.keras] [--recipe laptop]

DATA is a folder in any layout stage split accepts (a folder per class, train/validation/test
folders of class folders, Kaggle's naming, arrays with a labels CSV). The run is
`dvc exp run` with the recipe's params (recipes/<name>.yaml, over the book's) and DATA as
data.raw_dir, so the models land in models/ and `dvc exp show` lists it. A base file is
copied into bases/ and tracked with `dvc add` (a new version of it reruns load_base).
Every input is checked before anything is copied or run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from classifier.commands.recipe import set_arguments, write_overrides
from classifier.commands.results import print_results
from classifier.core.errors import ParamsError
from classifier.core.params import PARAMS_FILE
from classifier.core.paths import BASES_DIR, PROJECT_ROOT
from classifier.models.downloads import imagenet_weights_problem

ROOT = PROJECT_ROOT

IMAGENET = "imagenet"
FIRST_RUN_NOISE = "No file hash info found for"
NEXT = """
Next (after `. .venv/bin/activate`):
  classifier predict path/to/photos            # the best model on new photos
  dvc plots show && open dvc_plots/index.html  # training curves, confusion matrices, ROC
  cat models/export/README.md                  # the exported model (SavedModel, LiteRT) and how to load it
  make compare                                 # this experiment beside the others"""


def base_arguments(base: str) -> list[str]:
    """-S arguments for BASE: none for imagenet (the recipe's base), else the file's place in bases/."""
    if base == IMAGENET:
        return []
    source = Path(base).expanduser().resolve()
    if not source.is_file() or source.suffix != ".keras":
        raise ParamsError(f"BASE={base}: not a .keras file; give a saved Keras base, or BASE=imagenet")
    return ["-S", f"base.name={(BASES_DIR / source.name).as_posix()}", "-S", "base.weights=null"]


def bring_base(base: str) -> None:
    """Copy a BASE file into bases/ and track it with `dvc add` (a new version of it reruns load_base)."""
    if base == IMAGENET:
        return
    source = Path(base).expanduser().resolve()
    target = ROOT / BASES_DIR / source.name
    if not target.is_file() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
        subprocess.run([sys.executable, "-m", "dvc", "add", "--quiet", str(target)], cwd=ROOT, check=True)


def data_argument(data: str) -> list[str]:
    folder = Path(data).expanduser()
    if not folder.is_dir():
        raise ParamsError(f"DATA={data}: not a folder; give the folder of your labelled photos (DATA=path/to/photos)")
    return ["-S", f"data.raw_dir={os.path.relpath(folder.resolve(), ROOT)}"]


def run_without_first_run_noise(command: list[str]) -> int:
    """Run a DVC command, leaving out its warning for each output not yet in dvc.lock ("No file hash info
    found"), as every output is before a first run; everything else passes, as it comes."""
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True, bufsize=1) as process:
        for line in process.stderr:
            if FIRST_RUN_NOISE not in line:
                sys.stderr.write(line)
    return process.returncode


def run(args: argparse.Namespace) -> int:
    overrides = checked_overrides(args.data, args.base, args.recipe)
    bring_base(args.base)  # only once every input is known to be good
    settings = [argument for key, value in overrides.items() for argument in ("-S", f"{key}={value}")]
    print(
        f"own: dvc exp run with recipes/{args.recipe}.yaml over recipes/book.yaml, "
        f"data.raw_dir={overrides['data.raw_dir']}, base.name={overrides['base.name']} "
        "(params.yaml keeps these values; `git checkout params.yaml` undoes them)",
        flush=True,
    )
    if run_without_first_run_noise([sys.executable, "-m", "dvc", "exp", "run", *settings]) != 0:
        print("own: the run stopped (above: why); fix it and run again: finished stages are not rerun", file=sys.stderr)
        return 1
    print_results()
    print(NEXT)
    return 0


def checked_overrides(data: str, base: str, recipe: str) -> dict[str, str]:
    """{key: value as DVC's -S takes it}: the recipe over the book's, DATA and BASE; every input checked
    (the merged params as every stage checks them, the base offline) before anything is copied or run."""
    settings = set_arguments(recipe) + data_argument(data) + base_arguments(base)
    overrides = dict(setting.split("=", 1) for setting in settings[1::2])  # BASE= replaces the recipe's base
    _, params = write_overrides(
        {key: yaml.safe_load(value) for key, value in overrides.items()},
        ROOT / PARAMS_FILE,
        f"make own RECIPE={recipe}",
        check_only=True,  # before DVC writes them into params.yaml
    )
    offline = imagenet_weights_problem(params.base)
    if offline:
        raise ParamsError(offline)
    if base == IMAGENET and params.base.is_file and not (ROOT / params.base.name).is_file():
        raise ParamsError(
            f"recipes/{recipe}.yaml names the base file {params.base.name}, which is not there: give it "
            f"with BASE=path/to/{Path(params.base.name).name} (it is copied into {BASES_DIR}/)"
        )
    return overrides

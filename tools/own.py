"""Train and evaluate on your own labelled photos as a DVC experiment in the workspace (`make own`).

    python tools/own.py DATA [--base imagenet|path/to/base.keras] [--recipe laptop]

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from classifier.core.layout import BASES_DIR  # noqa: E402
from classifier.core.params import PARAMS_FILE, ParamsError  # noqa: E402
from classifier.models.downloads import imagenet_weights_problem  # noqa: E402
from tools.recipe import ROOT, set_arguments, write_overrides  # noqa: E402

IMAGENET = "imagenet"
FIRST_RUN_NOISE = "No file hash info found for"
NEXT = """
Next (after `. .venv/bin/activate`):
  python -m stages.predict path/to/photos      # the best model on new photos
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="the folder of your labelled photos")
    parser.add_argument("--base", default=IMAGENET, help="a .keras base file, or imagenet (default)")
    parser.add_argument("--recipe", default="laptop", help="a recipe in recipes/ (default: laptop)")
    args = parser.parse_args()
    try:
        settings = set_arguments(args.recipe) + data_argument(args.data) + base_arguments(args.base)
        overrides = dict(setting.split("=", 1) for setting in settings[1::2])  # BASE= replaces the recipe's base
        _, params = write_overrides(
            {key: yaml.safe_load(value) for key, value in overrides.items()},
            ROOT / PARAMS_FILE,
            f"make own RECIPE={args.recipe}",
            check_only=True,  # before DVC writes them into params.yaml
        )
        offline = imagenet_weights_problem(params.base)
        if offline:
            raise ParamsError(offline)
        if args.base == IMAGENET and params.base.is_file and not (ROOT / params.base.name).is_file():
            raise ParamsError(
                f"recipes/{args.recipe}.yaml names the base file {params.base.name}, which is not there: give it "
                f"with BASE=path/to/{Path(params.base.name).name} (it is copied into {BASES_DIR}/)"
            )
    except ParamsError as err:
        sys.exit(f"own: error: {err}")
    bring_base(args.base)  # only once every input is known to be good
    settings = [argument for key, value in overrides.items() for argument in ("-S", f"{key}={value}")]
    print(
        f"own: dvc exp run with recipes/{args.recipe}.yaml over recipes/book.yaml, "
        f"data.raw_dir={overrides['data.raw_dir']}, base.name={overrides['base.name']} "
        "(params.yaml keeps these values; `git checkout params.yaml` undoes them)",
        flush=True,
    )
    command = [sys.executable, "-m", "dvc", "exp", "run", *settings]
    if run_without_first_run_noise(command) != 0:
        sys.exit("own: the run stopped (above: why); fix it and run again: finished stages are not rerun")
    subprocess.run([sys.executable, str(ROOT / "tools/results_table.py")], cwd=ROOT, check=True)
    print(NEXT)


if __name__ == "__main__":
    main()

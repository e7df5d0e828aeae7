"""The command line, `classifier <command>` (`make install` puts it in .venv/bin; `python -m classifier`
runs the same): every command a user runs besides `dvc` and `make`. Each command is a module of
classifier.commands with a `run(args)`; its docstring is its --help. This module declares the
arguments, starts the process as every stage starts (classifier.core.startup), and only then imports
the command, so that `--help` and a mistyped argument answer at once. Nothing in the library imports it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import shutil
from pathlib import Path

from classifier.core import startup
from classifier.core.paths import BEST, MODEL_STAGES
from classifier.core.schema import MAX_MAX_PIXELS, MIN_MAX_PIXELS, PIL_BOMB_PIXELS

# The commands, in the order --help lists them: (one line of help, whether it runs Keras).
COMMANDS = {
    "predict": ("classify your photos with a trained model", True),
    "own": ("train and evaluate on your labelled photos, as a DVC experiment", False),
    "demo": ("the whole pipeline offline on generated images, as a DVC experiment", False),
    "results": ("every model's validation and test results, beside the book's", False),
    "compare": ("experiments side by side: the params that differ and the headline", False),
    "paired": ("is a difference real? two runs on the same test images (McNemar's test)", False),
    "recipe": ("apply a recipe of recipes/ to params.yaml, or print it as -S arguments", False),
    "plots-page": ("write the offline page that `dvc plots show` fills (make install runs it)", False),
    "local-cluster": ("run a command as N processes of one cluster on this machine", False),
}

DESCRIPTION = (
    "Transfer learning on your labelled images, as a DVC pipeline (dvc repro runs it): the commands around it. "
    "`classifier COMMAND --help` tells more of each."
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="classifier", description=DESCRIPTION)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add = {name: command(commands, name, help_line) for name, (help_line, _) in COMMANDS.items()}

    predict = add["predict"]
    predict.add_argument("targets", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER")
    predict.add_argument(
        "--model",
        default=BEST,
        type=model_choice,
        help=f"{BEST} (the best on validation), one of {', '.join(MODEL_STAGES)} (in models/), or the path of a "
        f".keras model (default: {BEST})",
    )
    predict.add_argument("--csv", action="store_true", help="print CSV: path, label, one probability column per class")
    predict.add_argument(
        "--top", type=at_least(1), default=1, metavar="K", help="the K most likely classes (default 1)"
    )
    predict.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image's probabilities with its mirror image's (default: off)",
    )
    predict.add_argument(
        "--max-pixels",
        type=max_pixels,
        default=PIL_BOMB_PIXELS,
        metavar="N",
        help=f"refuse an image of more than N pixels, width x height (default {PIL_BOMB_PIXELS})",
    )

    own = add["own"]
    own.add_argument("data", help="the folder of your labelled photos (after --, it may start with -)")
    own.add_argument("--base", default="imagenet", help="a .keras base file, or imagenet (default)")
    own.add_argument("--recipe", default="laptop", help="a recipe in recipes/ (default: laptop)")

    demo = add["demo"]
    demo.add_argument("--per-class", type=at_least(1), default=250, help="images per class (default 250)")
    demo.add_argument("--size", type=at_least(16), default=96, help="pixels per side (default 96)")
    demo.add_argument("--seed", type=at_least(0), default=0)
    demo.add_argument("--images-only", action="store_true", help="write the images, run nothing")

    add["results"].add_argument("--exp", help="the name of a DVC experiment; default: the workspace")

    compare = add["compare"]
    compare.add_argument("names", nargs="*", help="experiments to show, by name (default: all dvc exp show lists)")
    compare.add_argument("--width", type=at_least(1), default=min(shutil.get_terminal_size().columns, 120))

    paired = add["paired"]
    paired.add_argument(
        "a", nargs="?", default="HEAD", help="a git revision or experiment, or workspace (default HEAD)"
    )
    paired.add_argument("b", nargs="?", default="workspace", help="the same (default workspace)")
    paired.add_argument("--model", default=BEST, choices=[BEST, *MODEL_STAGES], help="default: each run's best")

    recipe = add["recipe"]
    recipe.add_argument("name", nargs="?", help="a recipe in recipes/ (without .yaml)")
    recipe.add_argument("--set", action="store_true", help="print -S arguments for dvc exp run instead")
    recipe.add_argument("--list", action="store_true", help="list the recipes")

    cluster = add["local-cluster"]
    cluster.add_argument("processes", type=at_least(1), help="how many processes")
    cluster.add_argument(
        "argv",
        nargs=argparse.REMAINDER,
        action=CommandWords,
        metavar="-- COMMAND",
        help="the command each process runs, after --",
    )
    return top


def command(commands, name: str, help_line: str) -> argparse.ArgumentParser:
    """A subcommand whose --help is its module's docstring, read without importing the module."""
    origin = importlib.util.find_spec(module_name(name)).origin
    description = ast.get_docstring(ast.parse(Path(origin).read_text(encoding="utf-8")))
    return commands.add_parser(
        name, help=help_line, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


class CommandWords(argparse.Action):
    """local-cluster's command, after `--`: none is an error of local-cluster's, with its usage."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if not [word for word in values if word != "--"]:
            parser.error("give a number of processes, then -- and the command")
        setattr(namespace, self.dest, values)


def module_name(command_name: str) -> str:
    return f"classifier.commands.{command_name.replace('-', '_')}"


def at_least(least: int):
    def number(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"{value}: give {least} or more")
        return value

    number.__name__ = "integer"  # as argparse names the type in its message
    return number


def max_pixels(text: str) -> int:
    value = int(text)
    if not MIN_MAX_PIXELS <= value <= MAX_MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"{value}: give {MIN_MAX_PIXELS} to {MAX_MAX_PIXELS} (width x height)")
    return value


def model_choice(text: str) -> str:
    if not text.endswith(".keras") and text not in (BEST, *MODEL_STAGES):
        raise argparse.ArgumentTypeError(f"{text!r}: use {BEST}, one of {', '.join(MODEL_STAGES)} or a .keras file")
    return text


def uses_keras(args: argparse.Namespace) -> bool:
    """Whether the command runs Keras: as COMMANDS says, and `own` with a base file, which it loads to check."""
    return COMMANDS[args.command][1] or (args.command == "own" and args.base != "imagenet")


def main(argv: list[str] | None = None) -> int:
    """Parse, start as every stage starts, then import and run the command; its exit status."""
    top = parser()
    args = top.parse_args(argv)
    interrupted = f"{args.command}: interrupted"
    startup.starting(args.command, interrupted, uses_keras=uses_keras(args))
    module = importlib.import_module(module_name(args.command))
    return startup.run(lambda: module.run(args), args.command, interrupted)

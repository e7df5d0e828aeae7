"""Running a command of `classifier` in this process, as the installed command runs it."""

from __future__ import annotations

import os
import signal
from unittest import mock

from classifier import cli
from classifier.core import startup


def run_command(argv: list[str]) -> int:
    """classifier.cli.main(argv): the exit status it returns; a refusal raises SystemExit, as in the command
    (argparse's status 2, or `<command>: error: ...`). TensorFlow's start-up filter is left out (a process
    of its own would take over this process's stderr, out of capsys' sight) and the signal handlers that
    start-up sets are put back."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with mock.patch.dict(os.environ, {startup.FILTERED: "1"}):
            return cli.main(argv)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def in_repository(monkeypatch, path) -> None:
    """`classifier own` and `classifier recipe` work on the repository `path` (a scratch copy), from there,
    instead of this one."""
    from classifier.commands import own, recipe

    monkeypatch.setattr(own, "ROOT", path)
    monkeypatch.setattr(recipe, "RECIPES_DIR", path / "recipes")
    monkeypatch.chdir(path)


def command_error(argv: list[str]) -> str:
    """The one line a command of `classifier` stops with (`<command>: error: ...`), run as run_command runs it."""
    import pytest

    with pytest.raises(SystemExit) as info:
        run_command(argv)
    message = str(info.value.code)
    assert "\n" not in message, message
    return message


# What a make that runs the tests (`make test`) passes to the makes they start: its depth (which makes them
# print `make[1]: ***`) and its flags and command-line variables. A test's make runs as a user's would.
OUTER_MAKE = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")


def users_environment(**changes: str) -> dict[str, str]:
    """This process's environment without an outer make's variables, with `changes`: for a test's `make`."""
    return {**{name: value for name, value in os.environ.items() if name not in OUTER_MAKE}, **changes}

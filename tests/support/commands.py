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

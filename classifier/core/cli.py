"""What every stage script shares at its entry point: one clean line for a user's mistake or an interruption."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

INTERRUPTED = 130  # the shell's exit status for a process ended by Ctrl-C (128 + SIGINT)


class StageError(ValueError):
    """A problem the user can fix (params, data, missing files); shown without a traceback."""


def interrupt(signum, frame) -> None:
    """SIGTERM (`kill`, a queue stopping) ends a stage as Ctrl-C does: through the same clean exit."""
    raise KeyboardInterrupt


def interrupted_line(stage: str) -> str:
    return (
        f"{stage}: interrupted; nothing of this run is recorded as done: `dvc repro` runs it again "
        f"(a training stage resumes after its last finished epoch)"
    )


def stage_starting(stage: str, interrupted: str | None = None) -> None:
    """The first thing a stage process does, before it imports Keras (seconds of TensorFlow):

    - until run_stage takes over, SIGINT and SIGTERM print `interrupted` (by default the line run_stage
      prints) and exit 130 at once; a KeyboardInterrupt in the middle of an import would end in a
      traceback, and an unhandled SIGTERM in silence;
    - a Keras backend these stages cannot run on, or one not installed, stops it with one line (Keras
      itself would fail on import with a traceback, or later)."""

    def stop(signum, frame) -> None:
        print(interrupted or interrupted_line(stage), file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    from classifier.core.backend import backend_unavailable  # it needs StageError from here

    problem = backend_unavailable()
    if problem:
        sys.exit(f"{stage}: error: {problem}")


def closed_pipe() -> int:
    """After a BrokenPipeError (the reader stopped early: `| head -2`): stdout to devnull, Python's advice,
    so that the flush at exit does not fail again; the exit status SIGPIPE gives, as for `cat`."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def run_stage(main: Callable[[], None], script: str) -> None:
    """Run a stage's main(); a StageError exits 1 with `<stage>: error: <message>`, Ctrl-C or SIGTERM
    exit 130 with one line (DVC records nothing for a stage that did not finish)."""
    stage = Path(script).stem
    # Python leaves SIGINT ignored when it started ignored (a command run in the background by a
    # script): a `kill -INT` must still end the stage cleanly, as SIGTERM does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        main()
    except StageError as err:
        sys.exit(f"{stage}: error: {err}")
    except KeyboardInterrupt:
        print(interrupted_line(stage), file=sys.stderr)
        sys.exit(INTERRUPTED)

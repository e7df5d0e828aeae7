"""Running a stage's main() as its script runs it, and reading the one line it stops with; waiting for a
stage process to get somewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from classifier.core.startup import run_stage
from tests.support.files import snapshot


def stage_error(main: Callable[[], None], script: str) -> str:
    """The stage's one-line error, `<stage>: error: ` taken off (the stage named after its script)."""
    with pytest.raises(SystemExit) as info:
        run_stage(main, script)
    message, prefix = str(info.value.code), f"{Path(script).stem}: error: "
    assert message.startswith(prefix) and "\n" not in message, message
    return message.removeprefix(prefix)


def refused(main: Callable[[], None], script: str, watched: Path) -> str:
    """stage_error, once it is checked that nothing under `watched` was written, moved or removed."""
    before = snapshot(watched)
    message = stage_error(main, script)
    assert snapshot(watched) == before
    return message


def wait_for(condition: Callable[[], bool], seconds: float = 60, poll: float = 0.05) -> None:
    """Until condition() holds (a stage process got somewhere: a file written, an epoch done); the test
    fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)


def split_refused(work: Path, raw_dir, shares: dict) -> str:
    """Stage split's one-line error on `raw_dir` with data.split `shares` (params.yaml written in the
    workspace `work` by params.split_params), once it is checked that nothing was written, moved or removed
    anywhere beside the workspace either (its parent: no data/split, no metrics/, no copy left in the
    temporary folder, data.raw_dir untouched)."""
    from stages import split  # here: a stage's module is imported by the tests that run it
    from tests.support.params import split_params, write_params

    write_params(work, split_params(raw_dir, shares))
    return refused(split.main, "stages/split.py", work.parent)


def process_gone(pid: int) -> bool:
    """Whether process `pid` has ended: no such process, or a zombie nobody waited for (its parent gone
    first, and where init does not reap, as in some containers)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the process itself
        import os

        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

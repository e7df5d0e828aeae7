"""Tiny child processes for the tests of processes that end together (classifier.models.training.processes,
`classifier local-cluster`), and whether a process is still there."""

from __future__ import annotations

import sys


def python(code: str) -> list[str]:
    """This Python running `code`: a child that starts in a few hundredths of a second."""
    return [sys.executable, "-c", code]


def sleeper(seconds: int = 60) -> list[str]:
    return python(f"import time; time.sleep({seconds})")


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False

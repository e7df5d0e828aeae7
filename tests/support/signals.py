"""A stage process in a process group of its own, as a terminal or a queue starts a job, so that a test can
signal the whole group (Ctrl-C: SIGINT to the group; `kill -TERM -<pgid>`) and check that nothing of it is left.
A sitecustomize can hold the stage's first import of Keras, as TensorFlow's import takes seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

# On PYTHONPATH of the stage: notes Keras' first import in $HOLD_MARK and holds it $HOLD_SECONDS.
HOLD_KERAS = """
import importlib.abc, os, sys, time


class HoldKeras(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "keras":
            sys.meta_path.remove(self)
            open(os.environ["HOLD_MARK"], "w").close()
            time.sleep(float(os.environ["HOLD_SECONDS"]))
        return None


if os.environ.get("HOLD_MARK"):
    sys.meta_path.insert(0, HoldKeras())
"""


def start_in_group(command: list[str], cwd: Path, hold: float | None = None, **env: str) -> subprocess.Popen:
    """`command` (python is this Python) in `cwd`, in a new process group whose id is its pid, stdout and
    stderr piped (text); TensorFlow's stderr filter not yet started, as under DVC. With `hold`, Keras' first
    import is held that long, and noted in cwd/../keras_imported."""
    hook = cwd.parent / "hold_keras"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOLD_KERAS)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)]), "KERAS_BACKEND": "tensorflow"}
    environment.pop("PIPELINE_STDERR_FILTERED", None)
    environment.pop("HOLD_MARK", None)
    if hold is not None:
        environment |= {"HOLD_MARK": str(cwd.parent / "keras_imported"), "HOLD_SECONDS": str(hold)}
    return subprocess.Popen(
        [sys.executable if command[0] == "python" else command[0], *command[1:]],
        cwd=cwd,
        env=environment | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies, waiting for a parent to reap them, are not)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members

"""What `classifier own` and `classifier demo` share: `dvc exp run` as a process group of its own, its
stderr passed on, and SIGINT/SIGTERM to the command passed on to it (`Stops`), so that a signal to any
process of the run stops the whole run, each stage with its interrupted line, and the command exits
128 + the signal (130, 143) with one line of its own.

May import: classifier.core.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

from classifier.core.paths import PROJECT_ROOT

DVC_EXP_RUN = [sys.executable, "-m", "dvc", "exp", "run"]  # no -S: params.yaml holds every value
FIRST_RUN_NOISE = b"No file hash info found for"
STOP_GRACE_S = 60  # after the first signal, how long DVC and its stage get to stop before they are killed


class Stops:
    """SIGINT and SIGTERM to this process: while checking, they stop it at once (KeyboardInterrupt: nothing
    was changed); while params.yaml and bases/ change, they wait until that is done; while DVC runs, they
    go on to DVC's process group as SIGINT (DVC's way to stop, and each stage's: it says it was
    interrupted), which is waited for; a second signal, or STOP_GRACE_S seconds, kill the group. Either
    way the command exits 128 + the first signal (130, 143) with one line."""

    def __init__(self, command: str = "own"):
        self.command = command
        self.received: list[int] = []
        self.changing = False  # once set, a signal is recorded (and passed on to DVC), never raised
        self.group: int | None = None
        self.timer: threading.Timer | None = None

    @contextlib.contextmanager
    def handling(self):
        previous = {signum: signal.signal(signum, self.stop) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            if self.timer is not None:
                self.timer.cancel()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def stop(self, signum: int, frame) -> None:
        self.received.append(signum)
        if self.group is not None:
            self.stop_group(first=len(self.received) == 1)
        elif not self.changing:
            raise KeyboardInterrupt

    def started(self, pid: int) -> None:
        self.group = pid
        if self.received:  # before the process existed
            self.stop_group(first=True)

    def finished(self) -> None:
        self.group = None
        if self.timer is not None:
            self.timer.cancel()

    def stop_group(self, first: bool) -> None:
        send(self.group, signal.SIGINT if first else signal.SIGKILL)
        if first:
            self.timer = threading.Timer(STOP_GRACE_S, send, (self.group, signal.SIGKILL))
            self.timer.daemon = True
            self.timer.start()

    def interrupted(self, what: str) -> int:
        signum = self.received[0] if self.received else signal.SIGINT
        print(f"{self.command}: interrupted ({signal.Signals(signum).name}): {what}", file=sys.stderr, flush=True)
        return 128 + signum


def send(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def run_dvc(command: list[str], stops: Stops) -> int:
    """Run a DVC command as a process group of its own, under `stops` (which handles the signals), its stderr
    passed on as it comes without DVC's warning for each output not yet in dvc.lock ("No file hash info
    found"), as every output is before a first run; once stopped, only a stage's line saying it was
    interrupted. Its exit status."""
    stops.changing = True  # a signal from now on is passed on to the group, once it exists
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, process_group=0)
    stops.started(process.pid)
    try:
        with process:
            for line in process.stderr:
                if FIRST_RUN_NOISE in line or (stops.received and b": interrupted" not in line):
                    continue
                sys.stderr.buffer.write(line)
                sys.stderr.buffer.flush()
    finally:
        stops.finished()
    return process.returncode

"""Child processes that end together: each started in a process group of its own; SIGINT, SIGTERM and
SIGHUP to this process forwarded to every group (a second one kills them); when one fails, the others
stopped (they would wait for it forever); none left running when this process goes on (one that does
not stop within GRACE_S is killed, and so is anything a stopped one left in its group); and how each
ended, in words: `exit status 3`, `killed by SIGKILL`, never Python's negative return code. Each is
also told by the kernel (Linux's PR_SET_PDEATHSIG) to end with SIGTERM should this process die, even
by SIGKILL; a SIGHUP that nohup ignores stays ignored.

`classifier local-cluster` runs a cluster's processes so. A training stage started again through
CLUSTER_LAUNCHER (classifier.models.training.cluster) becomes this module's small program, which
runs the launcher so and says in one line when it fails:

    python -m classifier.models.training.processes <stage> <CLUSTER_LAUNCHER> -- <launcher> <stage's command>

Imports classifier.core only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from classifier.core.startup import INTERRUPTED

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 10.0  # how long a process told to stop has before it is killed
LEFTOVERS_S = 1.0  # how long what a stopped process leaves in its group has to end by itself
POLL_S = 0.05
# a training stage's launcher (srun, local-cluster) stops remote tasks and its own processes first
LAUNCHER_GRACE_S = 60.0
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when its parent dies, SIGKILL included


def how_it_ended(returncode: int) -> str:
    """`exit status 3`, or `killed by SIGKILL` for Popen's negative return code."""
    if returncode >= 0:
        return f"exit status {returncode}"
    return f"killed by {signal_name(-returncode)}"


def exit_status(returncode: int) -> int:
    """A return code as the shell gives it: the exit status, or 128 + the signal's number (never a raw
    negative number, which sys.exit would turn into 256 - n: 247 for SIGKILL)."""
    return returncode if returncode >= 0 else 128 + -returncode


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 'es' if noun.endswith('s') else 's'}"


@dataclass
class Ended:
    """How the children ended: each one's return code; those that failed by themselves, in the order seen;
    how many were stopped (told to, or killed after GRACE_S); the first stop signal this process got."""

    codes: list[int]
    failed: list[int] = field(default_factory=list)
    stopped: int = 0
    killed: int = 0
    why_killed: str = ""  # `after 10 s`, `at a second signal`
    signum: int | None = None


class Children:
    """Processes started together and ended together (a context: SIGINT, SIGTERM and SIGHUP recorded and
    forwarded while inside; nothing of them left running at its end, whatever ends it).

        with Children() as children:
            for command in commands:
                if children.signum is None:  # a signal came meanwhile: start no more
                    children.start(command)
            ended = children.wait()
    """

    def __init__(self, grace: float = GRACE_S, forward: signal.Signals | None = None):
        self.grace, self.forward = grace, forward  # forward: what a stop request sends them (None: the signal got)
        self.processes: list[subprocess.Popen] = []
        self.received: list[int] = []
        self.stopping: set[int] = set()  # told to stop: their failure is ours, not theirs
        self.killed: set[int] = set()
        self.why_killed = ""
        self.deadline: float | None = None
        self.handlers: dict = {}

    @property
    def signum(self) -> int | None:
        return self.received[0] if self.received else None

    def __enter__(self) -> Children:
        for signum in STOP_SIGNALS:
            if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue  # under nohup: a closed terminal is to stop nothing
            self.handlers[signum] = signal.signal(signum, self.record)
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.stop_all()
        finally:
            for signum, handler in self.handlers.items():
                signal.signal(signum, handler)

    def record(self, signum, frame) -> None:
        """The handler: remember the signal; the waiting loop forwards it (at once: sleep returns early)."""
        self.received.append(signum)

    def start(self, command: Sequence[str], **popen) -> subprocess.Popen:
        """`command` in a process group of its own (a signal to this process's group does not reach it
        twice), told to end with SIGTERM should this process die first; OSError when it cannot start."""
        parent, prctl = os.getpid(), libc_prctl()  # looked up here: a forked child should not load libraries
        process = subprocess.Popen(list(command), process_group=0, preexec_fn=lambda: die_with(parent, prctl), **popen)
        self.processes.append(process)
        return process

    def running(self) -> list[int]:
        return [index for index, process in enumerate(self.processes) if process.poll() is None]

    def send(self, indices, signum: int) -> None:
        for index in indices:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.processes[index].pid, signum)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Tell every running process (its group) to stop; killed once GRACE_S is over."""
        running = [index for index in self.running() if index not in self.stopping]
        self.stopping.update(running)
        self.send(running, signum)
        if self.deadline is None:
            self.deadline = time.monotonic() + self.grace

    def kill(self, why: str) -> None:
        running = self.running()
        if running and not self.why_killed:
            self.why_killed = why
        self.killed.update(running)
        self.stopping.update(running)
        self.send(running, signal.SIGKILL)

    def step(self) -> None:
        """One turn of waiting: a signal received forwarded (a second one kills), a failure stops the others,
        the grace over kills those still running."""
        if self.received:
            self.stop(self.forward or self.received[0])
            if len(self.received) > 1:
                self.kill("at a second signal")
        for index, process in enumerate(self.processes):
            if process.poll() not in (None, 0) and index not in self.stopping:
                self.stop()  # the others; this one has ended
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.kill(f"after {self.grace:g} s")

    def wait(self) -> Ended:
        """Until every process has ended, stopping the others at the first failure or forwarding a signal."""
        failed: list[int] = []
        while True:
            for index, process in enumerate(self.processes):
                code = process.poll()
                if code not in (None, 0) and index not in self.stopping and index not in failed:
                    failed.append(index)
            self.step()
            if not self.running():
                break
            time.sleep(POLL_S)
        self.leftovers(failed)
        stopped = len(self.stopping - set(failed))
        codes = [process.returncode for process in self.processes]
        return Ended(codes, failed, stopped, len(self.killed), self.why_killed, self.signum)

    def stop_all(self) -> None:
        """Stop and reap whatever still runs (the way out after an error: a process that failed to start)."""
        if self.running():
            self.stop(self.forward or self.signum or signal.SIGTERM)
            while self.running():
                self.step()
                time.sleep(POLL_S)
        self.leftovers()

    def leftovers(self, failed: list[int] = ()) -> None:
        """What a stopped or failed process left in its group (a child it started) is told to stop and has
        LEFTOVERS_S to end, or is killed. A group outlives its leader only while a member lives, so its
        number still names these processes. (What a process that succeeded leaves is its own business.)"""
        groups = [self.processes[index].pid for index in {*self.stopping, *failed}]
        groups = [group for group in groups if group_alive(group)]
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + LEFTOVERS_S
        while groups and time.monotonic() < deadline:
            time.sleep(POLL_S)
            groups = [group for group in groups if group_alive(group)]
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


def group_alive(group: int) -> bool:
    """Whether process group `group` has a member that runs (not a zombie, which is ended: a container's
    first process may never reap it)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True  # no /proc: the group's number is all there is to go by
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                state, _, pgrp = stat.read().rpartition(b")")[2].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == group and state != b"Z":
            return True
    return False


def libc_prctl():
    """Linux's prctl(2), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


def die_with(parent: int, prctl) -> None:
    """In a child, before its program starts: SIGTERM when its parent dies (SIGKILL included), where
    prctl(2) can say so."""
    if prctl is None:
        return
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl: nobody would tell this one
        os.kill(os.getpid(), signal.SIGTERM)


def start_failure(error: OSError, program: str) -> tuple[str, int]:
    """Why `program` could not start, in words, and the shell's status for it: 127 not found, 126 not runnable."""
    if isinstance(error, FileNotFoundError):
        return f"no program {program!r} (not on PATH, or a script whose interpreter is missing)", 127
    if isinstance(error, PermissionError):
        return f"{program!r} cannot be run ({error.strerror}): make it executable", 126
    if error.errno in (errno.EMFILE, errno.ENFILE):
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return f"no more open files allowed ({error.strerror}; ulimit -n is {soft}): start fewer processes", 1
    if error.errno == errno.EAGAIN:
        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
        shown = "unlimited" if soft == resource.RLIM_INFINITY else soft
        return f"no more processes allowed ({error.strerror}; ulimit -u is {shown}): start fewer", 1
    return f"{program!r} could not start: {error.strerror or error}", 1


def supervise(name: str, shown: str, command: list[str]) -> int:
    """The training stage `name` run through its launcher `command` (`shown`: CLUSTER_LAUNCHER as set):
    its exit status; a failure one line, `<stage>: error: ...`; a signal forwarded to the launcher as
    SIGTERM (srun stops the job's tasks on SIGTERM; one SIGINT only makes it report them), then the
    status of an interrupted stage, 130 (the launched processes say so themselves)."""
    prefix = f"{name}: error: training.distribute: multi_host: the launcher, CLUSTER_LAUNCHER={ascii(shown)},"
    with Children(grace=LAUNCHER_GRACE_S, forward=signal.SIGTERM) as children:
        try:
            children.start(command)
        except OSError as err:
            reason, status = start_failure(err, command[0])
            print(f"{prefix} did not start: {reason}", file=sys.stderr, flush=True)
            return status
        ended = children.wait()
    if ended.signum is not None:
        return INTERRUPTED
    code = ended.codes[0]
    if code:
        print(
            f"{prefix} failed ({how_it_ended(code)}); its own lines above, if any, say why", file=sys.stderr, flush=True
        )
    return exit_status(code)


def main(argv: list[str]) -> int:
    name, shown, separator, *command = argv
    assert separator == "--" and command, argv
    return supervise(name, shown, command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`classifier local-cluster`: run a command as N processes of one cluster on this machine, as SLURM's
srun runs it on N hosts.

    classifier local-cluster 2 -- python -m stages.train_classifier
    CLUSTER_LAUNCHER="classifier local-cluster 2 --" dvc repro   # each multi_host stage, 2 processes

Each process gets the cluster's environment (classifier.models.training.cluster): the coordinator on localhost
at a free port, the number of processes, its id; and KERAS_BACKEND=jax, whose CPU collectives (gloo)
join the processes as its GPU ones would join hosts. The first process's output is this command's;
another's is shown when it fails.

The processes end together: when one fails, the others are stopped (they would wait for it forever),
one line names each that failed and how (`process 1 of 2 failed (exit status 1)`, or `killed by
SIGKILL`), and the exit status is the first failure's (128 + the signal's number for a signal).
Ctrl-C, SIGTERM or SIGHUP to this command reach every process, which it waits for; then one line, exit
status 130, 143 or 129. A command that cannot start stops those already started: one line, exit
status 127 (no such program), 126 (not executable) or 1 (more processes than this machine allows
open files or processes: the line says which). A process that does not stop within 10 s, or at a
second signal, is killed; nothing of it is left running, not even when this command is killed (each
process gets SIGTERM then). The other processes' output is kept in temporary files without a name,
which leave nothing behind whatever ends this command.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from typing import IO

from classifier.models.training.processes import (
    Children,
    Ended,
    exit_status,
    how_it_ended,
    plural,
    signal_name,
    start_failure,
)

NAME = "local-cluster"
SHOWN_LINES = 40  # of a failed process's output (not the first's, which is this command's)
TAIL_BYTES = 64 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def launch(processes: int, command: list[str]) -> int:
    """`command` as `processes` processes of one cluster; the first failure's exit status, or 0."""
    address = f"localhost:{free_port()}"
    outputs: dict[int, IO[bytes]] = {}  # every process's output but the first's: a file without a name
    with Children() as children:
        try:
            for process in range(processes):
                if children.signum is not None:  # interrupted while starting them: start no more
                    break
                env = {
                    **os.environ,
                    "KERAS_BACKEND": "jax",
                    "KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
                    "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
                    "KERAS_DISTRIBUTION_PROCESS_ID": str(process),
                }
                try:
                    if process > 0:
                        outputs[process] = tempfile.TemporaryFile(prefix="local_cluster_")  # noqa: SIM115
                    output = outputs.get(process)
                    children.start(command, env=env, stdout=output, stderr=output)
                except OSError as err:
                    children.stop_all()
                    reason, status = start_failure(err, command[0])
                    started = f"; stopped the {plural(process, 'process')} already started" if process else ""
                    say(f"{NAME}: error: cannot start process {process} of {processes}: {reason}{started}")
                    return status
            ended = children.wait()
            report(ended, processes, outputs)
        finally:
            children.stop_all()
            for output in outputs.values():
                output.close()
    if ended.signum is not None:
        return 128 + ended.signum
    return exit_status(ended.codes[ended.failed[0]]) if ended.failed else 0


def report(ended: Ended, processes: int, outputs: dict[int, IO[bytes]]) -> None:
    """One line for each process that failed (after its last lines, where they are not this command's),
    or for the signal that stopped them all."""
    if ended.signum is not None:
        say(f"{NAME}: interrupted ({signal_name(ended.signum)}): {stopped_words(ended, processes, 'running')}")
        return
    for rank, index in enumerate(ended.failed):
        if index > 0:
            show_tail(outputs[index], index)
        others = f"; {stopped_words(ended, processes)}" if rank == 0 and ended.stopped else ""
        say(f"{NAME}: process {index} of {processes} failed ({how_it_ended(ended.codes[index])}){others}")


def stopped_words(ended: Ended, processes: int, which: str = "other") -> str:
    """`stopped every process`, `stopped the other 2 processes (1 killed after 10 s)`; `which`: `other`, after
    a failure, or `running`, after a signal (some may have ended before, or never started)."""
    if not ended.stopped:
        return "every process had ended" if which == "running" else ""
    killed = f" ({ended.killed} killed {ended.why_killed})" if ended.killed else ""
    if ended.stopped == processes:
        return f"stopped every process{killed}"
    if which == "running":
        return f"stopped the {plural(ended.stopped, 'process')} running{killed}"
    return f"stopped the other {'process' if ended.stopped == 1 else plural(ended.stopped, 'process')}{killed}"


def show_tail(output: IO[bytes], index: int) -> None:
    """The last SHOWN_LINES lines a process wrote (of its last TAIL_BYTES)."""
    try:
        output.seek(0, os.SEEK_END)
        output.seek(max(output.tell() - TAIL_BYTES, 0))
        lines = output.read().decode("utf-8", "backslashreplace").splitlines()
    except OSError:
        return
    if len(lines) > SHOWN_LINES:
        say(f"{NAME}: process {index}'s last {SHOWN_LINES} lines:")
    for line in lines[-SHOWN_LINES:]:
        say(line)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    return launch(args.processes, args.argv[1:] if args.argv[:1] == ["--"] else args.argv)

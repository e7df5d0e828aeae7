"""`classifier local-cluster`: run a command as N processes of one cluster on this machine, as SLURM's
srun runs it on N hosts.

    classifier local-cluster 2 -- python -m stages.train_classifier
    CLUSTER_LAUNCHER="classifier local-cluster 2 --" dvc repro   # each multi_host stage, 2 processes

Each process gets the cluster's environment (classifier.models.training.cluster): the coordinator on localhost
at a free port, the number of processes, its id; and KERAS_BACKEND=jax, whose CPU collectives (gloo)
join the processes as its GPU ones would join hosts. The first process's output is this command's;
another's is shown when it fails. When one process fails the others are stopped (they would wait
for it forever), and the exit status is the first failure's.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def launch(processes: int, command: list[str]) -> int:
    """`command` as `processes` processes of one cluster; the first failure's exit status, or 0."""
    address = f"localhost:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="local_cluster_") as logs:
        started = []
        for process in range(processes):
            env = {
                **os.environ,
                "KERAS_BACKEND": "jax",
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
                "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
                "KERAS_DISTRIBUTION_PROCESS_ID": str(process),
            }
            log = None if process == 0 else open(os.path.join(logs, f"{process}.log"), "w+")  # noqa: SIM115
            started.append(
                (subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT if log else None), log)
            )
        status = wait_all([process for process, _ in started])
        for index, (process, log) in enumerate(started[1:], start=1):
            if process.returncode > 0:  # failed by itself, not stopped
                log.seek(0)
                print(f"local_cluster: process {index} of {processes} failed:\n{log.read()}", file=sys.stderr)
            log.close()
    return status


def wait_all(processes: list[subprocess.Popen]) -> int:
    """Wait for every process; once one fails, stop the others. The first failure's status, or 0."""
    while True:
        codes = [process.poll() for process in processes]
        failed = [code for code in codes if code not in (None, 0)]
        if failed:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                process.wait()
            return failed[0]
        if all(code == 0 for code in codes):
            return 0
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:  # Ctrl-C reached every process too: wait for them to end
            for process in processes:
                process.wait()
            return 130


def run(args: argparse.Namespace) -> int:
    return launch(args.processes, args.argv[1:] if args.argv[:1] == ["--"] else args.argv)

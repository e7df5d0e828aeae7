"""Joining the cluster (`training.distribute: multi_host`): JAX's distributed runtime started from what
classifier.models.training.cluster reads in the environment (a stage outside any cluster is started
again through CLUSTER_LAUNCHER), with a time limit: `training.join_timeout` seconds for every process,
then one line saying who never came; Ctrl-C and SIGTERM end the wait at any point. A coordinator whose
port another program holds is refused before JAX is asked (it would crash on it).

Imports classifier.core and classifier.models.training.cluster; JAX when joining.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import sys
import threading
import time

from classifier.core.errors import StageError
from classifier.core.startup import INTERRUPTED
from classifier.models.training.cluster import Cluster, cluster_from_environment, start_through_launcher

JAX_MARGIN_S = 60  # JAX's own limit, past ours: its end is a core dump
JOIN_POLL_S = 0.2
PROBE_S = 2.0


def join_cluster(timeout: int) -> Cluster:
    """Start JAX's distributed runtime as this process's place in the cluster; before anything runs on JAX.
    Without a cluster in the environment, start the stage again through CLUSTER_LAUNCHER (never returns),
    or refuse in one line. Waits `timeout` seconds (training.join_timeout) for every process to join."""
    cluster = cluster_from_environment()
    if cluster is None:
        start_through_launcher()
    join(cluster, timeout)
    return cluster


def join(cluster: Cluster, timeout: int) -> None:
    """keras.distribution.initialize's work on JAX (jax.distributed.initialize; the stage's seed is set
    before, so Keras would agree no other), with a time limit. JAX waits inside C++ until every process
    has joined, and ends the process with a core dump at its own limit: it waits here on a thread of
    its own, given JAX_MARGIN_S more, while this thread stays free for Ctrl-C and SIGTERM and gives up
    at `timeout` with one line naming who never came. The thread cannot be stopped, and the interpreter's
    tear-down would wait seconds for JAX's coordination service and log its errors: a process that gives
    up ends at exit without it (end_at_exit), once its line is out."""
    import jax

    if cluster.process_id == 0 and port_taken(cluster.coordinator):  # JAX would crash on it (SIGSEGV), not say so
        raise StageError(jax_refused(cluster, "its port is in use"))
    print(
        f"training: process {cluster.process_id} of {cluster.processes} joining the cluster at "
        f"{cluster.coordinator} (waiting up to {timeout} s, training.join_timeout)",
        flush=True,
    )
    failed: list[BaseException] = []

    def connect() -> None:
        try:
            jax.distributed.initialize(
                coordinator_address=cluster.coordinator,
                num_processes=cluster.processes,
                process_id=cluster.process_id,
                initialization_timeout=timeout + JAX_MARGIN_S,
            )
        except BaseException as err:  # handed to the waiting thread
            failed.append(err)

    thread = threading.Thread(target=connect, name="join_cluster", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(min(JOIN_POLL_S, max(deadline - time.monotonic(), 0)))
    except BaseException as err:  # Ctrl-C or SIGTERM (startup's KeyboardInterrupt) while waiting
        end_at_exit(status_after(err))
        raise
    if thread.is_alive():
        end_at_exit(1)  # a StageError's status
        raise StageError(never_joined(cluster, timeout))
    if failed and isinstance(failed[0], jax.errors.JaxRuntimeError):
        end_at_exit(1)  # JAX's half-started service can crash the interpreter's tear-down (SIGSEGV)
        raise StageError(jax_refused(cluster, failed[0])) from None
    if failed:
        raise failed[0]


def port_taken(address: str) -> bool:
    """Whether another program listens at the port of host:port here, where the coordinator would listen (on
    every address, as JAX does)."""
    port = int(address.rpartition(":")[2])
    family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
    try:
        with socket.create_server(("", port), family=family, dualstack_ipv6=family == socket.AF_INET6):
            return False
    except OSError:
        return True


def jax_refused(cluster: Cluster, err: BaseException | str) -> str:
    """JAX's own refusal to join, in one line: for the coordinator, mostly a port another program holds."""
    said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    where = f"process {cluster.process_id} of {cluster.processes} could not join the cluster at {cluster.coordinator}"
    if cluster.process_id == 0:
        return (
            f"training.distribute: multi_host: {where} ({said}): as the coordinator it listens at that port, which "
            "another program may hold: give a free port in the cluster variables (docs/scale.md)"
        )
    return f"training.distribute: multi_host: {where} ({said}): check the cluster variables (docs/scale.md)"


def never_joined(cluster: Cluster, timeout: int) -> str:
    """Which processes never came, as far as this one can tell: the coordinator knows how many others there
    were to come; another process knows whether the coordinator answers at its address."""
    waited = (
        f"training.distribute: multi_host: process {cluster.process_id} of {cluster.processes} waited {timeout} s "
        f"(training.join_timeout)"
    )
    fix = (
        "start every process of the cluster, with the same cluster variables (docs/scale.md), "
        "or raise training.join_timeout"
    )
    if cluster.process_id == 0:
        others = "process 1" if cluster.processes == 2 else f"processes 1 to {cluster.processes - 1} (one or more)"
        return f"{waited} as the coordinator, at {cluster.coordinator}, and {others} never joined: {fix}"
    if not answers(cluster.coordinator):
        return f"{waited} for the coordinator, process 0, at {cluster.coordinator}, which never answered: {fix}"
    return (
        f"{waited}: something answers at the coordinator's address, {cluster.coordinator}, but the cluster of "
        f"{cluster.processes} processes did not form (a process is missing, or another program holds that port): {fix}"
    )


def answers(address: str) -> bool:
    """Whether anything accepts a connection at host:port (within PROBE_S)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S):
            return True
    except OSError:
        return False


def status_after(err: BaseException) -> int:
    """The exit status a stage gives after `err` (classifier.core.startup): 130 after Ctrl-C or SIGTERM."""
    if isinstance(err, SystemExit):
        return err.code if isinstance(err.code, int) else 1
    return INTERRUPTED if isinstance(err, KeyboardInterrupt) else 1


def end_at_exit(status: int) -> None:
    """At exit, once its last line is out: end the process at once, with `status`, without the tear-down
    that a thread blocked in JAX's C++ would hold up. (Never in a process that goes on: a test's own.)"""

    def now() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)

    atexit.register(now)

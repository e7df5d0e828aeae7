"""Several processes, one training run (`training.distribute: multi_host`): where the cluster's
coordinator is, how many processes it has and which one this is, read from the environment;
JAX's distributed runtime started from it; and which process writes the outputs (process 0).

The environment, first found wins:
- explicit: KERAS_DISTRIBUTION_JOB_ADDRESSES (process 0's host:port), KERAS_DISTRIBUTION_NUM_PROCESSES
  and KERAS_DISTRIBUTION_PROCESS_ID (Keras' own names; on Kubernetes an Indexed Job's
  JOB_COMPLETION_INDEX may stand for the last);
- SLURM, in a task of `srun` (all four set; a batch script has some of them): SLURM_NTASKS,
  SLURM_PROCID, the first host of SLURM_STEP_NODELIST, and the port JAX derives from SLURM_JOB_ID.
A stage started without either, with CLUSTER_LAUNCHER set (`srun`, or `classifier local-cluster
2 --`), starts itself again through it on every process. Imports classifier.core only; JAX when started.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from classifier.core.errors import StageError

EXPLICIT = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")
KUBERNETES_INDEX = "JOB_COMPLETION_INDEX"
SLURM = ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_STEP_NODELIST")
LAUNCHER = "CLUSTER_LAUNCHER"
HOW = (
    "set KERAS_DISTRIBUTION_JOB_ADDRESSES (process 0's host:port), KERAS_DISTRIBUTION_NUM_PROCESSES and "
    "KERAS_DISTRIBUTION_PROCESS_ID on every process, run the stage under SLURM's srun, or set CLUSTER_LAUNCHER "
    "(docs/scale.md)"
)


@dataclass(frozen=True)
class Cluster:
    coordinator: str  # host:port of process 0
    processes: int
    process_id: int
    source: str  # where it was read from


def cluster_from_environment(env: Mapping[str, str] = os.environ) -> Cluster | None:
    """The cluster this process belongs to, or None when the environment names none; incomplete
    explicit variables, or inconsistent ones, are refused in one line."""
    explicit = {name: env.get(name, "") for name in EXPLICIT}
    if not explicit["KERAS_DISTRIBUTION_PROCESS_ID"] and env.get(KUBERNETES_INDEX):
        explicit["KERAS_DISTRIBUTION_PROCESS_ID"] = env[KUBERNETES_INDEX]
    if any(explicit.values()):
        missing = [name for name, value in explicit.items() if not value]
        if missing:
            raise StageError(f"training.distribute: multi_host: {', '.join(missing)} not set; {HOW}")
        coordinator = explicit["KERAS_DISTRIBUTION_JOB_ADDRESSES"].split(",")[0]
        numbers = explicit["KERAS_DISTRIBUTION_NUM_PROCESSES"], explicit["KERAS_DISTRIBUTION_PROCESS_ID"]
        return checked(coordinator, *numbers, "KERAS_DISTRIBUTION_*")
    if all(env.get(name) for name in SLURM):  # a task of srun (as JAX itself tells): not the batch script
        port = int(env["SLURM_JOB_ID"]) % 2**12 + (65535 - 2**12 + 1)  # JAX's own choice for SLURM
        coordinator = f"{first_host(env['SLURM_STEP_NODELIST'])}:{port}"
        return checked(coordinator, env["SLURM_NTASKS"], env["SLURM_PROCID"], "SLURM")
    return None


def checked(coordinator: str, processes: str, process_id: str, source: str) -> Cluster:
    if not re.fullmatch(r"[^\s:]+:\d{1,5}", coordinator):
        raise StageError(f"training.distribute: multi_host: the coordinator {coordinator!r} is not host:port; {HOW}")
    if not (processes.isdigit() and process_id.isdigit() and int(process_id) < int(processes)):
        raise StageError(
            f"training.distribute: multi_host: process id {process_id!r} of {processes!r} processes ({source}): "
            f"give a number of processes and an id from 0 to that number - 1"
        )
    return Cluster(coordinator, int(processes), int(process_id), source)


def first_host(node_list: str) -> str:
    """The first host of a SLURM node list: `node[001-004,007],gpu2` -> `node001`."""
    match = re.match(r"([^,\[]+)(?:\[([^,\-\]]+))?", node_list)
    if not match:
        raise StageError(f"training.distribute: multi_host: cannot read SLURM's node list {node_list!r}; {HOW}")
    return match.group(1) + (match.group(2) or "")


def writes_outputs(distribute: str, env: Mapping[str, str] = os.environ) -> bool:
    """Whether this process writes the stage's outputs, checkpoints and logs: on one host, always; in a
    cluster, process 0 only, so that DVC sees one set of outputs."""
    if distribute != "multi_host":
        return True
    cluster = cluster_from_environment(env)
    return cluster is None or cluster.process_id == 0


def join_cluster() -> Cluster:
    """Start JAX's distributed runtime as this process's place in the cluster; before anything runs on JAX.
    Without a cluster in the environment, start the stage again through CLUSTER_LAUNCHER (never returns),
    or refuse in one line."""
    cluster = cluster_from_environment()
    if cluster is None:
        launcher = shlex.split(os.environ.get(LAUNCHER, ""))
        if not launcher and os.environ.get("SLURM_JOB_ID"):
            raise StageError(
                "training.distribute: multi_host: this process is in a SLURM allocation but not in a task of srun: "
                f"set {LAUNCHER}=srun, or start the stage with srun (docs/scale.md)"
            )
        if not launcher:
            raise StageError(f"training.distribute: multi_host, but this process is in no cluster: {HOW}")
        command = [*launcher, sys.executable, *sys.orig_argv[1:]]  # this stage's command again: `-m stages.<stage>`
        print(f"training: starting the stage on every process: {shlex.join(command)}", flush=True)
        os.execvpe(command[0], command, {**os.environ, LAUNCHER: ""})  # the processes started join, never launch
    import keras

    keras.distribution.initialize(cluster.coordinator, cluster.processes, cluster.process_id)
    return cluster


def same_on_every_process(value: int, problem: str) -> None:
    """Refuse with `problem` unless every process of the cluster holds the same `value` (a collective: all call it)."""
    from jax.experimental import multihost_utils

    values = multihost_utils.process_allgather(np.array(value, dtype=np.int64))
    if len(set(np.ravel(values).tolist())) > 1:
        raise StageError(problem)

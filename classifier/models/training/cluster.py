"""Several processes, one training run (`training.distribute: multi_host`): where the cluster's
coordinator is, how many processes it has and which one this is, read from the environment;
and which process writes the outputs (process 0).

The environment, first found wins:
- explicit: KERAS_DISTRIBUTION_JOB_ADDRESSES (process 0's host:port), KERAS_DISTRIBUTION_NUM_PROCESSES
  and KERAS_DISTRIBUTION_PROCESS_ID (Keras' own names; on Kubernetes an Indexed Job's
  JOB_COMPLETION_INDEX may stand for the last);
- SLURM, in a task of `srun` (all four set; a batch script has some of them): SLURM_NTASKS,
  SLURM_PROCID, the first host of SLURM_STEP_NODELIST, and the port JAX derives from SLURM_JOB_ID.
Every number is digits 0-9 (not `abc`, `-1`, ` 2`, nor the other digits str.isdigit() takes), a
port from 1 to 65535, the process id below the number of processes: else one line naming the variable.

A stage started without either, with CLUSTER_LAUNCHER set (`srun`, or `classifier local-cluster
2 --`), starts itself again through it on every process (a launcher that does not parse or is not on
PATH: one line; one that fails: one line with its exit status). Joining: classifier.models.training.joining.
Imports classifier.core and classifier.models.training.processes; JAX for a collective.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import numpy as np

from classifier.core.errors import StageError
from classifier.core.startup import started_stage
from classifier.models.training import processes

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


# Each number's variable, what a wrong one is told, by where the cluster was read from.
SET_IT = {
    "KERAS_DISTRIBUTION_NUM_PROCESSES": "set it to the number of processes, 1 or more, the same on every process",
    "KERAS_DISTRIBUTION_PROCESS_ID": "set it to this process's id, from 0 to the number of processes - 1",
    KUBERNETES_INDEX: "Kubernetes sets it in each pod of an Indexed Job; or set KERAS_DISTRIBUTION_PROCESS_ID",
}
SLURM_SETS_IT = "SLURM sets it in a task of srun: run the stage in one (CLUSTER_LAUNCHER=srun), or unset it"
MAX_DIGITS = 9  # a billion processes is beyond any cluster; int() of a huge string is slow, then refused
PORTS = (1, 65535)


def cluster_from_environment(env: Mapping[str, str] = os.environ) -> Cluster | None:
    """The cluster this process belongs to, or None when the environment names none; incomplete
    explicit variables, or inconsistent ones, are refused in one line that names the variable."""
    explicit = {name: env.get(name, "") for name in EXPLICIT}
    names = dict(zip(("coordinator", "processes", "process_id"), EXPLICIT))
    if not explicit["KERAS_DISTRIBUTION_PROCESS_ID"] and env.get(KUBERNETES_INDEX):
        explicit["KERAS_DISTRIBUTION_PROCESS_ID"] = env[KUBERNETES_INDEX]
        names["process_id"] = KUBERNETES_INDEX
    if any(explicit.values()):
        missing = [name for name, value in explicit.items() if not value]
        if missing:
            raise StageError(f"training.distribute: multi_host: {', '.join(missing)} not set; {HOW}")
        addresses = explicit["KERAS_DISTRIBUTION_JOB_ADDRESSES"].split(",")
        processes = whole_number(names["processes"], explicit["KERAS_DISTRIBUTION_NUM_PROCESSES"])
        process_id = whole_number(names["process_id"], explicit["KERAS_DISTRIBUTION_PROCESS_ID"])
        if len(addresses) > 1 and len(addresses) != processes:  # every process's address, as Keras allows
            raise StageError(
                f"training.distribute: multi_host: KERAS_DISTRIBUTION_JOB_ADDRESSES names {len(addresses)} "
                f"addresses but KERAS_DISTRIBUTION_NUM_PROCESSES is {processes}: give one address per process, "
                "or only process 0's"
            )
        for address in addresses[1:]:
            host_and_port(address, "KERAS_DISTRIBUTION_JOB_ADDRESSES")
        coordinator = host_and_port(addresses[0], "KERAS_DISTRIBUTION_JOB_ADDRESSES")
        return checked(coordinator, processes, process_id, names, "KERAS_DISTRIBUTION_*")
    if all(env.get(name) for name in SLURM):  # a task of srun (as JAX itself tells): not the batch script
        job = whole_number("SLURM_JOB_ID", env["SLURM_JOB_ID"], SLURM_SETS_IT)
        port = job % 2**12 + (65535 - 2**12 + 1)  # JAX's own choice for SLURM
        coordinator = host_and_port(f"{first_host(env['SLURM_STEP_NODELIST'])}:{port}", "SLURM_STEP_NODELIST")
        processes = whole_number("SLURM_NTASKS", env["SLURM_NTASKS"], SLURM_SETS_IT)
        process_id = whole_number("SLURM_PROCID", env["SLURM_PROCID"], SLURM_SETS_IT)
        return checked(
            coordinator, processes, process_id, {"processes": "SLURM_NTASKS", "process_id": "SLURM_PROCID"}, "SLURM"
        )
    return None


def whole_number(name: str, value: str, fix: str | None = None) -> int:
    """The variable `name`'s value as a number: digits 0-9 only (no sign, blank, or the other digits
    str.isdigit() takes, as `٣` or `²`), or one line naming it and the fix."""
    if not re.fullmatch(f"[0-9]{{1,{MAX_DIGITS}}}", value):
        what = "is too long for a number" if re.fullmatch("[0-9]+", value) else "is not a whole number (digits 0-9)"
        raise StageError(f"training.distribute: multi_host: {name}={ascii(value)} {what}; {fix or SET_IT[name]}")
    return int(value)


def host_and_port(address: str, name: str) -> str:
    """`host:port` (`[::1]:port` for an IPv6 address), the port from 1 to 65535; or one line naming `name`."""
    wrong = f"training.distribute: multi_host: {name}: the address {ascii(address)}"
    match = re.fullmatch(r"([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):([^:]*)", address)
    if not match:
        raise StageError(f"{wrong} is not host:port (as 10.0.0.1:1234, or [::1]:1234); {HOW}")
    port = match.group(2)
    if not re.fullmatch("[0-9]{1,5}", port) or not PORTS[0] <= int(port) <= PORTS[1]:
        raise StageError(f"{wrong} has no port from {PORTS[0]} to {PORTS[1]} after its colon; {HOW}")
    return address


def checked(coordinator: str, processes: int, process_id: int, names: dict[str, str], source: str) -> Cluster:
    if processes < 1:
        raise StageError(f"training.distribute: multi_host: {names['processes']}=0: a cluster has 1 process or more")
    if process_id >= processes:
        raise StageError(
            f"training.distribute: multi_host: {names['process_id']}={process_id} is not below "
            f"{names['processes']}={processes}: the processes' ids go from 0 to {processes - 1}"
        )
    return Cluster(coordinator, processes, process_id, source)


def first_host(node_list: str) -> str:
    """The first host of a SLURM node list: `node[001-004,007],gpu2` -> `node001`."""
    match = re.match(r"([^,\[]+)(?:\[([^,\-\]]+))?", node_list)
    if not match:
        raise StageError(
            f"training.distribute: multi_host: cannot read SLURM's node list SLURM_STEP_NODELIST={ascii(node_list)}; "
            f"{HOW}"
        )
    return match.group(1) + (match.group(2) or "")


def writes_outputs(distribute: str, env: Mapping[str, str] = os.environ) -> bool:
    """Whether this process writes the stage's outputs, checkpoints and logs: on one host, always; in a
    cluster, process 0 only, so that DVC sees one set of outputs."""
    if distribute != "multi_host":
        return True
    cluster = cluster_from_environment(env)
    return cluster is None or cluster.process_id == 0


def launcher_command() -> list[str]:
    """CLUSTER_LAUNCHER as words, its program found; [] when unset; or one line that says what is wrong."""
    text = os.environ.get(LAUNCHER, "")
    try:
        words = shlex.split(text)
    except ValueError as err:  # an unbalanced quote, a lone backslash at the end
        raise StageError(
            f"training.distribute: multi_host: {LAUNCHER}={ascii(text)} is not a command line ({err}); quote "
            f'it as a shell would, as {LAUNCHER}="classifier local-cluster 2 --"'
        ) from None
    if words and shutil.which(words[0]) is None:
        raise StageError(
            f"training.distribute: multi_host: {LAUNCHER}={ascii(text)}: no program {words[0]!r} (not on PATH, "
            "or not executable): install it, give its full path, or set the launcher this machine has"
        )
    return words


def start_through_launcher() -> NoReturn:
    """This stage's command again on every process, through CLUSTER_LAUNCHER: this process becomes a small
    one (classifier.models.training.processes) that runs the launcher, passes Ctrl-C and SIGTERM on to it,
    and says in one line when it fails; or one line when there is no launcher."""
    launcher = launcher_command()
    if not launcher and os.environ.get("SLURM_JOB_ID"):
        raise StageError(
            "training.distribute: multi_host: this process is in a SLURM allocation but not in a task of srun: "
            f"set {LAUNCHER}=srun, or start the stage with srun (docs/scale.md)"
        )
    if not launcher:
        raise StageError(f"training.distribute: multi_host, but this process is in no cluster: {HOW}")
    command = [*launcher, sys.executable, *sys.orig_argv[1:]]  # this stage's command again: `-m stages.<stage>`
    print(f"training: starting the stage on every process: {shlex.join(command)}", flush=True)
    sys.stderr.flush()
    supervisor = [sys.executable, "-m", processes.__name__, started_stage(), os.environ[LAUNCHER], "--", *command]
    os.execve(sys.executable, supervisor, {**os.environ, LAUNCHER: ""})  # the processes started join, never launch


def same_on_every_process(value: int, problem: str) -> None:
    """Refuse with `problem` unless every process of the cluster holds the same `value` (a collective: all call it)."""
    from jax.experimental import multihost_utils

    values = multihost_utils.process_allgather(np.array(value, dtype=np.int64))
    if len(set(np.ravel(values).tolist())) > 1:
        raise StageError(problem)

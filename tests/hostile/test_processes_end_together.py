"""Several processes: the local launcher, a cluster's settings, joining a cluster, a stage's launcher.

Each case ends every process it started and says so in one line, never a traceback:

1. SIGTERM, Ctrl-C (SIGINT) or SIGHUP to `classifier local-cluster`: forwarded to every process, which
   it waits for; exit 143, 130 or 129, one line; no process and no temporary file left;
2. a second signal kills at once the processes that ignore the first;
3. `kill -9` of `classifier local-cluster` itself: each process gets SIGTERM from the kernel, none is left;
4. a process killed by a signal (SIGKILL, SIGSEGV): one line naming which process and the signal,
   the others stopped, exit 128 + the signal (137, not sys.exit's 247);
5. a process that fails: its last lines, then one line naming it and its exit status, which is the
   command's;
6. a command that does not exist, or is not executable: one line, exit 127 or 126, nothing started;
7. more processes than open files allow (ulimit -n): one line naming the limit, the processes already
   started stopped, exit 1;
8. a join that never completes: the process waiting for a coordinator that never answers, and a
   coordinator whose other process never comes, each end after training.join_timeout with one line
   naming who never came; a cluster number that is not plain digits (`٣`) is one line before any wait;
9. SIGTERM while joining: the interrupted line at once, exit 130, nothing else (no JAX log, no core); a
   coordinator whose port another program holds: one line naming the port (JAX's traceback before);
10. CLUSTER_LAUNCHER=false: one line naming the launcher and its exit status;
11. SIGTERM to a stage whose launcher (`classifier local-cluster`) runs its processes: every one of them
    stopped, the launcher's line and exit 130.

The cluster's settings one by one (letters, signs, blanks, the digits str.isdigit() takes, ports out of
range, addresses per process, an unparsable or missing launcher) are tests/models/training/test_cluster.py's;
the machinery's own (a failure stops the others, the grace, what a stopped process leaves behind) is
tests/models/training/test_processes.py's.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier.core.startup import interrupted_line
from tests.support.paths import ROOT
from tests.support.processes import alive, python
from tests.support.stages import wait_for

# A process of the cluster that says who it is (a file named after its id, holding its pid), then waits;
# ended by SIGINT as by SIGTERM, without Python's KeyboardInterrupt traceback.
WAITER = (
    "import os, pathlib, signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    "process = os.environ['KERAS_DISTRIBUTION_PROCESS_ID'];"
    "pathlib.Path(sys.argv[1], process).write_text(str(os.getpid())); time.sleep(60)"
)
# A training stage's start and its join, without the rest of the stage: run as `python -m train_frozen`.
# In a cluster with PIDS set, it only says who it is and waits (a launcher's process).
STAGE = """
import os, pathlib, time
from classifier.core.startup import run_stage, start_stage

start_stage()
from classifier.models.training.joining import join_cluster


def main():
    process = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
    if os.environ.get("PIDS") and process:
        pathlib.Path(os.environ["PIDS"], process).write_text(str(os.getpid()))
        time.sleep(60)
    join_cluster(int(os.environ["JOIN_TIMEOUT"]))


run_stage(main, "train_frozen.py")
"""
JOIN_TIMEOUT = 2


def local_cluster(processes: int, command: list[str], tmp_path: Path, **popen) -> subprocess.Popen:
    """`classifier local-cluster` started, its temporary files in tmp_path/tmp."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "classifier", "local-cluster", str(processes), "--", *command]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, **popen)


def started_pids(folder: Path, count: int) -> list[int]:
    """The pids of the `count` processes that wrote their pid files in `folder`, once all have."""
    wait_for(lambda: len([path for path in folder.iterdir() if path.read_text()]) == count, 30)
    return [int(path.read_text()) for path in folder.iterdir()]


def ended(process: subprocess.Popen, seconds: float = 30) -> tuple[int, str]:
    _, err = process.communicate(timeout=seconds)
    return process.returncode, err


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_to_the_launcher_reaches_every_process_and_leaves_nothing(tmp_path, signum, status):
    pids = tmp_path / "pids"
    pids.mkdir()
    launcher = local_cluster(3, [*python(WAITER), str(pids)], tmp_path)
    children = started_pids(pids, 3)
    launcher.send_signal(signum)
    code, err = ended(launcher)
    assert code == status
    assert err == f"local-cluster: interrupted ({signal.Signals(signum).name}): stopped every process\n"
    assert not [pid for pid in children if alive(pid)]
    assert not list((tmp_path / "tmp").iterdir())


def test_a_second_signal_kills_the_processes_that_ignore_the_first(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    stubborn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN);" + WAITER
    launcher = local_cluster(2, [*python(stubborn), str(pids)], tmp_path)
    children = started_pids(pids, 2)
    launcher.terminate()
    time.sleep(0.3)
    launcher.terminate()
    code, err = ended(launcher)
    assert (code, err) == (
        143,
        "local-cluster: interrupted (SIGTERM): stopped every process (2 killed at a second signal)\n",
    )
    assert not [pid for pid in children if alive(pid)]


def test_kill_9_of_the_launcher_leaves_no_process(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    launcher = local_cluster(2, [*python(WAITER), str(pids)], tmp_path)
    children = started_pids(pids, 2)
    launcher.kill()
    ended(launcher)
    wait_for(lambda: not [pid for pid in children if alive(pid)], 10)  # the kernel's SIGTERM (PR_SET_PDEATHSIG)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGKILL, 137), (signal.SIGSEGV, 139)])
def test_a_process_killed_by_a_signal_is_named_with_the_signal(tmp_path, signum, status):
    pids = tmp_path / "pids"
    pids.mkdir()
    dies = f"import os, signal; os.environ['KERAS_DISTRIBUTION_PROCESS_ID'] == '1' and os.kill(os.getpid(), {signum});"
    launcher = local_cluster(2, [*python(dies + WAITER), str(pids)], tmp_path)
    code, err = ended(launcher)
    name = signal.Signals(signum).name
    assert (code, err) == (
        status,
        f"local-cluster: process 1 of 2 failed (killed by {name}); stopped the other process\n",
    )
    assert not [pid for pid in map(int, (path.read_text() for path in pids.iterdir())) if alive(pid)]


def test_a_failed_process_s_last_lines_then_one_line_with_its_exit_status(tmp_path):
    fails = (
        "import os, sys; process = int(os.environ['KERAS_DISTRIBUTION_PROCESS_ID']); print('process', process, 'here');"
    )
    fails += "process == 2 and sys.exit('train_frozen: error: something is wrong'); import time; time.sleep(60)"
    code, err = ended(local_cluster(3, python(fails), tmp_path))
    assert code == 1
    assert err == (
        "process 2 here\ntrain_frozen: error: something is wrong\n"
        "local-cluster: process 2 of 3 failed (exit status 1); stopped the other 2 processes\n"
    )


@pytest.mark.parametrize(
    ("command", "status", "line"),
    [
        (
            ["no-such-program", "-x"],
            127,
            "no program 'no-such-program' (not on PATH, or a script whose interpreter is missing)",
        ),
        (["{script}"], 126, "'{script}' cannot be run (Permission denied): make it executable"),
    ],
)
def test_a_command_that_cannot_start_is_one_line(tmp_path, command, status, line):
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\n")
    command = [word.replace("{script}", str(script)) for word in command]
    code, err = ended(local_cluster(2, command, tmp_path))
    assert code == status
    assert err == f"local-cluster: error: cannot start process 0 of 2: {line.replace('{script}', str(script))}\n"


def test_more_processes_than_open_files_allow_stops_those_started(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()

    def few_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))

    launcher = local_cluster(40, [*python(WAITER), str(pids)], tmp_path, preexec_fn=few_files)
    code, err = ended(launcher)
    match = re.fullmatch(
        r"local-cluster: error: cannot start process (\d+) of 40: no more open files allowed \(Too many open files; "
        r"ulimit -n is 24\): start fewer processes; stopped the (\d+) processes already started\n",
        err,
    )
    assert code == 1 and match and match[1] == match[2]
    started = [int(path.read_text()) for path in pids.iterdir() if path.read_text()]
    assert not [pid for pid in started if alive(pid)]


# --- joining a cluster ---------------------------------------------------------------------------------


def stage_process(tmp_path: Path, env: dict) -> subprocess.Popen:
    """STAGE as `python -m train_frozen`, on JAX, with `env` (cluster variables)."""
    (tmp_path / "train_frozen.py").write_text(STAGE)
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("KERAS_DISTRIBUTION", "SLURM"))}
    env = {**clean, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "JOIN_TIMEOUT": str(JOIN_TIMEOUT), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "train_frozen"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def nobody_s_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def cluster_env(port: int, process: int, processes: int = 2) -> dict:
    return {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
        "KERAS_DISTRIBUTION_PROCESS_ID": str(process),
    }


def joining_line(process: subprocess.Popen) -> float:
    """When `process` said it is joining (its first line on stdout)."""
    line = process.stdout.readline()
    assert "joining the cluster at localhost:" in line, line
    return time.monotonic()


def test_a_join_that_never_completes_ends_in_time_and_sigterm_ends_it_at_once(tmp_path):
    """Five stage processes at once (each imports JAX): two waiting for members that never come, one
    stopped with SIGTERM while it waits, one refused before it waits, one coordinator whose port another
    program holds."""
    folders = [tmp_path / name for name in ("worker", "coordinator", "stopped", "refused", "taken")]
    for folder in folders:
        folder.mkdir()
    port = nobody_s_port()
    worker = stage_process(folders[0], cluster_env(port, 1))
    coordinator = stage_process(folders[1], cluster_env(nobody_s_port(), 0, processes=3))
    stopped = stage_process(folders[2], {**cluster_env(nobody_s_port(), 0), "JOIN_TIMEOUT": "60"})
    refused = stage_process(folders[3], {**cluster_env(port, 0), "KERAS_DISTRIBUTION_NUM_PROCESSES": "\u0663"})
    with socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=socket.has_dualstack_ipv6()) as held:
        taken_port = held.getsockname()[1]
        taken = stage_process(folders[4], cluster_env(taken_port, 0))
        _, taken_err = taken.communicate(timeout=60)
    assert taken.returncode == 1 and taken_err.endswith(
        f"train_frozen: error: training.distribute: multi_host: process 0 of 2 could not join the cluster at "
        f"localhost:{taken_port} (its port is in use): as the coordinator it listens at that port, "
        "which another program may hold: give a free port in the cluster variables (docs/scale.md)\n"
    )

    waits = {name: joining_line(process) for name, process in (("worker", worker), ("coordinator", coordinator))}
    joining_line(stopped)
    time.sleep(0.5)  # inside JAX's connect
    stopped.terminate()
    signalled = time.monotonic()
    outcomes = {}
    for name, process in (("stopped", stopped), ("worker", worker), ("coordinator", coordinator), ("refused", refused)):
        _, err = process.communicate(timeout=60)
        outcomes[name] = (process.returncode, err, time.monotonic())

    assert outcomes["stopped"][:2] == (130, interrupted_line("train_frozen") + "\n")
    assert outcomes["stopped"][2] - signalled < 5
    prefix = "train_frozen: error: training.distribute: multi_host: "
    fix = (
        ": start every process of the cluster, with the same cluster variables (docs/scale.md), or raise "
        "training.join_timeout\n"
    )
    assert outcomes["worker"][:2] == (
        1,
        f"{prefix}process 1 of 2 waited 2 s (training.join_timeout) for the coordinator, process 0, at "
        f"localhost:{port}, which never answered{fix}",
    )
    code, err, _ = outcomes["coordinator"]
    assert code == 1 and err.startswith(f"{prefix}process 0 of 3 waited 2 s (training.join_timeout) as the coordinator")
    assert err.endswith(f"and processes 1 to 2 (one or more) never joined{fix}") and err.count("\n") == 1
    for name in waits:  # the limit, and the probe of the coordinator's address (at once when refused)
        assert outcomes[name][2] - waits[name] < JOIN_TIMEOUT + 4, name
    assert outcomes["refused"][:2] == (
        1,
        f"{prefix}KERAS_DISTRIBUTION_NUM_PROCESSES='\\u0663' is not a whole number (digits 0-9); set it to the number "
        "of processes, 1 or more, the same on every process\n",
    )


# --- a stage's launcher --------------------------------------------------------------------------------


def test_a_launcher_that_fails_is_one_line_with_its_status(tmp_path):
    stage = stage_process(tmp_path, {"CLUSTER_LAUNCHER": "false"})
    out, err = stage.communicate(timeout=60)
    assert stage.returncode == 1 and out.startswith("training: starting the stage on every process: false ")
    assert err == (
        "train_frozen: error: training.distribute: multi_host: the launcher, CLUSTER_LAUNCHER='false', failed "
        "(exit status 1); its own lines above, if any, say why\n"
    )


def test_sigterm_to_a_stage_stops_its_launcher_and_every_process(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    launcher = f"{sys.executable} -m classifier local-cluster 2 --"
    stage = stage_process(tmp_path, {"CLUSTER_LAUNCHER": launcher, "PIDS": str(pids)})
    children = started_pids(pids, 2)
    stage.terminate()
    _, err = stage.communicate(timeout=60)
    assert stage.returncode == 130
    assert err.endswith("local-cluster: interrupted (SIGTERM): stopped every process\n")
    assert interrupted_line("train_frozen") in err  # process 0's own, whose output is the launcher's
    assert not [pid for pid in children if alive(pid)]

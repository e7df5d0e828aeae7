"""classifier/models/training/cluster.py: the cluster's environment, read from explicit variables, a Kubernetes
Indexed Job's index or SLURM's task variables; refused in one line when incomplete; which process writes the
outputs; a stage in no cluster started again through the launcher. And what multi_host asks of the backend
(classifier.core.backend): JAX to train on, and the training backend known to a stage started again on
TensorFlow."""

from __future__ import annotations

import os

import pytest

from classifier.core import backend
from classifier.core.backend import backend_problem
from classifier.core.errors import StageError
from classifier.models.training import cluster, joining
from classifier.models.training.cluster import Cluster, cluster_from_environment, first_host, writes_outputs

EXPLICIT = {
    "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234",
    "KERAS_DISTRIBUTION_NUM_PROCESSES": "4",
    "KERAS_DISTRIBUTION_PROCESS_ID": "2",
}
SLURM_TASK = {
    "SLURM_JOB_ID": "12345",
    "SLURM_NTASKS": "8",
    "SLURM_PROCID": "0",
    "SLURM_STEP_NODELIST": "gpu[003-006,9],login1",
}


def test_explicit_variables_name_the_cluster():
    assert cluster_from_environment(EXPLICIT) == Cluster("10.0.0.1:1234", 4, 2, "KERAS_DISTRIBUTION_*")
    addresses = ",".join(f"10.0.0.{host}:1234" for host in range(1, 5))  # every process's, as Keras allows
    every_address = {**EXPLICIT, "KERAS_DISTRIBUTION_JOB_ADDRESSES": addresses}
    assert cluster_from_environment(every_address).coordinator == "10.0.0.1:1234"  # the first is the coordinator


def test_a_kubernetes_indexed_job_gives_the_process_id():
    env = {**EXPLICIT, "JOB_COMPLETION_INDEX": "3"}
    del env["KERAS_DISTRIBUTION_PROCESS_ID"]
    assert cluster_from_environment(env).process_id == 3


def test_a_slurm_task_names_the_first_host_and_jax_s_port_for_the_job():
    found = cluster_from_environment(SLURM_TASK)
    assert found == Cluster(f"gpu003:{12345 % 4096 + 61440}", 8, 0, "SLURM")
    assert found.coordinator == "gpu003:61497"


@pytest.mark.parametrize(
    ("node_list", "host"),
    [("node001", "node001"), ("node001,host2", "node001"), ("node[001-015],host2", "node001"), ("n[7,9-11]", "n7")],
)
def test_the_first_host_of_a_slurm_node_list(node_list, host):
    assert first_host(node_list) == host


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h:1"},
            "KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID not set",
        ),
        (
            {**EXPLICIT, "KERAS_DISTRIBUTION_PROCESS_ID": "4"},
            "KERAS_DISTRIBUTION_PROCESS_ID=4 is not below KERAS_DISTRIBUTION_NUM_PROCESSES=4: the processes' ids go "
            "from 0 to 3",
        ),
        (
            {**EXPLICIT, "KERAS_DISTRIBUTION_NUM_PROCESSES": "four"},
            "KERAS_DISTRIBUTION_NUM_PROCESSES='four' is not a whole number (digits 0-9); set it to the number of "
            "processes, 1 or more, the same on every process",
        ),
        (
            {**EXPLICIT, "KERAS_DISTRIBUTION_NUM_PROCESSES": "0", "KERAS_DISTRIBUTION_PROCESS_ID": "0"},
            "KERAS_DISTRIBUTION_NUM_PROCESSES=0: a cluster has 1 process or more",
        ),
        (
            {**EXPLICIT, "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1"},
            "KERAS_DISTRIBUTION_JOB_ADDRESSES: the address '10.0.0.1' is not host:port",
        ),
    ],
)
def test_an_incomplete_or_wrong_cluster_is_refused_in_one_line(env, named):
    message = refused(env)
    assert message.startswith("training.distribute: multi_host: ") and named in message


def refused(env: dict) -> str:
    """cluster_from_environment's one line for `env`."""
    with pytest.raises(StageError) as info:
        cluster_from_environment(env)
    message = str(info.value)
    assert "\n" not in message
    return message


# Values that are not plain ASCII numbers: letters, signs, blanks, the digits str.isdigit() takes that int()
# does not (superscripts) or that are not ASCII (Arabic-Indic, full-width), a number of 10 digits.
NOT_NUMBERS = ["abc", "-1", "+2", " 2", "2 ", "", "\u0663", "\u00b2", "\uff12", "1_0", "0x1", "1e3", "2.0", "9" * 10]


@pytest.mark.parametrize("value", [value for value in NOT_NUMBERS if value.strip()])
@pytest.mark.parametrize(
    ("name", "env", "fix"),
    [
        ("KERAS_DISTRIBUTION_NUM_PROCESSES", EXPLICIT, "set it to the number of processes"),
        ("KERAS_DISTRIBUTION_PROCESS_ID", EXPLICIT, "set it to this process's id"),
        ("SLURM_JOB_ID", SLURM_TASK, "SLURM sets it in a task of srun"),
        ("SLURM_NTASKS", SLURM_TASK, "SLURM sets it in a task of srun"),
        ("SLURM_PROCID", SLURM_TASK, "SLURM sets it in a task of srun"),
    ],
)
def test_a_cluster_number_that_is_not_plain_digits_is_refused_naming_its_variable(name, env, fix, value):
    message = refused({**env, name: value})
    assert f"{name}={ascii(value)} " in message and fix in message
    assert message.isascii()  # the value shown escaped: `\u0663`, whatever the terminal


def test_a_kubernetes_index_that_is_not_a_number_is_refused_by_its_own_name():
    env = {**EXPLICIT, "JOB_COMPLETION_INDEX": "\u0663"}
    del env["KERAS_DISTRIBUTION_PROCESS_ID"]
    message = refused(env)
    assert "JOB_COMPLETION_INDEX='\\u0663' is not a whole number (digits 0-9); Kubernetes sets it" in message
    env["JOB_COMPLETION_INDEX"] = "4"
    assert "JOB_COMPLETION_INDEX=4 is not below KERAS_DISTRIBUTION_NUM_PROCESSES=4" in refused(env)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("10.0.0.1:0", "has no port from 1 to 65535"),
        ("10.0.0.1:65536", "has no port from 1 to 65535"),
        ("10.0.0.1:99999999", "has no port from 1 to 65535"),
        ("10.0.0.1:\u0661\u0662", "has no port from 1 to 65535"),
        ("10.0.0.1:-5", "has no port from 1 to 65535"),
        ("10.0.0.1:", "has no port from 1 to 65535"),
        (":1234", "is not host:port"),
        ("h\u00f6st:1234", "is not host:port"),
        ("my host:1234", "is not host:port"),
        ("::1:1234", "is not host:port"),
    ],
)
def test_a_coordinator_address_needs_a_host_and_a_port_in_range(address, problem):
    message = refused({**EXPLICIT, "KERAS_DISTRIBUTION_JOB_ADDRESSES": address})
    assert f"KERAS_DISTRIBUTION_JOB_ADDRESSES: the address {ascii(address)} {problem}" in message


def test_good_addresses_pass_every_address_counts():
    for address in ("[::1]:1234", "node-7.cluster_a.local:65535", "10.0.0.1:1"):
        assert (
            cluster_from_environment({**EXPLICIT, "KERAS_DISTRIBUTION_JOB_ADDRESSES": address}).coordinator == address
        )
    three = {**EXPLICIT, "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:2,c:3"}  # 4 processes
    assert "names 3 addresses but KERAS_DISTRIBUTION_NUM_PROCESSES is 4" in refused(three)
    wrong_second = {**EXPLICIT, "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:2,c,d:4"}
    assert "the address 'c' is not host:port" in refused(wrong_second)


def test_a_slurm_task_s_numbers_are_checked_as_the_explicit_ones():
    assert "SLURM_PROCID=8 is not below SLURM_NTASKS=8" in refused({**SLURM_TASK, "SLURM_PROCID": "8"})
    assert "cannot read SLURM's node list SLURM_STEP_NODELIST='[1-4]'" in refused(
        {**SLURM_TASK, "SLURM_STEP_NODELIST": "[1-4]"}
    )
    leading_zeros = cluster_from_environment({**SLURM_TASK, "SLURM_NTASKS": "08", "SLURM_PROCID": "007"})
    assert (leading_zeros.processes, leading_zeros.process_id) == (8, 7)


def test_no_cluster_in_the_environment_is_none_and_one_host_always_writes():
    assert cluster_from_environment({}) is None
    batch_script = {name: value for name, value in SLURM_TASK.items() if name != "SLURM_STEP_NODELIST"}
    assert cluster_from_environment(batch_script) is None  # sbatch's script: process 0 of none yet, not a task
    assert writes_outputs("none", EXPLICIT) and writes_outputs("mirrored", EXPLICIT)
    assert not writes_outputs("multi_host", EXPLICIT)  # process 2
    assert writes_outputs("multi_host", {**EXPLICIT, "KERAS_DISTRIBUTION_PROCESS_ID": "0"})


def no_cluster(monkeypatch) -> None:
    for name in [*EXPLICIT, *SLURM_TASK, "JOB_COMPLETION_INDEX", cluster.LAUNCHER]:
        monkeypatch.delenv(name, raising=False)


def test_a_stage_in_no_cluster_without_a_launcher_is_refused_in_one_line(monkeypatch):
    no_cluster(monkeypatch)
    with pytest.raises(StageError, match=r"^training.distribute: multi_host, but this process is in no cluster: set "):
        joining.join_cluster(300)
    monkeypatch.setenv(cluster.LAUNCHER, "   ")  # blank: none
    with pytest.raises(StageError, match=r"this process is in no cluster"):
        joining.join_cluster(300)


def test_a_stage_in_a_slurm_allocation_outside_srun_is_told_to_launch_with_srun(monkeypatch):
    no_cluster(monkeypatch)
    for name in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.setenv(name, SLURM_TASK[name])
    with pytest.raises(StageError, match=r"in a SLURM allocation but not in a task of srun: set CLUSTER_LAUNCHER=srun"):
        joining.join_cluster(300)


def test_a_stage_in_no_cluster_starts_itself_again_through_the_launcher(monkeypatch, tmp_path):
    no_cluster(monkeypatch)
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(cluster.LAUNCHER, "srun --ntasks 4")
    monkeypatch.setattr(cluster.sys, "orig_argv", ["python", "-m", "stages.train_frozen"])
    started = []

    def replaced_by(file, args, env):  # os.execve never returns: the process becomes the launcher's supervisor
        started.append((file, args, env[cluster.LAUNCHER]))
        raise SystemExit(0)

    monkeypatch.setattr(cluster.os, "execve", replaced_by)
    with pytest.raises(SystemExit):
        joining.join_cluster(300)
    python = cluster.sys.executable
    launcher = ["srun", "--ntasks", "4", python, "-m", "stages.train_frozen"]
    supervisor = [python, "-m", "classifier.models.training.processes", "train_frozen", "srun --ntasks 4", "--"]
    assert started == [(python, [*supervisor, *launcher], "")]


@pytest.mark.parametrize(
    ("launcher", "message"),
    [
        (
            "srun --ntasks 'four",
            'CLUSTER_LAUNCHER="srun --ntasks \'four" is not a command line (No closing quotation); quote it as a '
            'shell would, as CLUSTER_LAUNCHER="classifier local-cluster 2 --"',
        ),
        ("srun \\", "is not a command line (No escaped character)"),
        (
            "no-such-launcher -n 2",
            "CLUSTER_LAUNCHER='no-such-launcher -n 2': no program 'no-such-launcher' (not on PATH, or not "
            "executable): install it, give its full path, or set the launcher this machine has",
        ),
        ("\u0441run", "CLUSTER_LAUNCHER='\\u0441run': no program"),  # a Cyrillic s
        ("{file} -n 2", "no program '{file}' (not on PATH, or not executable)"),
    ],
)
def test_a_launcher_that_does_not_parse_or_is_not_there_is_one_line(monkeypatch, tmp_path, launcher, message):
    no_cluster(monkeypatch)
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")  # a file, without x: not a program
    launcher = launcher.replace("{file}", str(tmp_path / "not-executable"))
    message = message.replace("{file}", str(tmp_path / "not-executable"))
    monkeypatch.setenv(cluster.LAUNCHER, launcher)
    monkeypatch.setattr(cluster.os, "execve", lambda *args: pytest.fail("started"))
    with pytest.raises(StageError) as info:
        joining.join_cluster(300)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("training.distribute: multi_host: CLUSTER_LAUNCHER=")


def test_multi_host_needs_jax_to_train_on(monkeypatch):
    monkeypatch.delenv(backend.TRAINING_BACKEND, raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    problem = backend_problem("multi_host", False, True)
    assert "training.distribute: multi_host runs on JAX's distributed runtime" in problem
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend_problem("multi_host", False, True) is None
    # export, started again on TensorFlow by a pipeline that trains on JAX, trains nothing: not refused
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv(backend.TRAINING_BACKEND, "jax")
    assert backend_problem("multi_host", False, True) is None


def test_a_stage_started_again_on_tensorflow_knows_the_backend_the_pipeline_trains_on(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setattr(backend, "_name", lambda: "jax")
    started = []

    def replaced_by(file, args, env):
        started.append((env["KERAS_BACKEND"], env[backend.TRAINING_BACKEND]))
        raise SystemExit(0)

    monkeypatch.setattr(backend.os, "execve", replaced_by)
    with pytest.raises(SystemExit):
        backend.run_on_tensorflow("export", "SavedModel and LiteRT are TensorFlow's formats")
    assert started == [("tensorflow", "jax")]

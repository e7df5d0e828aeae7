"""classifier/models/training/cluster.py: the cluster's environment, read from explicit variables, a Kubernetes
Indexed Job's index or SLURM's task variables; refused in one line when incomplete; which process writes the
outputs; a stage in no cluster started again through the launcher. And what multi_host asks of the backend
(classifier.core.backend): JAX to train on, and the training backend known to a stage started again on
TensorFlow."""

from __future__ import annotations

import pytest

from classifier.core import backend
from classifier.core.backend import backend_problem
from classifier.core.errors import StageError
from classifier.models.training import cluster
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
    every_address = {**EXPLICIT, "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:1234"}
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
        ({**EXPLICIT, "KERAS_DISTRIBUTION_PROCESS_ID": "4"}, "process id '4' of '4' processes"),
        ({**EXPLICIT, "KERAS_DISTRIBUTION_NUM_PROCESSES": "four"}, "process id '2' of 'four' processes"),
        ({**EXPLICIT, "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1"}, "the coordinator '10.0.0.1' is not host:port"),
    ],
)
def test_an_incomplete_or_wrong_cluster_is_refused_in_one_line(env, named):
    with pytest.raises(StageError) as info:
        cluster_from_environment(env)
    message = str(info.value)
    assert message.startswith("training.distribute: multi_host: ") and named in message
    assert "\n" not in message


def test_no_cluster_in_the_environment_is_none_and_one_host_always_writes():
    assert cluster_from_environment({}) is None
    batch_script = {name: value for name, value in SLURM_TASK.items() if name != "SLURM_STEP_NODELIST"}
    assert cluster_from_environment(batch_script) is None  # sbatch's script: process 0 of none yet, not a task
    assert writes_outputs("none", EXPLICIT) and writes_outputs("mirrored", EXPLICIT)
    assert not writes_outputs("multi_host", EXPLICIT)  # process 2
    assert writes_outputs("multi_host", {**EXPLICIT, "KERAS_DISTRIBUTION_PROCESS_ID": "0"})


def test_a_stage_in_no_cluster_without_a_launcher_is_refused_in_one_line(monkeypatch):
    for name in [*EXPLICIT, *SLURM_TASK, "JOB_COMPLETION_INDEX", cluster.LAUNCHER]:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(StageError, match=r"^training.distribute: multi_host, but this process is in no cluster: set "):
        cluster.join_cluster()


def test_a_stage_in_a_slurm_allocation_outside_srun_is_told_to_launch_with_srun(monkeypatch):
    for name in [*EXPLICIT, "SLURM_STEP_NODELIST", "JOB_COMPLETION_INDEX", cluster.LAUNCHER]:
        monkeypatch.delenv(name, raising=False)
    for name in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.setenv(name, SLURM_TASK[name])
    with pytest.raises(StageError, match=r"in a SLURM allocation but not in a task of srun: set CLUSTER_LAUNCHER=srun"):
        cluster.join_cluster()


def test_a_stage_in_no_cluster_starts_itself_again_through_the_launcher(monkeypatch):
    for name in [*EXPLICIT, *SLURM_TASK, "JOB_COMPLETION_INDEX"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(cluster.LAUNCHER, "srun --ntasks 4")
    monkeypatch.setattr(cluster.sys, "orig_argv", ["python", "-m", "stages.train_frozen"])
    started = []

    def replaced_by(file, args, env):  # os.execvpe never returns: the process becomes the launcher
        started.append((file, args, env[cluster.LAUNCHER]))
        raise SystemExit(0)

    monkeypatch.setattr(cluster.os, "execvpe", replaced_by)
    with pytest.raises(SystemExit):
        cluster.join_cluster()
    assert started == [("srun", ["srun", "--ntasks", "4", cluster.sys.executable, "-m", "stages.train_frozen"], "")]


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

"""End to end: DVC's promises, each as the README's workflow section runs it.

Only what a change affects reruns; a second machine pulls the results and reruns
nothing; experiments, queued sweeps and branches compare in `dvc exp show` and
`dvc metrics diff`; two runs from scratch give the same hashes; a killed training
stage resumes. Every test asserts which stages ran, from DVC's own output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from classifier.core.paths import MODEL_STAGES
from tests.support.repos import ALL_STAGES, new_tiny_repo
from tools.scratch_repo import out_hashes, set_params, stages_run

pytestmark = pytest.mark.e2e

# What a new lr reruns: fine-tuning, then what reads the fine-tuned model (explain, export) or
# the test metrics (export quotes them on its card).
AFTER_LR = ["check_params", "fine_tune", "evaluate", "explain", "export"]


# --- exact dependencies --------------------------------------------------------------------


def test_editing_docs_or_tests_reruns_nothing(tiny_repo):
    with open(tiny_repo.path / "README.md", "a") as readme:
        readme.write("\nA line a reader added.\n")
    with open(tiny_repo.path / "tests/e2e/test_dvc_workflow_e2e.py", "a") as test_file:
        test_file.write("\n# a comment in a test\n")
    try:
        assert tiny_repo.repro() == []
        assert "up to date" in tiny_repo.dvc("status").stdout
    finally:
        tiny_repo.reset()


def test_image_size_reruns_prepare_and_everything_after_it(tiny_repo):
    """prepare runs for real and its arrays change; DVC then plans every stage downstream of a changed
    output (`--dry --force-downstream`), here all but split and load_base: the ones that would train."""
    prepared = out_hashes(tiny_repo.first_lock)["data/prepared"]
    set_params(tiny_repo.path, {("data", "image_size"): 56})
    try:
        assert tiny_repo.repro("prepare") == ["prepare"]
        assert tiny_repo.lock()["stages"]["prepare"]["params"]["params.yaml"]["data.image_size"] == 56
        assert out_hashes(tiny_repo.lock())["data/prepared"] != prepared
        planned = tiny_repo.repro("--dry", "--force-downstream")
        assert set(planned) == ALL_STAGES - {"split", "load_base", "prepare"}
    finally:
        tiny_repo.reset()
    assert tiny_repo.repro() == []  # back at 48: the committed results are checked out, nothing runs


# --- repeatability -------------------------------------------------------------------------


def test_two_runs_from_scratch_give_identical_hashes_and_metrics(tiny_repo, tmp_path_factory):
    """A second copy, reproduced from nothing, matches the session's first run bit for bit."""
    again = new_tiny_repo(tmp_path_factory.mktemp("again") / "repo")
    assert set(again.repro()) == ALL_STAGES
    first, second = out_hashes(tiny_repo.first_lock), out_hashes(again.lock())
    for path in (
        "data/features",
        "models/base.keras",
        "models/feature_extraction.keras",
        "models/frozen_augmented.keras",
        "models/fine_tuned.keras",
        "models/scratch.keras",
        "models/scratch_augmented.keras",
        "metrics/evaluate.json",
    ):
        assert second[path] == first[path], path
    assert second == first  # every output, plots and pictures included
    assert (again.path / "metrics/evaluate.json").read_text() == (tiny_repo.path / "metrics/evaluate.json").read_text()


# --- branches ------------------------------------------------------------------------------


def test_metrics_diff_between_main_and_a_branch_with_another_lr(tiny_repo):
    details = tiny_repo.path / "metrics/evaluate.json"
    tiny_repo.run("git", "checkout", "-q", "-b", "higher-lr")
    try:
        set_params(tiny_repo.path, {("lr",): 1e-3})
        assert tiny_repo.repro() == AFTER_LR
        tiny_repo.commit("lr 1e-3")
        higher = json.loads(details.read_text())
        tiny_repo.run("git", "checkout", "-q", "main")
        tiny_repo.dvc("checkout")
        diff = json.loads(tiny_repo.dvc("metrics", "diff", "main", "higher-lr", "--json").stdout)
        main = json.loads(details.read_text())
    finally:
        tiny_repo.run("git", "checkout", "-q", "-f", "main")
        tiny_repo.reset()
    assert set(diff) <= {"metrics/headline.json"}  # the one DVC metric; it changes if the best model does
    assert [name for name in main if main[name] != higher[name]] in (["fine_tuned"], ["fine_tuned", "best_model"])
    params = json.loads(tiny_repo.dvc("params", "diff", "main", "higher-lr", "--json").stdout)
    lr = params["params.yaml"]["lr"]
    assert (lr["old"], lr["new"]) == (1e-5, 1e-3)


# --- two machines --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_machine(tiny_repo, tmp_path_factory):
    """The README's laptop -> GPU machine: the tiny repo pushes to a local-directory remote;
    a `git clone` of it pulls."""
    remote = tmp_path_factory.mktemp("dvc_remote")
    tiny_repo.dvc("remote", "add", "--default", "storage", str(remote))
    tiny_repo.commit("DVC remote")
    pushed = tiny_repo.dvc("push").stdout
    clone = tmp_path_factory.mktemp("second_machine") / "repo"
    tiny_repo.run("git", "clone", "-q", str(tiny_repo.path), str(clone))
    machine = type(tiny_repo)(clone)
    machine.pushed = pushed
    machine.pulled = machine.dvc("pull").stdout
    return machine


def test_a_clone_pulls_everything_and_reruns_nothing(second_machine, tiny_repo):
    assert "pushed" in second_machine.pushed and "fetched" in second_machine.pulled
    assert (second_machine.path / "data/raw/cat.0.jpg").is_file()
    assert (second_machine.path / "models/fine_tuned.keras").is_file()
    assert "up to date" in second_machine.dvc("status").stdout
    assert second_machine.repro() == []
    assert second_machine.lock() == tiny_repo.lock()


def test_an_experiment_on_the_clone_runs_only_fine_tuning_and_evaluation(second_machine):
    output = second_machine.dvc("exp", "run", "-n", "lr-3e-4", "-S", "lr=3e-4").stdout
    assert stages_run(output) == AFTER_LR
    shown = json.loads(second_machine.dvc("exp", "show", "--json").stdout)
    experiments = {exp["name"]: exp for baseline in shown for exp in (baseline.get("experiments") or [])}
    data = experiments["lr-3e-4"]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["lr"] == 3e-4
    headline = data["metrics"]["metrics/headline.json"]["data"]
    assert headline["best_model"] in MODEL_STAGES and 0 <= headline["accuracy"] <= 1


def test_a_queued_sweep_runs_each_lr_and_only_what_lr_affects(second_machine):
    second_machine.reset()
    queued = second_machine.dvc("exp", "run", "--queue", "-S", "lr=1e-4,2e-4").stdout
    assert queued.count("Queued experiment") == 2
    second_machine.dvc("queue", "start")
    deadline = time.monotonic() + 600
    while True:
        status = second_machine.dvc("queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    shown = json.loads(second_machine.dvc("exp", "show", "--json").stdout)
    queued_runs = [exp for baseline in shown for exp in (baseline.get("experiments") or []) if exp["executor"]]
    swept = {exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["lr"]: exp for exp in queued_runs}
    assert set(swept) == {1e-4, 2e-4}, status
    for exp in swept.values():
        assert exp["executor"]["state"] == "success"
        assert "metrics/headline.json" in exp["revs"][0]["data"]["metrics"]
        log = second_machine.dvc("queue", "logs", exp["name"]).stdout
        assert stages_run(log) == AFTER_LR, log[-3000:]


# --- interrupted runs ----------------------------------------------------------------------


def test_a_killed_training_stage_is_not_taken_as_done_and_resumes(tiny_repo):
    stage, epochs = "train_scratch_augmented", 40
    checkpoint = tiny_repo.path / f".dvc/tmp/checkpoints/{stage}/state.json"
    model = tiny_repo.path / "models/scratch_augmented.keras"
    set_params(tiny_repo.path, {(stage, "epochs"): epochs})
    try:
        running = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro", stage],
            cwd=tiny_repo.path,
            env=tiny_repo.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while not (checkpoint.is_file() and json.loads(checkpoint.read_text())["epoch"] >= 2):
            assert running.poll() is None, "the stage ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(running.pid, signal.SIGKILL)  # no chance to clean up: a power cut
        running.wait()
        killed_at = json.loads(checkpoint.read_text())["epoch"]
        assert 2 <= killed_at < epochs
        assert not model.exists()
        status = tiny_repo.dvc("status", stage).stdout
        assert stage in status and "deleted" in status  # its model: DVC removed it before running the stage

        output = tiny_repo.dvc("repro", stage).stdout
        assert stages_run(output) == [stage]
        assert f"resuming after epoch {killed_at}/{epochs}" in output
        assert not checkpoint.parent.exists()
        assert "up to date" in tiny_repo.dvc("status", stage).stdout
        logged = (tiny_repo.path / f"metrics/{stage}/plots/metrics/val/loss.tsv").read_text().splitlines()
        assert len(logged) == 1 + epochs
        resumed = out_hashes(tiny_repo.lock())

        # The same stage run straight through ends with the same model, byte for byte.
        output = tiny_repo.dvc("repro", "--force", "--single-item", stage).stdout
        assert stages_run(output) == [stage] and "resuming" not in output
        straight = out_hashes(tiny_repo.lock())
        assert straight["models/scratch_augmented.keras"] == resumed["models/scratch_augmented.keras"]
        assert straight[f"metrics/{stage}"] == resumed[f"metrics/{stage}"]
    finally:
        tiny_repo.reset()


# --- scaling out ---------------------------------------------------------------------------


def test_mirrored_strategy_param_trains_on_the_cpu_fallback(tiny_repo):
    set_params(tiny_repo.path, {("training", "distribute"): "mirrored"})
    try:
        output = tiny_repo.dvc("repro", "train_classifier").stdout
        assert stages_run(output) == ["train_classifier"]
        assert "MirroredStrategy with 1 replica(s)" in output
        assert "up to date" in tiny_repo.dvc("status", "train_classifier").stdout
    finally:
        tiny_repo.reset()

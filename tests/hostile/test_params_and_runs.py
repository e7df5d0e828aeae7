"""Hostile and careless params, and runs that are killed, doubled or interrupted.

Each case gets one clear line (or correct handling), never a traceback:

- params out of their real range: data.image_size 5000, lr 0, a learning rate of 2, seed 2**32;
- an unknown top-level key (`learning_rat: 1e-4`) stops `dvc repro` in its first stage, check_params,
  and so does one added with `dvc exp run -S +learning_rat=...`;
- a second run of a training stage while one runs: refused, naming the other process;
- a training stage whose parent (`dvc`) is killed stops after its next epoch, keeping its checkpoint;
- Ctrl-C (SIGINT) or SIGTERM during a stage: one line, exit status 130, no KeyboardInterrupt traceback;
- TensorFlow's start-up chatter (INFO lines, cuInit on a machine without a GPU) is not shown,
  and any other line on stderr is (the filter's own tests: tests/core/test_startup.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from classifier.core.errors import ParamsError, StageError
from classifier.core.params import load_params
from tests.support.params import write_params
from tests.support.paths import ROOT
from tests.support.stages import wait_for
from tools.scratch_repo import set_params, stages_run


@pytest.mark.parametrize(
    "keys, value, message",
    [
        (
            ("data", "image_size"),
            5000,
            "data.image_size (pixels per side; the small convnet halves it four times) "
            "must be between 16 and 1024; got 5000",
        ),
        (("lr",), 0, "lr (the fine-tuning learning rate) must be > 0 and <= 1; got 0.0"),
        (("train_frozen", "learning_rate"), 2, "train_frozen.learning_rate must be > 0 and <= 1; got 2.0"),
        (("seed",), 2**32, "seed must be between 0 and 4294967295; got 4294967296"),
        (
            ("learning_rat",),
            1e-4,
            "unknown key learning_rat (did you mean train_classifier.learning_rate or train_frozen.learning_rate "
            "or train_scratch.learning_rate or ...?)",
        ),
    ],
)
def test_impossible_params_are_one_line(tmp_path, keys, value, message):
    with pytest.raises(ParamsError) as info:
        load_params(write_params(tmp_path, {".".join(keys): value}))
    assert message in str(info.value) and "\n" not in str(info.value)


# --- runs: two at once, an orphan, Ctrl-C ---------------------------------------------------------------

# A training stage in miniature: the project's fit() on a tiny problem, slowed to ~0.4 s an epoch.
TRAINING = textwrap.dedent("""
    import sys, time
    import keras, numpy as np
    from classifier.core.startup import run_stage
    from classifier.models.training.compiling import compile_model
    from classifier.models.training.fitting import fit

    class Slow(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            print(f"epoch {epoch + 1} done", flush=True)
            time.sleep(0.4)

    def main():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
        compile_model(model, 1e-3)
        x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        y = (x[:, 0] > 0).astype("uint8")
        original = keras.Model.fit
        keras.Model.fit = lambda self, *a, callbacks=(), **k: original(self, *a, callbacks=[*callbacks, Slow()], **k)
        fit(model, "train_demo", (x, y), (x, y), epochs=200, batch_size=8, seed=0, resume=True)

    run_stage(main, "train_demo.py")
""")


def start_training(work: Path, parent: bool = False) -> subprocess.Popen:
    """The miniature stage in `work`; with `parent`, under a parent process that only waits for it."""
    script = work / "train_demo.py"
    script.write_text(TRAINING)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, str(script)]
    if parent:
        launcher = (
            f"import subprocess, sys; child = subprocess.Popen({command!r}, stdout=open('child.out', 'w'), "
            "stderr=subprocess.STDOUT); print(child.pid, flush=True); sys.exit(child.wait())"
        )
        command = [sys.executable, "-c", launcher]
    return subprocess.Popen(
        command, cwd=work, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def checkpoint_epoch(work: Path) -> int:
    state = work / ".dvc/tmp/checkpoints/train_demo/state.json"
    return json.loads(state.read_text())["epoch"] if state.is_file() else 0


def test_a_second_run_of_a_training_stage_is_refused_naming_the_first(tmp_path, monkeypatch):
    from classifier.models.training.checkpoints import only_run

    first = start_training(tmp_path)
    try:
        wait_for(lambda: checkpoint_epoch(tmp_path) >= 1, 120)
        monkeypatch.chdir(tmp_path)
        with pytest.raises(StageError) as info:
            with only_run("train_demo"):
                pass
        assert str(info.value) == (
            f"train_demo is already running in this workspace (process {first.pid}); wait for it to finish, "
            f"or stop it (`kill {first.pid}`) and run again"
        )
    finally:
        first.kill()
        first.wait()
    with only_run("train_demo"):  # the kernel released the lock with the process
        pass


def test_a_stage_whose_parent_is_killed_stops_after_its_next_epoch(tmp_path):
    parent = start_training(tmp_path, parent=True)
    child_pid = int(parent.stdout.readline())
    wait_for(lambda: checkpoint_epoch(tmp_path) >= 2, 120)
    os.kill(parent.pid, signal.SIGKILL)  # as `kill -9` of dvc alone
    parent.wait()
    wait_for(
        lambda: (
            not Path(f"/proc/{child_pid}").exists() or "Z" in Path(f"/proc/{child_pid}/stat").read_text().split()[2]
        ),
        60,
    )
    output = (tmp_path / "child.out").read_text()
    stopped = re.search(
        r"train_demo: error: the process that started this stage \(pid (\d+)\) is gone; stopped after epoch (\d+), "
        r"its checkpoint is kept, run `dvc repro` again",
        output,
    )
    assert stopped, output[-2000:]
    assert int(stopped.group(1)) == parent.pid
    assert int(stopped.group(2)) == checkpoint_epoch(tmp_path) < 200  # the checkpoint of the last epoch it ran
    assert "Traceback" not in output


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_a_stage_with_one_line(tmp_path, signum):
    stage = start_training(tmp_path)
    wait_for(lambda: checkpoint_epoch(tmp_path) >= 1, 120)
    stage.send_signal(signum)
    output, _ = stage.communicate(timeout=60)
    assert stage.returncode == 130
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    last = output.strip().splitlines()[-1]
    assert last.startswith("train_demo: interrupted; nothing of this run is recorded as done")
    assert checkpoint_epoch(tmp_path) >= 1  # what resuming needs is still there


# --- TensorFlow's start-up log ---------------------------------------------------------------------------


def test_a_stage_shows_its_own_lines_and_not_tensorflows_start_up(tmp_path):
    """`classifier predict` imports TensorFlow and fails on a model that is not there: only its own line is shown."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TF_CPP_MIN_LOG_LEVEL", "PIPELINE_STDERR_FILTERED")
    }
    result = subprocess.run(
        [sys.executable, "-m", "classifier", "predict", str(tmp_path), "--model", str(tmp_path / "absent.keras")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"predict: error: --model {tmp_path / 'absent.keras'} is not a file"]


# --- an unknown key in a real `dvc repro` ------------------------------------------------------------------


@pytest.mark.e2e
def test_an_unknown_key_stops_dvc_repro_and_dvc_exp_run_in_their_first_stage(tiny_repo):
    set_params(tiny_repo.path, {("learning_rat",): 1e-4})
    try:
        result = tiny_repo.dvc("repro", check=False)
        assert result.returncode != 0
        assert stages_run(result.stdout) == ["check_params"]
        assert (
            "check_params: error: params.yaml: unknown key learning_rat (did you mean" in result.stderr + result.stdout
        )
    finally:
        tiny_repo.reset()
    result = tiny_repo.dvc("exp", "run", "-n", "typo", "-S", "+learning_rat=1e-4", check=False)
    try:
        assert result.returncode != 0 and stages_run(result.stdout) == ["check_params"]
        assert "unknown key learning_rat" in result.stderr + result.stdout
        assert "typo" not in tiny_repo.dvc("exp", "list").stdout  # not counted as an experiment
    finally:
        tiny_repo.reset()

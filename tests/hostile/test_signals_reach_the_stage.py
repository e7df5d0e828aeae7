"""Signals to a stage's whole process group, as Ctrl-C in a terminal sends SIGINT and a queue or `kill -TERM -<pgid>`
sends SIGTERM: they reach the stage and every process it started, TensorFlow's stderr filter included, which used
to die first and take the stage's last line with it (a KeyboardInterrupt traceback and exit 1, or no line at all).
Each case ends with `<stage>: interrupted; ...` as the last line on stderr, exit status 130 for either signal, no
traceback, and no process of the group left.

 1. Ctrl-C or SIGTERM to the group while the stage still imports TensorFlow -> the interrupted line alone, 130
 2. Ctrl-C, then SIGTERM at once (a terminal, then the queue)                -> the line once, 130
 3. Ctrl-C to the group in the middle of training                          -> the line last, 130, the checkpoint
                                                                               of the last finished epoch kept
 4. the filter itself, signalled with its process: it ignores both signals,
    passes every later line and ends when its input closes                  -> every line shown, in order
 5. the signal landing in a garbage collector's callback, where Python
    ignores exceptions (JAX installs one)                                   -> raised again: the run still stops
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier.core.startup import interrupted_line
from tests.support.paths import ROOT
from tests.support.signals import group_members, start_in_group
from tests.support.stages import wait_for


def ended(stage: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    """The stage's stdout and stderr once it has ended, and once no process of its group is left."""
    try:
        out, err = stage.communicate(timeout=timeout)
    finally:
        if stage.poll() is None:
            os.killpg(stage.pid, signal.SIGKILL)
            stage.wait()
    wait_for(lambda: not group_members(stage.pid), 10)
    return out, err


# --- 1-2: while TensorFlow is imported --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGTERM]], ids=["INT", "TERM", "INT-TERM"]
)
def test_a_signal_to_the_group_while_tensorflow_is_imported(tmp_path, signals):
    work = tmp_path / "work"
    work.mkdir()
    stage = start_in_group(["python", "-m", "stages.load_base"], work, hold=60)
    wait_for((tmp_path / "keras_imported").exists)  # the filter has started: it comes before Keras
    assert len(group_members(stage.pid)) == 2  # the stage and its stderr filter
    for signum in signals:
        os.killpg(stage.pid, signum)
    out, err = ended(stage)
    assert stage.returncode == 130, err
    assert err == interrupted_line("load_base") + "\n"
    assert out == ""


# --- 3: in the middle of training -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features_work(tmp_path_factory) -> Path:
    """The tiny features workspace (tests/support/features.py), train_classifier set to 1000 epochs."""
    from stages import extract_features
    from tests.support.features import features_workspace

    folder = tmp_path_factory.mktemp("features") / "work"
    folder.mkdir()
    here = Path.cwd()
    os.chdir(folder)
    try:
        features_workspace(folder)
        extract_features.main()
    finally:
        os.chdir(here)
    params = folder / "params.yaml"
    params.write_text(
        params.read_text().replace("train_classifier:\n  epochs: 1\n", "train_classifier:\n  epochs: 1000\n")
    )
    assert "epochs: 1000" in params.read_text()
    return folder


def epoch_done(work: Path) -> int:
    state = work / ".dvc/tmp/checkpoints/train_classifier/state.json"
    try:
        return json.loads(state.read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def test_ctrl_c_to_the_group_in_the_middle_of_training(tmp_path, features_work):
    """Ctrl-C: SIGTERM takes the same way once training runs (both raise KeyboardInterrupt in the stage)."""
    work = tmp_path / "work"
    shutil.copytree(features_work, work)
    stage = start_in_group(["python", "-m", "stages.train_classifier"], work, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        wait_for(lambda: epoch_done(work) >= 1, 120)
    finally:
        os.killpg(stage.pid, signal.SIGINT)
    out, err = ended(stage)
    assert stage.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.splitlines()[-1] == interrupted_line("train_classifier")
    assert "Epoch 2/1000" in out
    assert epoch_done(work) >= 1  # what resuming needs is kept
    assert not (work / "models/feature_extraction.keras").exists()


# --- 4-5: the filter, and a signal where Python ignores exceptions ----------------------------------------------

FILTERED = """
import os, signal, sys, time
from classifier.core.startup import quiet_tensorflow_startup

quiet_tensorflow_startup()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # this process lives on: only the filter is tested
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("before", file=sys.stderr, flush=True)
print("ready", flush=True)
sys.stdin.readline()  # the test has signalled the group
for line in ("after SIGINT and SIGTERM", "I0000 00:00:1.0 1 port.cc:153] chatter", "the last line"):
    os.write(2, (line + "\\n").encode())
"""


def test_the_filter_ignores_the_signals_and_ends_with_its_input(tmp_path):
    (tmp_path / "work").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", FILTERED],
        cwd=ROOT,
        env={key: value for key, value in os.environ.items() if key != "PIPELINE_STDERR_FILTERED"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    assert process.stdout.readline() == "ready\n"
    os.killpg(process.pid, signal.SIGINT)
    os.killpg(process.pid, signal.SIGTERM)
    time.sleep(0.2)  # time for a filter that would die of them
    out, err = ended(process)
    assert process.returncode == 0, err
    assert err.splitlines() == ["before", "after SIGINT and SIGTERM", "the last line"]


SWALLOWED = """
import gc, os, signal, sys, time
from classifier.core.startup import run

def main():
    calls = []

    def callback(phase, info):  # as JAX's: Python run by the garbage collector, which ignores its exceptions
        calls.append(phase)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # the signal is handled here, in the callback

    gc.callbacks.append(callback)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.005)
    print("went on to the end", flush=True)

sys.exit(run(main, "demo", "demo: interrupted"))
"""


def test_a_signal_in_a_garbage_collector_s_callback_still_stops_the_run():
    result = subprocess.run([sys.executable, "-c", SWALLOWED], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 130, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == "demo: interrupted\n"

"""Tracebacks left at a stage's or a command's edges, and silent stops: one line each, or correct handling.

Stage processes are started as DVC starts them (`python -m stages.<stage>`), with a sitecustomize
(HOOK, on PYTHONPATH) that notes when Keras is first imported, can hold that import for a while (as
TensorFlow's import takes seconds), and can hide installed packages (as on a machine without them).

The backend, checked by every stage before Keras is imported (check_params' own check of it:
tests/stages/test_check_params.py)
 1. KERAS_BACKEND=bogus or numpy, params unchanged (so check_params does not run) -> one line, exit 1, Keras
                                                                                    never imported
 2. KERAS_BACKEND=torch or jax where that package is not installed                 -> one line naming what to
                                                                                    install, Keras never imported
Tracebacks
 3. `classifier predict DIR --csv | head -2` (a reader that closes early)          -> quiet, exit 141 (SIGPIPE's)
 4. params.yaml not UTF-8, not YAML, not a mapping, or empty                      -> one line naming the file
                                                                                    and the fix
 5. a training stage in a git repository without a commit (dvclive reads HEAD)    -> it trains and logs
Silent stops
 6. SIGTERM or Ctrl-C while a stage still imports TensorFlow                      -> `<stage>: interrupted; ...`,
                                                                                    exit 130

The doors a base file could leave open: tests/hostile/test_base_files.py. Every model here is tiny and
built in the test; nothing is downloaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from classifier.core.errors import ParamsError
from classifier.core.params import load_params
from classifier.models import saving
from classifier.models.training.compiling import compile_model
from classifier.models.training.fitting import fit
from tests.support.paths import ROOT
from tests.support.stages import wait_for

SIZE = 16

HOOK = """
import importlib.abc, importlib.machinery, os, sys, time

HIDDEN = tuple(filter(None, os.environ.get("HOOK_HIDDEN", "").split(",")))
_find_spec = importlib.machinery.PathFinder.find_spec


def _find_spec_hiding(cls, fullname, path=None, target=None):
    if fullname.split(".")[0] in HIDDEN:
        return None
    return _find_spec(fullname, path, target)


importlib.machinery.PathFinder.find_spec = classmethod(_find_spec_hiding)


class WatchKeras(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "keras":
            sys.meta_path.remove(self)
            open(os.environ["HOOK_MARK"], "w").close()
            time.sleep(float(os.environ.get("HOOK_HOLD", "0")))
        return None


sys.meta_path.insert(0, WatchKeras())
"""


def start_stage(tmp_path: Path, stage: str, *args: str, hold: float = 0, hidden=(), **env) -> subprocess.Popen:
    """`python -m stages.<stage>` in tmp_path/work, with HOOK: Keras' import noted in tmp_path/keras_imported."""
    (tmp_path / "hook").mkdir(exist_ok=True)
    (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "hook"), str(ROOT)]),
        "HOOK_MARK": str(tmp_path / "keras_imported"),
        "HOOK_HOLD": str(hold),
        "HOOK_HIDDEN": ",".join(hidden),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_BACKEND": "tensorflow",
        **env,
    }
    environment.pop("PIPELINE_STDERR_FILTERED", None)
    return subprocess.Popen(
        [sys.executable, "-m", f"stages.{stage}", *args],
        cwd=work,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- 1-2: the backend ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["bogus", "numpy"])
def test_a_backend_the_stages_cannot_run_on_is_one_line_before_keras(tmp_path, backend):
    stage = start_stage(tmp_path, "train_frozen", KERAS_BACKEND=backend)
    out, err = stage.communicate(timeout=120)
    assert stage.returncode == 1, err
    assert err == (
        f"train_frozen: error: KERAS_BACKEND={backend} cannot train these models; use one of tensorflow, jax, torch\n"
    )
    assert not (tmp_path / "keras_imported").exists()


@pytest.mark.parametrize("backend, hidden", [("torch", ("torch",)), ("jax", ("jax", "jaxlib"))])
def test_a_backend_not_installed_is_one_line_before_keras(tmp_path, backend, hidden):
    stage = start_stage(tmp_path, "load_base", KERAS_BACKEND=backend, hidden=hidden)
    out, err = stage.communicate(timeout=120)
    assert stage.returncode == 1, err
    assert err == (
        f"load_base: error: KERAS_BACKEND={backend}, but {backend} is not installed here: "
        f"pip install -r requirements-{backend}.txt, or run with KERAS_BACKEND=tensorflow\n"
    )
    assert not (tmp_path / "keras_imported").exists()


# --- 3: predict into a closed pipe ----------------------------------------------------------------------------


def test_predict_into_a_pipe_closed_early_exits_quietly(tmp_path):
    keras.utils.set_random_seed(0)
    pixels = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(keras.layers.Rescaling(1 / 255)(pixels)))
    model = keras.Model(pixels, keras.layers.Dense(2, activation="softmax")(x))
    saving.save_model(model, tmp_path / "classifier.keras", ["cat", "dog"])
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):
        Image.fromarray(np.full((20, 20, 3), 60 * index, np.uint8)).save(photos / f"{index}.png")
    reader, writer = os.pipe()
    os.close(reader)  # as `| head -2` once it has its lines
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    environment.pop("PIPELINE_STDERR_FILTERED", None)
    model_file = str(tmp_path / "classifier.keras")
    command = [sys.executable, "-m", "classifier", "predict", str(photos), "--csv", "--model", model_file]
    result = subprocess.run(command, cwd=tmp_path, env=environment, stdout=writer, stderr=subprocess.PIPE, text=True)
    os.close(writer)
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr


# --- 4: params.yaml that is not a mapping of keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "seed: 0\ndata:\n  raw_dir: donn\xe9es\n".encode("latin-1"),
            "params.yaml is not UTF-8 text (byte 0xe9 on line 3); save it as UTF-8 (iconv -f latin1 -t utf-8), "
            "or restore it: git checkout params.yaml",
        ),
        (
            b"seed: 0\ndata: [raw_dir: x\n",
            "params.yaml is not valid YAML on line 3, column 1: expected ',' or ']', but got '<stream end>'; fix it "
            "there, or restore it: git checkout params.yaml",
        ),
        (
            b"- seed\n- data\n",
            "params.yaml holds a list (['seed', 'data']): the top level must be a mapping of sections "
            "(seed: ..., data: ...); restore it: git checkout params.yaml",
        ),
        (
            b"",
            "params.yaml holds nothing: the top level must be a mapping of sections (seed: ..., data: ...); "
            "restore it: git checkout params.yaml",
        ),
    ],
    ids=["latin-1", "unclosed list", "a list", "empty"],
)
def test_a_params_file_that_is_not_a_mapping_is_one_line(tmp_path, monkeypatch, content, message):
    (tmp_path / "params.yaml").write_bytes(content)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError) as info:
        load_params()
    assert str(info.value) == message


# --- 5: dvclive in a git repository without a commit -------------------------------------------------------------


def test_a_training_stage_trains_in_a_git_repository_without_a_commit(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    compile_model(model, 1e-3)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("uint8")
    summary = fit(model, "train_demo", (x, y), (x, y), epochs=2, batch_size=8, seed=0, resume=False)
    assert summary["epochs_run"] == 2
    assert (tmp_path / "metrics/train_demo/metrics.json").is_file()
    assert (tmp_path / "metrics/train_demo/plots/metrics/val/loss.tsv").read_text().count("\n") == 3


# --- 6: a signal while TensorFlow is imported --------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_a_stage_imports_tensorflow_is_one_line(tmp_path, signum):
    stage = start_stage(tmp_path, "load_base", hold=120)
    try:
        wait_for((tmp_path / "keras_imported").exists)  # held there, as in TensorFlow's seconds of import
        stage.send_signal(signum)
        out, err = stage.communicate(timeout=60)
    finally:
        stage.kill()
    assert stage.returncode == 130, err
    assert err == (
        "load_base: interrupted; nothing of this run is recorded as done: `dvc repro` runs it again "
        "(a training stage resumes after its last finished epoch)\n"
    )

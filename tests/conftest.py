"""Shared fixtures: a copy of this repository as a fresh git + DVC repo, on real shared images."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

# The scratch-repository builder is shared with the benchmarks; tests import it from here.
from tools.scratch_repo import (  # noqa: F401
    GIT_IDENTITY,
    TINY_PARAMS,
    Repo,
    kaggle_images,
    make_repo,
    out_hashes,
    project_files,
    set_params,
    stages_run,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMAGES = ROOT.parent / "shared/datasets/dogs-vs-cats/train"
SHARED_CIFAR10 = ROOT.parent / "shared/datasets/cifar10"

RAW_IMAGES_PER_CLASS = 24
ALL_STAGES = {
    "check_params",
    "split",
    "prepare",
    "load_base",
    "extract_features",
    "train_classifier",
    "train_frozen",
    "fine_tune",
    "train_scratch",
    "train_scratch_augmented",
    "evaluate",
    "explain",
    "export",
}


# Loads .keras files with plain Keras in a process that never imports this project (-I: no
# script folder or PYTHONPATH on sys.path; run from a folder without it), and prints each
# model's outputs on the pixels given as a .npy file.
STOCK_KERAS = """
import json, sys
import keras, numpy as np
pixels = np.load(sys.argv[1]).astype("float32")
outputs = {path: keras.models.load_model(path).predict(pixels, verbose=0).tolist() for path in sys.argv[2:]}
outputs["backend"] = keras.backend.backend()
assert not [name for name in sys.modules if name.split(".")[0] == "stages"], "the project was imported"
print(json.dumps(outputs))
"""


def stock_keras_outputs(
    model_paths: list[Path], pixels: np.ndarray, folder: Path, backend: str = "tensorflow"
) -> dict[str, np.ndarray]:
    """{path: outputs} of each model, loaded by stock Keras in safe mode on `backend`, in a process
    without this project."""
    np.save(folder / "pixels.npy", pixels)
    paths = [str(Path(path).resolve()) for path in model_paths]
    result = subprocess.run(
        [sys.executable, "-I", "-c", STOCK_KERAS, str(folder / "pixels.npy"), *paths],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": backend},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.splitlines()[-1])
    assert outputs["backend"] == backend
    return {str(path): np.array(outputs[str(Path(path).resolve())], np.float32) for path in model_paths}


copy_kaggle_images = kaggle_images(SHARED_IMAGES, RAW_IMAGES_PER_CLASS)  # fill_raw for the tiny repos


@pytest.fixture
def op_determinism_off():
    """Op determinism is process-wide (set_seed turns it on, and set_seed(deterministic=False)
    leaves it as it is; a stage is one process) and Keras refuses jit_compile=True under it:
    turn it off for the test, then back to how it was."""
    from tensorflow.python.framework import config as tf_config  # disable_op_determinism is not public

    was_on = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was_on:
        tf_config.enable_op_determinism()


OBSERVE = ROOT / "tests/observe"  # its sitecustomize logs what each stage process touches


@contextlib.contextmanager
def observed(repo: Repo, logs: Path):
    """Stage processes run in `repo` inside this log what they touch into `logs` (tests/observe)."""
    logs.mkdir(parents=True, exist_ok=True)
    saved = {name: repo.env.get(name) for name in ("PYTHONPATH", "OBSERVE_DIR")}
    repo.env.update(PYTHONPATH=str(OBSERVE), OBSERVE_DIR=str(logs))
    try:
        yield logs
    finally:
        for name, value in saved.items():
            if value is None:
                repo.env.pop(name, None)
            else:
                repo.env[name] = value


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory) -> Path:
    """The project on 24 real images per class, reproduced once per test run and committed on branch
    main, in `<folder>/repo`; what each stage touched in that run is logged in `<folder>/observed`
    (tests/e2e/test_dvc_deps_e2e.py reads them). Under pytest-xdist (`make test` runs two workers)
    the workers share one build: the first to need it builds it, the others wait for it."""
    worker_base = tmp_path_factory.getbasetemp()
    shared = worker_base.parent if os.environ.get("PYTEST_XDIST_WORKER") else worker_base
    folder = shared / "tiny_build"
    with open(shared / "tiny_build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "first_run.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            repo = new_tiny_repo(folder / "repo")
            with observed(repo, folder / "observed"):
                ran = repo.repro()
            repo.commit("tiny run")
            (folder / "first_run.json").write_text(json.dumps({"ran": ran}))
    return folder


@pytest.fixture(scope="session")
def tiny_repo(tiny_build, tmp_path_factory) -> Repo:
    """This worker's copy of the tiny build (a second or so): its own git, DVC cache and outputs.
    Tests that change it put it back with `reset()`."""
    path = tmp_path_factory.mktemp("tiny") / "repo"
    shutil.copytree(tiny_build / "repo", path, symlinks=True)
    repo = Repo(path)
    repo.ran_first = json.loads((tiny_build / "first_run.json").read_text())["ran"]
    repo.first_lock = yaml.safe_load((tiny_build / "repo/dvc.lock").read_text())
    repo.observed_logs = tiny_build / "observed"
    return repo


def new_tiny_repo(path: Path) -> Repo:
    """A new copy of the project in `path` with the tiny params and images, not yet reproduced."""
    if not (SHARED_IMAGES / "cat.0.jpg").is_file():
        pytest.skip(f"needs the shared Kaggle images at {SHARED_IMAGES}")
    path.mkdir(parents=True)
    return make_repo(path, TINY_PARAMS, copy_kaggle_images)


def batchnorm_base():
    """A tiny convolutional base for the BatchNormalization tests: early_conv, early_bn, top_conv,
    top_bn (4 filters each), 16 px in, a 12x12x4 feature map out."""
    import keras  # here: most tests never build a model

    pixels = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, name="early_conv")(pixels)
    x = keras.layers.BatchNormalization(name="early_bn")(x)
    x = keras.layers.Conv2D(4, 3, name="top_conv")(x)
    x = keras.layers.BatchNormalization(name="top_bn")(x)
    return keras.Model(pixels, x, name="tiny_base")


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


# The hostile-input tests' workspace (the current folder) and the raw data folder beside it.
@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The workspace (the current folder); nested zips are copied out under tmp_path/scratch."""
    workspace, scratch = tmp_path / "work", tmp_path / "scratch"
    workspace.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return workspace


@pytest.fixture
def raw(tmp_path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    return folder

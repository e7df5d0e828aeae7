"""Shared fixtures: a copy of this repository as a fresh git + DVC repo, on real shared images."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
def tiny_repo(tmp_path_factory) -> Repo:
    """The project on 24 real images per class, reproduced once for the whole session and
    committed on branch main; what each stage touched in that run is logged in `observed_logs`
    (tests/e2e/test_dvc_deps_e2e.py reads them). Tests that change it put it back with `reset()`."""
    repo = new_tiny_repo(tmp_path_factory)
    with observed(repo, tmp_path_factory.mktemp("observed")) as logs:
        repo.ran_first = repo.repro()
    repo.observed_logs = logs
    repo.first_lock = repo.lock()
    repo.commit("tiny run")
    return repo


def new_tiny_repo(tmp_path_factory) -> Repo:
    if not (SHARED_IMAGES / "cat.0.jpg").is_file():
        pytest.skip(f"needs the shared Kaggle images at {SHARED_IMAGES}")
    return make_repo(tmp_path_factory.mktemp("tiny_repo"), TINY_PARAMS, copy_kaggle_images)

"""Shared fixtures: a copy of this repository as a fresh git + DVC repo, on real shared images."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMAGES = ROOT.parent / "shared/datasets/dogs-vs-cats/train"
SHARED_CIFAR10 = ROOT.parent / "shared/datasets/cifar10"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "pipeline tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "pipeline tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}

# Small enough for CI on 2 cores, real enough to run every stage: 12/6/6 images
# per class at 48x48, VGG16 with random weights, a couple of epochs each.
TINY_PARAMS = {
    ("data", "image_size"): 48,
    ("data", "split", "train"): [0, 12],
    ("data", "split", "validation"): [12, 18],
    ("data", "split", "test"): [18, 24],
    ("base", "weights"): None,
    ("extract_features", "batch_size"): 8,
    ("train_classifier", "epochs"): 2,
    ("train_frozen", "epochs"): 2,
    ("fine_tune", "epochs"): 2,
    ("train_scratch", "epochs"): 1,
    ("train_scratch_augmented", "epochs"): 1,
    ("train_classifier", "batch_size"): 8,
    ("train_frozen", "batch_size"): 8,
    ("fine_tune", "batch_size"): 8,
    ("train_scratch", "batch_size"): 8,
    ("train_scratch_augmented", "batch_size"): 8,
    ("explain", "filter_steps"): 2,
}
RAW_IMAGES_PER_CLASS = 24
ALL_STAGES = {
    "check_params", "split", "prepare", "load_base", "extract_features", "train_classifier",
    "train_frozen", "fine_tune", "train_scratch", "train_scratch_augmented", "evaluate", "explain", "export",
}


# Loads .keras files with plain Keras in a process that never imports this project (-I: no
# script folder or PYTHONPATH on sys.path; run from a folder without it), and prints each
# model's outputs on the pixels given as a .npy file.
STOCK_KERAS = """
import json, sys
import keras, numpy as np
pixels = np.load(sys.argv[1]).astype("float32")
outputs = {path: keras.models.load_model(path).predict(pixels, verbose=0).tolist() for path in sys.argv[2:]}
assert not [name for name in sys.modules if name.split(".")[0] == "stages"], "the project was imported"
print(json.dumps(outputs))
"""


def stock_keras_outputs(model_paths: list[Path], pixels: np.ndarray, folder: Path) -> dict[str, np.ndarray]:
    """{path: outputs} of each model, loaded by stock Keras in safe mode, in a process without this project."""
    np.save(folder / "pixels.npy", pixels)
    paths = [str(Path(path).resolve()) for path in model_paths]
    result = subprocess.run(
        [sys.executable, "-I", "-c", STOCK_KERAS, str(folder / "pixels.npy"), *paths],
        cwd=folder, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.splitlines()[-1])
    return {str(path): np.array(outputs[str(Path(path).resolve())], np.float32) for path in model_paths}


def project_files() -> list[str]:
    """What a clone would hold: tracked files plus new files git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()
    return [name for name in listed if (ROOT / name).is_file()]


def set_params(repo: Path, changes: dict) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for keys, value in changes.items():
        section = params
        for key in keys[:-1]:
            section = section[key]
        section[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


class Repo:
    """A temporary copy of the project with its own git history and DVC cache."""

    def __init__(self, path: Path):
        self.path = path
        self.env = {**os.environ, **GIT_IDENTITY, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(command, cwd=self.path, env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def repro(self, *args: str) -> list[str]:
        """Run `dvc repro`; return the names of the stages that actually ran."""
        return stages_run(self.dvc("repro", *args).stdout)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    def reset(self) -> None:
        """Back to the last commit: git files, and the DVC outputs its dvc.lock names."""
        self.run("git", "reset", "-q", "--hard")
        self.dvc("checkout", "--force")

    def lock(self) -> dict:
        return yaml.safe_load((self.path / "dvc.lock").read_text())


def stages_run(dvc_output: str) -> list[str]:
    """The stages DVC ran (not those it skipped or restored from its run cache), in order."""
    return re.findall(r"Running stage '([^']+)'", dvc_output)


def out_hashes(lock: dict) -> dict[str, str]:
    """{out path: md5} for every stage output in a dvc.lock."""
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def copy_kaggle_images(raw: Path) -> None:
    for label in ("cat", "dog"):
        for index in range(RAW_IMAGES_PER_CLASS):
            shutil.copy2(SHARED_IMAGES / f"{label}.{index}.jpg", raw)


def make_repo(path: Path, params: dict, fill_raw=copy_kaggle_images) -> Repo:
    """The project copied to `path` with its own git and DVC; `fill_raw(data/raw)` puts the images in."""
    for name in project_files():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    raw = path / "data/raw"
    raw.mkdir(parents=True)
    fill_raw(raw)
    set_params(path, params)
    repo = Repo(path)
    repo.run("git", "init", "-q", "-b", "main")
    repo.dvc("add", "data/raw")  # as the README says: the raw images are DVC's, data/raw.dvc is git's
    repo.commit("project copy for tests")
    return repo


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


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Repo:
    """The project on 24 real images per class, reproduced once for the whole session and
    committed on branch main. Tests that change it put it back with `reset()`."""
    repo = new_tiny_repo(tmp_path_factory)
    repo.ran_first = repo.repro()
    repo.first_lock = repo.lock()
    repo.commit("tiny run")
    return repo


def new_tiny_repo(tmp_path_factory) -> Repo:
    if not (SHARED_IMAGES / "cat.0.jpg").is_file():
        pytest.skip(f"needs the shared Kaggle images at {SHARED_IMAGES}")
    return make_repo(tmp_path_factory.mktemp("tiny_repo"), TINY_PARAMS)

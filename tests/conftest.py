"""The tests' fixtures: the tiny pipeline built once per run and each worker's copy of it, a workspace
to run a stage in, the repository's params and VGG16 with random weights, and TensorFlow's op
determinism switched off for a test. Helpers: tests/support."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT
from tests.support.repos import new_tiny_repo, observed
from tools.scratch_repo import Repo


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


@pytest.fixture(scope="module")
def params():
    """The repository's params.yaml, loaded."""
    from classifier.core.params import load_params

    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def vgg16(params):
    """VGG16's convolutional base, random weights (nothing downloaded)."""
    from classifier.models.bases import build_base  # here: it imports Keras, which most tests never need

    return build_base(params.base.model_copy(update={"weights": None}))[0]


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


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The workspace, tmp_path/work, as the current folder; the temporary folder (where nested zips are
    copied out) is tmp_path/scratch, so that a test can see what is left there."""
    workspace, scratch = tmp_path / "work", tmp_path / "scratch"
    workspace.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return workspace


@pytest.fixture
def raw(tmp_path) -> Path:
    """tmp_path/raw, beside the workspace: a raw data folder."""
    folder = tmp_path / "raw"
    folder.mkdir()
    return folder

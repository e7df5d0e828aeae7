"""End to end on JAX: `KERAS_BACKEND=jax dvc repro` in a temporary git repo, first where TensorFlow
is not installed (every stage but export runs; export says what it needs in one line), then with it
(only export runs, on TensorFlow). The models JAX trained predict the same under TensorFlow. Last,
`training.distribute: multi_host`: DVC runs two training stages on two local processes of one
cluster (classifier local-cluster), which train the models that one process trained."""

from __future__ import annotations

import json
import sys

import keras
import numpy as np
import pytest

from classifier.core.paths import MODEL_STAGES
from classifier.intake.prepared.arrays import load_prepared
from tests.support.models import stock_keras_outputs
from tests.support.paths import ROOT
from tests.support.repos import ALL_STAGES, new_tiny_repo
from tools.scratch_repo import set_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def jax_repo(tmp_path_factory):
    repo = new_tiny_repo(tmp_path_factory.mktemp("jax_repo") / "repo")  # the tiny params and images
    repo.env["KERAS_BACKEND"] = "jax"
    return repo


def test_jax_runs_every_stage_without_tensorflow_then_export_with_it(jax_repo, tmp_path):
    jax_repo.env["PYTHONPATH"] = str(ROOT / "tests/no_tensorflow")  # as on a machine with JAX only
    without = jax_repo.dvc("repro", check=False)
    assert without.returncode != 0
    ran = set(stages_started(without.stdout))
    assert ran == ALL_STAGES, ran
    assert "export: error: SavedModel and LiteRT are TensorFlow's formats" in without.stderr
    assert "TensorFlow is not installed here: pip install tensorflow==2.21.0" in without.stderr
    assert "Traceback" not in without.stderr
    assert json.loads((jax_repo.path / "metrics/evaluate.json").read_text()).keys() == {*MODEL_STAGES, "best_model"}
    assert (jax_repo.path / "metrics/explain/gradcam.png").is_file()
    assert not (jax_repo.path / "models/export").exists()

    del jax_repo.env["PYTHONPATH"]
    result = jax_repo.dvc("repro")
    assert stages_started(result.stdout) == ["export"]
    assert "running this stage on TensorFlow, not jax" in result.stdout
    assert (jax_repo.path / "models/export/model.tflite").is_file()
    assert "up to date" in jax_repo.dvc("status").stdout

    pixels = load_prepared("test", jax_repo.path / "data/prepared")[0][:6].astype(np.float32)
    paths = [jax_repo.path / f"models/{name}.keras" for name in MODEL_STAGES]
    on_jax = stock_keras_outputs(paths, pixels, tmp_path, backend="jax")
    on_tensorflow = stock_keras_outputs(paths, pixels, tmp_path, backend="tensorflow")
    for path in paths:
        np.testing.assert_allclose(on_tensorflow[str(path)], on_jax[str(path)], rtol=1e-4, atol=1e-5, err_msg=path.name)


# Keras' note as a model trained on JAX (which compiles always) is loaded here, under TensorFlow's op determinism.
@pytest.mark.filterwarnings("ignore:Model doesn't support `jit_compile=True`")
def test_dvc_runs_a_multi_host_stage_on_every_process_of_a_local_cluster_as_one_process_would(jax_repo):
    stages = ("train_classifier", "train_frozen")
    one = {stage: trained(jax_repo, stage) for stage in stages}  # trained above, one process
    set_params(jax_repo.path, {("training", "distribute"): "multi_host"})
    jax_repo.env["CLUSTER_LAUNCHER"] = f"{sys.executable} -m classifier local-cluster 2 --"
    result = jax_repo.dvc("repro", *stages)
    assert set(stages_started(result.stdout)) >= set(stages)
    assert result.stdout.count("-m classifier local-cluster 2 -- ") == 2  # each stage started again on 2 processes
    for stage in stages:
        assert f"{stage}: process 0 of 2 reads 4 rows of every batch" in result.stdout
        (weights, summary, steps), (their_weights, their_summary, their_steps) = one[stage], trained(jax_repo, stage)
        assert summary["epochs_run"] == their_summary["epochs_run"] and steps == their_steps
        for ours, theirs in zip(weights, their_weights, strict=True):
            np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert "up to date" in jax_repo.dvc("status", *stages).stdout  # one set of outputs, as DVC recorded it


def trained(repo, stage: str) -> tuple[list[np.ndarray], dict, int]:
    """(the weights of the model the stage trained, its metrics.json, its dvclive steps)."""
    name = next(name for name, trains in MODEL_STAGES.items() if trains == stage)
    folder = repo.path / "metrics" / stage
    steps = len((folder / "plots/metrics/train/loss.tsv").read_text().splitlines()) - 1
    summary = json.loads((folder / "metrics.json").read_text())
    weights = keras.saving.load_model(repo.path / f"models/{name}.keras", compile=False).get_weights()
    return weights, summary, steps


def stages_started(dvc_output: str) -> list[str]:
    """Every stage DVC started, whether it finished or not."""
    return [line.split("'")[1] for line in dvc_output.splitlines() if line.startswith("Running stage '")]

"""End to end on JAX: `KERAS_BACKEND=jax dvc repro` in a temporary git repo, first where TensorFlow
is not installed (every stage but export runs; export says what it needs in one line), then with it
(only export runs, on TensorFlow). The models JAX trained predict the same under TensorFlow."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ALL_STAGES, ROOT, SHARED_IMAGES, TINY_PARAMS, copy_kaggle_images, make_repo, stock_keras_outputs

from classifier.core.layout import MODEL_STAGES

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def jax_repo(tmp_path_factory):
    if not (SHARED_IMAGES / "cat.0.jpg").is_file():
        pytest.skip(f"needs the shared Kaggle images at {SHARED_IMAGES}")
    repo = make_repo(tmp_path_factory.mktemp("jax_repo"), TINY_PARAMS, copy_kaggle_images)
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

    pixels = np.load(jax_repo.path / "data/prepared/test_images.npy")[:6].astype(np.float32)
    paths = [jax_repo.path / f"models/{name}.keras" for name in MODEL_STAGES]
    on_jax = stock_keras_outputs(paths, pixels, tmp_path, backend="jax")
    on_tensorflow = stock_keras_outputs(paths, pixels, tmp_path, backend="tensorflow")
    for path in paths:
        np.testing.assert_allclose(on_tensorflow[str(path)], on_jax[str(path)], rtol=1e-4, atol=1e-5, err_msg=path.name)


def stages_started(dvc_output: str) -> list[str]:
    """Every stage DVC started, whether it finished or not."""
    return [line.split("'")[1] for line in dvc_output.splitlines() if line.startswith("Running stage '")]

"""classifier/core/backend.py and Keras' three backends: the training code path under JAX and torch on a
machine without TensorFlow (repeatable, resumable), models moving between backends, gradients, devices,
what each backend refuses. The stages under JAX end to end: tests/e2e/test_backend_e2e.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from classifier.core.backend import backend_problem, set_seed
from classifier.explanation import internals
from classifier.models import architecture, saving
from tests.support.models import stock_keras_outputs
from tests.support.paths import ROOT

OTHER_BACKENDS = ("jax", "torch")
NO_TENSORFLOW = ROOT / "tests/no_tensorflow"  # its sitecustomize hides TensorFlow from the process


def on_backend(
    backend: str, arguments: list[str], cwd: Path, *, tensorflow: bool = False
) -> subprocess.CompletedProcess:
    """Run `python ARGUMENTS` with KERAS_BACKEND=backend; without TensorFlow unless `tensorflow`."""
    path = [str(ROOT)] if tensorflow else [str(NO_TENSORFLOW), str(ROOT)]
    environment = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": os.pathsep.join(path),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    return subprocess.run([sys.executable, *arguments], cwd=cwd, env=environment, capture_output=True, text=True)


def last_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def train(backend: str, folder: Path, *options: str) -> subprocess.CompletedProcess:
    folder.mkdir()
    return on_backend(backend, [str(ROOT / "tests/core/backend_training.py"), str(folder), *options], folder)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """backend -> the last line of a whole training run on it, run once per module (the runs repeat exactly)."""
    found = {}

    def run(backend: str) -> dict:
        if backend not in found:
            found[backend] = last_json(train(backend, tmp_path_factory.mktemp(f"whole_{backend}") / "work"))
        return found[backend]

    return run


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_training_runs_without_tensorflow_repeats_and_resumes_exactly(backend, tmp_path, whole_run):
    """A training stage's path (batches from memory maps, augmentation, Dropout, dvclive, checkpoints)
    with TensorFlow not installed: two processes end with the same weights, one of them stopped after
    epoch 1 and resumed; the model it saves loads here, on TensorFlow, and predicts the same."""
    whole = whole_run(backend)
    assert whole["backend"] == backend and whole["tensorflow_imported"] is False
    assert "metrics.json" in whole["metrics"]
    folder = tmp_path / "resumed"
    assert last_json(train(backend, folder, "--stop-after", "1")) == {"stopped": True}
    resumed = on_backend(backend, [str(ROOT / "tests/core/backend_training.py"), str(folder)], folder)
    assert "demo: resuming after epoch 1/3" in resumed.stdout
    assert last_json(resumed)["weights"] == whole["weights"]
    loaded = keras.models.load_model(folder / "model.keras")  # saved on `backend`, loaded on TensorFlow
    validation = np.load(folder / "validation_images.npy").astype(np.float32)
    np.testing.assert_allclose(loaded.predict(validation, verbose=0), np.load(folder / "predictions.npy"), atol=1e-5)


def test_a_checkpoint_from_another_backend_is_discarded_not_resumed(tmp_path, whole_run):
    """Each backend draws its own random numbers: epochs trained on JAX cannot be continued on
    PyTorch as if one run; the rerun starts over and ends as a whole PyTorch run does."""
    folder = tmp_path / "work"
    assert last_json(train("jax", folder, "--stop-after", "1")) == {"stopped": True}
    rerun = on_backend("torch", [str(ROOT / "tests/core/backend_training.py"), str(folder)], folder)
    assert "discarding the checkpoint" in rerun.stdout and "Keras backend" in rerun.stdout
    assert "resuming" not in rerun.stdout
    assert last_json(rerun)["weights"] == whole_run("torch")["weights"]


def test_a_model_saved_on_tensorflow_predicts_the_same_on_jax_and_torch(params, tmp_path):
    """The saved models' layers (caffe preprocessing as a 1x1 convolution, a nested base, the dense
    head; the small convnet) under stock Keras on each backend."""
    set_seed(0)
    pixels = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(pixels)
    base = keras.Model(pixels, keras.layers.Conv2D(6, 3, activation="relu", name="last_conv")(x), name="tiny_base")
    head = architecture.dense_classifier((12, 12, 6), params.head, 3)
    transfer = architecture.with_classifier(base, head, 16, "vgg16")
    saving.save_model(transfer, tmp_path / "transfer.keras", ["a", "b", "c"])
    saving.save_model(architecture.small_convnet(16, 0.5, 2), tmp_path / "scratch.keras", ["cat", "dog"])
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    paths = [tmp_path / "transfer.keras", tmp_path / "scratch.keras"]
    for backend in OTHER_BACKENDS:
        outputs = stock_keras_outputs(paths, images, tmp_path, backend=backend)
        for path in paths:
            ours = saving.load_model(path).predict(images, verbose=0)
            np.testing.assert_allclose(
                outputs[str(path)], ours, rtol=1e-4, atol=1e-5, err_msg=f"{path.name} on {backend}"
            )


GRAD_CAM = """
import json, sys
import numpy as np
from classifier.explanation import internals
from classifier.models import saving
heatmaps, probabilities = internals.grad_cam(saving.load_model("model.keras"), np.load("pixels.npy"))
np.save("heatmaps.npy", heatmaps)
print(json.dumps({"probabilities": probabilities.tolist()}))
"""


def test_grad_cam_gradients_are_the_same_on_every_backend(tmp_path):
    """explain's gradients (backend.gradient): TensorFlow's GradientTape, jax.grad, torch.autograd."""
    set_seed(0)
    model = architecture.small_convnet(96, 0.0, 3)  # a 4x4 feature map: heatmaps with some detail
    saving.save_model(model, tmp_path / "model.keras", ["a", "b", "c"])
    pixels = np.random.default_rng(1).integers(0, 256, (3, 96, 96, 3)).astype(np.float32)
    np.save(tmp_path / "pixels.npy", pixels)
    heatmaps, probabilities = internals.grad_cam(saving.load_model(tmp_path / "model.keras"), pixels)
    assert heatmaps.std() > 0
    for backend in OTHER_BACKENDS:
        theirs = last_json(on_backend(backend, ["-c", GRAD_CAM], tmp_path))
        np.testing.assert_allclose(theirs["probabilities"], probabilities, atol=1e-5)
        np.testing.assert_allclose(np.load(tmp_path / "heatmaps.npy"), heatmaps, atol=1e-4, err_msg=backend)


def test_mirrored_on_jax_trains_under_keras_data_parallel(tmp_path):
    result = train("jax", tmp_path / "jax", "--distribute", "mirrored")
    assert last_json(result)["summary"]["best_epoch"] >= 1
    assert "training: keras.distribution.DataParallel over 1 device(s)" in result.stdout  # this machine's CPU


def test_mirrored_on_torch_is_refused_in_one_line_before_training(tmp_path):
    result = train("torch", tmp_path / "torch", "--distribute", "mirrored")
    assert result.returncode != 0
    assert "training.distribute: mirrored has no Keras equivalent on torch" in result.stderr
    assert not (tmp_path / "torch/metrics").exists()


@pytest.mark.parametrize(
    "backend, distribute, jit, deterministic, problem",
    [
        ("tensorflow", "mirrored", False, True, None),
        ("jax", "mirrored", False, True, None),
        ("torch", "mirrored", False, True, "mirrored has no Keras equivalent on torch"),
        ("torch", "none", True, True, None),
        ("jax", "none", True, True, None),  # JAX compiles under its deterministic settings
        ("tensorflow", "none", True, True, "training.jit_compile: true needs training.deterministic: false"),
        ("numpy", "none", False, True, "KERAS_BACKEND=numpy cannot train these models"),
    ],
)
def test_what_each_backend_refuses(monkeypatch, backend, distribute, jit, deterministic, problem):
    monkeypatch.setenv("KERAS_BACKEND", backend)
    found = backend_problem(distribute, jit, deterministic)
    assert found is None if problem is None else problem in found


EXPORT_WITHOUT_TENSORFLOW = """
from classifier.core.backend import run_on_tensorflow
from classifier.core.errors import StageError
try:
    run_on_tensorflow("export", "SavedModel and LiteRT are TensorFlow's formats")
except StageError as error:
    print(error)
"""


def test_a_stage_that_needs_tensorflow_says_so_in_one_line_where_it_is_missing(tmp_path):
    result = on_backend("jax", ["-c", EXPORT_WITHOUT_TENSORFLOW], tmp_path)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "\n" not in line
    assert "TensorFlow is not installed here: pip install tensorflow==2.21.0" in line
    assert "`dvc repro evaluate explain`" in line


def test_the_pinned_tensorflow_is_the_one_named():
    from classifier.core.backend import TENSORFLOW_VERSION

    assert f"tensorflow=={TENSORFLOW_VERSION}" in (ROOT / "requirements.txt").read_text()

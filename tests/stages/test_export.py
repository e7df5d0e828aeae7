"""Stage `export` (stages/export.py) on a tiny model: the SavedModel, LiteRT (and ONNX) files agree with the
.keras model, the card's own loading code runs, the files repeat byte for byte, and bad input gets one line."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from classifier.core.errors import StageError
from classifier.core.params import load_params
from classifier.models import saving
from classifier.models.architecture import class_probabilities
from classifier.serving import exporting
from stages import export
from tests.support.models import stock_keras_outputs, tiny_pooled_model
from tests.support.params import write_params
from tests.support.paths import ROOT
from tools.scratch_repo import TINY_PARAMS, set_params

SIZE = 32
CLASSES = ["ant", "bee", "cat"]
METRICS = {"fine_tuned": {"accuracy": 0.8125, "loss": 0.4321, "auc": 0.9012}, "scratch": {"accuracy": 0.5, "loss": 0.7}}
HAS_ONNX = all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnx"))
HAS_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None
FORMATS = ["saved_model", "litert"] + (["onnx"] if HAS_ONNX else [])
# TensorFlow's own interpreter stands in where LiteRT's package (ai-edge-litert) is not installed.
# Keras' ONNX export patches tf2onnx for NumPy 2, and NumPy warns about what the patch looks up.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:In the future `np.object`:FutureWarning"),
]


def export_folder(path: Path, formats: list[str] = FORMATS) -> Path:
    """params.yaml, models/fine_tuned.keras and metrics/evaluate.json, as the stage finds them."""
    write_params(path, {"export.model": "fine_tuned", "export.formats": formats})
    saving.save_model(tiny_pooled_model(), path / "models/fine_tuned.keras", CLASSES)
    (path / "metrics").mkdir()
    (path / "metrics/evaluate.json").write_text(json.dumps(METRICS))
    return path


def pixels(count: int = 5, seed: int = 1, size: int = SIZE) -> np.ndarray:
    """uint8 values as float32: a colour per image with noise (uniform noise alone looks the same
    to a convnet after global pooling, and the images would get the same probabilities)."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, (count, 1, 1, 3))
    return np.clip(colour + rng.integers(-40, 41, (count, size, size, 3)), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A repository after one run of the stage with every available format."""
    repo = export_folder(tmp_path_factory.mktemp("repo"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        export.main()
    return repo


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return export_folder(tmp_path)


def litert_interpreter(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path))


def keras_probabilities(repo: Path, images: np.ndarray) -> np.ndarray:
    return saving.load_model(repo / "models/fine_tuned.keras").predict(images, verbose=0)


# --- what is written -----------------------------------------------------------------------


def test_writes_each_format_and_the_card_and_nothing_else(exported):
    folder = exported / "models/export"
    expected = {"README.md", "saved_model", "model.tflite"} | ({"model.onnx"} if HAS_ONNX else set())
    assert {entry.name for entry in folder.iterdir()} == expected
    assert tf.saved_model.contains_saved_model(str(folder / "saved_model"))
    assert sorted(entry.name for entry in (exported / "models").iterdir()) == [
        "export",
        "fine_tuned.keras",
    ]  # no scratch folder left


def served_outputs(folder: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """The exported files' outputs for `images`, by each way of loading them."""
    loaded = tf.saved_model.load(str(folder / "saved_model"))
    outputs = {
        "saved_model serve": loaded.serve(images).numpy(),
        "saved_model signature": loaded.signatures["serving_default"](pixels=tf.constant(images))["output_0"].numpy(),
    }
    # As TF Serving loads it: the graph of the tag `serve`, run through its SignatureDef's tensor names.
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(folder / "saved_model"))
        served = meta_graph.signature_def["serving_default"]
        outputs["TF Serving"] = session.run(served.outputs["output_0"].name, {served.inputs["pixels"].name: images})

    runner = litert_interpreter(folder / "model.tflite").get_signature_runner("serving_default")
    outputs["litert signature"] = runner(pixels=images)["output_0"]
    interpreter = litert_interpreter(folder / "model.tflite")  # the plain tensor API, one image at a time
    interpreter.allocate_tensors()
    (given,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(given["shape_signature"]) == [-1, *images.shape[1:]] and given["dtype"] == np.float32
    rows = []
    for image in images:
        interpreter.set_tensor(given["index"], image[None])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(output["index"])[0])
    outputs["litert tensors"] = np.stack(rows)
    return outputs


def test_saved_model_and_litert_agree_with_keras(exported):
    images = pixels()
    expected = keras_probabilities(exported, images)
    assert class_probabilities(expected).shape == (5, 3) and np.ptp(expected, axis=0).max() > 0.05  # not all alike
    for way, outputs in served_outputs(exported / "models/export", images).items():
        np.testing.assert_allclose(outputs, expected, atol=1e-4, err_msg=way)


@pytest.mark.skipif(
    not (HAS_ONNX and HAS_ONNXRUNTIME), reason="needs tf2onnx, onnx and onnxruntime (requirements-export.txt)"
)
def test_onnx_agrees_with_keras(exported):
    import onnxruntime

    images = pixels()
    session = onnxruntime.InferenceSession(str(exported / "models/export/model.onnx"))
    assert [given.name for given in session.get_inputs()] == ["pixels"]
    np.testing.assert_allclose(
        session.run(None, {"pixels": images})[0], keras_probabilities(exported, images), atol=1e-4
    )


def test_the_card(exported):
    card = (exported / "models/export/README.md").read_text()
    assert "0 `ant`, 1 `bee`, 2 `cat`" in card
    assert "float32 (N, 32, 32, 3), RGB pixels 0-255" in card and "No scaling" in card
    assert "float32 (N, 3): the probabilities (softmax)" in card
    assert "**Test accuracy**: 0.8125 (metrics/evaluate.json; loss 0.4321, auc 0.9012)" in card
    assert "stage `fine_tune` trained" in card
    for quoted in ("`seed: 42`", '`base.name: "vgg16"`', "`fine_tune.epochs: ", "`lr: 1e-05`"):
        assert quoted in card
    assert "train_scratch" not in card  # only what made this model
    assert "models/export/saved_model" in card and "models/export/model.tflite" in card
    assert ("models/export/model.onnx" in card) == HAS_ONNX


def test_the_cards_loading_code_runs_and_every_file_agrees(exported, monkeypatch):
    """The card's Python block as written, run piece by piece with the packages it names (LiteRT's own,
    ai_edge_litert, from requirements-export.txt): stock Keras, the SavedModel, LiteRT (and onnxruntime)
    give the same probabilities for the same photo."""
    monkeypatch.chdir(exported)
    Image.fromarray(pixels(1)[0].astype(np.uint8)).save("photo.jpg")
    card = Path("models/export/README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", card, re.S)
    chunks = code.split("\n\n")
    if not HAS_ONNXRUNTIME:
        chunks = [chunk for chunk in chunks if "onnxruntime" not in chunk]
    namespace, results = {}, []
    for chunk in chunks:
        exec(chunk, namespace)
        if "probabilities" in chunk:
            results.append(np.asarray(namespace.pop("probabilities")))
    assert len(results) == 3 + (HAS_ONNX and HAS_ONNXRUNTIME)
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], atol=1e-4)


def test_only_the_listed_formats_and_a_rerun_replaces_the_folder(repo):
    set_params(repo, {("export", "formats"): ["litert"]})
    (repo / "models/export").mkdir()
    (repo / "models/export/old.txt").write_text("from an earlier run")
    export.main()
    assert sorted(entry.name for entry in (repo / "models/export").iterdir()) == ["README.md", "model.tflite"]


def folder_hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_two_runs_write_the_same_bytes(repo):
    """As `dvc repro` runs it: a process each; dvc.lock's hash of models/export must repeat."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    hashes = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "stages.export"], cwd=repo, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-3000:]
        hashes.append(folder_hashes(repo / "models/export"))
    assert "saved_model/fingerprint.pb" in hashes[0] and "saved_model/variables/variables.index" in hashes[0]
    assert hashes[0] == hashes[1]


# --- bad input: one line, before anything is written -----------------------------------------


def refusal(repo: Path) -> str:
    with pytest.raises(StageError) as caught:
        export.main()
    assert not (repo / "models/export").exists()
    assert [entry.name for entry in (repo / "models").iterdir() if entry.name.startswith(".export")] == []
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_missing_model(repo):
    (repo / "models/fine_tuned.keras").unlink()
    assert refusal(repo) == (
        "export.model fine_tuned: models/fine_tuned.keras is missing: run `dvc repro fine_tune`, or name another model"
    )


def test_a_model_keras_refuses(repo):
    (repo / "models/fine_tuned.keras").write_text("not a model")
    assert refusal(repo).startswith("models/fine_tuned.keras is not a Keras model file")


def test_a_missing_converter_is_refused_by_the_params_check(repo, monkeypatch):
    """In every stage's params check (check_params runs first): before anything trains, not at the end."""
    set_params(repo, {("export", "formats"): ["saved_model", "onnx"]})
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if not installed: importing it fails
    assert refusal(repo) == (
        "params.yaml: export.formats lists onnx but tf2onnx is not installed: pip install -r requirements-export.txt, "
        "or remove onnx from export.formats"
    )
    with pytest.raises(StageError, match="export.formats lists onnx but tf2onnx is not installed"):
        load_params(repo / "params.yaml")


def test_a_broken_converter(repo, monkeypatch):
    """Installed, but not importable with this TensorFlow or NumPy: the line says why."""

    def import_module(name):
        if name == "tf2onnx":
            raise AttributeError("module 'numpy' has no attribute 'object'")
        return importlib.import_module(name)

    set_params(repo, {("export", "formats"): ["onnx"]})
    monkeypatch.setattr(exporting, "importlib", types.SimpleNamespace(import_module=import_module))
    assert refusal(repo) == (
        "export.formats lists onnx but tf2onnx cannot be imported (AttributeError: module 'numpy' has no attribute "
        "'object'): pip install -r requirements-export.txt, or remove onnx from export.formats"
    )


def test_no_formats_and_unknown_formats_are_refused_by_the_params_check(repo):
    set_params(repo, {("export", "formats"): []})
    assert "export.formats" in refusal(repo)
    set_params(repo, {("export", "formats"): ["tflite"]})
    message = refusal(repo)
    assert "export.formats" in message and "litert" in message


def test_missing_test_metrics(repo):
    (repo / "metrics/evaluate.json").write_text(json.dumps({"scratch": METRICS["scratch"]}))
    assert refusal(repo) == "metrics/evaluate.json has no results for export.model fine_tuned: run `dvc repro evaluate`"
    (repo / "metrics/evaluate.json").unlink()
    assert refusal(repo) == "metrics/evaluate.json is missing: run `dvc repro evaluate` first"


def test_an_unknown_model_name_is_refused_by_the_params_check(repo):
    set_params(repo, {("export", "model"): "fine_tunned"})
    message = refusal(repo)
    assert "export.model" in message and "fine_tuned" in message


def test_the_command_line_says_it_in_one_line(repo):
    (repo / "models/fine_tuned.keras").unlink()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "stages.export"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "export: error: export.model fine_tuned: models/fine_tuned.keras is missing: run `dvc repro fine_tune`, "
        "or name another model"
    )


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_after_dvc_repro_stock_keras_tf_serving_and_litert_agree(tiny_repo, tmp_path):
    """The issue's test of done: `dvc repro` in a fresh clone, then the .keras model in stock Keras
    (a process without this project), the SavedModel as TF Serving loads it and the LiteRT file
    give the same predictions."""
    assert "export" in tiny_repo.ran_first
    assert "models/export" in {out["path"] for out in tiny_repo.first_lock["stages"]["export"]["outs"]}
    folder = tiny_repo.path / "models/export"
    assert {"README.md", "saved_model", "model.tflite"} <= {entry.name for entry in folder.iterdir()}
    images = pixels(6, size=TINY_PARAMS[("data", "image_size")])
    results = json.loads((tiny_repo.path / "metrics/evaluate.json").read_text())
    model = tiny_repo.path / "models/best.keras"  # export.model: best
    assert model.read_bytes() == (tiny_repo.path / f"models/{results['best_model']}.keras").read_bytes()
    expected = stock_keras_outputs([model], images, tmp_path)[str(model)]
    for way, outputs in served_outputs(folder, images).items():
        np.testing.assert_allclose(outputs, expected, atol=1e-4, err_msg=way)
    card = (folder / "README.md").read_text()
    accuracy = results[results["best_model"]]["accuracy"]
    assert f"**Test accuracy**: {accuracy:.4f}" in card and "0 `cat`, 1 `dog`" in card

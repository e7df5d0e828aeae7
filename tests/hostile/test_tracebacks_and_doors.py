"""Tracebacks left at a stage's edges, silent stops, and doors left open: one line each, or correct handling.

Stage processes are started as DVC starts them (`python -m stages.<stage>`), with a sitecustomize
(HOOK, on PYTHONPATH) that notes when Keras is first imported, can hold that import for a while (as
TensorFlow's import takes seconds), and can hide installed packages (as on a machine without them).

The backend, checked by every stage before Keras is imported, and by check_params
 1. KERAS_BACKEND=bogus or numpy, params unchanged (so check_params does not run) -> one line, exit 1, Keras
                                                                                    never imported
 2. KERAS_BACKEND=torch or jax where that package is not installed                 -> one line naming what to
                                                                                    install, Keras never imported
 3. the same seen by check_params                                                  -> ParamsError in one line
Tracebacks
 4. `python -m stages.predict DIR --csv | head -2` (a reader that closes early)   -> quiet, exit 141 (SIGPIPE's)
 5. params.yaml not UTF-8, not YAML, not a mapping, or empty                      -> one line naming the file
                                                                                    and the fix
 6. a training stage in a git repository without a commit (dvclive reads HEAD)    -> it trains and logs
Silent stops
 7. SIGTERM or Ctrl-C while a stage still imports TensorFlow                      -> `<stage>: interrupted; ...`,
                                                                                    exit 130
Doors
 8. bases/base.keras a link to a file outside the repository, or bases/ a link
    to a folder outside                                                            -> refused, naming link and target
 9. bases/base.keras a link into DVC's cache, in the repository or elsewhere       -> read
10. base.output_layer naming a layer before any convolution (the input, a
    Rescaling, the caffe preprocessing of a trained model)                        -> refused, naming the allowed ones
11. a .keras base whose output layer is itself a convolution, no activation
    after it: a Conv2D, a Conv2DTranspose                                         -> accepted, fine-tuned from it

Every model here is tiny and built in the test; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from classifier.core.cli import StageError
from classifier.core.params import ParamsError, load_params
from classifier.models import assembly, heads, saving
from classifier.models.training import fit
from stages import check_params, load_base

ROOT = Path(__file__).resolve().parents[2]
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


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- 1-3: the backend ----------------------------------------------------------------------------------------


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


def test_check_params_says_when_the_backend_is_not_installed(tmp_path, monkeypatch):
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "torch" else find_spec(name, *args)
    )
    with pytest.raises(ParamsError) as info:
        check_params.main()
    assert str(info.value) == (
        "KERAS_BACKEND=torch, but torch is not installed here: pip install -r requirements-torch.txt, "
        "or run with KERAS_BACKEND=tensorflow"
    )


# --- 4: predict into a closed pipe ----------------------------------------------------------------------------


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
    command = [sys.executable, "-m", "stages.predict", str(photos), "--csv", "--model", model_file]
    result = subprocess.run(command, cwd=tmp_path, env=environment, stdout=writer, stderr=subprocess.PIPE, text=True)
    os.close(writer)
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr


# --- 5: params.yaml that is not a mapping of keys ---------------------------------------------------------------


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


# --- 6: dvclive in a git repository without a commit -------------------------------------------------------------


def test_a_training_stage_trains_in_a_git_repository_without_a_commit(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    assembly.compile_model(model, 1e-3)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("uint8")
    summary = fit(model, "train_demo", (x, y), (x, y), epochs=2, batch_size=8, seed=0, resume=False)
    assert summary["epochs_run"] == 2
    assert (tmp_path / "metrics/train_demo/metrics.json").is_file()
    assert (tmp_path / "metrics/train_demo/plots/metrics/val/loss.tsv").read_text().count("\n") == 3


# --- 7: a signal while TensorFlow is imported --------------------------------------------------------------------


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


# --- 8-11: bases -------------------------------------------------------------------------------------------------


def conv_base(name: str = "tiny_base") -> keras.Model:
    pixels = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(pixels)
    return keras.Model(pixels, keras.layers.Conv2D(4, 3, name="last_conv")(x), name=name)


@pytest.fixture
def stage_dir(tmp_path, monkeypatch) -> Path:
    """A workspace with the project's params.yaml and bases/, where load_base runs."""
    work = tmp_path / "work"
    (work / "bases").mkdir(parents=True)
    shutil.copy2(ROOT / "params.yaml", work / "params.yaml")
    monkeypatch.chdir(work)
    return work


def set_base(folder: Path, **base) -> None:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["base"].update({"weights": None, "fine_tune_from": None, **base})
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def load_base_error(folder: Path) -> str:
    with pytest.raises(StageError) as info:
        load_base.main()
    assert not (folder / "models").exists()  # nothing written
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_base_linked_to_a_file_outside_the_repository_is_refused(stage_dir, tmp_path):
    outside = tmp_path / "elsewhere" / "base.keras"
    saving.save_model(conv_base(), outside)
    (stage_dir / "bases" / "base.keras").symlink_to(outside)
    set_base(stage_dir, name="bases/base.keras")
    assert load_base_error(stage_dir) == (
        f"base.name 'bases/base.keras' is a link to '{outside}', outside the repository; nothing outside it is "
        f"read as a base (a clone would not have it): copy the file in instead "
        f"(cp --remove-destination {outside} bases/base.keras)"
    )


def test_bases_linked_to_a_folder_outside_the_repository_is_refused(stage_dir, tmp_path):
    saving.save_model(conv_base(), tmp_path / "elsewhere" / "base.keras")
    (stage_dir / "bases").rmdir()
    (stage_dir / "bases").symlink_to(tmp_path / "elsewhere")
    set_base(stage_dir, name="bases/base.keras")
    assert load_base_error(stage_dir).startswith(
        f"base.name 'bases/base.keras' is in bases, a link to '{tmp_path / 'elsewhere'}', outside the repository"
    )


@pytest.mark.parametrize("cache", ["in the repository", "elsewhere"])
def test_a_base_linked_into_the_dvc_cache_is_read(stage_dir, tmp_path, cache, capsys):
    (stage_dir / ".dvc").mkdir()
    folder = stage_dir / ".dvc/cache" if cache == "in the repository" else tmp_path / "cache"
    if cache == "elsewhere":
        (stage_dir / ".dvc/config").write_text(f"[cache]\n    dir = {folder}\n    type = symlink\n")
    cached = folder / "files/md5/3f/0123456789abcdef"  # DVC's cache names files by their hash
    saving.save_model(conv_base(), folder / "base.keras")
    cached.parent.mkdir(parents=True)
    (folder / "base.keras").rename(cached)
    (stage_dir / "bases" / "base.keras").symlink_to(cached)
    set_base(stage_dir, name="bases/base.keras")
    load_base.main()
    assert (stage_dir / "models/base.keras").is_file()


def transfer_model() -> keras.Model:
    """A model as the pipeline trains it: pixels, the caffe preprocessing (a fixed 1x1 Conv2D), the base, the head."""
    keras.utils.set_random_seed(0)
    head = heads.dense_classifier((12, 12, 4), load_params(ROOT / "params.yaml").head, 2)
    return assembly.with_classifier(conv_base(), head, SIZE, "vgg16")


def rescaling_model() -> keras.Model:
    pixels = keras.Input((SIZE, SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="scale")(pixels)
    x = keras.layers.Conv2D(2, 3, name="conv")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    return keras.Model(pixels, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))


@pytest.mark.parametrize(
    "model, layer, allowed",
    [
        (transfer_model, "preprocessing", "tiny_base"),
        (rescaling_model, "scale", "conv, pool"),
        (rescaling_model, "pixels", "conv, pool"),
    ],
)
def test_an_output_layer_before_any_convolution_is_refused(stage_dir, model, layer, allowed):
    saving.save_model(model(), stage_dir / "bases/model.keras")
    set_base(stage_dir, name="bases/model.keras", output_layer=layer)
    message = load_base_error(stage_dir)
    assert message.startswith(f"base.output_layer {layer!r} of base.name 'bases/model.keras' comes before any ")
    assert message.endswith(f"is still pixels, not a feature map; name one of {allowed}, or use null")


@pytest.mark.parametrize("convolution", [keras.layers.Conv2D, keras.layers.Conv2DTranspose])
def test_a_base_ending_in_a_convolution_is_accepted(stage_dir, capsys, convolution):
    pixels = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(pixels)
    saving.save_model(keras.Model(pixels, convolution(4, 3, name="last_conv")(x)), stage_dir / "bases/base.keras")
    set_base(stage_dir, name="bases/base.keras")
    load_base.main()
    out = capsys.readouterr().out
    assert "fine_tune will unfreeze from 'last_conv', the base's last convolutional layer" in out
    assert keras.models.load_model(stage_dir / "models/base.keras").output_shape == (None, None, None, 4)

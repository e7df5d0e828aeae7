"""The one module that knows which Keras backend runs (KERAS_BACKEND: tensorflow, jax or torch)
and what each offers for determinism, compilation, several devices and gradients.

Everything else in the stages is written with `keras` and `keras.ops` only, so a stage runs on
any backend; TensorFlow is imported here only when it is the backend.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from classifier.core.errors import StageError

BACKENDS = ("tensorflow", "jax", "torch")
# Set by run_on_tensorflow for the stage it starts again: the backend the pipeline trains on, which
# the training settings are checked against (that stage trains nothing).
TRAINING_BACKEND = "CLASSIFIER_TRAINING_BACKEND"
TENSORFLOW_VERSION = "2.21.0"  # as pinned in requirements.txt


def configured_backend() -> str:
    """The backend Keras will use, without importing Keras: KERAS_BACKEND, else ~/.keras/keras.json
    (KERAS_HOME), else tensorflow: Keras' own order."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    try:
        return json.loads(keras_config().read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def keras_config() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"


# What each backend needs installed (found, not imported), and how to install it.
PACKAGES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}
INSTALL = {
    "tensorflow": f"pip install tensorflow=={TENSORFLOW_VERSION}",
    "jax": "pip install -r requirements-jax.txt",
    "torch": "pip install -r requirements-torch.txt",
}


def backend_unavailable() -> str | None:
    """Why no stage can run on the configured backend here, as one line: one these stages do not run on
    (Keras' numpy backend cannot train), or one whose package is not installed; None when it can run.
    Nothing is imported: a stage checks this before it imports Keras, and check_params with the params."""
    backend = configured_backend()
    if os.environ.get("KERAS_BACKEND"):
        source = f"KERAS_BACKEND={backend}"
    elif keras_config().is_file():
        source = f"the backend {backend!r} set in {keras_config()}"
    else:
        source = f"the default Keras backend, {backend}"
    if backend not in BACKENDS:
        return f"{source} cannot train these models; use one of {', '.join(BACKENDS)}"
    missing = [package for package in PACKAGES[backend] if importlib.util.find_spec(package) is None]
    if missing:
        installed = [name for name in BACKENDS if all(map(importlib.util.find_spec, PACKAGES[name]))]
        instead = f", or run with KERAS_BACKEND={installed[0]}" if installed else ""
        return f"{source}, but {missing[0]} is not installed here: {INSTALL[backend]}{instead}"
    return None


def backend_problem(distribute: str, jit_compile: bool, deterministic: bool) -> str | None:
    """Why `training` cannot run on the configured backend, as one line; None when it can."""
    unavailable = backend_unavailable()
    if unavailable:
        return unavailable
    backend = os.environ.get(TRAINING_BACKEND) or configured_backend()
    if distribute == "mirrored" and backend == "torch":
        return (
            "params.yaml: training.distribute: mirrored has no Keras equivalent on torch (Keras distributes "
            "over devices with tf.distribute or, on JAX, keras.distribution); set training.distribute: none, "
            "or run with KERAS_BACKEND=tensorflow or jax"
        )
    if distribute == "multi_host" and backend != "jax":
        return (
            "params.yaml: training.distribute: multi_host runs on JAX's distributed runtime (TensorFlow's multi-worker "
            "strategy does not train Keras 3 models): run with KERAS_BACKEND=jax (pip install -r requirements-jax.txt)"
        )
    if jit_compile and deterministic and backend == "tensorflow":
        return (
            "params.yaml: training.jit_compile: true needs training.deterministic: false on TensorFlow; Keras does "
            "not XLA-compile under TensorFlow's op determinism (it would silently train without XLA)"
        )
    return None


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed weights, shuffling, augmentation and dropout (Python, NumPy and the backend's own
    generator); with `deterministic`, the backend's ops also give the same results on every run:
    - tensorflow: op determinism (cheap on a CPU, slower on a GPU);
    - torch: deterministic algorithms (cuBLAS needs its workspace setting, made here before CUDA starts);
    - jax: the CPU is deterministic as it is; on a GPU XLA's deterministic ops, which take effect
      only if set before JAX starts its GPU client, so set here before anything runs on it.
    """
    import keras

    backend = keras.backend.backend()
    if deterministic and backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif deterministic and backend == "torch":
        import torch

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    elif deterministic and backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    keras.utils.set_random_seed(seed)


def global_random_state() -> list:
    """The backend's global random state, where layers draw from it: torch's unseeded Dropout does
    (on TensorFlow and JAX every random layer has its own seed state, saved with the model's variables)."""
    if _name() != "torch":
        return []
    import torch

    return [torch.get_rng_state().numpy()]


def set_global_random_state(state: list) -> None:
    """Back to a state from `global_random_state` (a resumed run continues the same draws)."""
    if state and _name() == "torch":
        import torch

        torch.set_rng_state(torch.from_numpy(np.asarray(state[0], np.uint8)))


def jit_compile_setting(requested: bool) -> bool | str:
    """`training.jit_compile` as Keras' compile() argument: XLA on TensorFlow and torch.compile on
    torch when asked; JAX compiles always (without jit it runs op by op, many times slower)."""
    return True if requested else ("auto" if _name() == "jax" else False)


@contextlib.contextmanager
def devices(distribute: str):
    """Build and compile a model inside this: on one device, or with `mirrored` on every local one:
    tf.distribute.MirroredStrategy on TensorFlow, keras.distribution.DataParallel on JAX; with
    `multi_host`, on every device of every process of the cluster (JAX)."""
    backend = _name()
    if distribute == "none":
        yield
    elif distribute == "multi_host":  # JAX only (backend_problem), after join_cluster
        import keras

        # Every device of every process; each process feeds its own share of every batch
        # (classifier.models.training.batches), so Keras must not split the data again.
        devices = keras.distribution.list_devices()
        distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        keras.distribution.set_distribution(distribution)
        print(f"training: keras.distribution.DataParallel over {len(devices)} device(s) of every process")
        yield
    elif backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()  # every local GPU; the CPU when there is none
        devices = ", ".join(strategy.extended.worker_devices)
        print(f"training: MirroredStrategy with {strategy.num_replicas_in_sync} replica(s): {devices}")
        with strategy.scope():  # the model keeps the strategy: fit() runs under it
            yield
    elif backend == "jax":
        import keras

        # Global, not scoped: JAX's fit() reads the distribution in effect when it runs, after the
        # model is built; a stage is one process and trains one model.
        distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
        keras.distribution.set_distribution(distribution)
        print(f"training: keras.distribution.DataParallel over {len(distribution.device_mesh.devices.flat)} device(s)")
        yield
    else:
        raise RuntimeError(backend_problem(distribute, False, False))


def gradient(function: Callable) -> Callable:
    """(x, *constants) -> d sum(function(x, *constants)) / dx as a float32 NumPy array, compiled
    once where the backend compiles; `function` is written with keras.ops."""
    import keras

    backend = _name()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def compute(x, *constants):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = keras.ops.sum(function(x, *constants))
            return tape.gradient(total, x)

        return lambda x, *constants: compute(tf.convert_to_tensor(x, tf.float32), *constants).numpy()
    if backend == "jax":
        import jax

        compute = jax.jit(jax.grad(lambda x, *constants: keras.ops.sum(function(x, *constants))))
        return lambda x, *constants: np_float32(compute(jax.numpy.asarray(x, "float32"), *constants))
    if backend == "torch":
        import torch

        def compute(x, *constants):
            x = keras.ops.convert_to_tensor(np_float32(x)).requires_grad_(True)  # on Keras' device
            total = keras.ops.sum(function(x, *constants))
            (grad,) = torch.autograd.grad(total, x)
            return np_float32(grad.detach().cpu())

        return compute
    raise RuntimeError(f"no gradients on the {backend} backend; use one of {', '.join(BACKENDS)}")


def run_on_tensorflow(stage: str, why: str) -> None:
    """For a stage TensorFlow does by nature: under another backend, start this stage again on
    TensorFlow (the process is replaced; the same files come out), or say in one line what to
    install when TensorFlow is not there."""
    if _name() == "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        raise StageError(
            f"{why}, and TensorFlow is not installed here: pip install tensorflow=={TENSORFLOW_VERSION} "
            f"(any backend trains; this stage needs TensorFlow), or stop before {stage}: `dvc repro evaluate explain`"
        )
    print(f"{stage}: {why}: running this stage on TensorFlow, not {_name()}", flush=True)
    sys.stdout.flush()
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", TRAINING_BACKEND: _name()}
    os.execve(sys.executable, [sys.executable, "-m", f"stages.{stage}"], env)


def np_float32(x):
    return np.asarray(x, dtype=np.float32)


def _name() -> str:
    import keras

    return keras.backend.backend()

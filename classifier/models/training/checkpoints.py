"""Per-epoch checkpoints, so that an interrupted training stage resumes after its last finished epoch
and ends with the same weights as an uninterrupted run; and the lock that keeps a stage to one run.
Both live in CHECKPOINTS_DIR, inside DVC's scratch folder: not outputs (DVC deletes outputs before a
stage reruns, which would defeat resuming).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from classifier.core.backend import global_random_state
from classifier.core.errors import StageError
from classifier.core.outputs import writing
from classifier.core.params import PARAMS_FILE
from classifier.core.paths import CHECKPOINTS_DIR

CODE_FOLDERS = ("stages", "classifier")  # what a checkpoint's fingerprint hashes besides params.yaml


class Checkpoint:
    """A fit's state after its last finished epoch, in CHECKPOINTS_DIR/<stage>/.

    Weights with the optimizer's state, the random layers' seed states (and the backend's
    global generator, which torch's unseeded Dropout draws from), the epoch log
    and the best weights so far: enough for a resumed run to end with the same weights
    as an uninterrupted one. `fingerprint` ties it to one start (params, code, inputs,
    initial weights); a checkpoint from any other start is discarded.
    """

    def __init__(self, stage: str, fingerprint: str, writes: bool = True):
        self.folder = CHECKPOINTS_DIR / stage
        self.fingerprint = fingerprint
        # In a cluster every process saves (saving is a collective there): the first into the
        # folder, the others into scratch of their own; each resumes from the folder.
        self.saves_to = self.folder if writes else Path(tempfile.mkdtemp(prefix=f"{stage}-checkpoint-"))

    def load(self, model: keras.Model) -> dict | None:
        """The saved state (epoch, history, best), with the model restored to it; None if there is none to use."""
        state_file = self.folder / "state.json"
        if not state_file.is_file():
            return None
        state = json.loads(state_file.read_text())
        if state["fingerprint"] != self.fingerprint:
            print(
                f"training: discarding the checkpoint in {self.folder}: "
                "it is from other params, code, data or Keras backend"
            )
            self.remove()
            return None
        strategy = getattr(model, "distribute_strategy", None)  # TensorFlow's: new variables are made inside it
        with strategy.scope() if strategy else contextlib.nullcontext():
            model.optimizer.build(model.trainable_variables)  # its variables must exist before loading into them
            model.load_weights(self.folder / state["weights"])
            with np.load(self.folder / state["arrays"]) as arrays:
                for variable, value in zip(seed_states(model), unpack(arrays, "seed"), strict=True):
                    variable.assign(value)
                state["global_random"] = unpack(arrays, "global_random")  # set as the next epoch begins
                state["best_weights"] = unpack(arrays, "best") or None
        return state

    def save(self, model: keras.Model, state: dict, best_weights: list[np.ndarray]) -> None:
        """Write the state after an epoch; state.json, written last, is what makes it count. A full disk
        stops the stage in one line; the last whole checkpoint stays."""
        self.saves_to.mkdir(parents=True, exist_ok=True)
        epoch = state["epoch"]
        files = {"weights": f"epoch-{epoch}.weights.h5", "arrays": f"epoch-{epoch}.npz"}
        with writing(self.saves_to):
            model.save_weights(self.saves_to / files["weights"])
            np.savez(
                self.saves_to / files["arrays"],
                **pack("seed", [variable.numpy() for variable in seed_states(model)]),
                **pack("global_random", global_random_state()),
                **pack("best", best_weights or []),
            )
            temporary = self.saves_to / "state.json.partial"
            temporary.write_text(json.dumps({**state, **files, "fingerprint": self.fingerprint}))
        os.replace(temporary, self.saves_to / "state.json")
        for old in self.saves_to.glob("epoch-*"):
            if old.name not in files.values():
                old.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.saves_to, ignore_errors=True)


def seed_states(model: keras.Model) -> list:
    """The random layers' seed-generator states: not part of the model's weights, needed to resume exactly."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def pack(prefix: str, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}_{i}": array for i, array in enumerate(arrays)}


def unpack(archive, prefix: str) -> list[np.ndarray]:
    count = sum(name.startswith(f"{prefix}_") for name in archive.files)
    return [archive[f"{prefix}_{i}"] for i in range(count)]


def fingerprint(stage: str, model: keras.Model, arrays: list[np.ndarray], settings: tuple) -> str:
    """What a checkpoint must match to be resumed: params.yaml, the stage code, the settings (the backend
    among them), the inputs, the initial weights."""
    digest = hashlib.sha256(f"{stage} {settings}".encode())
    for source in [PARAMS_FILE, *(path for folder in CODE_FOLDERS for path in sorted(Path(folder).rglob("*.py")))]:
        digest.update(source.read_bytes() if source.is_file() else b"")
    for array in arrays:
        digest.update(f"{array.shape} {array.dtype}".encode())
        files = [array.filename] if isinstance(array, np.memmap) else getattr(array, "files", None)  # or Shards'
        if files:  # a large input: its files' sizes and times, not their content
            for path in files:
                stat = os.stat(path)
                digest.update(f"{path} {stat.st_size} {stat.st_mtime_ns}".encode())
        else:
            digest.update(np.ascontiguousarray(array).tobytes())
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def only_run(stage: str):
    """Hold the stage's lock while it trains: a second run of the same stage (an orphan of a killed
    `dvc`, a second terminal) would race it on the same checkpoint and outputs. The lock is the
    kernel's (flock): it goes with the process however the process ends."""
    CHECKPOINTS_DIR.mkdir(parents=True, exist_ok=True)
    path = CHECKPOINTS_DIR / f"{stage}.lock"
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            other = lock.read().strip() or "unknown"
            raise StageError(
                f"{stage} is already running in this workspace (process {other}); wait for it to finish, "
                f"or stop it (`kill {other}`) and run again"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield

"""The epochs of a training stage: dvclive's logger, and the callback that logs each epoch, keeps the
best one by validation loss, stops early, saves a checkpoint after each epoch, stops the stage when
the process that started it is gone, and stops training at the first loss that is not a number."""

from __future__ import annotations

import math
import os

import keras
from dvclive import Live
from scmrepo.exceptions import SCMError

from classifier.core.backend import set_global_random_state
from classifier.core.errors import StageError
from classifier.core.outputs import writing
from classifier.models.training.checkpoints import Checkpoint


class StageLive(Live):
    """dvclive's logger, also in a git repository without a commit yet (`git init`, no `git commit`), where
    dvclive fails reading HEAD before it checks for commits: there it logs as it does outside git (the
    files are the same; nothing of git is used: no experiment is saved, no dvc.yaml written)."""

    def __init__(self, folder):
        super().__init__(dir=str(folder), save_dvc_exp=False, dvcyaml=None, report=None)

    def _init_dvc(self):
        try:
            super()._init_dvc()
        except SCMError:
            self._dvc_repo, self._dvc_file = None, "dvc.yaml"


class NotFinite(Exception):
    """A loss that is not a finite number (NaN, infinity) after an epoch: training diverged."""

    def __init__(self, epoch: int, name: str, value: float):
        super().__init__(f"{name} {value} in epoch {epoch}")
        self.epoch, self.name, self.value = epoch, name, value


class EpochLog(keras.callbacks.Callback):
    """Per-epoch train/val loss and accuracy to dvclive; keeps the best epoch by val loss and stops
    `patience` epochs after it; saves a checkpoint after every epoch when it has one; stops the run
    if its parent is gone."""

    def __init__(self, live: Live | None, checkpoint: Checkpoint | None, patience: int | None):
        super().__init__()
        self.live, self.checkpoint, self.patience = live, checkpoint, patience  # live: None where nothing is logged
        self.parent = os.getppid()  # `dvc repro`, or the shell that started the stage
        self.history: list[dict] = []
        self.best_loss, self.best_epoch, self.best_weights = math.inf, None, None
        self.global_random = None  # a checkpoint's, until the resumed fit's first epoch begins

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint's state: its epochs are logged again (DVC cleared the folder)."""
        for logs in state["history"]:
            self.record(logs)
        self.best_loss, self.best_epoch, self.best_weights = (
            state["best_loss"],
            state["best_epoch"],
            state["best_weights"],
        )
        self.global_random = state["global_random"]

    def on_epoch_begin(self, epoch, logs=None):
        # Set here, not when loading: Keras draws from it while fit() starts (torch's DataLoader does).
        if self.global_random:
            set_global_random_state(self.global_random)
            self.global_random = None

    def record(self, logs: dict) -> None:
        if self.live is not None:
            with writing(self.live.dir):
                for name in ("loss", "accuracy"):
                    self.live.log_metric(f"train/{name}", logs[name])
                    self.live.log_metric(f"val/{name}", logs[f"val_{name}"])
                self.live.next_step()
        self.history.append(logs)

    @property
    def learning_stopped(self) -> bool:
        """`patience` epochs have passed without a lower validation loss."""
        since_best = len(self.history) - (self.best_epoch or 0)
        return self.patience is not None and since_best >= self.patience

    def on_epoch_end(self, epoch, logs=None):
        logs = {name: float(value) for name, value in (logs or {}).items()}
        self.record(logs)
        for name in ("loss", "val_loss"):  # a loss that is not a number never comes back: stop at once
            if not math.isfinite(logs[name]):
                raise NotFinite(epoch + 1, name, logs[name])
        if logs["val_loss"] < self.best_loss:
            self.best_loss, self.best_epoch = logs["val_loss"], epoch + 1
            self.best_weights = self.model.get_weights()
        self.model.stop_training = self.learning_stopped
        if self.checkpoint is not None:
            state = {
                "epoch": epoch + 1,
                "history": self.history,
                "best_loss": self.best_loss,
                "best_epoch": self.best_epoch,
            }
            self.checkpoint.save(self.model, state, self.best_weights)
        if os.getppid() != self.parent:  # orphaned: nobody will record what this run makes
            kept = "its checkpoint is kept, " if self.checkpoint is not None else ""
            raise StageError(
                f"the process that started this stage (pid {self.parent}) is gone; stopped after epoch "
                f"{epoch + 1}, {kept}run `dvc repro` again"
            )

    @property
    def best_logs(self) -> dict:
        return self.history[self.best_epoch - 1]

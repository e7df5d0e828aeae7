"""Training shared by the stages: seeding and devices, dvclive logging, the best epoch, class
weights. Batches come from classifier.models.batches, checkpoints from classifier.models.checkpoints."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time

import keras
import numpy as np
from dvclive import Live
from scmrepo.exceptions import SCMError

from classifier.core.backend import backend_problem, devices, set_global_random_state, set_seed
from classifier.core.cli import StageError
from classifier.core.layout import MODEL_STAGES, model_path, stage_metrics_dir, training_summary
from classifier.core.schema import RunParams
from classifier.intake.prepared import load_prepared
from classifier.models.assembly import compile_model, one_hot_classes
from classifier.models.batches import ArrayBatches
from classifier.models.checkpoints import Checkpoint, fingerprint, only_run
from classifier.models.saving import write_placeholder

Arrays = tuple[np.ndarray, np.ndarray]  # (images or features, labels), arrays or memory maps


def skipped(params, model_name: str) -> bool:
    """True when `models.<model_name>` is false, once the stage's outputs are placeholders: a line of
    text in models/<name>.keras and a metrics.json that says so (DVC needs every output; evaluate leaves it out)."""
    if getattr(params.models, model_name):
        return False
    stage = MODEL_STAGES[model_name]
    shutil.rmtree(stage_metrics_dir(stage), ignore_errors=True)
    stage_metrics_dir(stage).mkdir(parents=True)
    training_summary(stage).write_text(json.dumps({"skipped": True}) + "\n")
    for split in ("train", "val"):  # dvclive's files, header only: dvc.yaml plots them, and DVC warns of missing ones
        curves = stage_metrics_dir(stage) / "plots" / "metrics" / split
        curves.mkdir(parents=True)
        for metric in ("loss", "accuracy"):
            (curves / f"{metric}.tsv").write_text(f"step\t{metric}\n")
    write_placeholder(model_path(model_name))
    print(f"{stage}: skipped (models.{model_name}: false); {model_path(model_name)} is a placeholder")
    return True


@contextlib.contextmanager
def model_scope(run: RunParams, seed: int):
    """Build and compile a model inside this: seeded, in the precision and on the devices `training` asks for."""
    problem = backend_problem(run.distribute, run.jit_compile, run.deterministic)
    if problem:
        raise StageError(problem)
    set_seed(seed, run.deterministic)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if run.mixed_precision else "float32")
    try:
        with devices(run.distribute):
            yield
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)  # models built inside keep theirs


def prepared_splits() -> tuple[Arrays, Arrays]:
    """(train, validation) prepared image arrays, memory-mapped."""
    return load_prepared("train"), load_prepared("validation")


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


class EpochLog(keras.callbacks.Callback):
    """Per-epoch train/val loss and accuracy to dvclive; keeps the best epoch by val loss and stops
    `patience` epochs after it; saves a checkpoint after every epoch when it has one; stops the run
    if its parent is gone."""

    def __init__(self, live: Live, checkpoint: Checkpoint | None, patience: int | None):
        super().__init__()
        self.live, self.checkpoint, self.patience = live, checkpoint, patience
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


def class_weights(how: str | None, labels: np.ndarray, num_classes: int) -> dict[int, float] | None:
    """`training.class_weight: balanced`: each class weighs n / (classes x its count), so that every class
    counts as much in the loss as if the training images were spread evenly (scikit-learn's 'balanced')."""
    if how is None:
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    return {label: float(len(labels) / (num_classes * count)) for label, count in enumerate(counts) if count}


def fit(
    model: keras.Model,
    stage: str,
    train: Arrays,
    validation: Arrays,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    resume: bool,
    patience: int | None = None,
    class_weight: dict[int, float] | None = None,
) -> dict:
    """Train on (x, y) arrays, keep the epoch with the lowest validation loss, write metrics/<stage>/metrics.json.

    `epochs` is the most that run; with `patience`, training stops that many epochs after the best one.

    With `resume`, a checkpoint is saved after every epoch and a rerun of an interrupted
    stage continues after its last finished epoch; the checkpoint is removed at the end.
    `class_weight` ({label: weight}) weighs each image's loss by its class.
    """
    with only_run(stage):  # one run of a stage at a time
        live = StageLive(stage_metrics_dir(stage))
        checkpoint = None
        if resume:
            # the backend too: each draws its own random numbers, so another one's epochs cannot be continued
            settings = (
                epochs,
                patience,
                batch_size,
                seed,
                sorted((class_weight or {}).items()),
                keras.backend.backend(),
            )
            checkpoint = Checkpoint(stage, fingerprint(stage, model, [*train, *validation], settings))
        log = EpochLog(live, checkpoint, patience)
        state = checkpoint.load(model) if checkpoint else None
        first_epoch = 0
        if state:
            log.restore(state)
            first_epoch = state["epoch"]
            print(f"{stage}: resuming after epoch {first_epoch}/{epochs} from {checkpoint.folder}")
        started = time.perf_counter()
        if first_epoch < epochs and not log.learning_stopped:
            classes = one_hot_classes(model)
            batches = ArrayBatches(*train, batch_size, seed=seed, one_hot=classes)
            model.fit(
                batches,
                validation_data=ArrayBatches(*validation, batch_size, one_hot=classes),
                epochs=epochs,
                initial_epoch=first_epoch,
                callbacks=[batches.follow_epochs(), log],
                shuffle=False,
                verbose=2,
                class_weight=class_weight,
            )
        seconds = time.perf_counter() - started
        if log.best_epoch is None:
            raise StageError(
                "the validation loss was not a number in any epoch (training diverged); "
                "lower the learning rate or check the input data"
            )
        model.set_weights(log.best_weights)
        best = log.best_logs
        epochs_run = len(log.history)
        summary = {
            "best_epoch": log.best_epoch,
            "epochs_run": epochs_run,
            "train": {"loss": best["loss"], "accuracy": best["accuracy"]},
            "val": {"loss": best["val_loss"], "accuracy": best["val_accuracy"]},
        }
        live.summary = dict(summary)  # dvclive adds its step to the dict it is given
        live.end()
        if checkpoint:
            checkpoint.remove()
        ran = max(epochs_run - first_epoch, 1)
        print(
            f"{stage}: best epoch {log.best_epoch} of {epochs_run} run (at most {epochs}): val accuracy "
            f"{summary['val']['accuracy']:.4f}, val loss {summary['val']['loss']:.4f} "
            f"({seconds:.0f} s, {seconds / ran:.1f} s/epoch)"
        )
        if log.best_epoch == epochs:
            print(f"{stage}: the last epoch was the best: more epochs would likely help (raise {stage}.epochs)")
        elif log.learning_stopped and epochs_run < epochs:
            print(f"{stage}: stopped early, {log.patience} epochs without a lower validation loss")
        return summary


def fit_stage(model: keras.Model, stage: str, train: Arrays, validation: Arrays, settings, params, num_classes: int):
    """fit() as a training stage runs it: its section's epochs and batch size, the seed, and the
    `training` section's resume and class weights."""
    return fit(
        model,
        stage,
        train,
        validation,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=params.seed,
        resume=params.training.resume,
        patience=settings.patience,
        class_weight=class_weights(params.training.class_weight, train[1], num_classes),
    )


def compile_stage(model: keras.Model, learning_rate: float, settings, params, train: Arrays) -> None:
    """compile_model as a training stage runs it: the `optimizer` section, `training.label_smoothing` and
    `training.jit_compile`; a schedule spans the stage's `epochs` of as many steps as ArrayBatches
    makes of `train` in batches of its `batch_size`."""
    compile_model(
        model,
        learning_rate,
        params.training.jit_compile,
        optimizer=params.optimizer,
        label_smoothing=params.training.label_smoothing,
        epochs=settings.epochs,
        steps_per_epoch=math.ceil(len(train[1]) / settings.batch_size),
    )

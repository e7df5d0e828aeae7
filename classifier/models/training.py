"""Training shared by the stages: seeding and devices (one, every local GPU, or every process of a
cluster), fit with class weights, the model saved by the process that writes. Batches come from
classifier.models.batches, the epochs' log and best epoch from classifier.models.epochs, checkpoints
from classifier.models.checkpoints."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from classifier.core.backend import backend_problem, devices, set_seed
from classifier.core.cli import StageError
from classifier.core.layout import MODEL_STAGES, model_path, stage_metrics_dir, training_summary
from classifier.core.schema import RunParams
from classifier.intake.prepared import load_prepared
from classifier.models.assembly import compile_model, one_hot_classes
from classifier.models.batches import ArrayBatches, left_out_text
from classifier.models.checkpoints import Checkpoint, fingerprint, only_run
from classifier.models.cluster import cluster_from_environment, join_cluster, same_on_every_process, writes_outputs
from classifier.models.epochs import EpochLog, StageLive
from classifier.models.saving import save_model, write_placeholder

Arrays = tuple[np.ndarray, np.ndarray]  # (images or features, labels), arrays or memory maps


def skipped(params, model_name: str) -> bool:
    """True when `models.<model_name>` is false, once the stage's outputs are placeholders: a line of
    text in models/<name>.keras and a metrics.json that says so (DVC needs every output; evaluate leaves it out)."""
    if getattr(params.models, model_name):
        return False
    if not writes_outputs(params.training.distribute):
        return True
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
    if run.distribute == "multi_host":
        join_cluster()  # before anything runs on JAX
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
    distribute: str = "none",
) -> dict:
    """Train on (x, y) arrays, keep the epoch with the lowest validation loss, write metrics/<stage>/metrics.json.

    `epochs` is the most that run; with `patience`, training stops that many epochs after the best one.

    With `resume`, a checkpoint is saved after every epoch and a rerun of an interrupted
    stage continues after its last finished epoch; the checkpoint is removed at the end.
    `class_weight` ({label: weight}) weighs each image's loss by its class.
    With `distribute` multi_host, each process of the cluster reads its part of every batch and only
    the first writes the metrics, logs and checkpoints (every one reads a checkpoint to resume).
    """
    cluster = cluster_from_environment() if distribute == "multi_host" else None
    share = (cluster.process_id, cluster.processes) if cluster else (0, 1)
    if batch_size % share[1]:
        raise StageError(
            f"{stage}.batch_size {batch_size} does not split evenly over the cluster's {share[1]} processes: "
            f"give a multiple of {share[1]}"
        )
    writer = writes_outputs(distribute)
    with only_run(stage) if writer else contextlib.nullcontext():  # one run of a stage at a time
        live = StageLive(stage_metrics_dir(stage)) if writer else None
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
            checkpoint = Checkpoint(stage, fingerprint(stage, model, [*train, *validation], settings), writer)
        log = EpochLog(live, checkpoint, patience)
        state = checkpoint.load(model) if checkpoint else None
        first_epoch = 0
        if state:
            log.restore(state)
            first_epoch = state["epoch"]
            print(f"{stage}: resuming after epoch {first_epoch}/{epochs} from {checkpoint.folder}")
        if cluster and checkpoint:
            same_on_every_process(
                first_epoch,
                f"{stage}: the processes of the cluster found different checkpoints in {checkpoint.folder}: it must "
                f"lie on a filesystem every host shares; or set training.resume: false",
            )
        started = time.perf_counter()
        if first_epoch < epochs and not log.learning_stopped:
            classes = one_hot_classes(model)
            batches = ArrayBatches(*train, batch_size, seed=seed, one_hot=classes, share=share)
            checked = ArrayBatches(*validation, batch_size, one_hot=classes, share=share)
            if cluster:
                print(
                    f"{stage}: process {share[0]} of {share[1]} reads {batch_size // share[1]} rows of every batch"
                    f"{left_out_text(batches, checked)}"
                )
            model.fit(
                batches,
                validation_data=checked,
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
        if writer:
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
        distribute=params.training.distribute,
    )


def save_trained(model: keras.Model, name: str, class_names: list[str], run: RunParams) -> None:
    """models/<name>.keras, written by the one process that writes outputs (classifier.models.cluster).
    Saving is a collective in a cluster: the other processes save too, into scratch."""
    if writes_outputs(run.distribute):
        save_model(model, model_path(name), class_names)
        return
    with tempfile.TemporaryDirectory() as scratch:
        save_model(model, Path(scratch) / model_path(name).name, class_names)


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

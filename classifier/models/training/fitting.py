"""Fitting a model on (x, y) arrays: its share of every batch in a cluster, one run of a stage at a
time, resuming from a checkpoint, Keras' fit, the best epoch kept, and what the stage says at the end.
Batches come from classifier.models.training.batches, the epochs' log and best epoch from
classifier.models.training.epoch_log, checkpoints from classifier.models.training.checkpoints."""

from __future__ import annotations

import contextlib
import os
import time

import keras
import numpy as np

from classifier.core.errors import StageError
from classifier.core.outputs import writing
from classifier.core.paths import stage_metrics_dir, training_summary
from classifier.intake.prepared.checks import non_finite_rows
from classifier.models.training.batches import ArrayBatches, left_out_text
from classifier.models.training.checkpoints import Checkpoint, fingerprint, only_run
from classifier.models.training.cluster import Cluster, cluster_from_environment, same_on_every_process, writes_outputs
from classifier.models.training.compiling import one_hot_classes
from classifier.models.training.epoch_log import EpochLog, NotFinite, StageLive

Arrays = tuple[np.ndarray, np.ndarray]  # (images or features, labels), arrays or memory maps


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
    learning_rate: str = "the learning rate",
) -> dict:
    """Train on (x, y) arrays, keep the epoch with the lowest validation loss, write metrics/<stage>/metrics.json.

    `epochs` is the most that run; with `patience`, training stops that many epochs after the best one.

    With `resume`, a checkpoint is saved after every epoch and a rerun of an interrupted
    stage continues after its last finished epoch; the checkpoint is removed at the end.
    `class_weight` ({label: weight}) weighs each image's loss by its class.
    With `distribute` multi_host, each process of the cluster reads its part of every batch and only
    the first writes the metrics, logs and checkpoints (every one reads a checkpoint to resume).

    Inputs that are not finite numbers (NaN, infinity: a model learns nothing from them, at a constant loss)
    are refused before the first epoch, and a loss that is not one (training diverged) stops the stage after
    its epoch, naming `learning_rate` (its key and value), with no metrics.json and no checkpoint of the run.
    """
    cluster = cluster_from_environment() if distribute == "multi_host" else None
    share = batch_share(stage, batch_size, cluster)
    check_finite(train, validation)
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
        first_epoch = resumed_epoch(stage, model, log, checkpoint, cluster, epochs)
        started = time.perf_counter()
        if first_epoch < epochs and not log.learning_stopped:
            batches, checked = epoch_batches(stage, model, train, validation, batch_size, seed, share, cluster)
            try:
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
            except NotFinite as diverged:
                if checkpoint:  # resuming would only diverge again
                    checkpoint.remove()
                if writer:  # dvclive's summary of the last epoch: no record of a run that succeeded
                    training_summary(stage).unlink(missing_ok=True)
                raise StageError(
                    f"the {'training' if diverged.name == 'loss' else 'validation'} loss is {diverged.value}, not a "
                    f"finite number, after epoch {diverged.epoch}: training diverged; lower {learning_rate} and run "
                    f"it again (no model is kept from this run)"
                ) from None
        seconds = time.perf_counter() - started
        summary = keep_best_epoch(model, log)
        if writer:
            live.summary = dict(summary)  # dvclive adds its step to the dict it is given
            with writing(stage_metrics_dir(stage)):
                live.end()
        if checkpoint:
            checkpoint.remove()
        print_outcome(stage, log, summary, epochs, max(summary["epochs_run"] - first_epoch, 1), seconds)
        return summary


def check_finite(train: Arrays, validation: Arrays) -> None:
    """StageError for inputs (images or features) holding a value that is not a finite number."""
    for what, (inputs, _) in (("training", train), ("validation", validation)):
        bad = non_finite_rows(inputs)
        if bad:
            name = getattr(inputs, "filename", None)
            source = f" ({os.path.relpath(name)})" if name else ""
            raise StageError(
                f"the {what} inputs{source} hold values that are not finite numbers (NaN or infinity) in {bad} of "
                f"their {len(inputs)} rows: a model learns nothing from them; make them again (the features: "
                f"`dvc repro extract_features`, which refuses such values)"
            )


def batch_share(stage: str, batch_size: int, cluster: Cluster | None) -> tuple[int, int]:
    """(this process, processes): which part of every batch this process reads; (0, 1) outside a cluster."""
    share = (cluster.process_id, cluster.processes) if cluster else (0, 1)
    if batch_size % share[1]:
        raise StageError(
            f"{stage}.batch_size {batch_size} does not split evenly over the cluster's {share[1]} processes: "
            f"give a multiple of {share[1]}"
        )
    return share


def resumed_epoch(
    stage: str, model: keras.Model, log: EpochLog, checkpoint: Checkpoint | None, cluster: Cluster | None, epochs: int
) -> int:
    """The epoch training starts after: 0, or a checkpoint's last finished epoch (its weights and log loaded)."""
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
    return first_epoch


def epoch_batches(
    stage: str,
    model: keras.Model,
    train: Arrays,
    validation: Arrays,
    batch_size: int,
    seed: int,
    share: tuple[int, int],
    cluster: Cluster | None,
) -> tuple[ArrayBatches, ArrayBatches]:
    """The training batches (shuffled each epoch) and the validation batches, this process's part of each."""
    classes = one_hot_classes(model)
    batches = ArrayBatches(*train, batch_size, seed=seed, one_hot=classes, share=share)
    checked = ArrayBatches(*validation, batch_size, one_hot=classes, share=share)
    if cluster:
        print(
            f"{stage}: process {share[0]} of {share[1]} reads {batch_size // share[1]} rows of every batch"
            f"{left_out_text(batches, checked)}"
        )
    return batches, checked


def keep_best_epoch(model: keras.Model, log: EpochLog) -> dict:
    """The model takes the weights of its best epoch; that epoch's metrics, as metrics.json holds them."""
    if log.best_epoch is None:
        raise StageError(
            "the validation loss was not a number in any epoch (training diverged); "
            "lower the learning rate or check the input data"
        )
    model.set_weights(log.best_weights)
    best = log.best_logs
    return {
        "best_epoch": log.best_epoch,
        "epochs_run": len(log.history),
        "train": {"loss": best["loss"], "accuracy": best["accuracy"]},
        "val": {"loss": best["val_loss"], "accuracy": best["val_accuracy"]},
    }


def print_outcome(stage: str, log: EpochLog, summary: dict, epochs: int, ran: int, seconds: float) -> None:
    """The best epoch, and whether more epochs would likely help or learning stopped early."""
    print(
        f"{stage}: best epoch {log.best_epoch} of {summary['epochs_run']} run (at most {epochs}): val accuracy "
        f"{summary['val']['accuracy']:.4f}, val loss {summary['val']['loss']:.4f} "
        f"({seconds:.0f} s, {seconds / ran:.1f} s/epoch)"
    )
    if log.best_epoch == epochs:
        print(f"{stage}: the last epoch was the best: more epochs would likely help (raise {stage}.epochs)")
    elif log.learning_stopped and summary["epochs_run"] < epochs:
        print(f"{stage}: stopped early, {log.patience} epochs without a lower validation loss")

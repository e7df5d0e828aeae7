"""What every training stage does, in its order (`TrainingStage`): its outputs are placeholders when
`models` leaves its model out; else its model is built and compiled seeded, in the precision and on
the devices `training` asks for (one, every local GPU, or every process of a cluster), fitted with its
section's settings (classifier.models.training.fitting), and saved by the process that writes the outputs.

    stage = TrainingStage(params, "frozen_augmented")
    if stage.skipped():
        return
    with stage.building() as classes:
        model = ...  # a model of `classes` outputs
        stage.compile(model, learning_rate)
    stage.fit(model)
    stage.save(model)
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import keras

from classifier.core.backend import backend_problem, devices, set_seed
from classifier.core.errors import StageError
from classifier.core.paths import MODEL_STAGES, model_path, stage_metrics_dir, training_summary
from classifier.core.schema import RunParams
from classifier.intake.prepared.arrays import load_prepared, read_classes
from classifier.models.saving import save_model, write_placeholder
from classifier.models.training.cluster import writes_outputs
from classifier.models.training.compiling import compile_model
from classifier.models.training.fitting import Arrays, class_weights, fit
from classifier.models.training.joining import join_cluster


class TrainingStage:
    """One training stage: the stage that trains `model_name` (layout.MODEL_STAGES), reading its params
    section; the data, `prepared_splits` unless given (a callable: read only once the stage is not skipped)."""

    def __init__(self, params, model_name: str, data: Callable[[], tuple[Arrays, Arrays]] | None = None):
        self.params, self.model_name, self.name = params, model_name, MODEL_STAGES[model_name]
        self.data = data or prepared_splits
        self.learning_rate: float | None = None  # compile's, named if training diverges

    def skipped(self) -> bool:
        """True when `models.<model_name>` is false, once the stage's outputs are placeholders: a line of text
        in models/<name>.keras and a metrics.json that says so (DVC needs every output; evaluate leaves it out)."""
        if getattr(self.params.models, self.model_name):
            return False
        if writes_outputs(self.params.training.distribute):
            write_placeholders(self.name, self.model_name)
        return True

    @contextlib.contextmanager
    def building(self) -> Iterator[int]:
        """The class list and the data read; then build and compile the model inside this (model_scope),
        which gives the number of classes."""
        self.settings = getattr(self.params, self.name)
        self.class_names = read_classes()
        self.train, self.validation = self.data()
        with model_scope(self.params.training, self.params.seed):
            yield len(self.class_names)

    def compile(self, model: keras.Model, learning_rate: float) -> None:
        """compile_model as a training stage runs it: the `optimizer` section, `training.label_smoothing` and
        `training.jit_compile`; a schedule spans the stage's `epochs` of as many steps as ArrayBatches
        makes of the training data in batches of its `batch_size`."""
        self.learning_rate = learning_rate
        compile_model(
            model,
            learning_rate,
            self.params.training.jit_compile,
            optimizer=self.params.optimizer,
            label_smoothing=self.params.training.label_smoothing,
            epochs=self.settings.epochs,
            steps_per_epoch=math.ceil(len(self.train[1]) / self.settings.batch_size),
        )

    def fit(self, model: keras.Model) -> dict:
        """fit() as a training stage runs it: its section's epochs, batch size and patience, the seed, and the
        `training` section's resume, class weights and distribution."""
        run = self.params.training
        return fit(
            model,
            self.name,
            self.train,
            self.validation,
            epochs=self.settings.epochs,
            batch_size=self.settings.batch_size,
            seed=self.params.seed,
            resume=run.resume,
            patience=self.settings.patience,
            class_weight=class_weights(run.class_weight, self.train[1], len(self.class_names)),
            distribute=run.distribute,
            learning_rate=learning_rate_text(self.name, self.learning_rate),
        )

    def save(self, model: keras.Model) -> None:
        """models/<name>.keras, written by the one process that writes outputs (classifier.models.training.cluster).
        Saving is a collective in a cluster: the other processes save too, into scratch."""
        path = model_path(self.model_name)
        if writes_outputs(self.params.training.distribute):
            save_model(model, path, self.class_names)
            return
        with tempfile.TemporaryDirectory() as scratch:
            save_model(model, Path(scratch) / path.name, self.class_names)


def learning_rate_text(stage: str, value: float | None) -> str:
    """`train_frozen.learning_rate (now 0.01)`: a training stage's learning rate as params.yaml names it
    (fine_tune's is the top-level `lr`)."""
    key = "lr" if stage == "fine_tune" else f"{stage}.learning_rate"
    return key if value is None else f"{key} (now {value:g})"


def write_placeholders(stage: str, model_name: str) -> None:
    """A skipped stage's outputs: models/<name>.keras a line of text, metrics.json {"skipped": true}, and
    dvclive's curves with their header only (dvc.yaml plots them, and DVC warns of missing ones)."""
    shutil.rmtree(stage_metrics_dir(stage), ignore_errors=True)
    stage_metrics_dir(stage).mkdir(parents=True)
    training_summary(stage).write_text(json.dumps({"skipped": True}) + "\n")
    for split in ("train", "val"):
        curves = stage_metrics_dir(stage) / "plots" / "metrics" / split
        curves.mkdir(parents=True)
        for metric in ("loss", "accuracy"):
            (curves / f"{metric}.tsv").write_text(f"step\t{metric}\n")
    write_placeholder(model_path(model_name))
    print(f"{stage}: skipped (models.{model_name}: false); {model_path(model_name)} is a placeholder")


@contextlib.contextmanager
def model_scope(run: RunParams, seed: int):
    """Build and compile a model inside this: seeded, in the precision and on the devices `training` asks for."""
    problem = backend_problem(run.distribute, run.jit_compile, run.deterministic)
    if problem:
        raise StageError(problem)
    set_seed(seed, run.deterministic)
    if run.distribute == "multi_host":
        join_cluster(run.join_timeout)  # before anything runs on JAX
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

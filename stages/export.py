"""Stage `export`: the model `export.model` for serving, in models/export/ (by default `best`:
the model with the best validation accuracy, as stage evaluate chose it).

Writes the formats in `export.formats`: saved_model/ (a TensorFlow SavedModel, for TF Serving),
model.tflite (LiteRT, for phones and edge devices), model.onnx (needs requirements-export.txt),
and README.md, the model's card: classes, input, output, test accuracy, the params that made
it, and how to load each file. Every check (the model, its test metrics, each format's
converter) comes before anything is written; the folder appears only once complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras

from classifier.core.backend import run_on_tensorflow
from classifier.core.errors import StageError
from classifier.core.outputs import writing
from classifier.core.params import load_params
from classifier.core.paths import EXPORT_DIR, MODEL_STAGES, MODELS_DIR, model_path
from classifier.core.startup import run_stage
from classifier.models.architecture import class_names_of
from classifier.models.best_model import using, which_model
from classifier.models.saving import load_model, weights_bytes


def main() -> None:
    run_on_tensorflow("export", "SavedModel and LiteRT are TensorFlow's formats, written by TensorFlow")
    from classifier.serving.card import card, evaluated_metrics, recipe  # these import TensorFlow
    from classifier.serving.exporting import FILES, check_converters, export_model

    params = load_params()
    path = model_path(params.export.model)  # models/best.keras for `best`: a copy of the chosen one
    name = which_model(params.export.model)
    print(f"export: {using(params.export.model, name)}")
    formats = [fmt for fmt in FILES if fmt in params.export.formats]  # the params check refuses an empty list
    check_converters(formats)
    metrics = evaluated_metrics(name)
    if not path.is_file():
        stage = MODEL_STAGES.get(params.export.model, "evaluate")
        raise StageError(
            f"export.model {params.export.model}: {path} is missing: run `dvc repro {stage}`, or name another model"
        )
    keras.utils.set_random_seed(params.seed)  # Dropout's random state, saved with the variables, then repeats
    model = load_model(path)
    classes = class_names_of(model, path)
    kept = str(EXPORT_DIR) if EXPORT_DIR.exists() else None  # a full disk: one line, an earlier export whole
    with (
        writing(EXPORT_DIR, weights_bytes(model) * len({*formats, "saved_model"}), kept),
        tempfile.TemporaryDirectory(dir=MODELS_DIR, prefix=".export-") as scratch,
    ):
        folder = Path(scratch) / EXPORT_DIR.name
        export_model(model, folder, formats)
        (folder / "README.md").write_text(card(name, model, classes, metrics, recipe(params, name), formats))
        shutil.rmtree(EXPORT_DIR, ignore_errors=True)  # DVC removes it first; a run by hand replaces it
        os.replace(folder, EXPORT_DIR)
    print(f"export: {name} -> {EXPORT_DIR}/ ({', '.join(FILES[fmt] for fmt in formats)}, README.md)")


if __name__ == "__main__":
    run_stage(main, __file__)

"""The card of an exported model (models/export/README.md): what it tells apart, what it takes and
gives, how well it did on the test split, the params that made it, and how to load each file. Class
names go in escaped (classifier.intake.escaping): plain text, whatever they hold."""

from __future__ import annotations

import json

import keras

from classifier.core.errors import StageError
from classifier.core.paths import EVALUATION_METRICS, EXPORT_DIR, MODEL_STAGES, model_path
from classifier.intake.escaping import markdown_code
from classifier.serving.exporting import FILES, INPUT_NAME, OUTPUT_NAME, SIGNATURE

TRANSFER_MODELS = ("feature_extraction", "frozen_augmented", "fine_tuned")  # the ones on a pretrained base


def recipe(params, name: str) -> dict[str, object]:
    """The params that made the model `name`, as the card quotes them."""
    made = {"seed": params.seed}
    if name in TRANSFER_MODELS:
        base = params.base
        made |= {"base.name": base.name, "base.weights": base.weights, "base.preprocessing": base.preprocessing}
    stage = MODEL_STAGES[name]
    sections = {
        "train_scratch": params.train_scratch,
        "train_scratch_augmented": params.train_scratch_augmented,
        "train_classifier": params.train_classifier,
        "train_frozen": params.train_frozen,
        "fine_tune": params.fine_tune,
    }
    section = sections[stage]
    made |= {f"{stage}.{key}": getattr(section, key) for key in section.keys()}
    if name == "fine_tuned":
        made["lr"] = params.lr
    return made


def evaluated_metrics(name: str) -> dict[str, float]:
    if not EVALUATION_METRICS.is_file():
        raise StageError(f"{EVALUATION_METRICS} is missing: run `dvc repro evaluate` first")
    metrics = json.loads(EVALUATION_METRICS.read_text())
    if name not in metrics:
        raise StageError(f"{EVALUATION_METRICS} has no results for export.model {name}: run `dvc repro evaluate`")
    return metrics[name]


ACCURACY_KEYS = ("accuracy", "accuracy_low", "accuracy_high", "test_images")


def accuracy_text(metrics: dict) -> str:
    """The test accuracy, with its 95% interval and the number of test images where evaluate wrote them,
    then the other metrics."""
    others = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if key not in ACCURACY_KEYS)
    text = f"{metrics['accuracy']:.4f}"
    if "accuracy_low" in metrics:
        text += f" (95% interval {metrics['accuracy_low']:.4f}-{metrics['accuracy_high']:.4f}, "
        text += f"{metrics['test_images']} test images)"
    return f"{text} ({EVALUATION_METRICS}; {others})"


def card(name: str, model: keras.Model, classes: list[str], metrics: dict, made: dict, formats: list[str]) -> str:
    """The card: what the model is, then the code that loads each file written, then how TF Serving serves it."""
    size = model.input_shape[1]
    lines = description(name, model, classes, metrics, made) + ["## Loading", "", "```python"]
    lines += loading_code(name, size, formats)
    if "saved_model" in formats:
        lines += ["```", "", *serving_lines(name, size)]
    return "\n".join(lines + ["```", ""])


def description(name: str, model: keras.Model, classes: list[str], metrics: dict, made: dict) -> list[str]:
    """The model's classes, input, output, test accuracy and the params that made it."""
    size, shown = model.input_shape[1], [markdown_code(cls) for cls in classes]
    if model.output_shape[-1] == 1:
        output = (
            f"float32 (N, 1): P({shown[1]}), the probability of class 1; P({shown[0]}) is 1 minus it, "
            f"and the pipeline predicts {shown[1]} from 0.5 up"
        )
    else:
        output = f"float32 (N, {len(classes)}): the probabilities (softmax) of the classes in label order"
    return [
        f"# {name}: an image classifier of {len(classes)} classes",
        "",
        f"Written by the DVC stage `export` from `{model_path(name)}`, which stage `{MODEL_STAGES[name]}` trained.",
        "",
        "- **Classes**, in label order: " + ", ".join(f"{label} {cls}" for label, cls in enumerate(shown)),
        f"- **Input** `{INPUT_NAME}`: float32 (N, {size}, {size}, 3), RGB pixels 0-255 of images resized to "
        f"{size}x{size} (squashed, not cropped). No scaling or other preprocessing: the model does its own.",
        f"- **Output** `{OUTPUT_NAME}`: {output}.",
        f"- **Test accuracy**: {accuracy_text(metrics)}.",
        "- **Made with** (params.yaml): "
        + ", ".join(markdown_code(f"{key}: {json.dumps(value)}") for key, value in made.items())
        + "; every setting of the run: dvc.lock.",
        "",
    ]


def loading_code(name: str, size: int, formats: list[str]) -> list[str]:
    """Python that reads a photo as the model takes it, then loads the .keras model and each exported file."""
    folder = EXPORT_DIR
    lines = [
        "import numpy as np",
        "from PIL import Image",
        "",
        f'pixels = np.asarray(Image.open("photo.jpg").convert("RGB").resize(({size}, {size}), Image.BILINEAR), '
        "dtype=np.float32)[None]",
        "",
        "import keras  # the trained model itself: Keras' own layers only",
        f'probabilities = keras.saving.load_model("{model_path(name)}").predict(pixels)',
    ]
    if "saved_model" in formats:
        lines += [
            "",
            f"import tensorflow as tf  # SavedModel: tag serve, signature {SIGNATURE}, as TF Serving loads it",
            f'saved_model = tf.saved_model.load("{folder}/{FILES["saved_model"]}")'
            "  # keep it: its variables live in it",
            "probabilities = saved_model.serve(pixels).numpy()",
        ]
    if "litert" in formats:
        lines += [
            "",
            "from ai_edge_litert.interpreter import Interpreter  # LiteRT; or tf.lite.Interpreter",
            f'runner = Interpreter(model_path="{folder}/{FILES["litert"]}").get_signature_runner()',
            f'probabilities = runner({INPUT_NAME}=pixels)["{OUTPUT_NAME}"]',
        ]
    if "onnx" in formats:
        lines += [
            "",
            "import onnxruntime  # ONNX",
            f'session = onnxruntime.InferenceSession("{folder}/{FILES["onnx"]}")',
            f'probabilities = session.run(None, {{"{INPUT_NAME}": pixels}})[0]',
        ]
    return lines


def serving_lines(name: str, size: int) -> list[str]:
    """TF Serving of the SavedModel: the container, and a request to its REST API."""
    saved_model = f"{EXPORT_DIR}/{FILES['saved_model']}"
    return [
        "TF Serving (REST on port 8501):",
        "",
        "```bash",
        f'docker run -p 8501:8501 -v "$PWD/{saved_model}:/models/{name}/1" -e MODEL_NAME={name} tensorflow/serving',
        f"curl -d '{{\"instances\": [...N x {size} x {size} x 3 pixels...]}}' http://localhost:8501/v1/models/{name}:predict",
    ]

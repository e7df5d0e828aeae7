"""Stage `evaluate`: every model on the test split, in one table, with plots, pictures and a report.

Writes metrics/evaluate.json ({model: {metric: value}}, so `dvc metrics show` prints the
table and `dvc metrics diff` compares it: accuracy, loss, AUC, macro precision, recall and
F1, top-k accuracy when there are more than k classes, and for two classes the precision and
recall of label 1), each model's predictions under metrics/evaluate/predictions/ (DVC's
confusion matrices) and its ROC points under metrics/evaluate/roc/ (for more than two classes
the micro-averaged one-vs-rest curve),
a picture of the fine-tuned model's worst mistakes, and metrics/report.md, with the book's
accuracies beside ours when the classes are Dogs vs. Cats (stage `explain` draws what a model learned).
"""

from __future__ import annotations

import json
from pathlib import Path

from classifier.core.cli import run_stage
from classifier.core.layout import (
    EVALUATION_DIR,
    EVALUATION_METRICS,
    MODEL_STAGES,
    REPORT,
    model_path,
)
from classifier.core.params import load_params
from classifier.evaluation.metrics import (
    classification_metrics,
    confusion,
    predicted_classes,
)
from classifier.evaluation.pictures import most_wrong_gallery
from classifier.evaluation.plot_data import write_predictions, write_roc
from classifier.evaluation.report import EXPLAINED_MODEL, report_markdown
from classifier.intake.classes import read_classes
from classifier.intake.prepared import load_prepared, manifest_test_paths
from classifier.models.prediction import check_trained_on, predict_probabilities
from classifier.models.saving import load_model


def main() -> None:
    params = load_params()
    settings = params.evaluate
    class_names = read_classes()
    images, labels = load_prepared("test")
    paths = manifest_test_paths(len(labels))
    results, counts = {}, {}
    for name in MODEL_STAGES:
        model = load_model(model_path(name))
        check_trained_on(model, model_path(name), class_names)
        probabilities = predict_probabilities(model, images, settings.batch_size)
        results[name] = classification_metrics(labels, probabilities, settings.top_k)
        predicted = predicted_classes(probabilities)
        counts[name] = confusion(labels, predicted, len(class_names))
        write_predictions(name, paths, labels, predicted, probabilities, class_names)
        write_roc(name, labels, probabilities)
        if name == EXPLAINED_MODEL:
            explained_probabilities = probabilities
        print(f"evaluate: {name}: " + ", ".join(f"{key} {value:.4f}" for key, value in results[name].items()))
    EVALUATION_METRICS.write_text(json.dumps(results, indent=2) + "\n")

    names = [Path(path).name for path in paths]
    wrong = most_wrong_gallery(
        images,
        labels,
        explained_probabilities,
        names,
        class_names,
        EXPLAINED_MODEL,
        EVALUATION_DIR / "most_wrong.png",
        settings.gallery_size,
    )
    REPORT.write_text(report_markdown(params, class_names, results, counts, labels, wrong))


if __name__ == "__main__":
    run_stage(main, __file__)

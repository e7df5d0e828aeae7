"""Stage `evaluate`: every model on the test split, in one table, with plots, pictures and a report.

Writes metrics/headline.json, the one DVC metric (`dvc metrics show`, `dvc exp show`): the best
model, its test accuracy with its 95% interval, its validation accuracy and the number of test images;
metrics/evaluate.json, the details ({model: {metric: value}}: accuracy with its 95% Wilson interval
(accuracy_low, accuracy_high) and test_images, loss, AUC, macro precision, recall and F1,
top-k accuracy when there are more than k classes, and for two classes the precision and
recall of label 1), each model's predictions under metrics/evaluate/predictions/ (DVC's
confusion matrices) and its ROC points under metrics/evaluate/roc/ (for more than two classes
the micro-averaged one-vs-rest curve),
a picture of the best model's worst mistakes, and metrics/report.md, with the book's
accuracies beside ours when the classes are Dogs vs. Cats, and the best model against each other one on the
same test images, McNemar's test (stage `explain` draws what a model learned).

The best model is chosen on the validation split, from each training stage's best epoch, never on
the test split: `best_model` in metrics/evaluate.json, and a copy of it in models/best.keras.
"""

from __future__ import annotations

import json
from pathlib import Path

from classifier.core.outputs import write_whole
from classifier.core.params import load_params
from classifier.core.paths import EVALUATION_DIR, EVALUATION_METRICS, HEADLINE, MODEL_STAGES, REPORT, model_path
from classifier.core.startup import run_stage
from classifier.evaluation.gallery import most_wrong_gallery
from classifier.evaluation.metrics import classification_metrics, confusion, predicted_classes
from classifier.evaluation.plot_data import write_class_curves, write_predictions, write_roc, write_untrained
from classifier.evaluation.report import report_markdown
from classifier.evaluation.statistics import wilson_interval
from classifier.intake.prepared.arrays import load_prepared, read_classes
from classifier.intake.tables import image_paths
from classifier.models.architecture import check_trained_on
from classifier.models.best_model import best_on_validation, keep_as_best, trained_summaries
from classifier.models.prediction import predict_probabilities
from classifier.models.saving import load_model


def headline(best: str, tested: dict, trained: dict) -> dict:
    """What `dvc metrics show` prints: few columns, so that it fits a terminal."""
    return {
        "best_model": best,
        "accuracy": tested["accuracy"],
        "accuracy_low": tested["accuracy_low"],
        "accuracy_high": tested["accuracy_high"],
        "val_accuracy": trained["val"]["accuracy"],
        "test_images": tested["test_images"],
    }


def with_interval(metrics: dict, correct) -> dict:
    """A model's entry in metrics/evaluate.json: its metrics, the 95% interval of its accuracy right after it,
    and the number of test images that the accuracy is of."""
    low, high = wilson_interval(int(correct.sum()), len(correct))
    accuracy = {"accuracy": metrics["accuracy"], "accuracy_low": low, "accuracy_high": high}
    return {**accuracy, **metrics, "test_images": len(correct)}


def main() -> None:
    params = load_params()
    settings = params.evaluate
    class_names = read_classes()
    images, labels = load_prepared("test")
    paths = image_paths("test", len(labels))
    trained = trained_summaries()
    best = best_on_validation(trained)
    results, counts, correct = {}, {}, {}
    for name in trained:  # the models `models` chose; the others' files are placeholders
        model = load_model(model_path(name))
        check_trained_on(model, model_path(name), class_names)
        probabilities = predict_probabilities(model, images, settings.batch_size, tta=settings.tta)
        results[name] = classification_metrics(labels, probabilities, settings.top_k)
        predicted = predicted_classes(probabilities)
        counts[name] = confusion(labels, predicted, len(class_names))
        correct[name] = predicted == labels
        write_predictions(name, paths, labels, predicted, probabilities, class_names)
        write_roc(name, labels, probabilities)
        if name == best:
            best_probabilities = probabilities
        print(f"evaluate: {name}: " + ", ".join(f"{key} {value:.4f}" for key, value in results[name].items()))
    for name in [name for name in MODEL_STAGES if name not in trained]:
        write_untrained(name)
    tested = {name: with_interval(metrics, correct[name]) for name, metrics in results.items()}
    write_whole(EVALUATION_METRICS, json.dumps({**tested, "best_model": best}, indent=2) + "\n")
    write_whole(HEADLINE, json.dumps(headline(best, tested[best], trained[best]), indent=2) + "\n")
    keep_as_best(best)
    print(f"evaluate: best on the validation split: {best} (val accuracy {trained[best]['val']['accuracy']:.4f})")

    write_class_curves(labels, best_probabilities, class_names)
    names = [Path(path).name for path in paths]
    wrong = most_wrong_gallery(
        images,
        labels,
        best_probabilities,
        names,
        class_names,
        best,
        EVALUATION_DIR / "most_wrong.png",
        settings.gallery_size,
    )
    write_whole(
        REPORT, report_markdown(params, class_names, results, counts, correct, labels, wrong, best, trained[best])
    )


if __name__ == "__main__":
    run_stage(main, __file__)

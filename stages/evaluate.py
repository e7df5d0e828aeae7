"""Stage `evaluate`: every model on the test split, in one table, with plots, pictures and a report.

Writes metrics/evaluate.json ({model: {accuracy, loss, auc, precision, recall}}, so
`dvc metrics show` prints the table and `dvc metrics diff` compares it), per-model
predictions and ROC points under metrics/evaluate/ (DVC's confusion and ROC plots),
pictures of the fine-tuned model's worst mistakes and Grad-CAM heatmaps, and
metrics/report.md with the table beside the book's accuracies.
"""

from __future__ import annotations

import csv
import json

import numpy as np

from stages.common.book import BOOK_ACCURACY
from stages.common.cli import run_stage
from stages.common.evaluation import binary_metrics, roc_curve
from stages.common.images import load_prepared
from stages.common.layout import EVALUATION_DIR, EVALUATION_METRICS, MODEL_STAGES, PREPARED_DIR, REPORT, model_path
from stages.common.models import load_model, predict_p_dog
from stages.common.params import Params, load_params
from stages.common.pictures import grad_cam_figure, most_wrong_gallery
from stages.common.raw_images import LABELS

EXPLAINED_MODEL = "fine_tuned"  # the model the pictures are about


def test_image_names() -> list[str]:
    with open(PREPARED_DIR / "manifest.csv", newline="") as file:
        return [f"{row['label']}.{row['index']}.jpg" for row in csv.DictReader(file) if row["split"] == "test"]


def write_rows(path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def report(params: Params, results: dict, labels: np.ndarray, wrong: int) -> str:
    cats, dogs = int(np.sum(labels == 0)), int(np.sum(labels == 1))
    lines = [
        "# Dogs vs. Cats: test results",
        "",
        f"Written by stage `evaluate` from {len(labels)} test images ({cats} cats, {dogs} dogs) "
        f"at {params.data.image_size}x{params.data.image_size}; do not edit, run `dvc repro`.",
        "",
        "| model | test accuracy | AUC | precision | recall | loss | book 1st ed. | book 2nd ed. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in results.items():
        first, second = BOOK_ACCURACY[name]
        lines.append(
            f"| {name} | {m['accuracy']:.3f} | {m['auc']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} "
            f"| {m['loss']:.3f} | {first:.3f} | {second:.3f} |"
        )
    split = params.data.split
    base = params.base
    lines += [
        "",
        "The book's columns are its test accuracies with 2,000 training images: 1st edition "
        "(pixels / 255) and 2nd edition (VGG16's own preprocessing).",
        "",
        "## Params",
        "",
        f"- data: `{params.data.raw_dir}`, per class train {list(split.train)}, "
        f"validation {list(split.validation)}, test {list(split.test)}",
        f"- base: `{base.name}`, weights `{base.weights or 'null'}`, preprocessing `{base.preprocessing}`, "
        f"fine-tuned from `{base.fine_tune_from}` at lr {params.lr:g}",
        f"- epochs: classifier {params.train_classifier.epochs}, frozen {params.train_frozen.epochs}, "
        f"fine-tune {params.fine_tune.epochs}, scratch {params.train_scratch.epochs}, "
        f"scratch augmented {params.train_scratch_augmented.epochs}; seed {params.seed}",
        "",
        "## Pictures",
        "",
        f"The {EXPLAINED_MODEL} model's most confident mistakes ({wrong} wrong in all):",
        "",
        "![most confident mistakes](evaluate/most_wrong.png)",
        "",
        "Where it looks (Grad-CAM on the base's last feature map):",
        "",
        "![Grad-CAM heatmaps](evaluate/gradcam.png)",
        "",
        "Training curves, confusion matrices and ROC curves: `dvc plots show`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    params = load_params()
    settings = params.evaluate
    images, labels = load_prepared("test")
    names = test_image_names()
    results = {}
    for name in MODEL_STAGES:
        model = load_model(model_path(name))
        p_dog = predict_p_dog(model, images, settings.batch_size)
        results[name] = binary_metrics(labels, p_dog)
        predicted = (p_dog >= 0.5).astype(int)
        write_rows(
            EVALUATION_DIR / "predictions" / f"{name}.csv",
            ("image", "actual", "predicted", "p_dog"),
            [(n, LABELS[a], LABELS[p], f"{q:.6f}") for n, a, p, q in zip(names, labels, predicted, p_dog)],
        )
        fpr, tpr, thresholds = roc_curve(labels, p_dog)
        write_rows(
            EVALUATION_DIR / "roc" / f"{name}.csv",
            ("fpr", "tpr", "threshold"),
            [(f"{f:.6f}", f"{t:.6f}", f"{h:.6f}") for f, t, h in zip(fpr, tpr, np.minimum(thresholds, 1.0))],
        )
        if name == EXPLAINED_MODEL:
            explained = model, p_dog
        print(f"evaluate: {name}: " + ", ".join(f"{key} {value:.4f}" for key, value in results[name].items()))
    EVALUATION_METRICS.write_text(json.dumps(results, indent=2) + "\n")

    model, p_dog = explained
    wrong = most_wrong_gallery(
        images, labels, p_dog, names, EXPLAINED_MODEL, EVALUATION_DIR / "most_wrong.png", settings.gallery_size
    )
    per_class = [np.flatnonzero(labels == label)[: settings.gradcam_per_class] for label in (0, 1)]
    rows = np.concatenate(per_class)
    grad_cam_figure(
        model, images[rows], labels[rows], [names[r] for r in rows], EXPLAINED_MODEL, EVALUATION_DIR / "gradcam.png"
    )
    REPORT.write_text(report(params, results, labels, wrong))


if __name__ == "__main__":
    run_stage(main, __file__)

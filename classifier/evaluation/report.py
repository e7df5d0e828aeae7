"""metrics/report.md: the test results of every model (each accuracy with its 95% interval), the best
model against each other one on the same test images (McNemar), per class and per confused pair, the params
that made them and the pictures, in Markdown. Class names and params' text go in escaped
(classifier.intake.escaping): a name stays one table cell of plain text, whatever it holds."""

from __future__ import annotations

import numpy as np

from classifier.core.schema import Params
from classifier.evaluation.book import BOOK_ACCURACY, BOOK_COLUMNS, BOOK_NOTE, compares_with_book
from classifier.evaluation.metrics import most_confused, per_class_scores
from classifier.evaluation.statistics import discordant, interval_text, mcnemar_p, p_text, verdict
from classifier.intake.escaping import markdown_code, markdown_text

CONFUSED_PAIRS = 5  # most confused (actual, predicted) pairs listed
LISTED_CLASSES = 10  # up to this many classes, the summary counts each class's test images


def markdown_table(header, rows, text_columns: int = 1) -> list[str]:
    """Text in the first columns, numbers (right-aligned) in the others."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * text_columns + "---:|" * (len(header) - text_columns),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def column_title(key: str, class_names: list[str]) -> str:
    if key in ("precision", "recall"):  # two classes: of label 1
        return f"{key} ({markdown_text(class_names[1])})"
    titles = {"accuracy": "accuracy (95% interval)", "auc": "AUC", "macro_f1": "macro F1"}
    return titles.get(key, key.replace("_", " ").replace("top ", "top-"))


def accuracy_text(correct: np.ndarray) -> str:
    return interval_text(int(correct.sum()), len(correct))


def results_table(results: dict, correct: dict, class_names: list[str]) -> list[str]:
    keys = list(next(iter(results.values())))
    book = compares_with_book(class_names)
    header = ["model", *(column_title(key, class_names) for key in keys), *(BOOK_COLUMNS if book else ())]
    rows = [
        [
            name,
            *(accuracy_text(correct[name]) if key == "accuracy" else f"{metrics[key]:.3f}" for key in keys),
            *(f"{a:.3f}" for a in BOOK_ACCURACY[name] if book),
        ]
        for name, metrics in results.items()
    ]
    return markdown_table(header, rows) + (["", BOOK_NOTE] if book else [])


def paired_table(correct: dict, best: str) -> list[str]:
    """The best model against each other one, image by image: only where one is right and the other
    wrong do they differ, and McNemar's exact test says whether that count is lopsided beyond chance."""
    others = [name for name in correct if name != best]
    images = len(correct[best])
    if not others:
        return [f"Only {best} was trained: no other model to compare it with."]
    rows = []
    for name in others:
        b, c = discordant(correct[best], correct[name])
        p = mcnemar_p(b, c)
        rows.append(
            [name, accuracy_text(correct[name]), accuracy_text(correct[best]), b, c, p_text(p), verdict(p, images)]
        )
    return [
        f"{best} against each other model on the same {images} test images: b images only {best} gets right, "
        f"c images only the other gets right, and McNemar's exact test of b against c (a p-value below 0.05: "
        "a real difference at 5%; above it, the test images cannot tell the two apart).",
        "",
        *markdown_table(
            [
                "model",
                "accuracy",
                f"{best} accuracy",
                f"b: only {best} right",
                "c: only it right",
                "p (McNemar)",
                "verdict",
            ],
            rows,
        ),
    ]


def per_class_tables(counts: dict, class_names: list[str], explained_model: str) -> list[str]:
    explained = per_class_scores(counts[explained_model])
    f1 = {name: per_class_scores(model_counts)["f1"] for name, model_counts in counts.items()}
    return [
        f"### {explained_model}",
        "",
        *markdown_table(
            ["class", "precision", "recall", "F1", "test images"],
            [
                [markdown_text(name), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", n]
                for name, p, r, f, n in zip(
                    class_names, explained["precision"], explained["recall"], explained["f1"], explained["support"]
                )
            ],
        ),
        "",
        "### F1, every model",
        "",
        *markdown_table(
            ["class", *counts],
            [[markdown_text(name), *(f"{f1[model][c]:.3f}" for model in counts)] for c, name in enumerate(class_names)],
        ),
    ]


def confused_pairs(counts: np.ndarray, class_names: list[str]) -> list[str]:
    pairs = most_confused(counts, CONFUSED_PAIRS)
    if not pairs:
        return ["No mistakes."]
    names = [markdown_text(name) for name in class_names]
    return markdown_table(["actual", "predicted", "images"], [[names[a], names[p], n] for a, p, n in pairs], 2)


def split_summary(labels: np.ndarray, class_names: list[str]) -> str:
    per_class = np.bincount(labels, minlength=len(class_names))
    if len(class_names) <= LISTED_CLASSES:
        counted = ", ".join(f"{n} {markdown_text(name)}" for n, name in zip(per_class, class_names))
        return f"{len(labels)} test images ({counted})"
    return f"{len(labels)} test images in {len(class_names)} classes ({per_class.min()} to {per_class.max()} per class)"


def pictures_lines(class_names: list[str], wrong: int, explained_model: str) -> list[str]:
    return [
        f"The {explained_model} model's most confident mistakes ({wrong} wrong in all), with the true class "
        f"and the predicted one with its probability:",
        "",
        "![most confident mistakes](evaluate/most_wrong.png)",
        "",
        "What a model learned (params `explain`), drawn by stage `explain`: a test image's "
        "[activations](explain/activations.png) in its first layers, [filter patterns](explain/filters.png) "
        "and where it looks, [Grad-CAM heatmaps](explain/gradcam.png) of the predicted class.",
        "",
        (
            "Training curves, confusion matrices and ROC curves"
            if len(class_names) == 2
            else "Training curves and confusion matrices"
        )
        + ": `dvc plots show`.",
    ]


def share_text(share) -> str:
    """An index range [start, end) or a fraction of each class."""
    return f"[{share[0]}, {share[1]})" if isinstance(share, tuple) else f"{share * 100:g}%"


def groups_text(groups: dict[str, list[str]]) -> str:
    return "; ".join(f"{markdown_text(group)}: {names_text(members)}" for group, members in groups.items())


def names_text(names: list[str]) -> str:
    return ", ".join(map(markdown_text, names))


def params_lines(params: Params) -> list[str]:
    data = params.data  # one alias per line: the dvc.yaml test follows `x = params.a`, not tuples
    base = params.base
    split = data.split
    shares = (
        f"train {share_text(split.train)}, validation {share_text(split.validation)}, test {share_text(split.test)}"
    )
    lines = [f"- data: {markdown_code(data.raw_dir)} at {data.image_size}x{data.image_size}, per class {shares}"]
    if data.classes is not None:
        lines.append(f"- classes: {names_text(data.classes)}")
    if data.class_groups is not None:
        lines.append(f"- class groups: {groups_text(data.class_groups)}")
    class_weight = params.training.class_weight
    lines += [
        f"- base: {markdown_code(base.name)}, weights {markdown_code(base.weights or 'null')}, preprocessing "
        f"`{base.preprocessing}`, fine-tuned from {markdown_code(base.fine_tune_from)} at lr {params.lr:g}",
        f"- epochs: classifier {params.train_classifier.epochs}, frozen {params.train_frozen.epochs}, "
        f"fine-tune {params.fine_tune.epochs}, scratch {params.train_scratch.epochs}, "
        f"scratch augmented {params.train_scratch_augmented.epochs}; class weights {class_weight or 'none'}; "
        f"seed {params.seed}",
    ]
    return lines


def report_markdown(
    params: Params,
    class_names: list[str],
    results: dict,
    counts: dict,
    correct: dict,
    labels: np.ndarray,
    wrong: int,
    best: str,
    best_summary: dict,
) -> str:
    """`best`: the model chosen on validation, which the per-class tables, confused pairs and mistakes are about;
    `best_summary`: its training stage's metrics; `correct`: {model: whether it got each test image right}."""
    book = compares_with_book(class_names)
    title = "Dogs vs. Cats: test results" if book else f"Test results, {len(class_names)} classes"
    lines = [
        f"# {title}",
        "",
        f"Written by stage `evaluate` from {split_summary(labels, class_names)}; do not edit, run `dvc repro`.",
        "",
        *results_table(results, correct, class_names),
        "",
        f"Best on the validation split: **{best}** (val accuracy {best_summary['val']['accuracy']:.4f}, "
        f"epoch {best_summary['best_epoch']} of {best_summary['epochs_run']} run); `predict`, `export` and "
        "`explain` use it by default (models/best.keras).",
        "",
        "## Is the difference real?",
        "",
        *paired_table(correct, best),
        "",
        "## Per class",
        "",
        *per_class_tables(counts, class_names, best),
        "",
        f"## Most confused ({best})",
        "",
        *confused_pairs(counts[best], class_names),
        "",
        "## Params",
        "",
        *params_lines(params),
        "",
        "## Pictures",
        "",
        *pictures_lines(class_names, wrong, best),
        "",
    ]
    return "\n".join(lines)

"""The picture of a model's worst mistakes on the test split (matplotlib, no display needed). Class and
file names are drawn as they are, never as mathtext (classifier.intake.escaping.picture_text)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless server

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from classifier.core.outputs import writing  # noqa: E402
from classifier.evaluation.metrics import predicted_classes  # noqa: E402
from classifier.intake.escaping import picture_text  # noqa: E402

COLUMNS = 4
DPI = 80


def most_wrong_gallery(images, labels, probabilities, names, class_names, title: str, out_path, count: int = 12) -> int:
    """The `count` test images the model is most confidently wrong about; returns how many were wrong.

    Most confident = the least probability given to the true class.
    """
    labels, probabilities = np.asarray(labels, dtype=np.int64), np.asarray(probabilities)
    names, class_names = [picture_text(name) for name in names], [picture_text(name) for name in class_names]
    predicted = predicted_classes(probabilities)
    true_class = probabilities[np.arange(len(labels)), labels]
    wrong = np.flatnonzero(predicted != labels)
    shown = wrong[np.argsort(true_class[wrong], kind="stable")][:count]
    rows = max(1, -(-len(shown) // COLUMNS))
    figure, axes = plt.subplots(
        rows, COLUMNS, figsize=(3 * COLUMNS, 3.5 * rows + 0.6), squeeze=False, layout="constrained"
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, row in zip(axes.flat, shown):
        axis.imshow(images[row])
        axis.set_title(
            f"{names[row]}\ntrue {class_names[labels[row]]}\n"
            f"predicted {class_names[predicted[row]]} ({probabilities[row, predicted[row]]:.2f})",
            fontsize=9,
        )
    if not len(shown):
        axes[0, 0].text(0.5, 0.5, "no mistakes on the test split", ha="center", va="center")
    figure.suptitle(f"{title}: the {len(shown)} most confident mistakes of {len(wrong)} ({len(labels)} test images)")
    with writing(out_path):  # a full disk: one line naming the picture
        figure.savefig(out_path, dpi=DPI)
    plt.close(figure)
    return len(wrong)

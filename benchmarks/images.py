"""The images every measurement runs on, laid out as the stages expect them in the working directory."""

from __future__ import annotations

import csv
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks import ROOT, SHARED

SHARED_IMAGES = SHARED / "datasets/dogs-vs-cats/train"
CLASSES = ("cat", "dog")


def source_images(folder: Path, per_class: int) -> tuple[Path, str, int]:
    """(folder with cat.N.jpg / dog.N.jpg, what they are, how many per class): the shared
    images, or `per_class` generated ones."""
    if (SHARED_IMAGES / f"dog.{per_class - 1}.jpg").is_file():
        available = sum(1 for _ in SHARED_IMAGES.glob("dog.*.jpg"))
        return SHARED_IMAGES, f"real Kaggle images ({SHARED_IMAGES.relative_to(ROOT.parent)})", available
    from classifier.commands.demo import write_images

    return write_images(folder, per_class, 200), "generated images (classifier demo, 200x200)", per_class


def lay_out_split(images: Path, split: str, per_class: int, start: int = 0, cycle: int | None = None) -> list[dict]:
    """data/split/<split>/<label>/ in the working directory, as links to `images`; the split's manifest rows.

    With `cycle`, index N links to image N % cycle: a large set from few distinct files.
    """
    rows = []
    for label in CLASSES:
        folder = Path("data/split") / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(start, start + per_class):
            name = f"{label}.{index}.jpg"
            source = images / f"{label}.{index % cycle if cycle else index}.jpg"
            (folder / name).symlink_to(source.resolve())
            rows.append(
                {"split": split, "label": label, "class": label, "path": f"{split}/{label}/{name}", "source": name}
            )
    return rows


def prepare_train(images: Path, per_class: int, size: int) -> None:
    """data/prepared/train/ in the working directory: `per_class` images of each class, by stage prepare's code."""
    from classifier.intake.preparation import prepare_split

    Path("data/prepared").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor() as pool:
        prepare_split("train", lay_out_split(images, "train", per_class), size, list(CLASSES), pool)


def write_manifest(work: Path) -> None:
    rows = []
    for path in sorted((work / "data/split").rglob("*.jpg")):
        split, label, name = path.relative_to(work / "data/split").parts
        rows.append(
            {
                "split": split,
                "label": label,
                "class": label,
                "path": f"{split}/{label}/{name}",
                "source": name,
                "sha256": "",
            }
        )
    with open(work / "data/split/manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["split", "label", "class", "path", "source", "sha256"])
        writer.writeheader()
        writer.writerows(rows)
    (work / "data/classes.json").write_text(json.dumps(list(CLASSES)))

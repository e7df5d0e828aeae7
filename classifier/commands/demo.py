"""`classifier demo` (`make demo`): the whole pipeline offline, on generated images, as a DVC experiment
named `demo` in a temporary copy of the repository (`dvc exp run --temp`): the workspace and git stay
untouched. The settings are recipes/demo.yaml's over the book's, whatever params.yaml holds; the
images, in Kaggle's naming (cat.N.jpg, dog.N.jpg), go to data/demo (the recipe's data.raw_dir).

The two classes differ visibly but not trivially: "cats" are warm-toned pictures of round blobs,
"dogs" cool-toned pictures of bars, each with noise and a few shapes of the other class mixed in.
The same arguments always give the same bytes.

    classifier demo                          # images, run, results table
    classifier demo --images-only --per-class 300
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from classifier.commands.experiment_runs import Stops, run_dvc
from classifier.commands.recipe import load_recipe, set_arguments
from classifier.commands.results import print_results
from classifier.core.paths import PROJECT_ROOT

EXPERIMENT = "demo"
NEXT = "Next: . .venv/bin/activate, then dvc exp show, or make compare; your photos: make own DATA=path/to/photos"


def draw(label: str, index: int, size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng([seed, index, 0 if label == "cat" else 1])
    warm = label == "cat"
    hue = rng.uniform(0.0, 0.12) if warm else rng.uniform(0.5, 0.68)
    background = tuple(int(c) for c in rng.integers(40, 200, size=3))
    image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    shapes = [("own", warm)] * int(rng.integers(3, 6)) + [("other", not warm)] * int(rng.integers(0, 3))
    for _, round_shape in shapes:
        colour = Image.new("HSV", (1, 1), (int(hue * 255), int(rng.integers(120, 255)), int(rng.integers(120, 255))))
        fill = colour.convert("RGB").getpixel((0, 0))
        x, y = rng.integers(0, size, size=2)
        w, h = rng.integers(size // 8, size // 3, size=2)
        box = [int(x - w), int(y - h), int(x + w), int(y + h)]
        if round_shape:
            pen.ellipse(box, fill=fill)
        else:
            pen.rectangle([box[0], box[1], box[2], box[1] + max(2, int(h) // 3)], fill=fill)
    noise = rng.normal(0, 12, size=(size, size, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.SMOOTH)


def write_images(folder: Path, per_class: int, size: int, seed: int = 0) -> Path:
    """cat.N.jpg and dog.N.jpg, N < per_class, in `folder`; the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for label in ("cat", "dog"):
        for index in range(per_class):
            draw(label, index, size, seed).save(folder / f"{label}.{index}.jpg", quality=90)
    return folder


def run(args: argparse.Namespace) -> int:
    folder = PROJECT_ROOT / load_recipe(EXPERIMENT)["data"]["raw_dir"]
    write_images(folder, args.per_class, args.size, args.seed)
    print(f"demo: {2 * args.per_class} images in {folder}/")
    if args.images_only:
        return 0
    dvc = [sys.executable, "-m", "dvc", "exp"]
    subprocess.run([*dvc, "remove", EXPERIMENT], cwd=PROJECT_ROOT, capture_output=True)  # the previous demo, if any
    copied = folder.relative_to(PROJECT_ROOT).as_posix()
    command = [*dvc, "run", "--temp", "--copy-paths", copied, "-n", EXPERIMENT, *set_arguments(EXPERIMENT)]
    stops = Stops(EXPERIMENT)
    with stops.handling():
        status = run_dvc(command, stops)
    if stops.received:  # Ctrl-C or SIGTERM: passed on to DVC and its stage, which have stopped
        return stops.interrupted("dvc exp run is stopped; the workspace was not touched")
    if status != 0:
        print("demo: the run stopped (above: why)", file=sys.stderr)
        return 1
    print_results(EXPERIMENT)
    print(NEXT)
    return 0

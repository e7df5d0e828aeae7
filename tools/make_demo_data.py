"""Generate the offline demo data set in Kaggle's naming (cat.N.jpg, dog.N.jpg).

The two classes differ visibly but not trivially: "cats" are warm-toned pictures
of round blobs, "dogs" cool-toned pictures of bars, each with noise and a few
shapes of the other class mixed in. The same arguments always give the same bytes.

    python tools/make_demo_data.py data/demo --per-class 300
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--per-class", type=int, default=300, help="images per class (default 300)")
    parser.add_argument("--size", type=int, default=96, help="pixels per side (default 96)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for label in ("cat", "dog"):
        for index in range(args.per_class):
            path = args.out_dir / f"{label}.{index}.jpg"
            draw(label, index, args.size, args.seed).save(path, quality=90)
    print(f"make_demo_data: {2 * args.per_class} images in {args.out_dir}/")


if __name__ == "__main__":
    main()

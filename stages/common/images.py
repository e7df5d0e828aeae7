"""Decoding images to fixed-size RGB arrays, and the prepared arrays every later stage reads."""

from __future__ import annotations

import io
import mmap
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from stages.common.layout import PREPARED_DIR


class BadImage(ValueError):
    """An image that cannot be decoded (corrupt, truncated, not an image)."""


def decode_image(data: bytes, size: int) -> np.ndarray:
    """Any format PIL reads (whatever the file's extension says) -> uint8 array (size, size, 3).

    Like the book's `target_size`, the image is squashed to a square, not cropped.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes fully, so a truncated file fails here
            rgb = to_rgb(image).resize((size, size), Image.Resampling.BILINEAR)
    except UnidentifiedImageError:  # its message holds a memory address: keep outputs repeatable
        raise BadImage("not an image format PIL can identify") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImage(str(err) or type(err).__name__) from None
    return np.asarray(rgb, dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, palette, CMYK and transparent images -> RGB; transparency becomes white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def prepared_paths(split: str, folder: Path = PREPARED_DIR) -> tuple[Path, Path]:
    return folder / f"{split}_images.npy", folder / f"{split}_labels.npy"


def release(array: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from this process's resident memory.

    The pages stay in the OS page cache, written ones included (the maps are shared, so
    nothing is lost and nothing needs a slow msync): reading them again is cheap, only what
    the process holds on to shrinks. No-op for arrays that are not memory maps.
    """
    mapping = getattr(array, "_mmap", None)  # numpy.memmap's mmap object, shared by its slices
    if mapping is not None:
        mapping.madvise(mmap.MADV_DONTNEED)


def load_prepared(split: str, folder: Path = PREPARED_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, S, S, 3), integer labels (N,)), memory-mapped so a large split costs no RAM."""
    images_path, labels_path = prepared_paths(split, folder)
    if not images_path.is_file():
        raise FileNotFoundError(f"{images_path} is missing: run `dvc repro prepare` first")
    return np.load(images_path, mmap_mode="r"), np.load(labels_path)

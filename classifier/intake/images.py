"""Decoding images of any format PIL reads into fixed-size uint8 RGB arrays."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError


class BadImage(ValueError):
    """An image that cannot be decoded (corrupt, truncated, not an image) or has no 8-bit meaning."""


# Single-channel 16-bit modes: PIL's convert("RGB") clips them at 255 (a 16-bit photo turns white).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def decode_image(data: bytes, size: int) -> np.ndarray:
    """Any format PIL reads (whatever the file's extension says) -> uint8 array (size, size, 3).

    Like the book's `target_size`, the image is squashed to a square, not cropped.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes fully, so a truncated file fails here
            rgb = to_rgb(image).resize((size, size), Image.Resampling.BILINEAR)
    except BadImage:
        raise
    except UnidentifiedImageError:  # its message holds a memory address: keep outputs repeatable
        raise BadImage("not an image format PIL can identify") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImage(str(err) or type(err).__name__) from None
    return np.asarray(rgb, dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, palette, CMYK, transparent and 16-bit images -> RGB; transparency becomes white.

    16-bit RGB and RGBA (PNG, TIFF, PPM) PIL itself already reads as 8-bit; 16-bit grayscale
    is scaled here (value / 257). A float or 32-bit image is refused by name (BadImage).
    """
    image = to_8_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def to_8_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (PIL mode I;16*, or I holding 16-bit data) -> L (or LA where the PNG
    names a transparent gray value), its full range scaled to 0..255; other modes unchanged."""
    if image.mode in SIXTEEN_BIT_MODES:
        top = 65535
    elif image.mode == "I":
        top = integer_range(image)
    elif image.mode == "F":
        raise BadImage("32-bit float image (mode F): convert it to 8-bit RGB")
    else:
        return image
    values = np.clip(np.asarray(image), 0, top).astype(np.uint32)
    gray = Image.fromarray(((values * 255 + top // 2) // top).astype(np.uint8), "L")  # rounded
    transparent = image.info.get("transparency")
    if isinstance(transparent, int):  # a 16-bit PNG's tRNS chunk: this gray value is see-through
        gray.putalpha(Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8), "L"))
    return gray


def integer_range(image: Image.Image) -> int:
    """The largest value a mode-I image can hold, from what its format says; BadImage when that
    is not 16-bit data (a 32-bit or signed TIFF, or a format that does not say)."""
    if image.format in ("PNG", "PPM"):  # PNG's deepest gray is 16-bit; PIL scales PGM's maxval to 65535
        return 65535
    tags = getattr(image, "tag_v2", None)
    if image.format == "TIFF" and tags is not None:
        bits = tags.get(258, (32,))[0]  # BitsPerSample
        signed = tags.get(339, (1,))[0] != 1  # SampleFormat: 1 unsigned, 2 signed, 3 float
        if bits <= 16 and not signed:
            return 2**bits - 1
        kind = f"{bits}-bit {'signed ' if signed else ''}integer"
    else:
        kind = "32-bit integer"
    raise BadImage(f"{kind} image (mode I): convert it to 8-bit RGB")

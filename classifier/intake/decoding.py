"""Decoding images of any format PIL reads into fixed-size uint8 RGB arrays: the one decoding that stage
`prepare` (the training images) and `predict` (new images) share, so that a model sees the same pixels in both.

An image is turned upright as its EXIF orientation says (a phone photo), and refused from its header,
before any pixel is decoded, when it has more pixels than the limit (data.max_pixels). A large image is
decoded reduced: a JPEG by its DCT scaling as it decodes (Image.draft), any other by a box average
(Image.reduce) before the conversions, so that memory and time follow the output, not the photo.
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from classifier.core.schema import MAX_MAX_PIXELS, PIL_BOMB_PIXELS


class BadImage(ValueError):
    """An image that cannot be decoded (corrupt, truncated, not an image, too large) or has no 8-bit meaning."""


# Single-channel 16-bit modes: PIL's convert("RGB") clips them at 255 (a 16-bit photo turns white).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
DEFAULT_MAX_PIXELS = PIL_BOMB_PIXELS  # params.yaml's data.max_pixels and predict's --max-pixels
# A reduced image keeps at least REDUCING_GAP times the output's pixels per side, as Pillow's thumbnail()
# does, so the final bilinear resize still averages 2x2 pixels or more into each output pixel; an image
# under twice that per side is not reduced at all, and decodes as it always has.
REDUCING_GAP = 2
# The modes whose pixels a box average may mix before the conversion to RGB (RGBA and LA premultiplied
# by PIL): not a palette's indices, 1-bit pixels, or 16-bit data (reduced in to_8_bit, once its range is read).
AVERAGED_MODES = ("L", "LA", "RGB", "RGBA", "CMYK", "YCbCr")
# What PIL may raise while reading a malformed EXIF block (it catches the same around its own reads):
# such a photo is kept as stored, not refused.
EXIF_ERRORS = (SyntaxError, ValueError, TypeError, KeyError, ZeroDivisionError, EOFError, OSError, struct.error)


def decode_image(
    data: bytes | BinaryIO, size: int, max_pixels: int = DEFAULT_MAX_PIXELS, limit: str = "data.max_pixels"
) -> np.ndarray:
    """An image's bytes, or a file open for reading, in any format PIL reads (whatever the file's extension
    says) -> uint8 array (size, size, 3), upright.

    Like the book's `target_size`, the image is squashed to a square, not cropped. An image of more
    than `max_pixels` pixels is refused (BadImage) before it is decoded (from a file, only its header is
    read); `limit` names the setting.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is the limit here
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
                check_pixels(image.size, max_pixels, limit)
                if reduction(image.size, size) > 1:
                    image.draft(image.mode, (REDUCING_GAP * size, REDUCING_GAP * size))  # JPEG only; else no-op
                image.load()  # decodes fully, so a truncated file fails here
                upright(image)
                rgb = to_rgb(image, size).resize((size, size), Image.Resampling.BILINEAR)
    except BadImage:
        raise
    except Image.DecompressionBombError:  # PIL's own refusal as it opens one of more than MAX_MAX_PIXELS
        raise BadImage(
            f"more than {MAX_MAX_PIXELS:,} pixels, more than PIL opens (a possible decompression bomb) and more "
            f"than {limit} allows ({max_pixels:,}): downscale it"
        ) from None
    except UnidentifiedImageError:  # its message holds a memory address: keep outputs repeatable
        raise BadImage("not an image format PIL can identify") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImage(str(err) or type(err).__name__) from None
    return np.asarray(rgb, dtype=np.uint8)


def check_pixels(dimensions: tuple[int, int], max_pixels: int, limit: str) -> None:
    """BadImage for an image of more than `max_pixels` pixels, from the size its header gives."""
    width, height = dimensions
    if width * height > max_pixels:
        raise BadImage(
            f"{width}x{height} = {width * height:,} pixels, more than {limit} allows ({max_pixels:,}): "
            f"downscale it, or raise {limit}"
        )


def reduction(dimensions: tuple[int, int], size: int) -> int:
    """The integer factor an image of these dimensions is reduced by for a (size, size) output; 1: none."""
    factor = min(dimensions) // (REDUCING_GAP * size)
    return factor if factor >= 2 else 1


def reduced(image: Image.Image, size: int | None) -> Image.Image:
    """`image` box-averaged down to no less than REDUCING_GAP * size per side; unchanged when smaller,
    or when `size` is None."""
    factor = reduction(image.size, size) if size else 1
    return image.reduce(factor) if factor > 1 else image


def upright(image: Image.Image) -> None:
    """Turn a loaded image as its EXIF (or XMP) orientation says, in place; a malformed EXIF block is ignored."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's "Corrupt EXIF data": the photo is kept as stored
            ImageOps.exif_transpose(image, in_place=True)
    except EXIF_ERRORS:
        pass


def to_rgb(image: Image.Image, size: int | None = None) -> Image.Image:
    """Grayscale, palette, CMYK, transparent and 16-bit images -> RGB; transparency becomes white.

    16-bit RGB and RGBA (PNG, TIFF, PPM) PIL itself already reads as 8-bit; 16-bit grayscale
    is scaled here (value / 257). A float or 32-bit image is refused by name (BadImage). With a
    `size`, a large image is reduced on the way (`reduced`), as early as its mode allows.
    """
    image = to_8_bit(image, size)
    if image.mode in AVERAGED_MODES:
        image = reduced(image, size)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return reduced(Image.alpha_composite(background, rgba).convert("RGB"), size)
    return reduced(image.convert("RGB"), size)


def to_8_bit(image: Image.Image, size: int | None = None) -> Image.Image:
    """A 16-bit grayscale image (PIL mode I;16*, or I holding 16-bit data) -> L (or LA where the PNG
    names a transparent gray value), its full range scaled to 0..255; other modes unchanged. With a
    `size`, a large one is reduced first (not one with a transparent gray value, which must match exactly)."""
    if image.mode in SIXTEEN_BIT_MODES:
        top = 65535
    elif image.mode == "I":
        top = integer_range(image)
    elif image.mode == "F":
        raise BadImage("32-bit float image (mode F): convert it to 8-bit RGB")
    else:
        return image
    transparent = image.info.get("transparency")
    if size and not isinstance(transparent, int) and reduction(image.size, size) > 1:
        image = reduced(image.convert("I"), size)
    values = np.clip(np.asarray(image), 0, top).astype(np.uint32)
    gray = Image.fromarray(((values * 255 + top // 2) // top).astype(np.uint8), "L")  # rounded
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

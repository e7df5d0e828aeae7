"""One raw file of `data.raw_dir`, loose or a member of a zip: its place in the tree, where it really
is, and how to read it, never more than its kind's cap; and the caps. What the raw data cannot give
is refused in one line (RawDataError). The tree of all of them is classifier.intake.raw.tree; the
checks of a zip's members, classifier.intake.raw.archives.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from classifier.core.errors import RawDataError

try:
    from lzma import LZMAError
except ImportError:  # a Python built without lzma reads no LZMA member anyway
    LZMAError = zlib.error

MACOS_RESOURCE_FOLDER = "__MACOSX"  # what macOS's Archive Utility adds to zips: resource forks, not images
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
# An image is read whole into memory: a 100-megapixel JPEG is ~50 MiB; four times more is a bomb or a mistake.
MAX_IMAGE_BYTES = 256 * MiB
# A labels .csv is read whole into memory and parsed: 1 GiB is ~50 million rows of labels.
MAX_TABLE_BYTES = 1 * GiB
# Any other member (an inner zip, an .npy) is copied out to the temporary folder: Kaggle's train.zip is 0.5 GiB.
MAX_MEMBER_BYTES = 16 * GiB
CHUNK = 1 * MiB
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
READ_ERRORS = (zipfile.BadZipFile, zlib.error, LZMAError, EOFError, OSError, RuntimeError, NotImplementedError)


def size_text(size: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit:
            return f"{size / unit:.1f} {name}"
    return f"{size} bytes"


def cap(path: PurePosixPath, in_zip: bool) -> int | None:
    """The most bytes reading a file may give (None: it is never read whole nor copied: a loose
    zip is read in place, a loose .npy is memory-mapped, other loose files are not read)."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return MAX_IMAGE_BYTES
    if suffix == ".csv":
        return MAX_TABLE_BYTES
    return MAX_MEMBER_BYTES if in_zip else None


def cap_text(path: PurePosixPath) -> str:
    """The cap on a file like `path` (in a zip), as a message names it."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        what, name, limit = "an image", "MAX_IMAGE_BYTES", MAX_IMAGE_BYTES
    elif suffix == ".csv":
        what, name, limit = "a labels .csv", "MAX_TABLE_BYTES", MAX_TABLE_BYTES
    else:
        what, name, limit = "a zip member", "MAX_MEMBER_BYTES", MAX_MEMBER_BYTES
    return f"the {size_text(limit)} {what} may be ({name} in classifier/intake/raw/files.py)"


@dataclass(frozen=True)
class RawFile:
    path: PurePosixPath  # its place in the tree, relative to data.raw_dir
    source: str  # where it really is, relative to data.raw_dir: a path, or `archive.zip:member`
    open: Callable[[], BinaryIO]
    disk_path: Path | None = None  # a loose file's path (a followed link's target); None for a zip member
    shown: str = ""  # source as the user finds it, under data.raw_dir
    size: int = 0  # its size on disk, or as its archive declares it
    limit: int | None = None  # the most bytes reading it may give; None: no limit

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def copy_to(self, target: Path) -> None:
        with open(target, "wb") as copy:
            for chunk in self.chunks():
                try:
                    copy.write(chunk)
                except OSError as err:
                    raise RawDataError(
                        f"{self.shown}: cannot copy it to {target.parent} ({err.strerror or err}); "
                        f"set TMPDIR to a folder with room, or extract the archive into data.raw_dir"
                    ) from None

    def chunks(self) -> Iterator[bytes]:
        """Its bytes, a piece at a time, never more than `limit` of them; RawDataError when it cannot be read."""
        total = 0
        try:
            with self.open() as stream:
                while chunk := stream.read(CHUNK):
                    total += len(chunk)
                    if self.limit is not None and total > self.limit:
                        raise RawDataError(
                            f"{self.shown} gives more than {cap_text(self.path)} when read (it has grown since "
                            f"data.raw_dir was listed, or its archive lies); remove it from data.raw_dir"
                        )
                    yield chunk
        except READ_ERRORS as err:
            fix = (
                "check that it is there and readable" if self.disk_path is not None else
                "the archive is damaged or declares wrong sizes: download the archive again"
            )  # fmt: skip
            why = getattr(err, "strerror", None) or err
            raise RawDataError(f"{self.shown}: cannot read it ({why}); {fix}") from None


def duplicate_error(name: str, first: str, second: str) -> RawDataError:
    return RawDataError(
        f"{name} is in data.raw_dir twice ({first} and {second}); keep one copy "
        f"(e.g. delete the zip once it is unpacked)"
    )


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name == MACOS_RESOURCE_FOLDER


def open_no_follow(path: Path) -> BinaryIO:
    """A loose file, not through a link put in its place since the tree was built."""
    return open(path, "rb", opener=lambda name, flags: os.open(name, flags | NO_FOLLOW))


def check_name(name: str, shown: str) -> None:
    """Refuse a name with a control character (a newline would break a message, a row of the manifest)
    or with bytes that are not UTF-8 (nothing could print it, nor write it into the manifest)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        readable = False
    else:
        readable = not any(ord(char) < 32 or ord(char) == 127 for char in name)
    if not readable:
        raise RawDataError(f"{ascii(shown)} has a control character or bytes that are not UTF-8 in its name; rename it")

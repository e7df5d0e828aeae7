"""Finding the Kaggle Dogs vs. Cats training images in `data.raw_dir`.

Accepted, in any mix: loose `cat.N.jpg` / `dog.N.jpg` files at any depth, Kaggle's
`train.zip`, and the competition archive `dogs-vs-cats.zip` (which holds `train.zip`).
Zips are read in place, never extracted by member name: each image is written
later under a name built from its label and index, so nothing can escape the
target folder. An archive with an absolute or `..` member is refused outright.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from stages.common.cli import StageError

LABELS = ("cat", "dog")  # label 0 = cat, 1 = dog, as in Kaggle's submission format
IMAGE_NAME = re.compile(r"^(cat|dog)\.(\d+)\.jpg$")
NESTED_ZIP = "train.zip"  # the one archive inside dogs-vs-cats.zip that holds labelled images

GET_THE_DATA = (
    "download Kaggle's Dogs vs. Cats data (accept the competition rules first), e.g. "
    "`kaggle competitions download -c dogs-vs-cats -p data/raw`, or point data.raw_dir "
    "at a folder of cat.N.jpg / dog.N.jpg files"
)


class RawDataError(StageError):
    """The raw data folder cannot give what params.yaml asks for."""


@dataclass(frozen=True)
class RawImage:
    label: str
    index: int
    source: str  # where it came from, for messages: a path, or `archive.zip:member`
    read: Callable[[], bytes]

    @property
    def name(self) -> str:
        return f"{self.label}.{self.index}.jpg"


class RawImages:
    """All labelled images under a folder, keyed by (label, index). Use as a context manager."""

    def __init__(self, raw_dir: str | Path):
        self.raw_dir = Path(raw_dir)
        self.images: dict[tuple[str, int], RawImage] = {}
        self._resources = ExitStack()

    def __enter__(self) -> "RawImages":
        try:
            self._scan()
        except BaseException:
            self._resources.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._resources.close()

    def _scan(self) -> None:
        if not self.raw_dir.is_dir():
            raise RawDataError(f"data.raw_dir {str(self.raw_dir)!r} is not a folder; {GET_THE_DATA}")
        for path in sorted(self.raw_dir.rglob("*")):
            if path.is_file() and IMAGE_NAME.match(path.name):
                self._add(path.name, str(path), path.read_bytes)
            elif path.is_file() and path.suffix.lower() == ".zip":
                self._add_zip(path, str(path))
        if not self.images:
            raise RawDataError(
                f"data.raw_dir {str(self.raw_dir)!r} holds no cat.N.jpg / dog.N.jpg images and no Kaggle zip; "
                f"{GET_THE_DATA}"
            )

    def _add(self, name: str, source: str, read: Callable[[], bytes]) -> None:
        label, index = IMAGE_NAME.match(name).groups()
        key = (label, int(index))
        if key in self.images:
            raise RawDataError(
                f"{name} is in data.raw_dir twice ({self.images[key].source} and {source}); "
                f"keep one copy (e.g. delete the zip once it is unpacked)"
            )
        self.images[key] = RawImage(label, int(index), source, read)

    def _add_zip(self, archive_path, source: str) -> None:
        try:
            archive = self._resources.enter_context(zipfile.ZipFile(archive_path))
        except zipfile.BadZipFile:
            raise RawDataError(f"{source} is not a readable zip file; download it again") from None
        for member in archive.infolist():
            check_member_name(member.filename, source)
            name = PurePosixPath(member.filename).name
            if member.is_dir():
                continue
            if IMAGE_NAME.match(name):
                self._add(name, f"{source}:{member.filename}", lambda a=archive, m=member, s=source: _read_member(a, m, s))
            elif name == NESTED_ZIP:
                # Random access into a compressed member is slow, so copy it out once.
                scratch = self._resources.enter_context(tempfile.TemporaryDirectory(prefix="raw-zip-"))
                inner = Path(scratch) / NESTED_ZIP
                with archive.open(member) as src, open(inner, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                self._add_zip(inner, f"{source}:{member.filename}")


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, source: str) -> bytes:
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise RawDataError(f"{source}: cannot read {member.filename} ({err}); download the archive again") from None


def check_member_name(name: str, archive: str) -> None:
    """Refuse member names that would land outside a target folder if extracted."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise RawDataError(
            f"{archive} has an unsafe member {name!r} (absolute path or '..'); "
            f"refusing the archive: download it again from Kaggle"
        )

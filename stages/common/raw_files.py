"""Every file under `data.raw_dir` as one tree: loose files plus the members of each zip.

A zip's members appear at their paths inside the zip, under the zip's folder, so an
unpacked zip and the zip itself look the same to whoever reads the tree. A zip inside
a zip is opened too (one level: Kaggle's dogs-vs-cats.zip holds train.zip); no deeper.
Zips are read in place, never extracted by member name: nothing is written under a
name that comes from an archive, and an archive with an absolute or `..` member is
refused outright. Hidden files and folders (names starting with '.') and macOS's
`__MACOSX` folders are not part of the tree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
import zlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from stages.common.cli import StageError

MACOS_RESOURCE_FOLDER = "__MACOSX"  # what macOS's Archive Utility adds to zips: resource forks, not images


class RawDataError(StageError):
    """The raw data folder cannot give what params.yaml asks for."""


@dataclass(frozen=True)
class RawFile:
    path: PurePosixPath  # its place in the tree, relative to data.raw_dir
    source: str  # where it really is, relative to data.raw_dir: a path, or `archive.zip:member`
    open: Callable[[], BinaryIO]
    disk_path: Path | None = None  # a loose file's path; None for a zip member

    def read(self) -> bytes:
        with self._reading() as stream:
            return stream.read()

    def copy_to(self, target: Path) -> None:
        with self._reading() as stream, open(target, "wb") as copy:
            shutil.copyfileobj(stream, copy, 1 << 20)

    @contextmanager
    def _reading(self):
        try:
            with self.open() as stream:
                yield stream
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise RawDataError(f"{self.source}: cannot read it ({err}); download the archive again") from None


def duplicate_error(name: str, first: str, second: str) -> RawDataError:
    return RawDataError(
        f"{name} is in data.raw_dir twice ({first} and {second}); keep one copy "
        f"(e.g. delete the zip once it is unpacked)"
    )


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name == MACOS_RESOURCE_FOLDER


class RawTree:
    """`files` (sorted by path) and `folders` under a folder. Use as a context manager:
    the zips stay open, and copies of nested zips exist, until it exits."""

    def __init__(self, raw_dir: str | Path):
        self.raw_dir = Path(raw_dir)
        self.files: list[RawFile] = []  # sorted by path, once scanned
        self.folders: set[PurePosixPath] = set()
        self._files: dict[PurePosixPath, RawFile] = {}
        self._resources = ExitStack()
        self._scratch: Path | None = None
        self._copies = 0

    def __enter__(self) -> "RawTree":
        try:
            self._scan()
        except BaseException:
            self._resources.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._resources.close()

    def shown(self, source: str) -> str:
        """A source as the user finds it: under data.raw_dir."""
        return str(self.raw_dir / source)

    def local_path(self, file: RawFile) -> Path:
        """A file on disk holding `file`'s bytes: the file itself, or a zip member copied out once
        (random access into a compressed member is slow, and np.load needs a real file to map)."""
        if file.disk_path is not None:
            return file.disk_path
        if self._scratch is None:
            self._scratch = Path(self._resources.enter_context(tempfile.TemporaryDirectory(prefix="raw-zip-")))
        self._copies += 1
        copy = self._scratch / f"member-{self._copies}"  # never a name from the archive
        file.copy_to(copy)
        return copy

    def _scan(self) -> None:
        for folder, subfolders, names in os.walk(self.raw_dir):
            subfolders[:] = sorted(name for name in subfolders if not is_hidden(name))
            relative = PurePosixPath(Path(folder).relative_to(self.raw_dir).as_posix())
            self.folders |= {relative / name for name in subfolders}
            for name in sorted(names):
                if is_hidden(name):
                    continue
                path, disk_path = relative / name, Path(folder) / name
                self._add(RawFile(path, path.as_posix(), partial(open, disk_path, "rb"), disk_path), in_nested_zip=False)
        self.files = sorted(self._files.values(), key=lambda file: file.path)

    def _add(self, file: RawFile, in_nested_zip: bool) -> None:
        if file.path.suffix.lower() == ".zip" and not in_nested_zip:
            self._add_zip(file)
            return
        first = self._files.setdefault(file.path, file)
        if first is not file:
            raise duplicate_error(file.path.as_posix(), self.shown(first.source), self.shown(file.source))

    def _add_zip(self, zip_file: RawFile) -> None:
        try:
            archive = self._resources.enter_context(zipfile.ZipFile(self.local_path(zip_file)))
        except zipfile.BadZipFile:
            raise RawDataError(f"{self.shown(zip_file.source)} is not a readable zip file; download it again") from None
        nested = zip_file.disk_path is None  # a zip inside a zip: open no zip inside it (one level, as Kaggle's)
        for member in archive.infolist():
            check_member_name(member.filename, self.shown(zip_file.source))
            path = PurePosixPath(member.filename.replace("\\", "/"))
            if any(is_hidden(part) for part in path.parts):
                continue
            where = zip_file.path.parent / path
            self.folders |= set(where.parents[: len(path.parts) - 1])
            if member.is_dir():
                self.folders.add(where)
                continue
            source = f"{zip_file.source}:{member.filename}"
            self._add(RawFile(where, source, partial(archive.open, member)), in_nested_zip=nested)


def check_member_name(name: str, archive: str) -> None:
    """Refuse member names that would land outside a target folder if extracted."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise RawDataError(
            f"{archive} has an unsafe member {name!r} (absolute path or '..'); "
            f"refusing the archive: download it again"
        )

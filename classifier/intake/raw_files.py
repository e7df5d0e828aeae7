"""Every file under `data.raw_dir` as one tree: loose files plus the members of each zip.

A zip's members appear at their paths inside the zip, under the zip's folder, so an
unpacked zip and the zip itself look the same to whoever reads the tree. A zip inside
a zip is opened too (one level: Kaggle's dogs-vs-cats.zip holds train.zip); a zip inside
that is refused. Zips are read in place, never extracted by member name: nothing is
written under a name that comes from an archive, and an archive with an absolute or `..`
member is refused outright. Hidden files and folders (names starting with '.') and
macOS's `__MACOSX` folders are not part of the tree, and nothing in them is looked at.

Hostile or careless input stops the tree with one line (RawDataError) while it is built,
before anything is read whole or written:

- Links. `data.raw_dir` itself may be a link (big collections are linked in): it is
  resolved once. Inside it, a link to a regular file inside the resolved folder is
  followed (it is the same data; the tree shows it at the link's place), and so is a link
  into the project's DVC cache (with `dvc config cache.type symlink`, `dvc add data/raw`
  and `dvc checkout` leave every file a link there: data DVC holds already). A link whose
  target resolves anywhere else, a link to a folder (it can loop, or lead out), and a
  broken or looping link are refused: copy the file or folder in instead. So nothing else
  outside `data.raw_dir` is ever read, and none of it reaches data/split, the DVC cache or
  a remote. A zip member that is a symbolic link refuses its archive.
- Anything that is neither a regular file nor a folder (a FIFO blocks, a device never ends).
- Zip bombs, by what each archive declares, all of its members checked as it is opened
  (before any member is read or a nested zip is copied out): a member over its kind's cap
  (MAX_IMAGE_BYTES, MAX_TABLE_BYTES, MAX_MEMBER_BYTES); a member over BOMB_MIN_BYTES that
  inflates more than BOMB_RATIO times; members that together inflate more than BOMB_RATIO
  times the archive's size (many small bombs, or entries overlapping one compressed
  stream); a zip in a zip in a zip. Reading never gives more than a member declares
  (zipfile stops there, and a member that inflates past it fails its CRC: one line), nor
  more than its kind's cap. A loose image or .csv over its cap is refused by its size.
- Members zipfile cannot read: encrypted ones, unknown compression methods.
- Names with a control character (a newline) or bytes that are not UTF-8.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator

from classifier.core.cli import StageError

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
# JPEG and PNG collections compress about 1:1, an .npy of images about 3:1; zip bombs 1000:1 and more.
BOMB_RATIO = 200
# Below this a high ratio costs nothing: a short text file of repeated lines compresses well.
BOMB_MIN_BYTES = 1 * MiB
# What zipfile reads: stored, deflate, bzip2, LZMA (not deflate64, PKWARE's or WinZip's encryption, ...).
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
CHUNK = 1 * MiB
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
READ_ERRORS = (zipfile.BadZipFile, zlib.error, LZMAError, EOFError, OSError, RuntimeError, NotImplementedError)


class RawDataError(StageError):
    """The raw data folder cannot give what params.yaml asks for."""


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
    return f"the {size_text(limit)} {what} may be ({name} in classifier/intake/raw_files.py)"


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


class RawTree:
    """`files` (sorted by path) and `folders` under a folder. Use as a context manager:
    the zips stay open, and copies of nested zips exist, until it exits."""

    def __init__(self, raw_dir: str | Path):
        self.raw_dir = Path(raw_dir)
        self.root = Path(os.path.realpath(self.raw_dir))  # resolved once: data.raw_dir may itself be a link
        self._link_roots: list[Path] | None = None  # where a link may lead: the root and DVC's caches, once needed
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
        free = shutil.disk_usage(self._scratch).free
        if file.size > free:
            raise RawDataError(
                f"{file.shown} is {size_text(file.size)}, but the temporary folder {self._scratch.parent} has "
                f"{size_text(free)} free; set TMPDIR to a folder with room, or extract the archive into data.raw_dir"
            )
        self._copies += 1
        copy = self._scratch / f"member-{self._copies}"  # never a name from the archive
        file.copy_to(copy)
        return copy

    # --- loose files ---------------------------------------------------------------------------------------

    def _scan(self) -> None:
        pending = [PurePosixPath()]  # depth first, in name order; no recursion, so no depth limit
        while pending:
            folder = pending.pop()
            subfolders = []
            for entry in self._entries(folder):
                if is_hidden(entry.name):
                    continue
                path = folder / entry.name
                check_name(entry.name, self.shown(path.as_posix()))
                if entry.is_symlink():
                    self._add_loose(path, self._link_target(entry, path))
                elif entry.is_dir(follow_symlinks=False):
                    self.folders.add(path)
                    subfolders.append(path)
                elif entry.is_file(follow_symlinks=False):
                    self._add_loose(path, Path(entry.path))
                else:
                    raise RawDataError(
                        f"{self.shown(path.as_posix())} is neither a file nor a folder (a FIFO, socket or device); "
                        f"reading it could block or never end: remove it from data.raw_dir"
                    )
            pending.extend(reversed(subfolders))
        self.files = sorted(self._files.values(), key=lambda file: file.path)

    def _entries(self, folder: PurePosixPath) -> list[os.DirEntry]:
        try:
            with os.scandir(self.root / folder) as entries:
                return sorted(entries, key=lambda entry: entry.name)
        except OSError as err:
            raise RawDataError(
                f"{self.shown(folder.as_posix())} cannot be listed ({err.strerror or err}); make it readable, "
                f"or move it out of data.raw_dir"
            ) from None

    def _link_target(self, entry: os.DirEntry, path: PurePosixPath) -> Path:
        """A link's target, when it is a regular file inside data.raw_dir or DVC's cache; RawDataError otherwise."""
        shown, target = self.shown(path.as_posix()), os.readlink(entry.path)
        resolved = Path(os.path.realpath(entry.path))
        try:
            mode = os.stat(resolved).st_mode
        except OSError:
            raise RawDataError(
                f"{shown} is a broken link (to {target!r}: it does not exist, or links loop); "
                f"copy the file itself into data.raw_dir instead, or remove the link"
            ) from None
        if stat.S_ISDIR(mode):
            raise RawDataError(
                f"{shown} is a link to a folder ({target!r}); links to folders are not followed (they can loop, "
                f"or lead out of data.raw_dir): copy the folder itself into data.raw_dir instead"
            )
        if self._link_roots is None:
            self._link_roots = [self.root, *dvc_cache_dirs(Path.cwd())]
        if not any(resolved.is_relative_to(root) for root in self._link_roots):
            raise RawDataError(
                f"{shown} is a link to {target!r}, outside data.raw_dir; nothing outside data.raw_dir is read, "
                f"so that nothing else ends up in data/split, the DVC cache or a remote: copy the file in instead"
            )
        if not stat.S_ISREG(mode):
            raise RawDataError(
                f"{shown} is a link to {target!r}, which is not a regular file; remove it from data.raw_dir"
            )
        return resolved

    def _add_loose(self, path: PurePosixPath, disk_path: Path) -> None:
        source, limit = path.as_posix(), cap(path, in_zip=False)
        size = os.stat(disk_path).st_size if limit is not None else 0
        if limit is not None and size > limit:
            raise RawDataError(
                f"{self.shown(source)} is {size_text(size)}, over {cap_text(path)}: no collection's file is "
                f"that big; remove it from data.raw_dir"
            )
        opener = partial(open_no_follow, disk_path)
        self._add(RawFile(path, source, opener, disk_path, self.shown(source), size, limit), depth=0)

    def _add(self, file: RawFile, depth: int) -> None:
        """depth: 0 for a loose file, 1 for a zip's member, 2 for a member of a zip inside a zip."""
        if file.path.suffix.lower() == ".zip":
            self._add_zip(file, depth + 1)
            return
        first = self._files.setdefault(file.path, file)
        if first is not file:
            raise duplicate_error(file.path.as_posix(), first.shown, file.shown)

    # --- zips ------------------------------------------------------------------------------------------------

    def _add_zip(self, zip_file: RawFile, depth: int) -> None:
        """The members of a zip (depth 1) or of a zip inside a zip (depth 2), once all of them pass the checks."""
        path = self.local_path(zip_file)
        try:
            archive = self._resources.enter_context(zipfile.ZipFile(path))
            members = archive.infolist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            raise RawDataError(f"{zip_file.shown} is not a readable zip file; download it again") from None
        for member in members:
            check_member_name(member.filename, zip_file.shown)
        read = [member for member in members if not is_hidden_member(member)]
        for member in read:
            check_name(member.filename, f"{zip_file.shown}:{member.filename}")
            self._check_member(member, zip_file, depth)
        check_archive_ratio(read, zip_file.shown, os.stat(path).st_size)
        for member in read:
            where = zip_file.path.parent / member_path(member)
            self.folders |= set(where.parents[: len(member_path(member).parts) - 1])
            if member.is_dir():
                self.folders.add(where)
                continue
            source = f"{zip_file.source}:{member.filename}"
            opener, limit = partial(archive.open, member), cap(where, in_zip=True)
            self._add(RawFile(where, source, opener, None, self.shown(source), member.file_size, limit), depth)

    def _check_member(self, member: zipfile.ZipInfo, zip_file: RawFile, depth: int) -> None:
        """Refuse the archive for a member that is a link, cannot be read, or declares a bomb's sizes."""
        shown = f"{zip_file.shown}:{member.filename}"
        if stat.S_ISLNK(member.external_attr >> 16):
            raise RawDataError(
                f"{zip_file.shown} has a member {member.filename!r} that is a symbolic link; links are not "
                f"followed: refusing the archive, zip the files themselves (without `zip --symlinks`)"
            )
        if member.is_dir():
            return
        if member.flag_bits & 0x1:
            raise RawDataError(
                f"{shown} is encrypted; unzip the archive with its password and put the files into data.raw_dir"
            )
        if member.compress_type not in READABLE_METHODS:
            raise RawDataError(
                f"{shown} uses compression method {member.compress_type}, which Python's zipfile cannot read; "
                f"extract the archive into data.raw_dir, or zip it again with plain deflate"
            )
        if member_path(member).suffix.lower() == ".zip" and depth >= 2:
            raise RawDataError(
                f"{shown} is a zip inside a zip inside a zip; one level of nesting is read (as Kaggle's "
                f"dogs-vs-cats.zip holds train.zip), no deeper: extract {zip_file.path.name} into data.raw_dir"
            )
        limit = cap(member_path(member), in_zip=True)
        if member.file_size > limit:
            raise RawDataError(
                f"{shown} declares {size_text(member.file_size)}, over {cap_text(member_path(member))}; refusing "
                f"the archive as a zip bomb: remove that member, or download the data again"
            )
        if is_bomb(member.file_size, member.compress_size) and member_path(member).suffix.lower() != ".csv":
            raise RawDataError(
                f"{shown} would inflate {size_text(member.compress_size)} to {size_text(member.file_size)}, "
                f"more than {BOMB_RATIO} times (BOMB_RATIO in classifier/intake/raw_files.py); refusing the archive "
                f"as a zip bomb: if that data is genuine, extract it into data.raw_dir yourself"
            )


def dvc_cache_dirs(start: Path) -> list[Path]:
    """The caches (resolved) of the DVC project around `start`: its .dvc/cache, and each `cache.dir`
    set in its .dvc/config or .dvc/config.local, or in the user's or the system's DVC config."""
    project = next((folder / ".dvc" for folder in (start, *start.parents) if (folder / ".dvc").is_dir()), None)
    user = Path(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")) / "dvc"
    configs = [Path("/etc/xdg/dvc/config"), user / "config"]
    caches = []
    if project is not None:
        configs += [project / "config", project / "config.local"]
        caches.append(project / "cache")
    for config in configs:
        value = config_value(config, "cache", "dir")
        if value:
            caches.append(config.parent / Path(value).expanduser())  # a relative dir is relative to its config
    return [Path(os.path.realpath(cache)) for cache in caches]


def config_value(config: Path, section: str, key: str) -> str | None:
    """`key` in `[section]` of a DVC config file (configobj's INI: indented keys, optional quotes)."""
    try:
        lines = config.read_text(errors="replace").splitlines()
    except OSError:
        return None
    current, found = None, None
    for line in map(str.strip, lines):
        if line.startswith("["):
            current = line.strip("[]").strip().strip("'\"")
        elif current == section and "=" in line and not line.startswith("#"):
            name, value = (part.strip() for part in line.split("=", 1))
            if name == key:
                found = value.strip("'\"")
    return found


def is_hidden_member(member: zipfile.ZipInfo) -> bool:
    return any(is_hidden(part) for part in member_path(member).parts)


def member_path(member: zipfile.ZipInfo) -> PurePosixPath:
    return PurePosixPath(member.filename.replace("\\", "/"))


def is_bomb(inflated: int, compressed: int) -> bool:
    return inflated > BOMB_MIN_BYTES and inflated > BOMB_RATIO * compressed


def check_archive_ratio(members: list[zipfile.ZipInfo], archive: str, archive_size: int) -> None:
    """Members that together inflate far beyond the archive: many small bombs, each under BOMB_MIN_BYTES,
    or entries that share one compressed stream. A .csv of sorted labels may compress past BOMB_RATIO:
    tables are left out (MAX_TABLE_BYTES bounds them, and at most one is read per split)."""
    total = sum(member.file_size for member in members if member_path(member).suffix.lower() != ".csv")
    if is_bomb(total, archive_size):
        raise RawDataError(
            f"{archive}'s members would inflate its {size_text(archive_size)} to {size_text(total)}, more than "
            f"{BOMB_RATIO} times (BOMB_RATIO in classifier/intake/raw_files.py); refusing the archive as a zip bomb: "
            f"if that data is genuine, extract it into data.raw_dir yourself"
        )


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
        raise RawDataError(
            f"{ascii(shown)} has a control character or bytes that are not UTF-8 in its name; rename it"
        )


def check_member_name(name: str, archive: str) -> None:
    """Refuse member names that would land outside a target folder if extracted."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise RawDataError(
            f"{archive} has an unsafe member {name!r} (absolute path or '..'); "
            f"refusing the archive: download it again"
        )

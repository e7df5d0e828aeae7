"""Every file under `data.raw_dir` as one tree: loose files plus the members of each zip.

A zip's members appear at their paths inside the zip, under the zip's folder, so an
unpacked zip and the zip itself look the same to whoever reads the tree. A zip inside
a zip is opened too (one level: Kaggle's dogs-vs-cats.zip holds train.zip); a zip inside
that is refused. Zips are read in place, never extracted by member name: nothing is
written under a name that comes from an archive, and an archive with an absolute or `..`
member is refused outright. Hidden files and folders (names starting with '.') and
macOS's `__MACOSX` folders are not part of the tree, and nothing in them is looked at;
`hidden` lists them (a folder once, as `name/`), so that `split` can say what it left out.

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
- Zip bombs and members zipfile cannot read, all of an archive's members checked as it is
  opened (classifier.intake.raw.archives). A loose image or .csv over its cap is refused by its size.
- Names with a control character (a newline) or bytes that are not UTF-8.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from contextlib import ExitStack
from functools import partial
from pathlib import Path, PurePosixPath

from classifier.core.errors import RawDataError
from classifier.core.paths import dvc_cache_dirs
from classifier.intake.raw.archives import (
    check_archive_ratio,
    check_member,
    check_member_name,
    is_hidden_member,
    member_path,
)
from classifier.intake.raw.files import (
    RawFile,
    cap,
    cap_text,
    check_name,
    duplicate_error,
    is_hidden,
    open_no_follow,
    size_text,
)


class RawTree:
    """`files` (sorted by path) and `folders` under a folder. Use as a context manager:
    the zips stay open, and copies of nested zips exist, until it exits."""

    def __init__(self, raw_dir: str | Path):
        self.raw_dir = Path(raw_dir)
        self.root = Path(os.path.realpath(self.raw_dir))  # resolved once: data.raw_dir may itself be a link
        self._link_roots: list[Path] | None = None  # where a link may lead: the root and DVC's caches, once needed
        self.files: list[RawFile] = []  # sorted by path, once scanned
        self.folders: set[PurePosixPath] = set()
        self.hidden: list[str] = []  # sources of the hidden files and folders left out (`.cache/`, `a.zip:__MACOSX/`)
        self._files: dict[PurePosixPath, RawFile] = {}
        self._resources = ExitStack()
        self._scratch: Path | None = None
        self._copies = 0

    def __enter__(self) -> RawTree:
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
                path = folder / entry.name
                if is_hidden(entry.name):
                    self.hidden.append(path.as_posix() + ("/" if entry.is_dir(follow_symlinks=False) else ""))
                    continue
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
        hidden = {hidden_part(member) for member in members if is_hidden_member(member)}
        self.hidden += [f"{zip_file.source}:{part}" for part in sorted(hidden)]
        for member in read:
            check_name(member.filename, f"{zip_file.shown}:{member.filename}")
            check_member(member, zip_file, depth)
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


def hidden_part(member: zipfile.ZipInfo) -> str:
    """A hidden member's path down to its first hidden part: `__MACOSX/` for all of macOS's folder."""
    parts = member_path(member).parts
    first = next(n for n, part in enumerate(parts) if is_hidden(part))
    folder = first < len(parts) - 1 or member.is_dir()
    return "/".join(parts[: first + 1]) + ("/" if folder else "")

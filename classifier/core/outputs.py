"""Writing a stage's outputs whole, and a full disk or a file-size limit as one line.

- `replacing(folder)`: a folder output is built beside the old one (a hidden folder in the same parent,
  so that renaming it into place moves nothing) and swapped in only once complete: a full disk, a
  file-size limit, Ctrl-C or any error before that leaves the old folder as it was (as stage split
  does for data/split).
- `writing(path)`: ENOSPC or EDQUOT (no space, a quota) and EFBIG (a file-size limit, `ulimit -f`) while
  writing `path` become one StageError naming the path, the space needed and the space free:
  `no space left on the device writing data/prepared: 120.4 MB needed, 3.1 MB free; ...`.
  `space_problem` says the same of an error that reaches start-up from a write not wrapped so.
- `write_whole(path, text)`: a small file written beside and renamed into place: the old text or the new.
- `reserve(path)`: the blocks of a file about to be written through a memory map, allocated at once.
  A write through a map has no way to fail: on a full disk the kernel kills the process (SIGBUS);
  an allocation fails first, with ENOSPC, and reads as above.

Imports classifier.core.errors only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from classifier.core.errors import StageError

MEGABYTE = 1024 * 1024
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
TOO_LARGE = (errno.EFBIG,)
# The same errors in the messages of libraries that do not keep the errno (TensorFlow's file system, SQLite's
# "database or disk is full"), and writes cut short without a reason: NumPy's ("1000 requested and 24 written"),
# SQLite's "disk I/O error" (DVC's state database, which dvclive opens, on EFBIG).
NO_SPACE_TEXT = re.compile(
    "|".join([*(re.escape(os.strerror(code)) for code in NO_SPACE), "database or disk is full"]), re.IGNORECASE
)
TOO_LARGE_TEXT = re.compile(re.escape(os.strerror(errno.EFBIG)), re.IGNORECASE)
CUT_SHORT = re.compile(r"\d+ requested and \d+ written|disk I/O error")


def megabytes(count: int) -> str:
    """`120.4 MB`; a size under a tenth of that in bytes (`2,048 bytes`), not as `0.0 MB`."""
    return f"{count / MEGABYTE:,.1f} MB" if count >= MEGABYTE / 10 else f"{count:,} bytes"


def free_bytes(path: Path | str) -> int:
    """Free space, in bytes, for an unprivileged user, on the file system that holds `path` (or its nearest
    folder that exists)."""
    place = Path(os.path.abspath(path))
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        return shutil.disk_usage(place).free
    except OSError:
        return 0


def file_size_limit() -> int | None:
    """The largest file this process may write (`ulimit -f`, RLIMIT_FSIZE), in bytes; None: no limit."""
    try:
        import resource  # Unix only
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def space_cause(err: BaseException) -> str | None:
    """ "space" (no space left, or a quota), "limit" (the file-size limit) or None (another error)."""
    code = getattr(err, "errno", None)
    if code in NO_SPACE:
        return "space"
    if code in TOO_LARGE:
        return "limit"
    text = str(err)
    if NO_SPACE_TEXT.search(text):
        return "space"
    if TOO_LARGE_TEXT.search(text):
        return "limit"
    if CUT_SHORT.search(text):  # the file system took less than it was given: a limit if there is one
        if file_size_limit() is not None:
            return "limit"
        return "space" if isinstance(err, OSError) else None
    return None


def space_problem(err: BaseException, path: Path | str | None = None, needed: int | None = None) -> str | None:
    """The one line for a write stopped by a full disk or a file-size limit; None for any other error.
    `path`: what was being written (else the error's own file name, if any); `needed`: its size, if known."""
    cause = space_cause(err)
    if cause is None:
        return None
    path = path if path is not None else getattr(err, "filename", None)
    where = f" writing {path}" if path is not None else ""
    need = f"{megabytes(needed)} needed, " if needed else ""
    limit = file_size_limit()
    if cause == "limit" and limit is not None:
        return (
            f"the file-size limit of this process stops it{where}: {need}at most {megabytes(limit)} a file "
            f"(`ulimit -f` {limit // 1024}); raise the limit (`ulimit -f unlimited`) and run it again"
        )
    if cause == "limit":  # no limit set: the file system's own largest file (FAT32's 4 GB)
        return (
            f"the file system cannot hold a file this large{where}: {need}put the repository on another file "
            f"system and run it again"
        )
    free = megabytes(free_bytes(path if path is not None else "."))
    return f"no space left on the device{where}: {need}{free} free; free some space and run it again"


@contextlib.contextmanager
def writing(path: Path | str, needed: int | None = None, kept: str | None = None) -> Iterator[None]:
    """Inside this, a write that a full disk or a file-size limit stops raises StageError (space_problem)
    naming `path`; `kept`: what the stage leaves as it was, said at the end of the line."""
    try:
        yield
    except StageError:
        raise
    except Exception as err:
        problem = space_problem(err, path, needed)
        if problem is None:
            raise
        raise StageError(f"{problem} ({kept} is unchanged)" if kept else problem) from None


def write_whole(path: Path | str, text: str) -> None:
    """`path` holds `text`, or, if writing stops (a full disk: one line, as `writing`; Ctrl-C), what it held
    before: written beside it, then renamed into place."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with writing(path, len(text.encode()), kept=str(path) if path.exists() else None):
            partial.write_text(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def beside(target: Path, role: str) -> Path:
    """The hidden folder beside `target` (beside what it links to) that `replacing` uses as `role`."""
    real = Path(os.path.realpath(target)) if target.is_symlink() else target
    return real.with_name(f".{real.name}.{role}")


@contextlib.contextmanager
def replacing(target: Path, needed: int | None = None) -> Iterator[Path]:
    """A new folder, hidden beside `target`, for the stage to write `target` into; once the block ends
    without an error it replaces `target` (a link to a folder keeps its place: the folder it names is
    replaced). A full disk or a file-size limit ends in one line, as `writing`, saying `target` is
    unchanged (where there was one); any error or Ctrl-C leaves `target` as it was and no new folder."""
    target = Path(target)
    new, old = beside(target, "new"), beside(target, "old")
    place = Path(os.path.realpath(target)) if target.is_symlink() else target
    with writing(target, needed, kept=str(target) if place.exists() else None):
        for left in (new, old):  # by a run that was killed while writing
            remove(left)
        new.parent.mkdir(parents=True, exist_ok=True)
        new.mkdir()
        try:
            yield new
        except BaseException:
            remove(new)
            raise
    if place.exists() or place.is_symlink():
        place.rename(old)
    new.rename(place)
    remove(old)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def reserve(path: Path | str) -> None:
    """Allocate every block of the file at `path` (as long as it is now) before it is written through a
    memory map: a full disk then fails here, with ENOSPC, not with SIGBUS in the middle of the writes.
    Nothing changes in what the file holds; a file system (or a system: macOS) that cannot allocate ahead is
    left to the map."""
    if not hasattr(os, "posix_fallocate"):
        return
    descriptor = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(descriptor).st_size
        if size:
            os.posix_fallocate(descriptor, 0, size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(descriptor)

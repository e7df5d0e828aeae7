"""Files a test makes: small images of known pixels, zips, arrays, folders of them; what a test
reads back: CSV rows, a picture's size, and a snapshot of a folder to compare before and after; and a
disk that is full, or a file-size limit, while a stage writes."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import resource
import shutil
import signal
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(seed: int = 0, size: tuple[int, int] = (8, 8), color: tuple[int, int, int] | None = None, **options) -> bytes:
    """A tiny JPEG of one colour, a different one for every seed (or `color`)."""
    color = color or (seed * 20 % 256, seed // 13 % 256, 90)
    return encode(Image.new("RGB", size, color), "JPEG", **options)


def png(seed: int = 0, size: tuple[int, int] = (4, 4), color: tuple[int, int, int] | None = None) -> bytes:
    """A tiny PNG of one colour, a different one for every seed below 65,536 (or `color`)."""
    color = color or (seed % 256, seed // 256 % 256, 7)
    return encode(Image.new("RGB", size, color), "PNG")


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of `members`, their names stored exactly as given (no normalisation), dated 1980 (the same
    bytes on every run)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            archive.writestr(info, data)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as check:
        assert check.namelist() == list(members)  # the names really are what the test means
    return buffer.getvalue()


def save_array(path: Path, array: np.ndarray) -> Path:
    """An .npy file of `array` (through a buffer: `path` may be a name np.save would change)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    """{relative path: bytes} written under `folder`; the folder."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def read_tsv(path: Path) -> list[dict]:
    """Rows of a tab-separated file with a header (dvclive's curves)."""
    with open(path, newline="") as file:
        return list(csv.DictReader(file, delimiter="\t"))


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a valid PNG file."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root`, links not followed: a folder's mode, a link's target, a file's mode, size,
    modification time and bytes. Equal before and after: nothing was written, moved or removed."""
    found = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder) / name
            info = path.lstat()
            if path.is_symlink():
                found[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif name in folders:
                found[str(path.relative_to(root))] = (info.st_mode,)
            else:
                content = path.read_bytes() if path.is_file() else None
                found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, content)
    return found


def noise_jpeg(size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A JPEG of random pixels (quality 95): cut short, it is a truncated image, not a flat one."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels, "RGB"), "JPEG", quality=95)


def kaggle_jpeg(label: str, index: int) -> bytes:
    """A tiny JPEG for Kaggle's `<label>.<index>.jpg`, a different one for every image (copies can be told
    apart by their bytes; its bytes decide its split, where data.split gives fractions)."""
    return jpeg(color=(index * 20 % 256, 40 if label == "cat" else 200, 90))


def spy_memmaps(monkeypatch) -> list[tuple[str, str, tuple]]:
    """(file name, mode, shape) of each .npy file memory-mapped from now on to be written (np.load's maps read)."""
    opened, open_memmap = [], np.lib.format.open_memmap

    def spy(path, *args, **kwargs):
        if kwargs.get("mode") != "r":
            opened.append((Path(path).name, kwargs.get("mode"), kwargs.get("shape")))
        return open_memmap(path, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", spy)
    return opened


def relative_files(folder: Path) -> set[str]:
    """Every file under `folder`, as a path relative to it."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def noise_png(path: Path, seed: int = 0) -> Path:
    """A 20x20 PNG of random pixels at `path` (its folders made); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 20, 3)).astype(np.uint8)).save(path)
    return path


@contextlib.contextmanager
def file_size_limit(size: int):
    """Inside this, no file this process (or a process it forks) writes may grow past `size` bytes, as under a
    shell's `ulimit -f`: Python ignores SIGXFSZ, so such a write fails with EFBIG, for real."""
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def full_disk(monkeypatch, free: int = 3 * 2**20, error: BaseException | None = None) -> None:
    """From now on the disk is full: allocating a file's blocks (os.posix_fallocate, as a stage does before
    writing through a memory map) fails with ENOSPC (or raises `error`: KeyboardInterrupt, Ctrl-C as it
    writes), and the file system says `free` bytes are free."""

    def allocate(descriptor, offset, length):
        raise error if error is not None else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    usage = shutil.disk_usage(".")
    monkeypatch.setattr(os, "posix_fallocate", allocate)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=free))

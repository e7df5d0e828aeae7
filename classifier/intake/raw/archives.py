"""The checks of a zip's members, all of them as the archive is opened, before any member is read
or a nested zip is copied out: each refusal one line (RawDataError).

- Zip bombs, by what each archive declares: a member over its kind's cap (MAX_IMAGE_BYTES,
  MAX_TABLE_BYTES, MAX_MEMBER_BYTES in classifier.intake.raw.files); a member over
  BOMB_MIN_BYTES that inflates more than BOMB_RATIO times; members that together inflate more
  than BOMB_RATIO times the archive's size (many small bombs, or entries overlapping one
  compressed stream); a zip in a zip in a zip. Reading never gives more than a member declares
  (zipfile stops there, and a member that inflates past it fails its CRC: one line), nor more
  than its kind's cap.
- Members zipfile cannot read: encrypted ones, unknown compression methods.
- A member that is a symbolic link, or whose name is absolute or holds `..`, refuses its archive.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import PurePosixPath

from classifier.core.errors import RawDataError
from classifier.intake.raw.files import MiB, RawFile, cap, cap_text, is_hidden, size_text

# JPEG and PNG collections compress about 1:1, an .npy of images about 3:1; zip bombs 1000:1 and more.
BOMB_RATIO = 200
# Below this a high ratio costs nothing: a short text file of repeated lines compresses well.
BOMB_MIN_BYTES = 1 * MiB
# What zipfile reads: stored, deflate, bzip2, LZMA (not deflate64, PKWARE's or WinZip's encryption, ...).
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def check_member(member: zipfile.ZipInfo, zip_file: RawFile, depth: int) -> None:
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
            f"more than {BOMB_RATIO} times (BOMB_RATIO in classifier/intake/raw/archives.py); refusing the archive "
            f"as a zip bomb: if that data is genuine, extract it into data.raw_dir yourself"
        )


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
            f"{BOMB_RATIO} times (BOMB_RATIO in classifier/intake/raw/archives.py); refusing the archive as a zip "
            f"bomb: if that data is genuine, extract it into data.raw_dir yourself"
        )


def check_member_name(name: str, archive: str) -> None:
    """Refuse member names that would land outside a target folder if extracted."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise RawDataError(
            f"{archive} has an unsafe member {name!r} (absolute path or '..'); refusing the archive: download it again"
        )

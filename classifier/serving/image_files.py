"""The image files to classify, from the paths a user gives: folders searched recursively, following
symbolic links, each folder once, so that a link loop is reported, not followed; every problem met on
the way (an empty folder, a broken link, a FIFO) one line, and the other images still found.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def image_files(targets: list[Path]) -> tuple[list[Path], list[str]]:
    """The files to predict, and a line for each problem met on the way (an empty folder, a
    symbolic link loop, a broken link, a folder that cannot be listed). Folders are searched
    recursively, following symbolic links, each folder once: a link back to a folder that
    leads to it is a loop, reported and not followed; a second link to a folder adds nothing."""
    files, problems = [], []
    for target in targets:
        if target.is_dir():
            found = search(target, problems)
            if not found:
                problems.append(f"no images in {target}")
            files += sorted(found)
        elif target.exists() and not target.is_file():
            problems.append(f"{target}: not a regular file (a FIFO, socket or device): skipped")
        else:
            files.append(target)  # a missing or unreadable file is reported when it is read
    return files, problems


def search(top: Path, problems: list[str]) -> list[Path]:
    """The files under `top`, depth first without recursion (any depth); folders are known by
    (device, inode), so a link loop is seen however it is spelt."""
    found, searched = [], set()
    stack = [(top, frozenset())]  # a folder, and the folders that lead to it
    while stack:
        folder, ancestors = stack.pop()
        try:
            status = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as err:
            problems.append(f"{folder}: {err.strerror or err}")
            continue
        key = (status.st_dev, status.st_ino)
        if key in searched:
            continue
        searched.add(key)
        ancestors = ancestors | {key}
        subfolders = []
        for entry in entries:
            path = folder / entry.name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
                leads_to = os.stat(path) if is_dir else None
            except OSError as err:
                loop = err.errno == errno.ELOOP
                problems.append(f"{path}: {'a symbolic link loop' if loop else err.strerror or err}: skipped")
                continue
            if is_dir and (leads_to.st_dev, leads_to.st_ino) in ancestors:
                problems.append(f"{path}: a symbolic link loop (it leads back to {folder_of(path)}): not followed")
            elif is_dir:
                subfolders.append(path)
            elif is_file:
                found.append(path)
            elif entry.is_symlink():
                problems.append(f"{path}: a broken symbolic link (to {os.readlink(path)}): skipped")
            else:
                problems.append(f"{path}: not a regular file (a FIFO, socket or device): skipped")
        stack.extend((subfolder, ancestors) for subfolder in reversed(subfolders))
    return found


def folder_of(link: Path) -> str:
    """Where a looping symbolic link leads, as written in the link."""
    return os.path.normpath(link.parent / os.readlink(link)) if link.is_symlink() else str(link)

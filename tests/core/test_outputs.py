"""classifier/core/outputs.py: a full disk or a file-size limit read as one line (space_problem, writing), a folder
output written beside and swapped in once complete (replacing), a small file written whole (write_whole), a
file's blocks allocated before it is written through a memory map (reserve); and start-up's one line for such
an error that no `writing` named."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from classifier.core.errors import StageError
from classifier.core.outputs import megabytes, replacing, reserve, space_problem, write_whole, writing
from classifier.core.startup import run
from tests.support.files import file_size_limit, snapshot

MB = 1024 * 1024


@pytest.fixture
def three_mb_free(monkeypatch):
    usage = shutil.disk_usage(".")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=3 * MB))


def no_space(filename=None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


def test_sizes_read_in_megabytes_and_small_ones_in_bytes():
    assert (megabytes(120 * MB + MB // 2), megabytes(MB // 9), megabytes(2048)) == (
        "120.5 MB",
        "0.1 MB",
        "2,048 bytes",
    )


def test_no_space_a_quota_and_the_same_said_in_words_are_one_line_naming_path_need_and_room(three_mb_free):
    expected = (
        "no space left on the device writing data/x: 120.0 MB needed, 3.0 MB free; free some space and run it again"
    )
    for err in (
        no_space(),
        OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)),
        RuntimeError("write failed: No space left on device"),  # TensorFlow's file system keeps no errno
    ):
        assert space_problem(err, "data/x", 120 * MB) == expected
    assert space_problem(no_space("models/m.keras")) == (
        "no space left on the device writing models/m.keras: 3.0 MB free; free some space and run it again"
    )


def test_other_errors_are_left_as_they_are():
    for err in (OSError(errno.EACCES, "Permission denied"), ValueError("bad"), RuntimeError("disk I/O error")):
        assert space_problem(err, "x") is None


def test_a_file_size_limit_is_named_with_the_fix(tmp_path):
    with file_size_limit(64 * 1024):
        with pytest.raises(StageError) as info, writing("the file", needed=MB, kept="the folder"):
            (tmp_path / "big").write_bytes(bytes(2 * MB))  # a real EFBIG
        short = space_problem(OSError("1048576 requested and 65536 written"), "f.npy")  # NumPy's, no errno
    assert str(info.value) == (
        "the file-size limit of this process stops it writing the file: 1.0 MB needed, at most 65,536 bytes a file "
        "(`ulimit -f` 64); raise the limit (`ulimit -f unlimited`) and run it again (the folder is unchanged)"
    )
    assert short.startswith("the file-size limit of this process stops it writing f.npy: at most 65,536 bytes")
    assert space_problem(OSError(errno.EFBIG, "File too large"), "f").startswith(  # no limit: FAT32's 4 GB
        "the file system cannot hold a file this large writing f: put the repository on another file system"
    )


def test_writing_passes_other_errors_and_stage_errors_through():
    with pytest.raises(KeyError), writing("x"):
        raise KeyError("k")
    with pytest.raises(StageError, match="^inner$"), writing("x"):
        raise StageError("inner")


def test_replacing_swaps_the_new_folder_in_only_once_complete(tmp_path):
    target = tmp_path / "data" / "prepared"
    (target / "old").mkdir(parents=True)
    (target / "old" / "a").write_text("old")
    (tmp_path / "data" / ".prepared.new").mkdir()  # left by a killed run
    with replacing(target) as new:
        assert new == tmp_path / "data" / ".prepared.new" and list(new.iterdir()) == []
        (new / "b").write_text("new")
        assert (target / "old" / "a").read_text() == "old"
    assert [path.name for path in target.iterdir()] == ["b"]
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["prepared"]


@pytest.mark.parametrize("error", [no_space(), KeyboardInterrupt(), ValueError("a bug")], ids=repr)
def test_replacing_leaves_the_old_folder_whole_whatever_stops_it(tmp_path, error, three_mb_free):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_text("old")
    before = snapshot(tmp_path)
    with pytest.raises((StageError, type(error))) as info, replacing(target, needed=5 * MB) as new:
        (new / "a").write_text("half new")
        raise error
    assert snapshot(tmp_path) == before
    if isinstance(error, OSError):
        assert str(info.value) == (
            f"no space left on the device writing {target}: 5.0 MB needed, 3.0 MB free; free some space and run it "
            f"again ({target} is unchanged)"
        )


def test_replacing_a_link_to_a_folder_replaces_the_folder_it_names(tmp_path):
    elsewhere = tmp_path / "big_disk" / "prepared"
    elsewhere.mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prepared").symlink_to(elsewhere)
    with replacing(tmp_path / "data" / "prepared") as new:
        (new / "b").write_text("new")
    assert os.readlink(tmp_path / "data" / "prepared") == str(elsewhere)
    assert [path.name for path in elsewhere.iterdir()] == ["b"]
    assert sorted(path.name for path in (tmp_path / "big_disk").iterdir()) == ["prepared"]


def test_write_whole_leaves_the_old_text_or_the_new(tmp_path, monkeypatch, three_mb_free):
    path = tmp_path / "metrics.json"
    write_whole(path, "old\n")
    original = Path.write_text

    def fills_the_disk(self, text, *args, **kwargs):
        original(self, text[:2])
        raise no_space()

    monkeypatch.setattr(Path, "write_text", fills_the_disk)
    with pytest.raises(StageError) as info:
        write_whole(path, "new\n")
    assert str(info.value) == (
        f"no space left on the device writing {path}: 4 bytes needed, 3.0 MB free; free some space and run it again "
        f"({path} is unchanged)"
    )
    assert [(item.name, item.read_text()) for item in tmp_path.iterdir()] == [("metrics.json", "old\n")]


def test_reserve_allocates_a_sparse_file_without_changing_it(tmp_path):
    path = tmp_path / "a.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(64, 1024))
    del array
    content = path.read_bytes()
    assert path.stat().st_blocks * 512 < 64 * 1024  # sparse: written through a map on a full disk, SIGBUS
    reserve(path)
    assert path.stat().st_blocks * 512 >= 64 * 1024 and path.read_bytes() == content


def test_reserve_on_a_full_disk_fails_with_enospc(tmp_path, monkeypatch):
    path = tmp_path / "a.npy"
    path.write_bytes(bytes(100))

    def allocate(descriptor, offset, length):
        raise no_space()

    monkeypatch.setattr(os, "posix_fallocate", allocate)
    with pytest.raises(OSError) as info:
        reserve(path)
    assert info.value.errno == errno.ENOSPC


def test_start_up_says_a_full_disk_no_writing_named_in_one_line(three_mb_free):
    def main():
        raise no_space("metrics/x.json")

    with pytest.raises(SystemExit) as info:
        run(main, "evaluate", "interrupted")
    assert info.value.code == (
        "evaluate: error: no space left on the device writing metrics/x.json: 3.0 MB free; free some space and run "
        "it again"
    )


def test_start_up_leaves_other_errors_as_tracebacks():
    def main():
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        run(main, "evaluate", "interrupted")

"""classifier/commands/own.py's parts: bases/ compared by streaming and the workspace's lock named (signals
passed on to DVC: test_experiment_runs.py; the command as a whole: tests/hostile/test_nothing_changes_before_
every_check.py and test_arguments_pass_as_data.py; a real run: tests/e2e/test_own_e2e.py)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest

from classifier.commands import own
from classifier.core.errors import ParamsError, StageError

SIZE = 64 * 2**20


@pytest.fixture
def bases_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(own, "ROOT", tmp_path)
    (tmp_path / "bases").mkdir()
    return tmp_path / "bases"


def large(path, last: bytes):
    """A file of SIZE bytes, sparse, whose last byte is `last`."""
    with open(path, "wb") as file:
        file.truncate(SIZE - 1)
        file.seek(SIZE - 1)
        file.write(last)
    return path


def test_large_bases_are_compared_by_streaming_never_read_whole(bases_dir, tmp_path):
    source = large(tmp_path / "base.keras", b"a")
    large(bases_dir / "base.keras", b"b")
    tracemalloc.start()
    try:
        with pytest.raises(ParamsError, match=r"bases/base.keras holds another model already"):
            own.base_to_copy(source, "base.keras")
        (bases_dir / "base.keras").unlink()
        (bases_dir / "base.keras.dvc").write_text(f"outs:\n- md5: {own.file_md5(source)}\n  path: base.keras\n")
        assert own.base_to_copy(source, "base.keras") is False
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    assert own.file_md5(source) == hashlib.md5(source.read_bytes()).hexdigest()


def test_a_new_name_is_copied_and_imagenet_needs_nothing(bases_dir, tmp_path):
    source = tmp_path / "new.keras"
    source.write_bytes(b"model")
    assert own.base_to_copy(source, str(source)) is True
    assert own.base_to_copy(None, "imagenet") is False


def test_the_lock_names_the_run_that_holds_it(bases_dir):
    with own.workspace_lock("my photos", "imagenet", "laptop"):
        with pytest.raises(StageError) as info:
            own.refuse_a_second_run()
    assert str(info.value).startswith(
        f"another `make own` is running in this workspace (process {os.getpid()}, since "
    ) and "DATA=my photos BASE=imagenet RECIPE=laptop)" in str(info.value)
    own.refuse_a_second_run()  # released

"""What the hostile-input tests share: a workspace to run a stage in, and a raw data folder beside it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The workspace (the current folder); nested zips are copied out under tmp_path/scratch."""
    workspace, scratch = tmp_path / "work", tmp_path / "scratch"
    workspace.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return workspace


@pytest.fixture
def raw(tmp_path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    return folder

"""classifier/serving/image_files.py, as `classifier predict` shows what it finds: a folder searched recursively,
symbolic links to folders followed and each folder searched once; broken links, FIFOs and empty folders
reported in one line each, and the other images still predicted."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import pytest

from classifier.models import saving
from tests.support.commands import run_command
from tests.support.files import noise_png
from tests.support.models import tiny_transfer_model


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A tiny classifier of cat and dog: what it predicts does not matter here, which images it is given does."""
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "m.keras"
    saving.save_model(tiny_transfer_model(2, dense_units=4), path, ["cat", "dog"])
    return path


def predicted_paths(out: str) -> list[str]:
    return [line.rsplit(", ", 2)[0] for line in out.splitlines()]


def test_a_symbolic_link_to_a_folder_is_followed_and_each_folder_searched_once(saved_model, tmp_path, capsys):
    elsewhere = noise_png(tmp_path / "elsewhere" / "photo.png").parent
    folder = tmp_path / "photos"
    noise_png(folder / "own.png", seed=1)
    os.symlink(elsewhere, folder / "linked")
    os.symlink(elsewhere, folder / "linked_again")  # the same folder: its images are predicted once
    assert run_command(["predict", str(folder), "--model", str(saved_model)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert predicted_paths(out) == [str(folder / "linked" / "photo.png"), str(folder / "own.png")]


def test_broken_links_and_fifos_are_reported_not_read(saved_model, tmp_path, capsys):
    folder = tmp_path / "photos"
    noise_png(folder / "own.png")
    os.symlink(tmp_path / "gone.png", folder / "dangling.png")
    os.mkfifo(folder / "pipe")
    os.mkfifo(tmp_path / "given_pipe")  # named on the command line: reading it would wait forever
    assert run_command(["predict", str(folder), str(tmp_path / "given_pipe"), "--model", str(saved_model)]) == 1
    out, err = capsys.readouterr()
    assert predicted_paths(out) == [str(folder / "own.png")]
    assert err.splitlines() == [
        f"predict: error: {folder / 'dangling.png'}: a broken symbolic link (to {tmp_path / 'gone.png'}): skipped",
        f"predict: error: {folder / 'pipe'}: not a regular file (a FIFO, socket or device): skipped",
        f"predict: error: {tmp_path / 'given_pipe'}: not a regular file (a FIFO, socket or device): skipped",
    ]


def test_an_empty_folder_among_others_is_reported_and_the_rest_predicted(saved_model, tmp_path, capsys):
    image = noise_png(tmp_path / "photo.png")
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    assert run_command(["predict", str(tmp_path / "empty"), str(image), "--model", str(saved_model)]) == 1
    out, err = capsys.readouterr()
    assert predicted_paths(out) == [str(image)]
    assert err == f"predict: error: no images in {tmp_path / 'empty'}\n"

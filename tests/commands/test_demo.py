"""`classifier demo --images-only` (classifier/commands/demo.py): the generated images in Kaggle's naming in the
demo recipe's data.raw_dir, the same bytes for the same arguments, and nothing run. (The run itself, `make demo`,
is a DVC experiment of minutes: not run here.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from classifier.commands import demo
from classifier.commands.recipe import load_recipe
from tests.support.commands import run_command


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """The repository the command writes into: a scratch folder; running anything fails the test."""
    monkeypatch.setattr(demo, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(demo.subprocess, "run", lambda *args, **kwargs: pytest.fail(f"ran {args}"))
    return tmp_path


def images(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_images_only_writes_kaggle_named_images_into_the_recipes_raw_dir(root, capsys):
    raw_dir = load_recipe("demo")["data"]["raw_dir"]
    assert run_command(["demo", "--images-only", "--per-class", "3", "--size", "24"]) == 0
    folder = root / raw_dir
    assert sorted(images(folder)) == sorted(f"{label}.{index}.jpg" for label in ("cat", "dog") for index in range(3))
    for path in folder.iterdir():
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (24, 24))
    assert capsys.readouterr().out == f"demo: 6 images in {folder}/\n"
    written = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    assert written == [f"{raw_dir}/{name}" for name in images(folder)]  # nothing else


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_images(root):
    folder = root / load_recipe("demo")["data"]["raw_dir"]
    run_command(["demo", "--images-only", "--per-class", "2", "--size", "32", "--seed", "7"])
    first = images(folder)
    for path in folder.iterdir():
        path.unlink()
    run_command(["demo", "--images-only", "--per-class", "2", "--size", "32", "--seed", "7"])
    assert images(folder) == first
    run_command(["demo", "--images-only", "--per-class", "2", "--size", "32", "--seed", "8"])
    other = images(folder)
    assert set(other) == set(first) and all(other[name] != first[name] for name in first)
    assert len(set(first.values())) == len(first)  # every image its own

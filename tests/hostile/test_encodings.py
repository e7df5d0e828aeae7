"""Encodings: every command and stage under an output encoding that cannot show every character (PYTHONIOENCODING=ascii,
a common CI setting; latin-1), under LANG=C / LC_ALL=C (UTF-8 to Python) and UTF-8, with non-ASCII folder, file and
class names, in real processes. What the terminal cannot show is written as Python's escapes (`\\u0444`), never a
UnicodeEncodeError traceback; a CSV on stdout stays a CSV of the names as they are (UTF-8).

 1. `classifier predict` under PYTHONIOENCODING=ascii, a folder `фото/`, a file `кот.jpg`,
    classes `кошка` and `собака` in the model                                   -> one line per image, escaped; 0
 2. `classifier predict --csv` to an ASCII stdout, and a file name whose
    bytes are not UTF-8                                                          -> a UTF-8 CSV of the exact names
                                                                                    (the undecodable byte escaped)
 3. stage split under ascii, latin-1, LC_ALL=C and UTF-8: a class folder `кошки/`,
    a file `заметки.txt` it ignores, a hidden folder `.скрытый/`                 -> its lines (the layout note,
                                                                                    the ignored and hidden files)
                                                                                    escaped where they must be; 0
 4. the same stage refusing the folder (one class): its one-line error          -> escaped, exit 1, no traceback
(How start-up sets the streams, and a compare table's `…`: tests/core/test_startup.py.)
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from classifier.models import saving
from tests.support.commands import run_command
from tests.support.files import jpeg, write_files
from tests.support.models import tiny_transfer_model
from tests.support.params import split_params, write_params
from tests.support.paths import ROOT

CLASSES = ["кошка", "собака"]
ASCII = {"PYTHONIOENCODING": "ascii"}
ENVIRONMENTS = {
    "ascii": ASCII,
    "latin-1": {"PYTHONIOENCODING": "latin-1"},
    "C": {"LANG": "C", "LC_ALL": "C"},
    "UTF-8": {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
}


def escaped(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode()


def run(command: list[str], cwd: Path, environment: dict[str, str]) -> subprocess.CompletedProcess:
    """`python COMMAND` in cwd, in bytes, with the environment's encoding settings (others of the test's taken off)."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONIOENCODING", "LANG", "LC_ALL")}
    env |= {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **environment}
    return subprocess.run([sys.executable, *command], cwd=cwd, env=env, capture_output=True, timeout=300)


# --- 1-2: predict -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """`фото/кот.jpg` and `фото/plain.jpg`, and `model.keras` of classes кошка and собака, in one folder."""
    folder = tmp_path_factory.mktemp("encodings")
    (folder / "фото").mkdir()
    Image.fromarray(np.full((20, 20, 3), 120, np.uint8)).save(folder / "фото" / "кот.jpg")
    Image.fromarray(np.full((20, 20, 3), 20, np.uint8)).save(folder / "фото" / "plain.jpg")
    keras.utils.set_random_seed(0)
    saving.save_model(tiny_transfer_model(2, dense_units=4), folder / "model.keras", CLASSES)
    return folder


def test_predict_under_an_ascii_terminal_escapes_the_names(photos):
    result = run(["-m", "classifier", "predict", "фото", "--model", "model.keras", "--top", "2"], photos, ASCII)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode("ascii").splitlines()  # nothing but ASCII
    assert [line.split(", ")[0] for line in lines] == [escaped("фото/plain.jpg"), escaped("фото/кот.jpg")]
    assert all({line.split(", ")[1], line.split(", ")[3]} == set(map(escaped, CLASSES)) for line in lines)
    assert b"Traceback" not in result.stderr


def test_predict_csv_to_an_ascii_stdout_is_a_utf8_csv_of_the_names(photos, tmp_path, monkeypatch):
    """In this process (TensorFlow is imported once), stdout an ASCII stream as PYTHONIOENCODING=ascii makes it."""
    folder = tmp_path / "фото"
    folder.mkdir()
    for name in ("кот.jpg", "plain.jpg"):
        (folder / name).write_bytes((photos / "фото" / name).read_bytes())
    os.rename(folder / "plain.jpg", os.path.join(os.fsencode(folder), b"\xff.jpg"))  # a name that is not UTF-8
    stdout = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(stdout, encoding="ascii", write_through=True))
    monkeypatch.chdir(tmp_path)
    assert run_command(["predict", "фото", "--model", str(photos / "model.keras"), "--csv"]) == 0
    rows = list(csv.reader(io.StringIO(stdout.getvalue().decode("utf-8"), newline="")))
    assert rows[0] == ["path", "label", *CLASSES]
    assert {row[0] for row in rows[1:]} == {"фото/кот.jpg", "фото/\\udcff.jpg"}
    assert all(row[1] in CLASSES and len(row) == 4 for row in rows[1:])


# --- 3-4: a stage -----------------------------------------------------------------------------------------------


def raw_folder(raw: Path, classes: dict[str, str]) -> Path:
    """Kaggle-named photos in class folders (each name a key, the label its images are named after)."""
    files = {f"{name}/{label}.{i}.jpg": jpeg(100 * number + i) for number, (name, label) in enumerate(classes.items())
             for i in range(8)}  # fmt: skip
    first = next(iter(classes))
    return write_files(raw, files | {f"{first}/заметки.txt": b"notes", ".скрытый/1.jpg": jpeg(7)})


@pytest.mark.parametrize("environment", ENVIRONMENTS.values(), ids=ENVIRONMENTS)
def test_stage_split_under_each_encoding(tmp_path, environment):
    raw = raw_folder(tmp_path / "raw", {"кошки": "cat", "dogs": "dog"})
    (tmp_path / "work").mkdir()
    write_params(tmp_path / "work", split_params(raw, {"train": 0.5, "validation": 0.25, "test": 0.25}))
    result = run(["-m", "stages.split"], tmp_path / "work", environment)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    shows_all = environment.get("PYTHONIOENCODING") is None  # C and UTF-8: UTF-8 output
    out = result.stdout.decode("utf-8" if shows_all else environment["PYTHONIOENCODING"])
    show = (lambda text: text) if shows_all else escaped
    assert "(dogs/cat.0.jpg" not in out and f"({show('кошки/cat.0.jpg')}, " in out  # the folders say the class
    assert f"not images (.jpg .jpeg .png .bmp .gif .webp): {show('кошки/заметки.txt')}\n" in out
    assert f"nothing in them is read): {show('.скрытый/')}\n" in out
    assert "split: a folder per class: 16 images of 2 classes" in out
    assert sorted(path.name for path in (tmp_path / "work/data/split/train").iterdir()) == ["dogs", "кошки"]


def test_a_stage_s_one_line_error_under_an_ascii_terminal(tmp_path):
    raw = raw_folder(tmp_path / "raw", {"кошки": "cat"})
    (tmp_path / "work").mkdir()
    write_params(tmp_path / "work", split_params(raw, {"train": 0.5, "validation": 0.25, "test": 0.25}))
    result = run(["-m", "stages.split"], tmp_path / "work", ASCII)
    assert result.returncode == 1
    errors = result.stderr.decode("ascii").splitlines()
    assert len(errors) == 1 and errors[0].startswith("split: error: ")
    assert escaped("кошки") in errors[0]

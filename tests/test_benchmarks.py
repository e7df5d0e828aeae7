"""The benchmark's measuring tools (benchmarks/): the table is only as good as these."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import yaml

from benchmarks.backends import Worker, backend_rows, skipped_rows
from benchmarks.harness import Row, best_of, taking_turns
from benchmarks.images import lay_out_split, write_manifest
from benchmarks.memory import peak_memory
from tools.scratch_repo import make_repo

MIB = 2**20


def test_best_of_keeps_each_contenders_fastest_run_and_takes_turns():
    calls = []
    delays = iter([0.05, 0.01, 0.02, 0.03])  # a: 0.05 then 0.02; b: 0.01 then 0.03

    def contender(name):
        def run():
            calls.append(name)
            time.sleep(next(delays))

        return run

    seconds = best_of(2, {"a": contender("a"), "b": contender("b")})
    assert calls == ["a", "b", "a", "b"]
    assert seconds["a"] == pytest.approx(0.02, abs=0.015)
    assert seconds["b"] == pytest.approx(0.01, abs=0.015)


def test_peak_memory_sees_a_child_process_allocation(tmp_path):
    allocate = "import time; block = bytearray(300 * 2**20); time.sleep(0.5)"
    rss, anonymous = peak_memory([sys.executable, "-c", allocate], tmp_path)
    assert anonymous >= 300 * MIB and rss >= anonymous


def test_peak_memory_counts_grandchildren(tmp_path):
    """prepare decodes in worker processes: their memory counts too."""
    grandchild = "import time; block = bytearray(200 * 2**20); time.sleep(0.5)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    _, anonymous = peak_memory([sys.executable, "-c", child], tmp_path)
    assert anonymous >= 200 * MIB


def test_peak_memory_reports_a_failed_command(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        peak_memory([sys.executable, "-c", "raise SystemExit('boom')"], tmp_path)


def test_a_large_split_is_laid_out_from_few_distinct_images(tmp_path, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    for label in ("cat", "dog"):
        for index in range(3):
            (images / f"{label}.{index}.jpg").write_bytes(f"{label}{index}".encode())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rows = lay_out_split(images, "train", 7, cycle=3)
    lay_out_split(images, "test", 2, start=7, cycle=3)
    write_manifest(work)
    assert len(rows) == 14
    assert (work / "data/split/train/dog/dog.5.jpg").read_bytes() == b"dog2"  # 5 % 3
    manifest = (work / "data/split/manifest.csv").read_text().splitlines()
    assert manifest[0] == "split,label,class,path,source,sha256" and len(manifest) == 1 + 14 + 4
    assert "test,cat,cat,test/cat/cat.8.jpg,cat.8.jpg," in manifest
    assert json.loads((work / "data/classes.json").read_text()) == ["cat", "dog"]


def test_a_row_meets_its_target_at_or_above_it():
    assert Row("x", "", "", 1.7, 1.7).met and Row("x", "", "", 1.7, 1.7).verdict == "met"
    assert Row("x", "", "", 0.74, 0.75).verdict == "NOT MET"
    assert Row("x", "", "", 0.5, None).verdict == "-"  # measured for information only


def test_a_row_without_a_ratio_shows_a_dash():
    assert Row("x", "failed: boom", "", math.nan, None).ratio_text == "-"
    assert Row("x", "", "", 1.234, None).ratio_text == "1.23x"


# --- the backend table ------------------------------------------------------------------------


def test_taking_turns_keeps_each_backends_best_per_measurement_over_rounds():
    calls = []
    reports = {
        "tensorflow": iter([{"extract_features": 2.0, "fine_tune": 5.0}, {"extract_features": 1.5, "fine_tune": 6.0}]),
        "jax": iter([{"extract_features": 4.0}, {"extract_features": 3.0, "fine_tune": 9.0}]),
    }

    def backend(name):
        def run():
            calls.append(name)
            return next(reports[name])

        return run

    best = taking_turns(2, {name: backend(name) for name in reports})
    assert calls == ["tensorflow", "jax", "tensorflow", "jax"]  # one worker per backend per round, in turn
    assert best == {
        "tensorflow": {"extract_features": 1.5, "fine_tune": 5.0},
        "jax": {"extract_features": 3.0, "fine_tune": 9.0},
    }


def test_backend_rows_give_images_per_second_as_a_ratio_to_tensorflow():
    best = {
        "tensorflow": {"extract_features": 2.0, "train_frozen": 4.0, "fine_tune": 5.0},
        "jax": {"extract_features": 1.0, "train_frozen": 8.0, "fine_tune": 5.0},
    }
    rows = backend_rows(best, {}, 100, "100 images")
    by_name = {row.name: row for row in rows}
    assert [row.name for row in rows] == [
        f"{measurement} on {backend}"
        for measurement in ("extract_features", "train_frozen", "fine_tune")
        for backend in ("tensorflow", "jax")
    ]
    assert by_name["extract_features on tensorflow"].ratio == 1.0
    assert by_name["extract_features on jax"].ratio == 2.0  # half the time: twice the images/s
    assert by_name["train_frozen on jax"].ratio == 0.5
    assert by_name["extract_features on jax"].ours == "100 img/s"
    assert by_name["extract_features on jax"].reference == "50 img/s (tensorflow)"
    assert all(row.target is None and row.verdict == "-" for row in rows)  # for information
    assert rows[0].note == "100 images" and not any(row.note for row in rows[1:])


def test_a_failed_backend_gets_rows_that_say_why_and_the_others_still_compare():
    best = {
        "tensorflow": {"extract_features": 2.0, "train_frozen": 4.0, "fine_tune": 5.0},
        "jax": {"extract_features": 1.0},
        "torch": {},
    }
    failed = {
        "jax": {"train_frozen": "TypeError: not a tensor", "fine_tune": "TypeError: not a tensor"},
        "torch": dict.fromkeys(("extract_features", "train_frozen", "fine_tune"), "ImportError: no torch"),
    }
    by_name = {row.name: row for row in backend_rows(best, failed, 10, "")}
    assert by_name["extract_features on jax"].ratio == 2.0
    assert by_name["train_frozen on jax"].ours == "failed: TypeError: not a tensor"
    assert math.isnan(by_name["train_frozen on jax"].ratio) and by_name["train_frozen on jax"].ratio_text == "-"
    assert by_name["fine_tune on torch"].ours == "failed: ImportError: no torch"


def test_without_tensorflows_time_there_is_no_ratio():
    best = {"tensorflow": {}, "jax": {"extract_features": 1.0, "train_frozen": 1.0, "fine_tune": 1.0}}
    rows = backend_rows(best, {"tensorflow": {"extract_features": "OSError: x"}}, 10, "")
    jax = next(row for row in rows if row.name == "extract_features on jax")
    assert jax.ours == "10 img/s" and math.isnan(jax.ratio) and jax.reference == "tensorflow: OSError: x"


def test_a_backend_not_installed_is_skipped_with_a_note():
    (row,) = skipped_rows(["torch"])
    assert (
        row.ours == "skipped: not installed"
        and "pip install -r requirements-torch.txt" in row.note
        and row.verdict == "-"
    )


def test_a_worker_that_crashes_reports_its_last_stderr_line_and_is_not_run_again(tmp_path, monkeypatch):
    runs = []

    def crashing(command, **kwargs):
        runs.append(kwargs["env"]["KERAS_BACKEND"])
        return subprocess.CompletedProcess(command, 1, "", "Traceback ...\n  line\nModuleNotFoundError: no jax\n\n")

    monkeypatch.setattr(subprocess, "run", crashing)
    worker = Worker("jax", tmp_path)
    assert worker() == {} and worker() == {}
    assert runs == ["jax"]
    assert worker.failed == dict.fromkeys(
        ("extract_features", "train_frozen", "fine_tune"), "ModuleNotFoundError: no jax"
    )


def test_a_worker_returns_its_reports_times_and_keeps_what_failed(tmp_path, monkeypatch):
    report = {
        "backend": "torch",
        "base": "b",
        "images": 4,
        "seconds": {"extract_features": 0.5},
        "failed": {"train_frozen": "ValueError: x"},
    }
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, **kwargs: subprocess.CompletedProcess(command, 0, f"some output\n{json.dumps(report)}\n", ""),
    )
    worker = Worker("torch", tmp_path)
    assert worker() == {"extract_features": 0.5}
    assert worker.failed == {"train_frozen": "ValueError: x"} and worker.report["images"] == 4


# --- the scratch repository builder (tools/scratch_repo.py), shared with the tests ---------------


def test_the_shared_builder_makes_a_git_repo_with_data_raw_tracked_by_dvc(tmp_path):
    def fill_raw(raw):
        for label in ("cat", "dog"):
            (raw / f"{label}.0.jpg").write_bytes(label.encode())

    repo = make_repo(tmp_path / "repo", {("data", "image_size"): 48}, fill_raw)
    assert repo.run("git", "status", "--porcelain").stdout == ""
    tracked = repo.run("git", "ls-files").stdout.split()
    assert "data/raw.dvc" in tracked and not [name for name in tracked if name.startswith("data/raw/")]
    (out,) = yaml.safe_load((repo.path / "data/raw.dvc").read_text())["outs"]
    assert out["path"] == "raw" and out["nfiles"] == 2  # the images are DVC's, not git's
    assert "image_size: 48" in (repo.path / "params.yaml").read_text()

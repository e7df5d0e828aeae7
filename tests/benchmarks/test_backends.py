"""benchmarks/backends.py: the table of Keras backends against TensorFlow (images per second as a ratio),
and the worker process that measures one backend: what it reports, and what it says when it fails."""

from __future__ import annotations

import json
import math
import subprocess

from benchmarks.backends import Worker, backend_rows, skipped_rows


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

"""Backend rows: extract_features, train_frozen and fine_tune on each installed Keras backend
(TensorFlow, JAX, PyTorch), as images/s against TensorFlow's, for information.

Keras picks its backend once, at import, from KERAS_BACKEND: each backend is measured in a
worker process of its own (benchmarks/backend_worker.py), the backends taking turns, round
after round, each keeping its best time per measurement.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import ROOT
from benchmarks.backend_worker import MEASUREMENTS
from benchmarks.harness import Row, rate, taking_turns
from benchmarks.images import prepare_train

BACKENDS = ("tensorflow", "jax", "torch")  # KERAS_BACKEND's values, each the name of the package it needs
REFERENCE = "tensorflow"
REQUIREMENTS = {"tensorflow": "requirements.txt", "jax": "requirements-jax.txt", "torch": "requirements-torch.txt"}
BATCH_SIZE, EXTRACT_BATCH_SIZE = 20, 32  # as the throughput rows
WORKER_TIMEOUT = 900  # seconds; a worker that takes longer counts as failed


class Worker:
    """One backend: each call runs its worker process once and returns {measurement: seconds}.
    What failed is kept in `failed` ({measurement: message}); a worker process that failed as a
    whole is not run again in later rounds."""

    def __init__(self, backend: str, folder: Path):
        self.backend, self.folder = backend, folder
        self.failed: dict[str, str] = {}
        self.report: dict = {}
        self.crashed = False

    def __call__(self) -> dict[str, float]:
        if self.crashed:
            return {}
        command = [
            sys.executable,
            "-m",
            "benchmarks.backend_worker",
            "--batch-size",
            str(BATCH_SIZE),
            "--extract-batch-size",
            str(EXTRACT_BATCH_SIZE),
        ]
        environment = {
            **os.environ,
            "KERAS_BACKEND": self.backend,
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        try:
            result = subprocess.run(
                command, cwd=self.folder, env=environment, capture_output=True, text=True, timeout=WORKER_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            return self.crash(f"no result within {WORKER_TIMEOUT} s")
        if result.returncode:
            return self.crash(last_line(result.stderr) or f"exit status {result.returncode}")
        try:
            self.report = json.loads(last_line(result.stdout))
        except ValueError:
            return self.crash(f"no report in its output: {last_line(result.stdout)[:200]!r}")
        self.failed.update(self.report["failed"])
        return self.report["seconds"]

    def crash(self, message: str) -> dict[str, float]:
        self.crashed = True
        self.failed.update({measurement: message for measurement in MEASUREMENTS})
        return {}


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def backend_rows(
    best: dict[str, dict[str, float]], failed: dict[str, dict[str, str]], images: int, note: str
) -> list[Row]:
    """One row per (measurement, backend), in `best`'s order of backends: its images/s, and the
    ratio to TensorFlow's (TensorFlow's own row: 1.00x); a measurement without a time says why."""
    rows = []
    for measurement in MEASUREMENTS:
        reference = best.get(REFERENCE, {}).get(measurement)
        if reference is not None:
            reference_text = f"{rate(images, reference)} ({REFERENCE})"
        else:
            reason = failed.get(REFERENCE, {}).get(measurement, "not measured")
            reference_text = f"{REFERENCE}: {reason}" if REFERENCE in best else f"{REFERENCE} not measured"
        for backend, seconds in best.items():
            name = f"{measurement} on {backend}"
            if measurement in seconds:
                ratio = reference / seconds[measurement] if reference is not None else math.nan
                rows.append(Row(name, rate(images, seconds[measurement]), reference_text, ratio, None))
            else:
                why = failed.get(backend, {}).get(measurement, "no result")
                rows.append(Row(name, f"failed: {why}", reference_text, math.nan, None))
    if rows:
        rows[0].note = note
    return rows


def skipped_rows(missing: list[str]) -> list[Row]:
    return [
        Row(
            f"backend {backend}",
            "skipped: not installed",
            "-",
            math.nan,
            None,
            f"`pip install -r {REQUIREMENTS[backend]}` to measure it",
        )
        for backend in missing
    ]


def backends_measured(
    folder: Path, images: Path, per_class: int, size: int, rounds: int, backends: tuple[str, ...] = BACKENDS
) -> list[Row]:
    """Prepare `per_class` images of each class in `folder`, run the workers taking turns for
    `rounds` rounds, and give the rows."""
    present = [backend for backend in backends if importlib.util.find_spec(backend) is not None]
    missing = [backend for backend in backends if backend not in present]
    folder.mkdir()
    with contextlib.chdir(folder):
        prepare_train(images, per_class, size)
    workers = {backend: Worker(backend, folder) for backend in present}
    best = taking_turns(rounds, workers)
    report = next((worker.report for worker in workers.values() if worker.report), {})
    count = report.get("images", 2 * per_class)
    note = (
        f"all backend rows: {count} images at {size}x{size}, base {report.get('base', '-')}, batch {BATCH_SIZE} "
        f"(extract_features {EXTRACT_BATCH_SIZE}); each backend in its own process, after a warm-up pass; "
        f"best of {rounds} round(s), the backends taking turns"
    )
    return backend_rows(
        best, {backend: worker.failed for backend, worker in workers.items()}, count, note
    ) + skipped_rows(missing)

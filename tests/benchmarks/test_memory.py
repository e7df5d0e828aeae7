"""benchmarks/memory.py: the peak memory of a command, its children and grandchildren included."""

from __future__ import annotations

import sys

import pytest

from benchmarks.memory import peak_memory

MIB = 2**20


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

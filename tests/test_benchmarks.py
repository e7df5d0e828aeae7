"""benchmarks/run.py's measuring tools: the table is only as good as these."""

from __future__ import annotations

import json
import sys
import time

import pytest

from benchmarks.run import Row, best_of, lay_out_split, peak_memory, write_manifest

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

"""Memory rows: peak resident memory of the real prepare and extract_features stages, run as
processes on a small and on a large set."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT
from benchmarks.harness import Row
from benchmarks.images import lay_out_split, write_manifest
from tools.scratch_repo import set_params


def peak_memory(command: list[str], cwd: Path) -> tuple[int, int]:
    """Run `command`; (peak resident bytes, peak anonymous bytes) of its process tree, sampled every 20 ms."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty command cannot fill it and stall
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        peak_rss = peak_anon = 0
        while process.poll() is None:
            rss = anon = 0
            for pid in process_tree(process.pid):
                fields = status_fields(pid)
                rss += fields.get("VmRSS", 0)
                anon += fields.get("RssAnon", 0)
            peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
            time.sleep(0.02)
        if process.returncode:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed:\n{errors.read().decode()[-2000:]}")
    return peak_rss, peak_anon


def process_tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def status_fields(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def memory_rows(folder: Path, images: Path, distinct: int, per_class_sizes: list[int], size: int) -> list[Row]:
    """Peak memory of the real prepare and extract_features stages on a small and a large set."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    base_file = folder / "small_base.keras"
    # A small convolutional base: what is measured is the stages' streaming, not the base.
    pixels = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(16, 3, strides=4, activation="relu")(keras.layers.Rescaling(1 / 255)(pixels))
    x = keras.layers.Conv2D(32, 3, strides=4, activation="relu", name="last_conv")(x)
    keras.Model(pixels, x).save(base_file)
    measured = {}
    for per_class in per_class_sizes:
        work = folder / f"set_{per_class}"
        work.mkdir()
        with contextlib.chdir(work):
            held_out = max(per_class // 50, 10)  # validation and test: 2% each, as a user might set
            lay_out_split(images, "train", per_class - 2 * held_out, cycle=distinct)
            lay_out_split(images, "validation", held_out, start=per_class - 2 * held_out, cycle=distinct)
            lay_out_split(images, "test", held_out, start=per_class - held_out, cycle=distinct)
            write_manifest(work)
            (work / "bases").mkdir()
            shutil.copy2(base_file, work / "bases")
            shutil.copy2(ROOT / "params.yaml", work)
            set_params(
                work,
                {
                    ("data", "image_size"): size,
                    ("base", "name"): f"bases/{base_file.name}",
                    ("base", "weights"): None,
                    ("base", "fine_tune_from"): "last_conv",
                },
            )
            for stage in ("prepare", "load_base", "extract_features"):
                measured[(per_class, stage)] = peak_memory([sys.executable, "-m", f"stages.{stage}"], work)
            data_bytes = sum(path.stat().st_size for path in (work / "data/prepared").glob("*/images-*.npy"))
            measured[(per_class, "data")] = data_bytes
    small, large = per_class_sizes
    rows = []
    for stage in ("prepare", "extract_features"):
        (small_rss, small_anon), (large_rss, large_anon) = measured[(small, stage)], measured[(large, stage)]
        rows.append(
            Row(
                f"memory: {stage}",
                f"{mib(large_rss)} peak RSS at {2 * large:,} images",
                f"{mib(small_rss)} at {2 * small:,} images",
                small_rss / large_rss,
                0.5,
                f"anonymous {mib(small_anon)} -> {mib(large_anon)}; "
                f"prepared arrays {mib(measured[(small, 'data')])} -> "
                f"{mib(measured[(large, 'data')])}",
            )
        )
    return rows


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"

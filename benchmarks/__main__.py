"""`python -m benchmarks`: the benchmark's command (`make bench`); see benchmarks/__init__.py."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import benchmarks
from benchmarks import ROOT
from benchmarks.backends import backends_measured
from benchmarks.dvc_noop import bench_dvc, finished_repo
from benchmarks.harness import Rows, print_table
from benchmarks.images import source_images
from benchmarks.memory import memory_rows
from benchmarks.scale import scale_rows
from benchmarks.throughput import throughput_rows

PARTS = ("throughput", "dvc", "memory", "backends", "scale")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=benchmarks.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sets: checks the benchmark runs, not the numbers")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    parser.add_argument("--size", type=int, default=150, help="image size (default 150, the book's)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    parts = args.only or PARTS
    per_class = 50 if args.quick else 500  # prepare, extract_features, train_frozen: 1,000 images
    large = 500 if args.quick else 12_500  # per class, for the memory rows: 25,000 images
    backend_per_class = 10 if args.quick else 100  # each backend, each round: 200 images
    rounds = 1 if args.quick else 5
    backend_rounds = 1 if args.quick else 2

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, base_name = Rows(), None
    try:
        images, source, distinct = source_images(work / "generated", max(per_class, 24))
        if "throughput" in parts:
            base_name = throughput_rows(rows, work / "throughput", images, distinct, per_class, args.size, rounds)
        if "dvc" in parts:
            repo = finished_repo(work / "dvc_repo", images, 24 if args.quick else per_class)
            rows.append(bench_dvc(repo, rounds))
        if "memory" in parts:
            rows += memory_rows(work / "memory", images, distinct, [50 if args.quick else 500, large], args.size)
        if "backends" in parts:
            rows += backends_measured(work / "backends", images, backend_per_class, args.size, backend_rounds)
        if "scale" in parts:  # 10,000 and 100,000 small images (1,000 and 10,000 with --quick)
            rows += scale_rows(work / "scale", (500, 5_000) if args.quick else (5_000, 50_000))
        print_table(rows, source, base_name)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The dvc row: `dvc repro` with nothing to do against `dvc status`, on a finished tiny pipeline."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import Row, best_of
from tools.scratch_repo import TINY_PARAMS, Repo, kaggle_images, make_repo


def finished_repo(folder: Path, raw_images: Path, raw_count: int) -> Repo:
    """The project with `raw_count` images per class in data/raw, reproduced as the tests' tiny pipeline,
    and committed."""
    repo = make_repo(folder, TINY_PARAMS, kaggle_images(raw_images, raw_count))
    repo.repro()
    repo.commit("finished pipeline")
    return repo


def bench_dvc(repo: Repo, rounds: int) -> Row:
    seconds = best_of(rounds, {"status": lambda: repo.dvc("status"), "repro": lambda: repo.dvc("repro")})
    return Row(
        "dvc repro, nothing to do",
        f"{seconds['repro']:.2f} s",
        f"{seconds['status']:.2f} s (dvc status)",
        seconds["status"] / seconds["repro"],
        None,
        f"best of {rounds}, on the finished tiny pipeline",
    )

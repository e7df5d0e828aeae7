"""A scratch copy of this project as a fresh git + DVC repository: what the end-to-end tests
and the benchmark's dvc row run `dvc repro` in.

    repo = make_repo(folder, {("data", "image_size"): 48}, fill_raw=put_images_in)
    repo.repro()            # the names of the stages that ran
    repo.commit("a run")
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "scratch repo",
    "GIT_AUTHOR_EMAIL": "scratch@example.invalid",
    "GIT_COMMITTER_NAME": "scratch repo",
    "GIT_COMMITTER_EMAIL": "scratch@example.invalid",
}


# Small enough for CI on 2 cores, real enough to run every stage: 12/6/6 images
# per class at 48x48, VGG16 with random weights, a couple of epochs each.
TRAINING_STAGES = ("train_classifier", "train_frozen", "fine_tune", "train_scratch", "train_scratch_augmented")
TINY_PARAMS = {
    ("data", "image_size"): 48,
    ("data", "split", "train"): [0, 12],
    ("data", "split", "validation"): [12, 18],
    ("data", "split", "test"): [18, 24],
    ("base", "weights"): None,
    ("extract_features", "batch_size"): 8,
    **{(stage, "epochs"): 1 if stage.startswith("train_scratch") else 2 for stage in TRAINING_STAGES},
    **{(stage, "batch_size"): 8 for stage in TRAINING_STAGES},
    ("explain", "filter_steps"): 2,
}


def kaggle_images(source: Path, per_class: int) -> Callable[[Path], None]:
    """A `fill_raw` for make_repo: copies cat.N.jpg and dog.N.jpg, N < per_class, from `source`."""

    def fill_raw(raw: Path) -> None:
        for label in ("cat", "dog"):
            for index in range(per_class):
                shutil.copy2(source / f"{label}.{index}.jpg", raw)

    return fill_raw


def project_files() -> list[str]:
    """What a clone would hold: tracked files plus new files git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [name for name in listed if (ROOT / name).is_file()]


def set_params(repo: Path, changes: dict) -> None:
    """Change params.yaml in `repo`: {("section", "key"): value}, keys as deep as needed."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for keys, value in changes.items():
        section = params
        for key in keys[:-1]:
            section = section[key]
        section[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


class Repo:
    """A temporary copy of the project with its own git history and DVC cache."""

    def __init__(self, path: Path):
        self.path = path
        self.env = {**os.environ, **GIT_IDENTITY, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"  # dvc.yaml runs `python`

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(command, cwd=self.path, env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def repro(self, *args: str) -> list[str]:
        """Run `dvc repro`; return the names of the stages that actually ran."""
        return stages_run(self.dvc("repro", *args).stdout)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    def reset(self) -> None:
        """Back to the last commit: git files, and the DVC outputs its dvc.lock names."""
        self.run("git", "reset", "-q", "--hard")
        self.dvc("checkout", "--force")

    def lock(self) -> dict:
        return yaml.safe_load((self.path / "dvc.lock").read_text())


def stages_run(dvc_output: str) -> list[str]:
    """The stages DVC ran (not those it skipped or restored from its run cache), in order."""
    return re.findall(r"Running stage '([^']+)'", dvc_output)


def out_hashes(lock: dict) -> dict[str, str]:
    """{out path: md5} for every stage output in a dvc.lock."""
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def make_repo(path: Path, params: dict, fill_raw: Callable[[Path], None]) -> Repo:
    """The project copied to `path` with its own git and DVC; `fill_raw(data/raw)` puts the images in,
    `params` ({("section", "key"): value}) changes params.yaml. One commit: the copy with data/raw.dvc."""
    for name in project_files():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    raw = path / "data/raw"
    raw.mkdir(parents=True)
    fill_raw(raw)
    set_params(path, params)
    repo = Repo(path)
    repo.run("git", "init", "-q", "-b", "main")
    repo.dvc("add", "data/raw")  # as the README says: the raw images are DVC's, data/raw.dvc is git's
    repo.commit("project copy")
    return repo

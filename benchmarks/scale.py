"""Scale rows: the real prepare, extract_features and one epoch of train_classifier, each run as a
process on 10,000 and on 100,000 generated small images (time per image and peak memory at both);
then what `dvc push` and `dvc pull` move to and from a local remote after 1% more images."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sys
import time
from pathlib import Path

from benchmarks import ROOT
from benchmarks.harness import Row
from benchmarks.images import CLASSES, write_manifest
from benchmarks.memory import mib, peak_memory
from tools.scratch_repo import Repo, set_params

SIZE = 32  # pixels per side: CIFAR's
DISTINCT = 500  # distinct generated images per class; the set links to them in turn
SHARD_MB = 4  # small shards, so that 100,000 small images make many of them, as a large set does at 1 GB
STAGES = ("prepare", "extract_features", "train_classifier")


def lay_out(source: Path, split: str, first: int, count: int) -> None:
    """data/split/<split>/<label>/<label>.NNNNNN.jpg, indices first .. first + count - 1, as links to `source`:
    zero-padded, so that later indices come after the earlier ones, as new photos' names usually do."""
    for label in CLASSES:
        folder = Path("data/split") / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(first, first + count):
            (folder / f"{label}.{index:06d}.jpg").symlink_to(source / f"{label}.{index % DISTINCT}.jpg")


def generated(folder: Path) -> Path:
    from classifier.commands.demo import write_images

    return write_images(folder, DISTINCT, SIZE).resolve()


def small_base(path: Path) -> None:
    """A small convolutional base: what is measured is the stages' streaming, not the base."""
    import keras

    pixels = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(keras.layers.Rescaling(1 / 255)(pixels))
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu", name="last_conv")(x)
    keras.Model(pixels, x).save(path)


def project(work: Path, source: Path, per_class: int) -> None:
    """`per_class` training images of each class (and 2% each for validation and test), params, a base."""
    held_out = max(per_class // 50, 10)
    with contextlib.chdir(work):
        lay_out(source, "train", 0, per_class)
        lay_out(source, "validation", 0, held_out)
        lay_out(source, "test", held_out, held_out)
        write_manifest(work)
    (work / "bases").mkdir()
    small_base(work / "bases/small_base.keras")
    shutil.copy2(ROOT / "params.yaml", work)
    set_params(
        work,
        {
            ("data", "image_size"): SIZE,
            ("data", "shard_mb"): SHARD_MB,
            ("base", "name"): "bases/small_base.keras",
            ("base", "weights"): None,
            ("base", "fine_tune_from"): "last_conv",
            ("extract_features", "batch_size"): 256,
            ("train_classifier", "epochs"): 1,
            ("train_classifier", "batch_size"): 256,
            ("training", "resume"): False,
        },
    )


def measure_stages(work: Path) -> dict[str, tuple[float, int]]:
    """{stage: (seconds, peak resident bytes)}, each stage run as `dvc repro` would run it."""
    measured = {}
    for stage in ("prepare", "load_base", "extract_features", "train_classifier"):
        started = time.perf_counter()
        peak, _ = peak_memory([sys.executable, "-m", f"stages.{stage}"], work)
        measured[stage] = (time.perf_counter() - started, peak)
    return measured


def scale_rows(folder: Path, sizes: tuple[int, int]) -> list[Row]:
    """Time per image and peak memory of each stage at the two sizes (images per class x 2)."""
    source = generated(folder / "generated")
    results, rows = {}, []
    for per_class in sizes:
        work = folder / f"set_{per_class}"
        work.mkdir(parents=True)
        project(work, source, per_class)
        results[per_class] = measure_stages(work)
    small, large = sizes
    for stage in STAGES:
        (small_s, small_peak), (large_s, large_peak) = results[small][stage], results[large][stage]
        per_image = [seconds / (2 * count) * 1e6 for seconds, count in ((small_s, small), (large_s, large))]
        marginal = (large_s - small_s) / (2 * (large - small)) * 1e6
        rows.append(
            Row(
                f"scale: {stage}, time per image",
                f"{per_image[1]:,.0f} us at {2 * large:,} images ({large_s:,.1f} s)",
                f"{per_image[0]:,.0f} us at {2 * small:,} ({small_s:,.1f} s)",
                per_image[0] / per_image[1],
                0.8,
                f"{marginal:,.0f} us per added image",
            )
        )
        rows.append(
            Row(
                f"scale: {stage}, peak memory",
                f"{mib(large_peak)} at {2 * large:,} images",
                f"{mib(small_peak)} at {2 * small:,}",
                small_peak / large_peak,
                0.8,
            )
        )
    rows += dvc_transfer_rows(folder, folder / f"set_{large}", source, large)
    return rows


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def contents(folder: Path) -> dict[str, tuple[str, int]]:
    """{path in folder: (sha256, size)}: what a content-addressed store such as DVC's keeps of it."""
    return {
        str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def dvc_transfer_rows(folder: Path, work: Path, source: Path, per_class: int) -> list[Row]:
    """data/prepared tracked by DVC and pushed to a local remote; then 1% more training images, prepared
    again: the bytes `dvc push` sends, and that `dvc pull` brings to a clone that had the first version."""
    remote, clone = folder / "remote", folder / "clone"
    repo = Repo(work)
    repo.env["PYTHONPATH"] = str(ROOT)  # the stages run from this checkout
    repo.run("git", "init", "-q")
    repo.dvc("init", "-q", "--force")  # the stages made .dvc/tmp already
    repo.dvc("remote", "add", "-d", "local", str(remote))
    repo.dvc("add", "data/prepared")
    repo.run("git", "add", "data/prepared.dvc", "data/.gitignore", ".dvc/config")
    repo.run("git", "commit", "-q", "-m", "prepared")
    repo.dvc("push")
    first, before = folder_bytes(remote), contents(work / "data/prepared")
    repo.run("git", "clone", "-q", str(work), str(clone))
    other = Repo(clone)
    other.dvc("pull")
    cached = folder_bytes(clone / ".dvc/cache")

    added = per_class // 100  # 1% more, after the others in each class's order
    with contextlib.chdir(work):
        lay_out(source, "train", per_class, added)
        write_manifest(work)
    repo.run(sys.executable, "-m", "stages.prepare")
    repo.dvc("add", "data/prepared")
    repo.run("git", "commit", "-q", "-am", "1% more images")
    repo.dvc("push")
    pushed = folder_bytes(remote) - first
    other.run("git", "pull", "-q")
    other.dvc("pull")
    pulled = folder_bytes(clone / ".dvc/cache") - cached

    after, known = contents(work / "data/prepared"), {digest for digest, _ in before.values()}
    new = {path: size for path, (digest, size) in after.items() if digest not in known}
    shards = [path for path in after if path.endswith(".npy") and "/images-" in path]
    new_shards = [path for path in new if path in shards]
    tables = [path for path in new if path.endswith(".csv") and "/images-" in path]
    others = [f"{path} ({mib(size)})" for path, size in new.items() if path not in new_shards and path not in tables]
    note = (
        f"generated {SIZE}x{SIZE} images; +{2 * added:,} training images on {2 * per_class:,}: data/prepared "
        f"{mib(first)}, {len(shards)} shards of at most {SHARD_MB} MB; new: {len(new_shards)} shards "
        f"({mib(sum(new[path] for path in new_shards))}), their {len(tables)} tables, {', '.join(others)}"
    )
    return [
        Row("scale: dvc push, 1% more images", f"{mib(pushed)} sent", f"{mib(first)}, all", first / pushed, 20, note),
        Row("scale: dvc pull, 1% more images", f"{mib(pulled)} fetched", f"{mib(first)}, all", first / pulled, 20),
    ]

"""How close each stage runs to what this machine can do, as ratios (`make bench`).

    python -m benchmarks.run            # the full run (about 11 minutes on 2 cores)
    python -m benchmarks.run --quick    # smaller sets: a smoke test of the benchmark itself

Every row compares the stage's own code path with a reference on the same images, in
the same process and on the same cores, and prints ours / reference as a speed ratio
(higher is better) beside its target:

- prepare: decode + resize on all cores vs a plain single-process PIL loop;
- extract_features: the stage's batches from a memory map vs `predict` on the same
  images already in memory as one float32 array (the limit);
- train_frozen (a): the stage's input pipeline + augmentation + train step vs the train
  step alone on tensors in memory, no augmentation (the limit);
- train_frozen (b): the same vs `keras.utils.image_dataset_from_directory`, which decodes
  the JPEGs again every epoch, with the same augmentation layers;
- dvc: `dvc status` vs `dvc repro` with nothing to do, on a finished pipeline;
- memory: peak resident memory of the real `prepare` and `extract_features` stages on a
  small and on a large generated set (25,000 images, Kaggle's whole training set).

Images: the real Kaggle images in ../shared when present, generated ones otherwise.
Base: the EfficientNet-Lite0 in ../shared/models when present, else MobileNetV2 with
random weights (the same amount of work as with ImageNet's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_IMAGES = SHARED / "datasets/dogs-vs-cats/train"
SHARED_BASE = SHARED / "models/efficientnet_lite0_notop.keras"
CLASSES = ("cat", "dog")


@dataclass
class Row:
    name: str
    ours: str
    reference: str
    ratio: float
    target: float | None  # None: measured for information, the issue sets no target
    note: str = ""

    @property
    def met(self) -> bool:
        return self.target is None or self.ratio >= self.target

    @property
    def verdict(self) -> str:
        return "-" if self.target is None else "met" if self.met else "NOT MET"


class Rows(list):
    """The table so far; each row is printed as soon as it is measured."""

    def append(self, row: Row) -> None:
        super().append(row)
        print(f"bench: {row.name}: {row.ratio:.2f}x ({row.verdict}): ours {row.ours}, reference {row.reference}",
              flush=True)

    def __iadd__(self, rows):
        for row in rows:
            self.append(row)
        return self


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} img/s"


# --- images --------------------------------------------------------------------------------


def source_images(folder: Path, per_class: int) -> tuple[Path, str, int]:
    """(folder with cat.N.jpg / dog.N.jpg, what they are, how many per class): the shared
    images, or `per_class` generated ones."""
    if (SHARED_IMAGES / f"dog.{per_class - 1}.jpg").is_file():
        available = sum(1 for _ in SHARED_IMAGES.glob("dog.*.jpg"))
        return SHARED_IMAGES, f"real Kaggle images ({SHARED_IMAGES.relative_to(ROOT.parent)})", available
    from tools.make_demo_data import draw

    folder.mkdir(parents=True, exist_ok=True)
    for label in CLASSES:
        for index in range(per_class):
            draw(label, index, 200, seed=0).save(folder / f"{label}.{index}.jpg", quality=90)
    return folder, "generated images (tools/make_demo_data.py, 200x200)", per_class


def lay_out_split(images: Path, split: str, per_class: int, start: int = 0, cycle: int | None = None) -> list[dict]:
    """data/split/<split>/<label>/ in the working directory, as links to `images`; the split's manifest rows.

    With `cycle`, index N links to image N % cycle: a large set from few distinct files.
    """
    rows = []
    for label in CLASSES:
        folder = Path("data/split") / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(start, start + per_class):
            name = f"{label}.{index}.jpg"
            source = images / f"{label}.{index % cycle if cycle else index}.jpg"
            (folder / name).symlink_to(source.resolve())
            rows.append({"split": split, "label": label, "class": label, "path": f"{split}/{label}/{name}", "source": name})
    return rows


# --- rows ----------------------------------------------------------------------------------


def best_of(rounds: int, contenders: dict) -> dict[str, float]:
    """Each contender's fastest time in seconds, the contenders taking turns so that
    this machine's slower and faster moments (a shared VM: +-15%) fall on all of them."""
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def bench_prepare(split: str, rows: list[dict], size: int, rounds: int) -> Row:
    from stages.common.images import decode_image
    from stages.prepare import prepare_split

    paths = [Path("data/split") / row["path"] for row in rows]
    Path("data/prepared").mkdir(parents=True, exist_ok=True)

    def plain_loop():
        for path in paths:
            decode_image(path.read_bytes(), size)

    def stage():
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:  # as the stage does, start-up included
            prepare_split(split, rows, size, list(CLASSES), pool)

    seconds = best_of(rounds, {"plain": plain_loop, "stage": stage})
    return Row(
        "prepare", rate(len(rows), seconds["stage"]), f"{rate(len(rows), seconds['plain'])} (PIL loop, 1 process)",
        seconds["plain"] / seconds["stage"], 1.7, f"{len(rows)} images -> {size}x{size}, {os.cpu_count()} cores",
    )


def load_base():
    import keras

    if SHARED_BASE.is_file():
        return keras.models.load_model(SHARED_BASE, compile=False), "none", "EfficientNet-Lite0 (ImageNet)"
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(None, None, 3))
    return base, "mobilenet_v2", "MobileNetV2 (random weights)"


def bench_extract(images, base, mode: str, batch_size: int, out: Path, rounds: int) -> Row:
    import numpy as np

    from stages.common.models import feature_extractor
    from stages.extract_features import extract

    extractor = feature_extractor(base, images.shape[1], mode)
    in_memory = np.asarray(images, dtype=np.float32)
    extractor.predict(in_memory[:batch_size], batch_size=batch_size, verbose=0)  # trace both paths once
    extractor.predict_on_batch(in_memory[:batch_size])
    seconds = best_of(rounds, {
        "limit": lambda: extractor.predict(in_memory, batch_size=batch_size, verbose=0),
        "stage": lambda: extract(extractor, images, batch_size, out),
    })
    return Row(
        "extract_features", rate(len(images), seconds["stage"]),
        f"{rate(len(images), seconds['limit'])} (predict, float32 in memory)", seconds["limit"] / seconds["stage"], 0.9,
        f"{len(images)} images, batch {batch_size}",
    )


def bench_train_frozen(images, labels, base, mode: str, batch_size: int, seed: int, rounds: int) -> list[Row]:
    import keras
    import numpy as np
    import tensorflow as tf

    from stages.common.models import augmentation, compile_model, dense_classifier, freeze, with_augmentation, with_classifier
    from stages.common.params import load_params
    from stages.common.training import array_batches

    params = load_params(ROOT / "params.yaml")
    size = images.shape[1]
    freeze(base)
    features_shape = base.compute_output_shape((None, size, size, 3))[1:]

    def model(augment: bool) -> keras.Model:
        head = dense_classifier(features_shape, params.head, len(CLASSES))
        built = with_classifier(base, head, size, mode)
        if augment:  # as stage train_frozen trains it
            built = with_augmentation(built, augmentation(params.augmentation, seed))
        compile_model(built, 2e-5)
        return built

    tensors = tf.constant(np.asarray(images, np.float32)), tf.constant(labels.astype(np.float32))
    from_directory = keras.utils.image_dataset_from_directory(
        "data/split/train", labels="inferred", label_mode="binary", class_names=list(CLASSES),
        image_size=(size, size), batch_size=batch_size, shuffle=True, seed=seed, verbose=False,
    )
    runs = {  # (model, one epoch of its data)
        "stage": (model(True), array_batches(images, labels, batch_size, seed=seed)),
        "limit": (model(False), tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size)),
        "usual": (model(True), from_directory.prefetch(tf.data.AUTOTUNE)),
    }
    for trained, data in runs.values():  # the first epoch traces the train step
        trained.fit(data, epochs=1, verbose=0)
    seconds = best_of(rounds, {
        name: (lambda trained=trained, data=data: trained.fit(data, epochs=1, verbose=0))
        for name, (trained, data) in runs.items()
    })
    n = len(labels)
    note = f"{n} images, batch {batch_size}, best epoch of {rounds} after a warm-up one"
    return [
        Row("train_frozen (a)", rate(n, seconds["stage"]),
            f"{rate(n, seconds['limit'])} (train step on in-memory tensors, no augmentation)",
            seconds["limit"] / seconds["stage"], 0.75, note),
        Row("train_frozen (b)", rate(n, seconds["stage"]),
            f"{rate(n, seconds['usual'])} (image_dataset_from_directory + same augmentation)",
            seconds["usual"] / seconds["stage"], 1.0, "JPEGs decoded every epoch"),
    ]


def bench_dvc(repo: Path, rounds: int) -> Row:
    def dvc(command: str):
        return lambda: subprocess.run([sys.executable, "-m", "dvc", command], cwd=repo, check=True, capture_output=True)

    seconds = best_of(rounds, {"status": dvc("status"), "repro": dvc("repro")})
    return Row(
        "dvc repro, nothing to do", f"{seconds['repro']:.2f} s", f"{seconds['status']:.2f} s (dvc status)",
        seconds["status"] / seconds["repro"], None, f"best of {rounds}, on the finished tiny pipeline",
    )


# --- a finished tiny pipeline for the dvc row -------------------------------------------------


def tiny_repo(folder: Path, raw_images: Path, raw_count: int) -> Path:
    """The project with `raw_count` images per class in data/raw, reproduced on a few of them."""
    import yaml

    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for name in listed:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    raw = folder / "data/raw"
    raw.mkdir(parents=True)
    for label in CLASSES:
        for index in range(raw_count):
            shutil.copy2(raw_images / f"{label}.{index}.jpg", raw)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["data"].update(image_size=48, split={"train": [0, 12], "validation": [12, 18], "test": [18, 24]})
    params["base"]["weights"] = None
    for stage in ("train_classifier", "train_frozen", "fine_tune", "train_scratch", "train_scratch_augmented"):
        params[stage].update(epochs=1, batch_size=8)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    environment = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
                   "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # dvc.yaml runs `python`
    commit = (["git", "add", "-A"], ["git", "commit", "-qm", "bench"])
    for command in (["git", "init", "-q", "-b", "main"], [sys.executable, "-m", "dvc", "add", "-q", "data/raw"], *commit,
                    [sys.executable, "-m", "dvc", "repro", "-q"], *commit):
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=environment)
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed in {folder}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return folder


# --- memory ------------------------------------------------------------------------------------


def peak_memory(command: list[str], cwd: Path) -> tuple[int, int]:
    """Run `command`; (peak resident bytes, peak anonymous bytes) of its process tree, sampled every 20 ms."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty command cannot fill it and stall
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors,
                                   env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
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
    import yaml

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
        cwd = os.getcwd()
        os.chdir(work)
        try:
            held_out = max(per_class // 50, 10)  # validation and test: 2% each, as a user might set
            lay_out_split(images, "train", per_class - 2 * held_out, cycle=distinct)
            lay_out_split(images, "validation", held_out, start=per_class - 2 * held_out, cycle=distinct)
            lay_out_split(images, "test", held_out, start=per_class - held_out, cycle=distinct)
            write_manifest(work)
            params = yaml.safe_load((ROOT / "params.yaml").read_text())
            params["data"].update(image_size=size)
            (work / "bases").mkdir()
            shutil.copy2(base_file, work / "bases")
            params["base"].update(name=f"bases/{base_file.name}", weights=None, fine_tune_from="last_conv")
            (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            for stage in ("prepare", "load_base", "extract_features"):
                measured[(per_class, stage)] = peak_memory([sys.executable, "-m", f"stages.{stage}"], work)
            data_bytes = sum(path.stat().st_size for path in (work / "data/prepared").glob("*_images.npy"))
            measured[(per_class, "data")] = data_bytes
        finally:
            os.chdir(cwd)
    small, large = per_class_sizes
    rows = []
    for stage in ("prepare", "extract_features"):
        (small_rss, small_anon), (large_rss, large_anon) = measured[(small, stage)], measured[(large, stage)]
        rows.append(Row(
            f"memory: {stage}", f"{mib(large_rss)} peak RSS at {2 * large:,} images",
            f"{mib(small_rss)} at {2 * small:,} images", small_rss / large_rss, 0.5,
            f"anonymous {mib(small_anon)} -> {mib(large_anon)}; prepared arrays {mib(measured[(small, 'data')])} -> "
            f"{mib(measured[(large, 'data')])}",
        ))
    return rows


def write_manifest(work: Path) -> None:
    import csv

    rows = []
    for path in sorted((work / "data/split").rglob("*.jpg")):
        split, label, name = path.relative_to(work / "data/split").parts
        rows.append({"split": split, "label": label, "class": label, "path": f"{split}/{label}/{name}",
                     "source": name, "sha256": ""})
    with open(work / "data/split/manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["split", "label", "class", "path", "source", "sha256"])
        writer.writeheader()
        writer.writerows(rows)
    (work / "data/classes.json").write_text(json.dumps(list(CLASSES)))


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


# --- main ----------------------------------------------------------------------------------------


def print_table(rows: list[Row], source: str, base_name: str) -> None:
    print(f"\nBenchmark on {os.cpu_count()} cores; {source}; base: {base_name}\n")
    print("| measure | ours | reference | ratio | target | |")
    print("|---|---|---|---:|---:|---|")
    for row in rows:
        target = "-" if row.target is None else f">= {row.target}x"
        print(f"| {row.name} | {row.ours} | {row.reference} | {row.ratio:.2f}x | {target} | {row.verdict} |")
    print()
    for row in rows:
        if row.note:
            print(f"- {row.name}: {row.note}")


PARTS = ("throughput", "dvc", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sets: checks the benchmark runs, not the numbers")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    parser.add_argument("--size", type=int, default=150, help="image size (default 150, the book's)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    parts = args.only or PARTS
    per_class = 50 if args.quick else 500  # prepare, extract_features, train_frozen: 1,000 images
    large = 500 if args.quick else 12_500  # per class, for the memory rows: 25,000 images
    rounds = 1 if args.quick else 5

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    rows, base_name = Rows(), "-"
    try:
        images, source, distinct = source_images(work / "generated", max(per_class, 24))
        if "throughput" in parts:
            throughput = work / "throughput"
            throughput.mkdir()
            os.chdir(throughput)
            from stages.prepare import prepare_split

            # prepare on the book's whole split (4,000 images); the other rows on 1,000 of them.
            book_split = lay_out_split(images, "test", 4 * per_class, cycle=distinct)
            rows.append(bench_prepare("test", book_split, args.size, rounds))
            with ProcessPoolExecutor() as pool:
                prepare_split("train", lay_out_split(images, "train", per_class), args.size, list(CLASSES), pool)

            from stages.common.images import load_prepared
            from stages.common.models import set_seed

            set_seed(0)  # as every stage: seeded, TensorFlow op determinism on
            base, mode, base_name = load_base()
            prepared, labels = load_prepared("train")
            rows.append(bench_extract(prepared, base, mode, 32, throughput / "features.npy", rounds))
            rows += bench_train_frozen(prepared, labels, base, mode, 20, seed=0, rounds=rounds)
            os.chdir(cwd)
        if "dvc" in parts:
            rows.append(bench_dvc(tiny_repo(work / "dvc_repo", images, 24 if args.quick else per_class), rounds))
        if "memory" in parts:
            rows += memory_rows(work / "memory", images, distinct, [50 if args.quick else 500, large], args.size)
        print_table(rows, source, base_name)
    finally:
        os.chdir(cwd)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

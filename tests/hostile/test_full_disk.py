"""A full disk, or a file-size limit (`ulimit -f`), while a stage writes: one line naming the stage, what it
was writing, the space needed and the space free (or the limit), never a traceback; and the earlier run's
outputs stay whole (folders are written beside and swapped in once complete, as split writes data/split; a
model file appears under its name only once complete).

The file-size limit is real (RLIMIT_FSIZE: the write fails with EFBIG); the full disk is a real ENOSPC from
the allocation of a file's blocks (os.posix_fallocate, which a stage does before writing through a memory map:
on a full disk a write through the map would kill the process with SIGBUS instead).

 1. prepare under a file-size limit, run as DVC runs it (`python -m stages.prepare`),
    where an earlier run left data/prepared and metrics/prepare.json       -> one line, exit 1; both as they were,
                                                                              no new folder left (it was: new
                                                                              shards and *.csv.unfinished in one
                                                                              split, the old size in another)
 2. prepare on a full disk                                                  -> one line: data/prepared, MB needed,
                                                                              MB free; data/prepared as it was
 3. Ctrl-C while prepare writes                                             -> `prepare: interrupted`; data/prepared
                                                                              as it was
 4. load_base under a file-size limit (it was a traceback)                  -> one line: models/base.keras, MB
                                                                              needed, the limit; the earlier
                                                                              base whole
 5. extract_features on a full disk                                         -> one line; data/features as it was
 6. a training stage whose model outgrows a file-size limit                 -> one line naming the model file; the
                                                                              earlier model whole
"""

from __future__ import annotations

import csv
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

from classifier.core.outputs import megabytes
from classifier.core.startup import interrupted_line, run
from stages import extract_features, load_base, prepare, train_classifier
from tests.support.features import extract, features_workspace
from tests.support.files import file_size_limit, full_disk, jpeg, snapshot
from tests.support.params import write_params
from tests.support.paths import ROOT
from tests.support.stages import refused, stage_error

SPLIT_IMAGES = {"train": 8, "validation": 4, "test": 4}  # per split, half cats, half dogs


def split_workspace(work: Path, size: int) -> None:
    """data/split (tiny JPEGs, its manifest), data/classes.json and params.yaml at data.image_size `size`: what
    prepare reads, as split leaves it."""
    rows = []
    for split, count in SPLIT_IMAGES.items():
        for index in range(count):
            label = ("cat", "dog")[index % 2]
            path = f"{split}/{label}/{index}.jpg"
            (work / "data/split" / path).parent.mkdir(parents=True, exist_ok=True)
            (work / "data/split" / path).write_bytes(jpeg(seed=len(rows), size=(20, 16)))
            rows.append([split, label, label, path, f"{label}/{index}.jpg", ""])
    with open(work / "data/split/manifest.csv", "w", newline="") as manifest:
        csv.writer(manifest).writerows([["split", "label", "class", "path", "source", "sha256"], *rows])
    (work / "data/classes.json").write_text(json.dumps(["cat", "dog"]))
    write_params(work, {"data.image_size": size})


def prepared_before(work: Path) -> dict:
    """An earlier run of prepare at 16 pixels, then params.yaml at 64: what a new run must leave as it is."""
    split_workspace(work, 16)
    prepare.main()
    write_params(work, {"data.image_size": 64})  # 12 KiB an image: a shard outgrows the limits below
    return snapshot(work / "data/prepared") | {"metrics": (work / "metrics/prepare.json").read_bytes()}


def prepared_now(work: Path) -> dict:
    return snapshot(work / "data/prepared") | {"metrics": (work / "metrics/prepare.json").read_bytes()}


NEEDED = megabytes(sum(SPLIT_IMAGES.values()) * (64 * 64 * 3 + 4))


# --- 1-3: prepare ------------------------------------------------------------------------------------------------


def test_prepare_under_a_file_size_limit_leaves_the_earlier_arrays_whole(work):
    before = prepared_before(work)
    limit = 32 * 1024
    process = subprocess.run(
        [sys.executable, "-m", "stages.prepare"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (process.returncode, process.stdout) == (1, "")
    assert process.stderr == (
        f"prepare: error: the file-size limit of this process stops it writing data/prepared: {NEEDED} needed, "
        f"at most {limit:,} bytes a file (`ulimit -f` 32); raise the limit (`ulimit -f unlimited`) and run it "
        f"again (data/prepared is unchanged)\n"
    )
    assert prepared_now(work) == before
    assert sorted(path.name for path in (work / "data").iterdir()) == ["classes.json", "prepared", "split"]


def test_prepare_on_a_full_disk_leaves_the_earlier_arrays_whole(work, monkeypatch):
    before = prepared_before(work)
    full_disk(monkeypatch)
    assert stage_error(prepare.main, "stages/prepare.py") == (
        f"no space left on the device writing data/prepared: {NEEDED} needed, 3.0 MB free; free some space and run "
        f"it again (data/prepared is unchanged)"
    )
    assert prepared_now(work) == before
    assert sorted(path.name for path in (work / "data").iterdir()) == ["classes.json", "prepared", "split"]


def test_ctrl_c_while_prepare_writes_leaves_the_earlier_arrays_whole(work, monkeypatch, capsys):
    before = prepared_before(work)
    full_disk(monkeypatch, error=KeyboardInterrupt())
    assert run(prepare.main, "prepare", interrupted_line("prepare")) == 130
    assert capsys.readouterr().err.startswith("prepare: interrupted; ")
    assert prepared_now(work) == before
    assert sorted(path.name for path in (work / "data").iterdir()) == ["classes.json", "prepared", "split"]


# --- 4: load_base ------------------------------------------------------------------------------------------------


def test_load_base_under_a_file_size_limit_keeps_the_earlier_base(work):
    write_params(work, {"base.weights": None})  # VGG16, 14.7 million random weights: nothing downloaded
    Path("models").mkdir()
    Path("models/base.keras").write_bytes(b"an earlier run's base")
    before = snapshot(work)
    with file_size_limit(1024 * 1024):
        message = stage_error(load_base.main, "stages/load_base.py")
    assert message == (
        "the file-size limit of this process stops it writing models/base.keras: 56.1 MB needed, at most 1.0 MB "
        "a file (`ulimit -f` 1024); raise the limit (`ulimit -f unlimited`) and run it again (models/base.keras "
        "is unchanged)"
    )
    assert snapshot(work) == before


# --- 5-6: extract_features, a training stage ---------------------------------------------------------------------


def test_extract_features_on_a_full_disk_leaves_the_earlier_features_whole(work, monkeypatch):
    features_workspace(work)
    extract(work)
    full_disk(monkeypatch, free=0)
    message = refused(extract_features.main, "stages/extract_features.py", work)
    assert message.startswith("no space left on the device writing data/features: ")
    assert message.endswith(" needed, 0 bytes free; free some space and run it again (data/features is unchanged)")


def test_a_model_outgrowing_a_file_size_limit_keeps_the_earlier_model(work):
    features_workspace(work)
    extract(work)
    changes = {"data.image_size": 32, "base.weights": None, "train_classifier.epochs": 1}
    write_params(work, changes | {"train_classifier.batch_size": 8, "training.resume": False})
    Path("models/feature_extraction.keras").write_bytes(b"an earlier run's model")
    with file_size_limit(256 * 1024):  # room for DVC's state database, which dvclive opens; not for the model
        message = stage_error(train_classifier.main, "stages/train_classifier.py")
    assert message.startswith("the file-size limit of this process stops it writing models/feature_extraction.keras: ")
    assert message.endswith("(models/feature_extraction.keras is unchanged)")
    assert Path("models/feature_extraction.keras").read_bytes() == b"an earlier run's model"
    assert sorted(path.name for path in Path("models").iterdir()) == ["base.keras", "feature_extraction.keras"]
    assert np.load("data/features/train_features.npy").shape[0] == 10

"""Stage `split`: choosing per-class index ranges and copying them under data/split/ with a manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image

from stages import split
from stages.common.cli import run_stage
from stages.common.layout import SPLIT_DIR, SPLIT_MANIFEST
from stages.common.params import ParamsError
from stages.common.raw_images import RawDataError, RawImage, RawImages

REPO = Path(__file__).resolve().parents[1]
RANGES = {"train": (0, 3), "validation": (3, 5), "test": (5, 6)}


def jpeg(label: str, index: int) -> bytes:
    """A distinct tiny JPEG per image, so copies can be told apart by their bytes."""
    buffer = io.BytesIO()
    color = (index * 20 % 256, 40 if label == "cat" else 200, 90)
    Image.new("RGB", (8, 8), color).save(buffer, "JPEG")
    return buffer.getvalue()


def make_raw(folder: Path, indices, labels=("cat", "dog")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for label in labels:
        for index in indices:
            (folder / f"{label}.{index}.jpg").write_bytes(jpeg(label, index))
    return folder


def fake_images(counts: dict[str, int]) -> dict[tuple[str, int], RawImage]:
    return {
        (label, i): RawImage(label, i, f"raw/{label}.{i}.jpg", lambda label=label, i=i: jpeg(label, i))
        for label, n in counts.items()
        for i in range(n)
    }


def read_manifest(path: Path = SPLIT_MANIFEST) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def write_params(folder: Path, raw_dir: Path, ranges=RANGES) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["raw_dir"] = str(raw_dir)
    params["data"]["split"] = {name: list(bounds) for name, bounds in ranges.items()}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# --- select ------------------------------------------------------------------------------------------


def test_select_takes_exactly_each_range_per_class():
    images = fake_images({"cat": 10, "dog": 10})
    selected = split.select(images, RANGES, "raw")

    chosen = {}
    for name, image in selected:
        chosen.setdefault(name, {}).setdefault(image.label, []).append(image.index)
    assert chosen == {
        "train": {"cat": [0, 1, 2], "dog": [0, 1, 2]},
        "validation": {"cat": [3, 4], "dog": [3, 4]},
        "test": {"cat": [5], "dog": [5]},
    }
    assert len(selected) == 12
    keys = [(image.label, image.index) for _, image in selected]
    assert len(set(keys)) == len(keys)  # no image in two splits
    assert all(image is images[(image.label, image.index)] for _, image in selected)


def test_select_order_is_split_then_label_then_index():
    selected = split.select(fake_images({"cat": 6, "dog": 6}), RANGES, "raw")
    assert [(name, image.name) for name, image in selected][:7] == [
        ("train", "cat.0.jpg"), ("train", "cat.1.jpg"), ("train", "cat.2.jpg"),
        ("train", "dog.0.jpg"), ("train", "dog.1.jpg"), ("train", "dog.2.jpg"),
        ("validation", "cat.3.jpg"),
    ]  # fmt: skip


def test_select_with_ranges_that_skip_indices():
    ranges = {"train": (10, 12), "validation": (0, 1), "test": (20, 21)}
    selected = split.select(fake_images({"cat": 30, "dog": 30}), ranges, "raw")
    assert sorted((name, image.label, image.index) for name, image in selected) == sorted(
        [("train", l, i) for l in ("cat", "dog") for i in (10, 11)]
        + [("validation", l, 0) for l in ("cat", "dog")]
        + [("test", l, 20) for l in ("cat", "dog")]
    )


def test_missing_images_are_listed_with_what_is_there():
    images = fake_images({"cat": 4, "dog": 6})  # cats 0-3, dogs 0-5; ranges need 0-5
    with pytest.raises(RawDataError) as info:
        split.select(images, RANGES, "data/raw")
    message = str(info.value)
    assert "2 images that data.split asks for are not in data/raw" in message
    assert "cat.4.jpg (data.split.validation)" in message
    assert "cat.5.jpg (data.split.test)" in message
    assert "dog." not in message.split("It has")[0]  # every dog is there
    assert "4 cats (highest index 3)" in message
    assert "6 dogs (highest index 5)" in message
    assert "Narrow data.split in params.yaml" in message
    assert "kaggle competitions download" in message


def test_too_few_images_for_the_test_range():
    ranges = {"train": (0, 3), "validation": (3, 5), "test": (5, 8)}
    with pytest.raises(RawDataError) as info:
        split.select(fake_images({"cat": 6, "dog": 6}), ranges, "raw")
    message = str(info.value)
    assert "4 images" in message
    for name in ("cat.6.jpg", "cat.7.jpg", "dog.6.jpg", "dog.7.jpg"):
        assert f"{name} (data.split.test)" in message
    assert "6 cats (highest index 5)" in message


def test_many_missing_images_are_summarised():
    with pytest.raises(RawDataError) as info:
        split.select(fake_images({"cat": 1, "dog": 1}), RANGES, "raw")
    message = str(info.value)
    assert "10 images" in message
    assert "and 5 more" in message
    assert message.count("(data.split.") == 5


def test_no_images_of_a_class():
    with pytest.raises(RawDataError) as info:
        split.select(fake_images({"cat": 10}), RANGES, "raw")
    assert "no dogs" in str(info.value)
    assert "None" not in str(info.value)
    assert "dog.0.jpg (data.split.train)" in str(info.value)


# --- write_split ----------------------------------------------------------------------------------------


def test_write_split_copies_bytes_and_writes_the_manifest(tmp_path, workdir):
    raw_dir = make_raw(tmp_path / "raw", range(6))
    with RawImages(raw_dir) as raw:
        counts = split.write_split(split.select(raw.images, RANGES, str(raw_dir)))

    assert counts == {
        "train": {"cat": 3, "dog": 3},
        "validation": {"cat": 2, "dog": 2},
        "test": {"cat": 1, "dog": 1},
    }
    with open(SPLIT_MANIFEST, newline="") as file:
        header = next(csv.reader(file))
    assert header == ["split", "label", "index", "path", "sha256"]
    rows = read_manifest()
    assert len(rows) == 12
    for row in rows:
        name = f"{row['label']}.{row['index']}.jpg"
        assert row["path"] == f"{row['split']}/{row['label']}/{name}"
        copied = (workdir / "data" / "split" / row["path"]).read_bytes()
        source = (raw_dir / name).read_bytes()
        assert copied == source
        assert row["sha256"] == hashlib.sha256(source).hexdigest()
    assert {(r["split"], r["label"], int(r["index"])) for r in rows} == {
        (name, label, i) for name, (a, b) in RANGES.items() for label in ("cat", "dog") for i in range(a, b)
    }
    files = {str(p.relative_to(workdir / "data" / "split")) for p in (workdir / "data" / "split").rglob("*.jpg")}
    assert files == {row["path"] for row in rows}


def test_write_split_from_a_zip(tmp_path, workdir):
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    members = {f"train/{label}.{i}.jpg": jpeg(label, i) for label in ("cat", "dog") for i in range(6)}
    with zipfile.ZipFile(raw_dir / "train.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with RawImages(raw_dir) as raw:
        split.write_split(split.select(raw.images, RANGES, str(raw_dir)))
    for row in read_manifest():
        data = (SPLIT_DIR / row["path"]).read_bytes()
        assert data == members[f"train/{row['label']}.{row['index']}.jpg"]
        assert row["sha256"] == hashlib.sha256(data).hexdigest()


def test_extra_raw_images_change_nothing(tmp_path, workdir):
    raw_dir = make_raw(tmp_path / "raw", range(6))

    def run() -> tuple[bytes, dict[str, bytes]]:
        with RawImages(raw_dir) as raw:
            split.write_split(split.select(raw.images, RANGES, str(raw_dir)))
        files = {str(p.relative_to(SPLIT_DIR)): p.read_bytes() for p in SPLIT_DIR.rglob("*") if p.is_file()}
        return SPLIT_MANIFEST.read_bytes(), files

    first = run()
    make_raw(raw_dir / "more", range(6, 40))  # beyond every range, in a subfolder
    with zipfile.ZipFile(raw_dir / "extra.zip", "w") as archive:
        archive.writestr("train/cat.100.jpg", jpeg("cat", 100))
    second = run()
    assert second == first


def test_write_split_removes_stale_outputs(tmp_path, workdir):
    stale = workdir / "data" / "split" / "train" / "cat" / "cat.999.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    raw_dir = make_raw(tmp_path / "raw", range(6))
    with RawImages(raw_dir) as raw:
        split.write_split(split.select(raw.images, RANGES, str(raw_dir)))
    assert not stale.exists()
    assert (workdir / "data" / "split" / "train" / "cat" / "cat.0.jpg").exists()


# --- main ----------------------------------------------------------------------------------------------------


def test_main_end_to_end(tmp_path, workdir):
    raw_dir = make_raw(tmp_path / "raw", range(8))
    write_params(workdir, raw_dir)

    split.main()

    counts = json.loads((workdir / "metrics" / "split.json").read_text())
    assert counts == {
        "train": {"cat": 3, "dog": 3},
        "validation": {"cat": 2, "dog": 2},
        "test": {"cat": 1, "dog": 1},
    }
    rows = read_manifest(workdir / "data" / "split" / "manifest.csv")
    assert len(rows) == 12
    assert not any(row["index"] in ("6", "7") for row in rows)
    for row in rows:
        assert (workdir / "data" / "split" / row["path"]).read_bytes() == (
            raw_dir / f"{row['label']}.{row['index']}.jpg"
        ).read_bytes()


def test_main_with_a_relative_raw_dir(tmp_path, workdir):
    make_raw(workdir / "data" / "raw", range(6))
    write_params(workdir, Path("data/raw"))
    split.main()
    assert len(read_manifest()) == 12


def test_main_with_too_few_images(tmp_path, workdir):
    raw_dir = make_raw(tmp_path / "raw", range(4))
    write_params(workdir, raw_dir)
    with pytest.raises(RawDataError) as info:
        split.main()
    assert f"not in {raw_dir}" in str(info.value)
    assert not (workdir / "metrics" / "split.json").exists()


def test_main_reports_a_stage_error_in_one_line(tmp_path, workdir):
    write_params(workdir, tmp_path / "absent")
    with pytest.raises(SystemExit) as info:
        run_stage(split.main, "stages/split.py")
    message = str(info.value.code)
    assert message.startswith("split: error: data.raw_dir ")
    assert "is not a folder" in message


def test_main_without_params_yaml(workdir):
    with pytest.raises(ParamsError, match="params.yaml not found"):
        split.main()

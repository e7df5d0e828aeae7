"""benchmarks/images.py: a large split laid out from a few distinct images, as stage split would write it."""

from __future__ import annotations

import json

from benchmarks.images import lay_out_split, write_manifest


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

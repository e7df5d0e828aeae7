"""data.raw_dir as one tree of loose files and zip members (classifier.intake.raw.tree): zips read in place,
a nested zip copied out to the temporary folder and removed, hidden files left out, damaged zips refused."""

from __future__ import annotations

import os
import zipfile
from pathlib import PurePosixPath
from types import SimpleNamespace

from classifier.intake.raw import tree as raw_tree
from classifier.intake.raw.collection import KAGGLE
from classifier.intake.raw.layouts import raw_collection
from classifier.intake.raw.tree import RawTree
from tests.support.files import jpeg, snapshot, write_files, zip_bytes
from tests.support.intake import by_source, kaggle_keys, raises_raw_data_error


def test_tree_puts_zip_members_under_the_zips_folder(raw):
    write_files(raw, {"a/b.txt": b"loose", "a/inner.zip": zip_bytes({"c/d.txt": b"member", "e/": b""})})
    with RawTree(raw) as tree:
        files = {file.path.as_posix(): file for file in tree.files}
        assert sorted(files) == ["a/b.txt", "a/c/d.txt"]
        assert files["a/c/d.txt"].source == "a/inner.zip:c/d.txt"
        assert files["a/c/d.txt"].read() == b"member"
        assert files["a/b.txt"].source == "a/b.txt"
        assert tree.folders == {PurePosixPath(p) for p in ("a", "a/c", "a/e")}


def test_tree_leaves_out_hidden_files_and_macos_folders(raw):
    write_files(raw, {
        "x/.DS_Store": b"", ".git/config": b"", "x/keep.txt": b"",
        "z.zip": zip_bytes({"__MACOSX/x/._keep.txt": b"", "y/.hidden/a.txt": b"", "y/b.txt": b""}),
    })  # fmt: skip
    with RawTree(raw) as tree:
        assert [file.path.as_posix() for file in tree.files] == ["x/keep.txt", "y/b.txt"]
        assert tree.hidden == [".git/", "z.zip:__MACOSX/", "z.zip:y/.hidden/", "x/.DS_Store"]  # for split's log


def test_a_nested_zip_with_no_room_to_copy_it_out(raw, monkeypatch):
    (raw / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": zip_bytes({"train/cat.0.jpg": jpeg()})}))
    monkeypatch.setattr(raw_tree.shutil, "disk_usage", lambda path: SimpleNamespace(free=10))
    message = raises_raw_data_error(raw)
    assert f"{raw / 'dogs-vs-cats.zip'}:train.zip is " in message
    assert "has 10 bytes free; set TMPDIR to a folder with room" in message


def test_train_zip_is_read_without_extracting(raw):
    members = {
        "train/": b"",
        **{f"train/{label}.{i}.jpg": jpeg(color=(i * 40, 0, 0)) for label in ("cat", "dog") for i in range(3)},
    }
    (raw / "train.zip").write_bytes(zip_bytes(members))
    before = snapshot(raw)

    with raw_collection(raw, "label") as collection:
        assert collection.layout == KAGGLE
        assert kaggle_keys(collection) == {(label, i) for label in ("cat", "dog") for i in range(3)}
        image = by_source(collection)["train.zip:train/cat.2.jpg"]
        assert image.read() == members["train/cat.2.jpg"]
        assert by_source(collection)["train.zip:train/dog.0.jpg"].read() == members["train/dog.0.jpg"]
        assert snapshot(raw) == before
    assert snapshot(raw) == before


def test_competition_archive_with_nested_train_zip(work, raw):
    scratch = work.parent / "scratch"  # the temporary folder, where the nested train.zip is copied

    train = {f"train/{label}.{i}.jpg": jpeg(color=(0, i * 50, 0)) for label in ("cat", "dog") for i in range(2)}
    test1 = {"test1/1.jpg": jpeg(), "test1/2.jpg": jpeg()}
    outer = {
        "train.zip": zip_bytes(train),
        "test1.zip": zip_bytes(test1),
        "sampleSubmission.csv": b"id,label\n1,0\n",
    }
    (raw / "dogs-vs-cats.zip").write_bytes(zip_bytes(outer, compression=zipfile.ZIP_STORED))
    before = snapshot(raw)

    with raw_collection(raw, "label") as collection:
        assert collection.layout == KAGGLE
        assert kaggle_keys(collection) == {("cat", 0), ("cat", 1), ("dog", 0), ("dog", 1)}
        image = by_source(collection)["dogs-vs-cats.zip:train.zip:train/dog.1.jpg"]
        assert image.read() == train["train/dog.1.jpg"]
        assert sorted(collection.ignored) == [
            "dogs-vs-cats.zip:sampleSubmission.csv", "dogs-vs-cats.zip:test1.zip:test1/1.jpg",
            "dogs-vs-cats.zip:test1.zip:test1/2.jpg",
        ]  # fmt: skip
        assert snapshot(raw) == before
        assert all(path.name.startswith("member-") for path in scratch.rglob("*") if path.is_file())
    assert snapshot(raw) == before
    assert list(scratch.iterdir()) == []  # the scratch copies are cleaned up on exit


def test_the_same_image_in_a_folder_and_a_zip(raw):
    (raw / "train").mkdir()
    (raw / "train" / "cat.0.jpg").write_bytes(jpeg())
    (raw / "train.zip").write_bytes(zip_bytes({"train/cat.0.jpg": jpeg(), "train/cat.1.jpg": jpeg()}))

    message = raises_raw_data_error(raw)
    assert "cat.0.jpg is in data.raw_dir twice" in message
    assert str(raw / "train" / "cat.0.jpg") in message
    assert f"{raw / 'train.zip'}:train/cat.0.jpg" in message
    assert "keep one copy" in message


def test_corrupt_zip(raw):
    (raw / "train.zip").write_bytes(os.urandom(2048))
    message = raises_raw_data_error(raw)
    assert f"{raw / 'train.zip'} is not a readable zip file" in message
    assert "download it again" in message


def test_corrupt_nested_train_zip(raw):
    (raw / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": b"not a zip at all" * 10}))
    message = raises_raw_data_error(raw)
    assert f"{raw / 'dogs-vs-cats.zip'}:train.zip is not a readable zip file" in message

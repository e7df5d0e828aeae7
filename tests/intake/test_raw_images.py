"""data.raw_dir as one tree of loose files and zip members, and Kaggle's cat.N.jpg / dog.N.jpg in it.

The other layouts are in test_layouts.py; the helpers here serve both.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest
from conftest import write_files
from PIL import Image

from classifier.core.cli import StageError
from classifier.intake import raw_tree
from classifier.intake.collection import KAGGLE, SPLIT_FOLDERS
from classifier.intake.layouts import raw_collection
from classifier.intake.raw_files import RawDataError
from classifier.intake.raw_tree import RawTree

DOWNLOAD_HINT = "kaggle competitions download -c dogs-vs-cats"


def jpeg(color=(200, 30, 30), size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def png(seed: int) -> bytes:
    """A distinct tiny PNG per seed, so that images can be told apart by their bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (seed % 256, seed // 256 % 256, 7)).save(buffer, "PNG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip whose member names are stored exactly as given (no normalisation)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            archive.writestr(info, data)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as check:
        assert check.namelist() == list(members)  # the names really are what the test means
    return buffer.getvalue()


def snapshot(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in root.rglob("*")}


def keys(collection) -> set[tuple[str, int]]:
    return {(image.class_name, image.index) for image in collection.images}


def by_source(collection) -> dict:
    return {image.source: image for image in collection.images}


def raises_raw_data_error(raw_dir: Path, label_column: str = "label") -> str:
    with pytest.raises(RawDataError) as info:
        with raw_collection(raw_dir, label_column):
            pass
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    return folder


def test_raw_data_error_is_a_stage_error():
    assert issubclass(RawDataError, StageError)


# --- the tree -----------------------------------------------------------------------------------------


def test_tree_puts_zip_members_under_the_zips_folder(raw_dir):
    write_files(raw_dir, {"a/b.txt": b"loose", "a/inner.zip": zip_bytes({"c/d.txt": b"member", "e/": b""})})
    with RawTree(raw_dir) as tree:
        files = {file.path.as_posix(): file for file in tree.files}
        assert sorted(files) == ["a/b.txt", "a/c/d.txt"]
        assert files["a/c/d.txt"].source == "a/inner.zip:c/d.txt"
        assert files["a/c/d.txt"].read() == b"member"
        assert files["a/b.txt"].source == "a/b.txt"
        assert tree.folders == {PurePosixPath(p) for p in ("a", "a/c", "a/e")}


def test_tree_leaves_out_hidden_files_and_macos_folders(raw_dir):
    write_files(raw_dir, {
        "x/.DS_Store": b"", ".git/config": b"", "x/keep.txt": b"",
        "z.zip": zip_bytes({"__MACOSX/x/._keep.txt": b"", "y/.hidden/a.txt": b"", "y/b.txt": b""}),
    })  # fmt: skip
    with RawTree(raw_dir) as tree:
        assert [file.path.as_posix() for file in tree.files] == ["x/keep.txt", "y/b.txt"]
        assert tree.hidden == [".git/", "z.zip:__MACOSX/", "z.zip:y/.hidden/", "x/.DS_Store"]  # for split's log


def test_a_zip_three_levels_deep_is_refused(raw_dir):
    inner = zip_bytes({"deep.zip": zip_bytes({"cat.1.jpg": jpeg()})})
    (raw_dir / "outer.zip").write_bytes(zip_bytes({"inner.zip": inner}))
    with pytest.raises(RawDataError, match="outer.zip:inner.zip:deep.zip is a zip inside a zip inside a zip"):
        with RawTree(raw_dir):
            pass


def test_a_labels_table_may_compress_past_the_bomb_ratio(raw_dir):
    """Sorted labels compress ~1000:1; a table is bounded by MAX_TABLE_BYTES instead."""
    table = b"label\n" + b"cat\n" * 400_000 + b"dog\n" * 400_000  # 3 MiB
    (raw_dir / "a.zip").write_bytes(zip_bytes({"labels.csv": table}))
    with RawTree(raw_dir) as tree:
        assert tree.files[0].read() == table


def test_reading_stops_at_the_files_limit(raw_dir):
    (raw_dir / "cat.1.jpg").write_bytes(jpeg())
    with RawTree(raw_dir) as tree:
        grown = replace(tree.files[0], limit=10)  # as if it had grown past its cap since the tree was built
        with pytest.raises(RawDataError, match=r"cat.1.jpg gives more than the 256.0 MiB an image may be"):
            grown.read()


def test_a_nested_zip_with_no_room_to_copy_it_out(raw_dir, monkeypatch):
    (raw_dir / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": zip_bytes({"train/cat.0.jpg": jpeg()})}))
    monkeypatch.setattr(raw_tree.shutil, "disk_usage", lambda path: SimpleNamespace(free=10))
    message = raises_raw_data_error(raw_dir)
    assert f"{raw_dir / 'dogs-vs-cats.zip'}:train.zip is " in message
    assert "has 10 bytes free; set TMPDIR to a folder with room" in message


# --- Kaggle's naming: loose files -------------------------------------------------------------------------


def test_loose_files_at_top_level_and_in_subfolders(raw_dir):
    cat0, dog7, cat12 = jpeg((10, 0, 0)), jpeg((0, 0, 10)), jpeg((30, 0, 0))
    write_files(raw_dir, {"cat.0.jpg": cat0, "train/dog.7.jpg": dog7, "train/deeper/cat.12.jpg": cat12})
    ignored = ("1.jpg", "cat.x.jpg", "notes.txt", "cat.3.png", "Cat.4.jpg", "bird.5.jpg", "cat.6.jpg.bak")
    write_files(raw_dir, {name: jpeg() for name in ignored})

    with raw_collection(raw_dir, "label") as collection:
        assert collection.layout == KAGGLE
        assert keys(collection) == {("cat", 0), ("dog", 7), ("cat", 12)}
        assert sorted(collection.ignored) == sorted(ignored)
        image = by_source(collection)["train/dog.7.jpg"]
        assert (image.class_name, image.index, image.name, image.name_in_group) == ("dog", 7, "dog.7.jpg", "dog.7.jpg")
        assert image.split is None and collection.given_splits == set()
        assert image.read() == image.content() == dog7
        assert by_source(collection)["cat.0.jpg"].read() == cat0
        assert by_source(collection)["train/deeper/cat.12.jpg"].read() == cat12


def test_indices_are_integers(raw_dir):
    (raw_dir / "cat.1234.jpg").write_bytes(jpeg())
    (raw_dir / "dog.007.jpg").write_bytes(jpeg())
    with raw_collection(raw_dir, "label") as collection:
        assert keys(collection) == {("cat", 1234), ("dog", 7)}
        assert by_source(collection)["dog.007.jpg"].name == "dog.7.jpg"


def test_images_are_in_class_then_index_order(raw_dir):
    write_files(raw_dir, {f"{label}.{i}.jpg": jpeg() for label in ("dog", "cat") for i in (10, 2, 1)})
    with raw_collection(raw_dir, "label") as collection:
        assert [image.name for image in collection.images] == [
            "cat.1.jpg", "cat.2.jpg", "cat.10.jpg", "dog.1.jpg", "dog.2.jpg", "dog.10.jpg",
        ]  # fmt: skip


@pytest.mark.parametrize("folder", ["cat", "cats"])
def test_kaggle_names_sorted_into_class_folders_are_a_folder_layout(raw_dir, folder):
    """The book's own copies (cats_and_dogs_small/train/cats/cat.0.jpg): the folders say the class."""
    dogs = folder.replace("cat", "dog")
    for split in ("train", "validation", "test"):
        write_files(raw_dir, {f"{split}/{folder}/cat.{i}.jpg": jpeg() for i in range(2)})
        write_files(raw_dir, {f"{split}/{dogs}/dog.{i}.jpg": jpeg() for i in range(2)})
    with raw_collection(raw_dir, "label") as collection:
        assert collection.layout == SPLIT_FOLDERS
        assert {image.class_name for image in collection.images} == {folder, dogs}


def test_one_kaggle_name_outside_its_class_folder_means_kaggle(raw_dir):
    write_files(raw_dir, {"cat/cat.0.jpg": jpeg(), "dog/dog.0.jpg": jpeg(), "dog/cat.1.jpg": jpeg()})
    with raw_collection(raw_dir, "label") as collection:
        assert collection.layout == KAGGLE
        assert keys(collection) == {("cat", 0), ("dog", 0), ("cat", 1)}


# --- Kaggle's zips --------------------------------------------------------------------------------------


def test_train_zip_is_read_without_extracting(raw_dir):
    members = {
        "train/": b"",
        **{f"train/{label}.{i}.jpg": jpeg((i * 40, 0, 0)) for label in ("cat", "dog") for i in range(3)},
    }
    (raw_dir / "train.zip").write_bytes(zip_bytes(members))
    before = snapshot(raw_dir)

    with raw_collection(raw_dir, "label") as collection:
        assert collection.layout == KAGGLE
        assert keys(collection) == {(label, i) for label in ("cat", "dog") for i in range(3)}
        image = by_source(collection)["train.zip:train/cat.2.jpg"]
        assert image.read() == members["train/cat.2.jpg"]
        assert by_source(collection)["train.zip:train/dog.0.jpg"].read() == members["train/dog.0.jpg"]
        assert snapshot(raw_dir) == before
    assert snapshot(raw_dir) == before


def test_competition_archive_with_nested_train_zip(raw_dir, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the nested train.zip is copied

    train = {f"train/{label}.{i}.jpg": jpeg((0, i * 50, 0)) for label in ("cat", "dog") for i in range(2)}
    test1 = {"test1/1.jpg": jpeg(), "test1/2.jpg": jpeg()}
    outer = {
        "train.zip": zip_bytes(train),
        "test1.zip": zip_bytes(test1),
        "sampleSubmission.csv": b"id,label\n1,0\n",
    }
    (raw_dir / "dogs-vs-cats.zip").write_bytes(zip_bytes(outer, compression=zipfile.ZIP_STORED))
    before = snapshot(raw_dir)

    with raw_collection(raw_dir, "label") as collection:
        assert collection.layout == KAGGLE
        assert keys(collection) == {("cat", 0), ("cat", 1), ("dog", 0), ("dog", 1)}
        image = by_source(collection)["dogs-vs-cats.zip:train.zip:train/dog.1.jpg"]
        assert image.read() == train["train/dog.1.jpg"]
        assert sorted(collection.ignored) == [
            "dogs-vs-cats.zip:sampleSubmission.csv", "dogs-vs-cats.zip:test1.zip:test1/1.jpg",
            "dogs-vs-cats.zip:test1.zip:test1/2.jpg",
        ]  # fmt: skip
        assert snapshot(raw_dir) == before
        assert all(path.name.startswith("member-") for path in scratch.rglob("*") if path.is_file())
    assert snapshot(raw_dir) == before
    assert list(scratch.iterdir()) == []  # the scratch copies are cleaned up on exit


def test_loose_test1_zip_is_ignored(raw_dir):
    (raw_dir / "test1.zip").write_bytes(zip_bytes({"test1/1.jpg": jpeg()}))
    (raw_dir / "dog.3.jpg").write_bytes(jpeg())
    with raw_collection(raw_dir, "label") as collection:
        assert keys(collection) == {("dog", 3)}
        assert collection.ignored == ["test1.zip:test1/1.jpg"]


def test_the_same_image_in_a_folder_and_a_zip(raw_dir):
    (raw_dir / "train").mkdir()
    (raw_dir / "train" / "cat.0.jpg").write_bytes(jpeg())
    (raw_dir / "train.zip").write_bytes(zip_bytes({"train/cat.0.jpg": jpeg(), "train/cat.1.jpg": jpeg()}))

    message = raises_raw_data_error(raw_dir)
    assert "cat.0.jpg is in data.raw_dir twice" in message
    assert str(raw_dir / "train" / "cat.0.jpg") in message
    assert f"{raw_dir / 'train.zip'}:train/cat.0.jpg" in message
    assert "keep one copy" in message


def test_the_same_image_in_two_folders(raw_dir):
    for folder in ("a", "b"):
        (raw_dir / folder).mkdir()
        (raw_dir / folder / "dog.5.jpg").write_bytes(jpeg())
    message = raises_raw_data_error(raw_dir)
    assert str(raw_dir / "a" / "dog.5.jpg") in message
    assert str(raw_dir / "b" / "dog.5.jpg") in message


@pytest.mark.parametrize(
    "member",
    ["../cat.1.jpg", "/abs/cat.1.jpg", "train/../../dog.2.jpg", "C:/x/cat.3.jpg", "..\\cat.4.jpg", "\\cat.5.jpg"],
)
def test_unsafe_zip_members_are_refused(tmp_path, member):
    raw_dir = tmp_path / "outer" / "raw"
    raw_dir.mkdir(parents=True)
    (raw_dir / "train.zip").write_bytes(zip_bytes({"train/cat.0.jpg": jpeg(), member: jpeg()}))
    before = snapshot(tmp_path)

    message = raises_raw_data_error(raw_dir)
    assert "unsafe" in message
    assert repr(member) in message
    assert str(raw_dir / "train.zip") in message
    assert snapshot(tmp_path) == before  # nothing written anywhere under tmp_path
    for name in ("cat.1.jpg", "dog.2.jpg", "cat.3.jpg", "cat.4.jpg", "cat.5.jpg"):
        assert not (tmp_path.parent / name).exists()


def test_unsafe_member_inside_the_nested_train_zip(raw_dir):
    inner = zip_bytes({"train/cat.0.jpg": jpeg(), "../../dog.9.jpg": jpeg()})
    (raw_dir / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": inner}))
    message = raises_raw_data_error(raw_dir)
    assert "unsafe" in message
    assert "dogs-vs-cats.zip:train.zip" in message


def test_safe_names_with_dots_are_accepted(raw_dir):
    (raw_dir / "train.zip").write_bytes(zip_bytes({"./train/cat.0.jpg": jpeg(), "train..old/dog.1.jpg": jpeg()}))
    with raw_collection(raw_dir, "label") as collection:
        assert keys(collection) == {("cat", 0), ("dog", 1)}


def test_corrupt_zip(raw_dir):
    (raw_dir / "train.zip").write_bytes(os.urandom(2048))
    message = raises_raw_data_error(raw_dir)
    assert f"{raw_dir / 'train.zip'} is not a readable zip file" in message
    assert "download it again" in message


def test_corrupt_nested_train_zip(raw_dir):
    (raw_dir / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": b"not a zip at all" * 10}))
    message = raises_raw_data_error(raw_dir)
    assert f"{raw_dir / 'dogs-vs-cats.zip'}:train.zip is not a readable zip file" in message


def test_corrupt_member_fails_when_read(raw_dir):
    archive = bytearray(zip_bytes({"train/cat.0.jpg": jpeg()}, compression=zipfile.ZIP_STORED))
    start = archive.index(b"\xff\xd8")  # the JPEG's first bytes: damage them, the CRC no longer matches
    archive[start : start + 4] = b"XXXX"
    (raw_dir / "train.zip").write_bytes(bytes(archive))
    with raw_collection(raw_dir, "label") as collection:
        with pytest.raises(
            RawDataError, match=r"train.zip:train/cat.0.jpg: cannot read it .*download the archive again"
        ):
            collection.images[0].read()


# --- no data -----------------------------------------------------------------------------------------------


def test_missing_raw_dir(tmp_path):
    missing = tmp_path / "data" / "raw"
    message = raises_raw_data_error(missing)
    assert f"data.raw_dir {str(missing)!r} is not a folder" in message
    assert DOWNLOAD_HINT in message
    assert "a folder per class" in message


def test_raw_dir_that_is_a_file(tmp_path):
    path = tmp_path / "raw"
    path.write_text("oops")
    assert "is not a folder" in raises_raw_data_error(path)


def test_empty_raw_dir(raw_dir):
    message = raises_raw_data_error(raw_dir)
    assert "holds no images and no .npy arrays" in message
    assert DOWNLOAD_HINT in message


def test_raw_dir_with_only_unrelated_files(raw_dir):
    (raw_dir / "notes.txt").write_text("todo")
    (raw_dir / "1.jpg").write_bytes(jpeg())
    message = raises_raw_data_error(raw_dir)
    assert "images are in no folder" in message
    assert "found 1 images (1 directly in it: 1.jpg), 0 .npy arrays, 1 other files" in message
    assert DOWNLOAD_HINT in message

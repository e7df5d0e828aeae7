"""Finding cat.N.jpg / dog.N.jpg in data.raw_dir: loose files, train.zip, dogs-vs-cats.zip."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from stages.common.cli import StageError
from stages.common.raw_images import RawDataError, RawImages

DOWNLOAD_HINT = "kaggle competitions download -c dogs-vs-cats"


def jpeg(color=(200, 30, 30), size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
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


def keys(raw: RawImages) -> set[tuple[str, int]]:
    return set(raw.images)


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    return folder


def test_raw_data_error_is_a_stage_error():
    assert issubclass(RawDataError, StageError)


# --- loose files ------------------------------------------------------------------------------------


def test_loose_files_at_top_level_and_in_subfolders(raw_dir):
    cat0, dog7, cat12 = jpeg((10, 0, 0)), jpeg((0, 0, 10)), jpeg((30, 0, 0))
    (raw_dir / "cat.0.jpg").write_bytes(cat0)
    (raw_dir / "train" / "deeper").mkdir(parents=True)
    (raw_dir / "train" / "dog.7.jpg").write_bytes(dog7)
    (raw_dir / "train" / "deeper" / "cat.12.jpg").write_bytes(cat12)
    for ignored in ("1.jpg", "cat.x.jpg", "notes.txt", "cat.3.png", "Cat.4.jpg", "bird.5.jpg", "cat.6.jpg.bak"):
        (raw_dir / ignored).write_bytes(jpeg())

    with RawImages(raw_dir) as raw:
        assert keys(raw) == {("cat", 0), ("dog", 7), ("cat", 12)}
        image = raw.images[("dog", 7)]
        assert (image.label, image.index, image.name) == ("dog", 7, "dog.7.jpg")
        assert image.source == str(raw_dir / "train" / "dog.7.jpg")
        assert image.read() == dog7
        assert raw.images[("cat", 0)].read() == cat0
        assert raw.images[("cat", 12)].read() == cat12


def test_indices_are_integers(raw_dir):
    (raw_dir / "cat.1234.jpg").write_bytes(jpeg())
    with RawImages(raw_dir) as raw:
        assert keys(raw) == {("cat", 1234)}


# --- Kaggle's zips --------------------------------------------------------------------------------------


def test_train_zip_is_read_without_extracting(raw_dir):
    members = {"train/": b"", **{f"train/{label}.{i}.jpg": jpeg((i * 40, 0, 0)) for label in ("cat", "dog") for i in range(3)}}
    (raw_dir / "train.zip").write_bytes(zip_bytes(members))
    before = snapshot(raw_dir)

    with RawImages(raw_dir) as raw:
        assert keys(raw) == {(label, i) for label in ("cat", "dog") for i in range(3)}
        image = raw.images[("cat", 2)]
        assert image.source == f"{raw_dir / 'train.zip'}:train/cat.2.jpg"
        assert image.read() == members["train/cat.2.jpg"]
        assert raw.images[("dog", 0)].read() == members["train/dog.0.jpg"]
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

    with RawImages(raw_dir) as raw:
        assert keys(raw) == {("cat", 0), ("cat", 1), ("dog", 0), ("dog", 1)}
        image = raw.images[("dog", 1)]
        assert image.source == f"{raw_dir / 'dogs-vs-cats.zip'}:train.zip:train/dog.1.jpg"
        assert image.read() == train["train/dog.1.jpg"]
        assert snapshot(raw_dir) == before
    assert snapshot(raw_dir) == before
    assert list(scratch.iterdir()) == []  # the scratch copy is cleaned up on exit


def test_loose_test1_zip_is_ignored(raw_dir):
    (raw_dir / "test1.zip").write_bytes(zip_bytes({"test1/1.jpg": jpeg()}))
    (raw_dir / "dog.3.jpg").write_bytes(jpeg())
    with RawImages(raw_dir) as raw:
        assert keys(raw) == {("dog", 3)}


def test_the_same_image_in_a_folder_and_a_zip(raw_dir):
    (raw_dir / "train").mkdir()
    (raw_dir / "train" / "cat.0.jpg").write_bytes(jpeg())
    (raw_dir / "train.zip").write_bytes(zip_bytes({"train/cat.0.jpg": jpeg(), "train/cat.1.jpg": jpeg()}))

    with pytest.raises(RawDataError) as info:
        with RawImages(raw_dir):
            pass
    message = str(info.value)
    assert "cat.0.jpg is in data.raw_dir twice" in message
    assert str(raw_dir / "train" / "cat.0.jpg") in message
    assert f"{raw_dir / 'train.zip'}:train/cat.0.jpg" in message
    assert "keep one copy" in message


def test_the_same_image_in_two_folders(raw_dir):
    for folder in ("a", "b"):
        (raw_dir / folder).mkdir()
        (raw_dir / folder / "dog.5.jpg").write_bytes(jpeg())
    with pytest.raises(RawDataError) as info:
        with RawImages(raw_dir):
            pass
    assert str(raw_dir / "a" / "dog.5.jpg") in str(info.value)
    assert str(raw_dir / "b" / "dog.5.jpg") in str(info.value)


@pytest.mark.parametrize(
    "member",
    ["../cat.1.jpg", "/abs/cat.1.jpg", "train/../../dog.2.jpg", "C:/x/cat.3.jpg", "..\\cat.4.jpg", "\\cat.5.jpg"],
)
def test_unsafe_zip_members_are_refused(tmp_path, member):
    raw_dir = tmp_path / "outer" / "raw"
    raw_dir.mkdir(parents=True)
    (raw_dir / "train.zip").write_bytes(zip_bytes({"train/cat.0.jpg": jpeg(), member: jpeg()}))
    before = snapshot(tmp_path)

    with pytest.raises(RawDataError) as info:
        with RawImages(raw_dir):
            pass
    message = str(info.value)
    assert "unsafe" in message
    assert repr(member) in message
    assert str(raw_dir / "train.zip") in message
    assert snapshot(tmp_path) == before  # nothing written anywhere under tmp_path
    for name in ("cat.1.jpg", "dog.2.jpg", "cat.3.jpg", "cat.4.jpg", "cat.5.jpg"):
        assert not (tmp_path.parent / name).exists()


def test_unsafe_member_inside_the_nested_train_zip(raw_dir):
    inner = zip_bytes({"train/cat.0.jpg": jpeg(), "../../dog.9.jpg": jpeg()})
    (raw_dir / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": inner}))
    with pytest.raises(RawDataError) as info:
        with RawImages(raw_dir):
            pass
    assert "unsafe" in str(info.value)
    assert "dogs-vs-cats.zip:train.zip" in str(info.value)


def test_safe_names_with_dots_are_accepted(raw_dir):
    (raw_dir / "train.zip").write_bytes(zip_bytes({"./train/cat.0.jpg": jpeg(), "train..old/dog.1.jpg": jpeg()}))
    with RawImages(raw_dir) as raw:
        assert keys(raw) == {("cat", 0), ("dog", 1)}


def test_corrupt_zip(raw_dir):
    (raw_dir / "train.zip").write_bytes(os.urandom(2048))
    with pytest.raises(RawDataError) as info:
        with RawImages(raw_dir):
            pass
    assert f"{raw_dir / 'train.zip'} is not a readable zip file" in str(info.value)
    assert "download it again" in str(info.value)


def test_corrupt_nested_train_zip(raw_dir):
    (raw_dir / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": b"not a zip at all" * 10}))
    with pytest.raises(RawDataError) as info:
        with RawImages(raw_dir):
            pass
    assert f"{raw_dir / 'dogs-vs-cats.zip'}:train.zip is not a readable zip file" in str(info.value)


# --- no data -----------------------------------------------------------------------------------------------


def test_missing_raw_dir(tmp_path):
    missing = tmp_path / "data" / "raw"
    with pytest.raises(RawDataError) as info:
        with RawImages(missing):
            pass
    message = str(info.value)
    assert f"data.raw_dir {str(missing)!r} is not a folder" in message
    assert DOWNLOAD_HINT in message


def test_raw_dir_that_is_a_file(tmp_path):
    path = tmp_path / "raw"
    path.write_text("oops")
    with pytest.raises(RawDataError, match="is not a folder"):
        with RawImages(path):
            pass


def test_empty_raw_dir(raw_dir):
    with pytest.raises(RawDataError) as info:
        with RawImages(raw_dir):
            pass
    message = str(info.value)
    assert "holds no cat.N.jpg / dog.N.jpg images" in message
    assert DOWNLOAD_HINT in message


def test_raw_dir_with_only_unrelated_files(raw_dir):
    (raw_dir / "notes.txt").write_text("todo")
    (raw_dir / "1.jpg").write_bytes(jpeg())
    with pytest.raises(RawDataError) as info:
        with RawImages(raw_dir):
            pass
    assert DOWNLOAD_HINT in str(info.value)

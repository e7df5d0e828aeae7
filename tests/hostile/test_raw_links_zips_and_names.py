"""Hostile and careless raw data: what `split` does with each, one test per case.

Each refused case runs stages.split.main() in a temporary workspace and checks that the stage
stops with one line (`split: error: ...`, naming the file and the fix) and that nothing was
written anywhere under the test's temporary folder: no data/split, no metrics/, no copy left
in the temporary folder used for nested zips, data.raw_dir untouched. The zip bombs are built
small (a cap lowered by monkeypatch, MiBs of zeros): none needs more than ~40 MiB of memory.

Links (data.raw_dir may itself be a link; inside it only a link to a regular file inside is followed)
 1. cat.3.jpg is a link to a file outside data.raw_dir                   -> refused, naming link and target
 2. a link to a folder (outside, or looping back to data.raw_dir)        -> refused
 3. a broken link, a link to itself                                      -> refused
 4. data.raw_dir itself a link to the real folder                        -> works
 5. a link inside to a regular file inside; a link into the project's
    DVC cache (`dvc config cache.type symlink` makes every file one)     -> followed, the source is the link
 6. a zip member that is a symbolic link                                 -> the archive is refused
 7. hidden links and zip members (.secret -> outside, __MACOSX/ link)    -> ignored, as every hidden file
Zip bombs and damaged zips (refused by what the archive declares, before any member is read or copied out)
 8. a member declaring more than its cap (MAX_IMAGE_BYTES)              -> refused
 9. a nested train.zip declaring more than MAX_MEMBER_BYTES              -> refused, not copied out
10. a 20 MiB member of zeros (~1000:1): an image, a nested zip, an .npy  -> refused as a zip bomb (BOMB_RATIO)
11. 40 members of 1 MiB of zeros (none over BOMB_MIN_BYTES)              -> refused: the archive as a whole
12. a zip in a zip in a zip                                              -> refused (one level of nesting is read)
13. a lying header: a member (an image, or a nested zip) declares fewer
    bytes than it inflates to                                            -> one line (bad CRC) when it is read,
                                                                            before anything is written
14. an encrypted member; a compression method zipfile cannot read        -> refused
Loose files and names
15. a loose image over MAX_IMAGE_BYTES                                   -> refused by its size, unread
16. a FIFO in data.raw_dir                                               -> refused (reading it would block)
17. a name with a newline or bytes that are not UTF-8 (loose, in a zip)  -> refused, the name escaped
Near misses of Kaggle's naming
18. cat.3.JPG, cat.3.jpeg, Cat.1.jpg, DOG.2.JPEG alone, or in train/     -> the error names each with the reason
19. a folder named cat.4.jpg (empty; or class folders named like images) -> named: "is a folder, not a file"
20. near misses beside Kaggle-named images                               -> ignored, the log line says why
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from classifier.core.paths import SPLIT_DIR, SPLIT_MANIFEST
from classifier.intake.raw import files as raw_files
from stages import split
from tests.support.files import jpeg, read_csv, write_files, zip_bytes
from tests.support.params import split_params, write_params
from tests.support.stages import split_refused

RANGES = {"train": [0, 3], "validation": [3, 5], "test": [5, 6]}  # cat.3.jpg is a validation image
FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}
MiB = 1 << 20


# --- building raw data -------------------------------------------------------------------------------------------


def kaggle(indices=range(6), prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{label}.{i}.jpg": jpeg(i + 100 * n) for n, label in enumerate(("cat", "dog")) for i in indices}


def patch_central_directory(archive: bytes, name: str, **fields: int) -> bytes:
    """The zip with fields of `name`'s central directory entry (what zipfile trusts) rewritten."""
    offsets = {"flags": (8, "<H"), "method": (10, "<H"), "compressed": (20, "<I"), "size": (24, "<I")}
    data = bytearray(archive)
    start = data.find(b"PK\x01\x02")
    while start != -1:
        (length,) = struct.unpack_from("<H", data, start + 28)
        if data[start + 46 : start + 46 + length] == name.encode():
            for field, value in fields.items():
                offset, layout = offsets[field]
                struct.pack_into(layout, data, start + offset, value)
            return bytes(data)
        start = data.find(b"PK\x01\x02", start + 1)
    raise AssertionError(f"no member {name}")


# --- running the stage -------------------------------------------------------------------------------------------


def lower_cap(monkeypatch, name: str) -> None:
    """raw_files.<name> down to 1 MiB, so that a bomb over it is small (the code before had no such cap)."""
    monkeypatch.setattr(raw_files, name, 1 * MiB, raising=False)


def runs(work: Path, raw_dir: Path, shares=RANGES) -> dict[str, bytes]:
    """Runs the stage; {manifest source: bytes written under data/split}."""
    write_params(work, split_params(raw_dir, shares))
    split.main()
    assert list((work.parent / "scratch").iterdir()) == []
    return {row["source"]: (SPLIT_DIR / row["path"]).read_bytes() for row in read_csv(SPLIT_MANIFEST)}


# --- 1-7: links --------------------------------------------------------------------------------------------------


def test_a_link_to_a_file_outside_is_refused(work, raw, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    write_files(raw, kaggle())
    (raw / "cat.3.jpg").unlink()
    (raw / "cat.3.jpg").symlink_to(secret)
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'cat.3.jpg'} is a link to {str(secret)!r}, outside data.raw_dir")
    assert "copy the file in instead" in message


@pytest.mark.parametrize("target", ["outside", "loop"])
def test_a_link_to_a_folder_is_refused(work, raw, tmp_path, target):
    write_files(raw, kaggle())
    elsewhere = write_files(tmp_path / "elsewhere", kaggle(range(10, 12)))
    (raw / "more").symlink_to(elsewhere if target == "outside" else Path("."))
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'more'} is a link to a folder")
    assert "copy the folder itself into data.raw_dir instead" in message


@pytest.mark.parametrize("target", ["missing", "itself"])
def test_a_broken_link_is_refused(work, raw, tmp_path, target):
    write_files(raw, kaggle())
    (raw / "cat.3.jpg").unlink()
    (raw / "cat.3.jpg").symlink_to(tmp_path / "gone.jpg" if target == "missing" else raw / "cat.3.jpg")
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'cat.3.jpg'} is a broken link")
    assert "copy the file itself into data.raw_dir instead, or remove the link" in message


def test_raw_dir_itself_a_link_works(work, tmp_path):
    real = write_files(tmp_path / "real", kaggle())
    (tmp_path / "linked").symlink_to(real)
    written = runs(work, tmp_path / "linked")
    assert len(written) == 12 and written["cat.3.jpg"] == kaggle()["cat.3.jpg"]


def test_a_link_to_a_file_inside_is_followed(work, raw):
    write_files(raw, kaggle())
    (raw / "cat.3.jpg").unlink()
    write_files(raw, {"store/kitten.jpg": jpeg(77)})
    (raw / "cat.3.jpg").symlink_to(Path("store") / "kitten.jpg")
    written = runs(work, raw)
    assert written["cat.3.jpg"] == jpeg(77)  # the source is the link's place


@pytest.mark.parametrize("cache_dir", [None, "../../elsewhere/cache"])
def test_a_link_into_the_dvc_cache_is_followed(work, raw, tmp_path, cache_dir):
    """With `dvc config cache.type symlink`, `dvc add data/raw` leaves each file a link into the cache."""
    (work / ".dvc").mkdir()
    cache = work / ".dvc" / "cache"
    if cache_dir is not None:  # `dvc cache dir`, relative to .dvc/
        (work / ".dvc" / "config").write_text(f"[core]\n    autostage = true\n[cache]\n    dir = {cache_dir}\n")
        cache = tmp_path / "elsewhere" / "cache"
    blob = cache / "files" / "md5" / "3f" / "0123456789abcdef0123456789abcd"
    write_files(raw, kaggle())
    write_files(blob.parent, {blob.name: jpeg(77)})
    (raw / "cat.3.jpg").unlink()
    (raw / "cat.3.jpg").symlink_to(blob)
    assert runs(work, raw)["cat.3.jpg"] == jpeg(77)


def test_a_symbolic_link_member_refuses_the_archive(work, raw):
    link = zipfile.ZipInfo("train/cat.3.jpg")
    link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    members = {name: data for name, data in kaggle(prefix="train/").items() if name != "train/cat.3.jpg"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(link, "/etc/passwd")
    (raw / "train.zip").write_bytes(buffer.getvalue())
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'train.zip'} has a member 'train/cat.3.jpg' that is a symbolic link")


def test_hidden_links_and_folders_stay_ignored(work, raw, tmp_path):
    write_files(raw, kaggle(range(3)))
    (raw / ".secret").symlink_to(tmp_path / "raw")
    (raw / ".broken").symlink_to(tmp_path / "gone")
    link = zipfile.ZipInfo("__MACOSX/train/._cat.3.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in kaggle(range(3, 6), prefix="train/").items():
            archive.writestr(name, data)
        archive.writestr(link, "/etc/passwd")
        archive.writestr("__MACOSX/train/._cat.4.jpg", bytes(20 * MiB))  # a bomb nobody reads
    (raw / "train.zip").write_bytes(buffer.getvalue())
    assert len(runs(work, raw)) == 12


# --- 8-14: zip bombs and damaged zips ----------------------------------------------------------------------------


def test_a_member_over_its_cap(work, raw, monkeypatch):
    lower_cap(monkeypatch, "MAX_IMAGE_BYTES")
    members = {**kaggle(prefix="train/"), "train/cat.3.jpg": os.urandom(3 * MiB)}  # incompressible
    (raw / "train.zip").write_bytes(zip_bytes(members))
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'train.zip'}:train/cat.3.jpg declares 3.0 MiB, over the 1.0 MiB an image may")
    assert "(MAX_IMAGE_BYTES in classifier/intake/raw/files.py)" in message
    assert "refusing the archive as a zip bomb" in message


def test_a_nested_zip_over_its_cap_is_not_copied_out(work, raw, monkeypatch):
    lower_cap(monkeypatch, "MAX_MEMBER_BYTES")
    train = zip_bytes({**kaggle(prefix="train/"), "train/notes.bin": os.urandom(2 * MiB)})
    (raw / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": train}))
    message = split_refused(work, raw, RANGES)  # and nothing in scratch/
    assert message.startswith(f"{raw / 'dogs-vs-cats.zip'}:train.zip declares 2.0 MiB, over the 1.0 MiB a zip member")


@pytest.mark.parametrize("bomb", ["image", "nested zip", "array"])
def test_a_ratio_bomb(work, raw, bomb):
    zeros = bytes(20 * MiB)
    if bomb == "image":
        archive, member = zip_bytes({**kaggle(prefix="train/"), "train/cat.3.jpg": zeros}), "train/cat.3.jpg"
    elif bomb == "nested zip":  # a 20 MiB train.zip (stored) in a dogs-vs-cats.zip of ~20 KiB
        stored = zip_bytes({"train/cat.3.jpg": zeros}, zipfile.ZIP_STORED)
        archive, member = zip_bytes({"train.zip": stored}), "train.zip"
    else:
        archive, member = zip_bytes({"train.npy": zeros, "train.csv": b"label\n" + b"a\nb\n" * 10}), "train.npy"
    (raw / "data.zip").write_bytes(archive)
    message = split_refused(work, raw, RANGES if bomb == "image" else FRACTIONS)
    assert message.startswith(f"{raw / 'data.zip'}:{member} would inflate ")
    assert "KiB to 20.0 MiB, more than 200 times (BOMB_RATIO" in message
    assert "refusing the archive as a zip bomb" in message


def test_many_small_bombs(work, raw):
    zeros = {f"train/padding/{i}.bin": bytes(MiB) for i in range(40)}  # each at BOMB_MIN_BYTES, not over
    (raw / "train.zip").write_bytes(zip_bytes({**kaggle(prefix="train/"), **zeros}))
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'train.zip'}'s members would inflate its ")
    assert "MiB, more than 200 times" in message


def test_a_zip_in_a_zip_in_a_zip(work, raw):
    deep = zip_bytes({"deeper.zip": zip_bytes(kaggle(range(10, 12)))})
    (raw / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": zip_bytes({**kaggle(), "deep.zip": deep})}))
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'dogs-vs-cats.zip'}:train.zip:deep.zip is a zip inside a zip inside a zip")
    assert "extract train.zip into data.raw_dir" in message


@pytest.mark.parametrize("nested", [False, True])
def test_a_lying_header(work, raw, nested):
    """cat.3.jpg (validation) declares 100 bytes: zipfile stops there, the CRC fails: before train/ is written."""
    train = patch_central_directory(zip_bytes(kaggle(prefix="train/")), "train/cat.3.jpg", size=100)
    if nested:  # train.zip itself declares less than it holds: its copy out stops there, and fails its CRC
        outer = zip_bytes({"train.zip": train})
        train = patch_central_directory(outer, "train.zip", size=len(train) // 2)
        (raw / "dogs-vs-cats.zip").write_bytes(train)
    else:
        (raw / "train.zip").write_bytes(train)
    message = split_refused(work, raw, RANGES)
    name = "dogs-vs-cats.zip:train.zip" if nested else "train.zip:train/cat.3.jpg"
    assert message.startswith(f"{raw / name}: cannot read it (Bad CRC-32 for file ")
    assert "the archive is damaged or declares wrong sizes: download the archive again" in message


@pytest.mark.parametrize(("fields", "says"), [
    ({"flags": 0x1}, "train/cat.3.jpg is encrypted; unzip the archive with its password"),
    ({"method": 9}, "train/cat.3.jpg uses compression method 9, which Python's zipfile cannot read"),
])  # fmt: skip
def test_members_zipfile_cannot_read(work, raw, fields, says):
    archive = patch_central_directory(zip_bytes(kaggle(prefix="train/")), "train/cat.3.jpg", **fields)
    (raw / "train.zip").write_bytes(archive)
    assert split_refused(work, raw, RANGES).startswith(f"{raw / 'train.zip'}:{says}")


# --- 15-17: loose files and names --------------------------------------------------------------------------------


def test_a_loose_image_over_its_cap(work, raw, monkeypatch):
    lower_cap(monkeypatch, "MAX_IMAGE_BYTES")
    write_files(raw, kaggle())
    with open(raw / "cat.3.jpg", "r+b") as file:
        file.truncate(2 * MiB)  # sparse: no disk used
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'cat.3.jpg'} is 2.0 MiB, over the 1.0 MiB an image may be (MAX_IMAGE_BYTES")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused(work, raw):
    write_files(raw, kaggle())
    os.mkfifo(raw / "notes")
    assert split_refused(work, raw, RANGES).startswith(
        f"{raw / 'notes'} is neither a file nor a folder (a FIFO, socket or device)"
    )


@pytest.mark.parametrize("name", [b"cat.3\n.jpg", b"\xff.jpg", "train.zip:train/cat.3\r.jpg"])
def test_a_name_that_would_break_a_line(work, raw, name):
    write_files(raw, kaggle())
    if isinstance(name, str):  # a zip member's name is text already (UTF-8 or cp437), but may hold a control character
        (raw / "train.zip").write_bytes(zip_bytes({name.split(":")[1]: jpeg(1)}))
    else:
        with open(os.path.join(os.fsencode(raw), name), "wb") as file:
            file.write(jpeg(1))
    message = split_refused(work, raw, RANGES)
    assert message.endswith("has a control character or bytes that are not UTF-8 in its name; rename it")


# --- 18-20: near misses of Kaggle's naming -----------------------------------------------------------------------


NEAR_MISSES = {
    "cat.3.JPG": "the extension must be .jpg, lower case: rename it cat.3.jpg",
    "cat.3.jpeg": "the extension must be .jpg, lower case: rename it cat.3.jpg",
    "Cat.1.jpg": "the class must be lower case: rename it cat.1.jpg",
    "DOG.2.JPEG": "the class must be lower case and the extension must be .jpg, lower case: rename it dog.2.jpg",
}


@pytest.mark.parametrize("name", NEAR_MISSES)
def test_a_near_miss_alone_is_named_with_the_reason(work, raw, name):
    write_files(raw, {name: jpeg(1), "notes.txt": b""})
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"data.raw_dir {str(raw)!r}: its images are in no folder and not named cat.N.jpg")
    assert f"; near misses of Kaggle's naming, which do not count (1): {name} ({NEAR_MISSES[name]}); it must" in message


def test_near_misses_are_counted_with_examples(work, raw):
    write_files(raw, {f"cat.{i}.JPG": jpeg(i) for i in range(5)})
    message = split_refused(work, raw, RANGES)
    assert "near misses of Kaggle's naming, which do not count (5): cat.0.JPG (the extension must be .jpg" in message
    assert "cat.2.JPG (the extension must be .jpg, lower case: rename it cat.2.jpg) ...;" in message


def test_near_misses_in_a_train_folder(work, raw):
    write_files(raw, {f"train/{name}": jpeg(n) for n, name in enumerate(NEAR_MISSES)})
    message = split_refused(work, raw, RANGES)
    assert message.startswith(f"{raw / 'train' / 'Cat.1.jpg'} is in no class folder: put every image in train/")
    assert "nor does it count as Kaggle's naming (the class must be lower case: rename it cat.1.jpg)" in message


def test_an_empty_folder_named_like_an_image(work, raw):
    (raw / "cat.4.jpg").mkdir()
    message = split_refused(work, raw, RANGES)
    assert "it holds no images" in message
    assert "near misses of Kaggle's naming, which do not count (1): cat.4.jpg (is a folder, not a file)" in message


def test_class_folders_named_like_images(work, raw):
    write_files(raw, {f"{label}.4.jpg/photo{i}.jpg": jpeg(i) for label in ("cat", "dog") for i in range(9)})
    message = split_refused(work, raw, FRACTIONS)
    assert message.startswith(f"the class folder {raw / 'cat.4.jpg'} is named like an image file (it is a folder")


def test_near_misses_beside_kaggle_names_are_ignored_with_the_reason(work, raw, capsys):
    write_files(raw, {**kaggle(), "cat.10.JPG": jpeg(10), "Cat.11.jpg": jpeg(11), "dog.12.jpg/notes.txt": b""})
    assert len(runs(work, raw)) == 12
    line = capsys.readouterr().out.splitlines()[0]
    assert line == (
        f"split: ignored 3 files in {raw} that are not named cat.N.jpg / dog.N.jpg: Cat.11.jpg, cat.10.JPG, "
        f"dog.12.jpg/notes.txt; near misses of that naming (3), rename them to use them: Cat.11.jpg (the class "
        f"must be lower case: rename it cat.11.jpg), cat.10.JPG (the extension must be .jpg, lower case: rename it "
        f"cat.10.jpg), dog.12.jpg (is a folder, not a file)"
    )

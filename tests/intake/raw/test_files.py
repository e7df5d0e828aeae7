"""Reading one raw file, loose or a zip member (classifier.intake.raw.files): never past its cap, and a
damaged member refused when it is read."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import pytest

from classifier.core.errors import RawDataError
from classifier.intake.raw.layouts import raw_collection
from classifier.intake.raw.tree import RawTree
from tests.support.files import jpeg, zip_bytes


def test_reading_stops_at_the_files_limit(raw):
    (raw / "cat.1.jpg").write_bytes(jpeg())
    with RawTree(raw) as tree:
        grown = replace(tree.files[0], limit=10)  # as if it had grown past its cap since the tree was built
        with pytest.raises(RawDataError, match=r"cat.1.jpg gives more than the 256.0 MiB an image may be"):
            grown.read()


def test_corrupt_member_fails_when_read(raw):
    archive = bytearray(zip_bytes({"train/cat.0.jpg": jpeg()}, compression=zipfile.ZIP_STORED))
    start = archive.index(b"\xff\xd8")  # the JPEG's first bytes: damage them, the CRC no longer matches
    archive[start : start + 4] = b"XXXX"
    (raw / "train.zip").write_bytes(bytes(archive))
    with raw_collection(raw, "label") as collection:
        with pytest.raises(
            RawDataError, match=r"train.zip:train/cat.0.jpg: cannot read it .*download the archive again"
        ):
            collection.images[0].read()

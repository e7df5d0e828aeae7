"""The checks of a zip's members as it is opened (classifier.intake.raw.archives): a zip three levels deep,
unsafe member names, and a labels table's compression ratio."""

from __future__ import annotations

import pytest

from classifier.core.errors import RawDataError
from classifier.intake.raw.layouts import raw_collection
from classifier.intake.raw.tree import RawTree
from tests.support.files import jpeg, snapshot, zip_bytes
from tests.support.intake import kaggle_keys, raises_raw_data_error


def test_a_zip_three_levels_deep_is_refused(raw):
    inner = zip_bytes({"deep.zip": zip_bytes({"cat.1.jpg": jpeg()})})
    (raw / "outer.zip").write_bytes(zip_bytes({"inner.zip": inner}))
    with pytest.raises(RawDataError, match="outer.zip:inner.zip:deep.zip is a zip inside a zip inside a zip"):
        with RawTree(raw):
            pass


def test_a_labels_table_may_compress_past_the_bomb_ratio(raw):
    """Sorted labels compress ~1000:1; a table is bounded by MAX_TABLE_BYTES instead."""
    table = b"label\n" + b"cat\n" * 400_000 + b"dog\n" * 400_000  # 3 MiB
    (raw / "a.zip").write_bytes(zip_bytes({"labels.csv": table}))
    with RawTree(raw) as tree:
        assert tree.files[0].read() == table


@pytest.mark.parametrize(
    "member",
    ["../cat.1.jpg", "/abs/cat.1.jpg", "train/../../dog.2.jpg", "C:/x/cat.3.jpg", "..\\cat.4.jpg", "\\cat.5.jpg"],
)
def test_unsafe_zip_members_are_refused(tmp_path, member):
    raw = tmp_path / "outer" / "raw"
    raw.mkdir(parents=True)
    (raw / "train.zip").write_bytes(zip_bytes({"train/cat.0.jpg": jpeg(), member: jpeg()}))
    before = snapshot(tmp_path)

    message = raises_raw_data_error(raw)
    assert "unsafe" in message
    assert repr(member) in message
    assert str(raw / "train.zip") in message
    assert snapshot(tmp_path) == before  # nothing written anywhere under tmp_path
    for name in ("cat.1.jpg", "dog.2.jpg", "cat.3.jpg", "cat.4.jpg", "cat.5.jpg"):
        assert not (tmp_path.parent / name).exists()


def test_unsafe_member_inside_the_nested_train_zip(raw):
    inner = zip_bytes({"train/cat.0.jpg": jpeg(), "../../dog.9.jpg": jpeg()})
    (raw / "dogs-vs-cats.zip").write_bytes(zip_bytes({"train.zip": inner}))
    message = raises_raw_data_error(raw)
    assert "unsafe" in message
    assert "dogs-vs-cats.zip:train.zip" in message


def test_safe_names_with_dots_are_accepted(raw):
    (raw / "train.zip").write_bytes(zip_bytes({"./train/cat.0.jpg": jpeg(), "train..old/dog.1.jpg": jpeg()}))
    with raw_collection(raw, "label") as collection:
        assert kaggle_keys(collection) == {("cat", 0), ("dog", 1)}

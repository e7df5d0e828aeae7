"""Writing a split's prepared arrays (classifier.intake.preparation): decoded on worker processes into
shards, bad images left out, and adding images rewriting only the shards they fall into."""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from classifier.intake.preparation import prepare_split
from classifier.intake.prepared.arrays import load_prepared
from tests.support.files import jpeg

SIZE = 8
ROW = SIZE * SIZE * 3


def split_rows(names: list[str], bad: tuple[str, ...] = ()) -> list[dict]:
    """Cats with these names under data/split/train/cat, as the split manifest lists them."""
    folder = Path("data/split/train/cat")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        path = folder / name
        if not path.exists():
            value = int(hashlib.md5(name.encode()).digest()[0])
            path.write_bytes(
                b"not a jpeg" if name in bad else jpeg(size=(12, 10), color=(value, 255 - value, 0), quality=95)
            )
        rows.append({"split": "train", "label": "cat", "class": "cat", "path": f"train/cat/{name}", "source": name})
    return rows


def shard_hashes() -> list[str]:
    """The content of each shard of the training split (not their tables or labels)."""
    shards = sorted(Path("data/prepared/train").glob("images-*.npy"))
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in shards]


def test_prepare_writes_shards_and_adding_images_rewrites_only_theirs(work):
    names = [f"cat.{index:04d}.jpg" for index in range(300)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        kept, bad, per_label = prepare_split(
            "train", split_rows(names, bad=("cat.0042.jpg",)), SIZE, ["cat"], pool, shard_bytes=24 * ROW
        )
        images, labels = load_prepared("train")
        assert len(images.files) >= 12 and len(images) == len(labels) == 299 == kept and per_label == {"cat": 300}
        assert [row["path"] for row in bad] == ["train/cat/cat.0042.jpg"]
        before = shard_hashes()

        grown = sorted([*names, "cat.0150a.jpg", "cat.0150b.jpg", "cat.0150c.jpg"])  # 1% more, side by side
        prepare_split("train", split_rows(grown, bad=("cat.0042.jpg",)), SIZE, ["cat"], pool, shard_bytes=24 * ROW)
    after = shard_hashes()
    new = [digest for digest in after if digest not in before]
    assert len(after) >= 12 and 1 <= len(new) <= 2  # the shard the three fell into (two if one of them cuts it)
    assert len(load_prepared("train")[0]) == 302

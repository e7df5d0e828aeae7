"""The prepared shards' tables: beside each shard images-NNNNN.npy, images-NNNNN.csv lists its rows'
label, class, path (under data/split) and source, in row order, which map each row of the arrays
back to its image. A table per shard, so that adding images changes only the tables of the shards
they fall into.
"""

from __future__ import annotations

from pathlib import Path

from classifier.core.errors import StageError
from classifier.core.paths import PREPARED_DIR
from classifier.intake.escaping import csv_dict_rows, write_csv_file
from classifier.intake.prepared.arrays import TABLE_COLUMNS, split_folder

COLUMNS = TABLE_COLUMNS


def write_table(shard: Path, rows: list[dict]) -> None:
    """The table of `shard` from its rows, in row order."""
    write_csv_file(shard.with_suffix(".csv"), COLUMNS, ([row.get(column, "") for column in COLUMNS] for row in rows))


def prepared_rows(split: str, folder: Path = PREPARED_DIR) -> list[dict]:
    """The split's rows in array order: each image's label, class, path (under data/split) and source."""
    rows = []
    for table in sorted(split_folder(split, folder).glob("images-*.csv")):
        with open(table, newline="") as file:
            rows += csv_dict_rows(file)
    return rows


def image_paths(split: str, count: int) -> list[str]:
    """The split's images' paths (as under data/split), in the order of its rows; `count`: the rows its shards hold."""
    paths = [row["path"] for row in prepared_rows(split)]
    if len(paths) != count:
        raise StageError(
            f"the tables in {split_folder(split)} list {len(paths)} {split} images but its shards hold {count}: "
            f"run `dvc repro prepare`"
        )
    return paths

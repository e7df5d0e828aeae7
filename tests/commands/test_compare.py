"""`classifier compare` (classifier/commands/compare.py): experiments side by side from `dvc exp show --json`, the
params that differ and the headline metrics, within the width asked for."""

from __future__ import annotations

from classifier.commands import compare


def revision(name, params, headline=None):
    metrics = {"metrics/headline.json": {"data": headline}} if headline else {}
    return {
        "rev": name if name == "workspace" else "0123456789abcdef",
        "name": name if name != "workspace" else None,
        "data": {"params": {"params.yaml": {"data": params}}, "metrics": metrics},
    }


TUNED = {"best_model": "fine_tuned", "accuracy": 0.975, "val_accuracy": 0.97, "test_images": 1000}
BOOK = {"lr": 1e-5, "data": {"image_size": 150, "split": {"train": [0, 1000]}}, "models": {"scratch": True}}
SHOWN = [
    revision("workspace", BOOK),
    {
        **revision("main", BOOK),
        "experiments": [
            {
                "revs": [
                    revision(
                        "demo",
                        {**BOOK, "data": {"image_size": 64, "split": {"train": [0, 150]}}},
                        {"best_model": "scratch", "accuracy": 0.93, "val_accuracy": 0.87, "test_images": 100},
                    )
                ]
            },
            {
                "revs": [
                    revision(
                        "lr-3e-4",
                        {**BOOK, "lr": 3e-4, "models": {"scratch": False}},
                        {"best_model": "fine_tuned", "accuracy": 0.975, "val_accuracy": 0.97, "test_images": 1000},
                    )
                ]
            },
        ],
    },
]


def test_the_columns_are_the_runs_and_the_rows_the_headline_then_the_params_that_differ():
    runs = compare.experiments(SHOWN)
    assert list(runs) == ["workspace", "main", "demo", "lr-3e-4"]
    lines = compare.table(runs, 120).splitlines()
    assert [name.strip() for name in lines[0].split("|")] == ["", "workspace", "main", "demo", "lr-3e-4"]
    rows = {line.split("|")[0].strip(): [cell.strip() for cell in line.split("|")[1:]] for line in lines if "|" in line}
    assert rows["best_model"] == ["-", "-", "scratch", "fine_tuned"]
    assert rows["accuracy"] == ["-", "-", "0.93", "0.975"]
    assert rows["lr"] == ["1e-05", "1e-05", "1e-05", "0.0003"]
    assert rows["data.split.train"] == ["[0, 1000]", "[0, 1000]", "[0, 150]", "[0, 1000]"]
    assert rows["models.scratch"] == ["true", "true", "true", "false"]
    assert "data.image_size" in rows and "seed" not in rows  # only what differs
    assert max(len(line) for line in lines) <= 120


def test_a_long_value_keeps_its_end():
    assert compare.cell("bases/efficientnet_lite0_notop.keras") == "…t_lite0_notop.keras"
    assert len(compare.cell("x" * 100)) == compare.LONGEST_CELL and compare.cell("x" * 20) == "x" * 20


def test_runs_that_do_not_fit_are_left_out_with_a_word_and_only_what_differs_among_those_shown():
    lines = compare.table(compare.experiments(SHOWN), 50).splitlines()
    assert max(len(line) for line in lines[:-1]) <= 50
    assert [name.strip() for name in lines[0].split("|")] == ["", "workspace", "main"]
    assert lines[-1] == "(2 more left out to fit 50 columns: name them, or --width)"
    assert not any(line.startswith(("data.", "lr")) for line in lines)  # the same in workspace and main

"""`classifier paired` (classifier/commands/paired.py): two runs compared on the same test images, image by
image (McNemar's exact test), from the predictions stage evaluate writes; what it refuses, in one line."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.commands import paired
from classifier.core.errors import StageError
from classifier.evaluation.plot_data import write_predictions
from classifier.evaluation.statistics import mcnemar_p, p_text, verdict, wilson_interval
from classifier.intake.escaping import CsvWriter
from tests.support.commands import run_command


def predictions_csv(rows) -> str:
    """A predictions table as stage evaluate writes it: (image, actual, predicted) rows."""
    text = io.StringIO()
    writer = CsvWriter(text)
    writer.writerow(("image", "actual", "predicted", "probability"))
    writer.writerows((*row, "0.900000") for row in rows)
    return text.getvalue()


def run_files(predictions: dict[str, list], best: str = "fine_tuned", classes=("cat", "dog")) -> dict[str, str]:
    files = {f"metrics/evaluate/predictions/{model}.csv": predictions_csv(rows) for model, rows in predictions.items()}
    files["metrics/evaluate.json"] = json.dumps({"best_model": best})
    files["data/classes.json"] = json.dumps(list(classes))
    return files


# 20 test images, in the order run A lists them (run B lists them backwards: images are matched by path)
IMAGES = [f"test/{'cat' if i % 2 else 'dog'}/{i}.jpg" for i in range(20)]


def answers(right: list[bool]) -> list[tuple[str, str, str]]:
    rows = []
    for image, is_right in zip(IMAGES, right):
        actual = image.split("/")[1]
        rows.append((image, actual, actual if is_right else {"cat": "dog", "dog": "cat"}[actual]))
    return rows


A_RIGHT = [True] * 15 + [False] * 5  # 15 of 20


B_RIGHT = [True] * 3 + [False] * 12 + [True] * 5  # 8 of 20: only A 3..14 (b = 12), only B 15..19 (c = 5)


@pytest.fixture
def runs(monkeypatch):
    """Two runs' files, {rev: {path: text}}, read through paired.read."""
    stored = {
        "main": run_files({"fine_tuned": answers(A_RIGHT)}),
        "workspace": run_files({"frozen_augmented": list(reversed(answers(B_RIGHT)))}, best="frozen_augmented"),
    }

    def read(path, rev):
        if rev not in stored:
            raise StageError(f"no revision or experiment named {rev!r}: see `git log`, `git branch`, `dvc exp show`")
        return stored[rev].get(path)

    monkeypatch.setattr(paired, "read", read)
    return stored


def test_paired_compares_each_runs_best_model_image_by_image(runs):
    lines = paired.compare(("main", "workspace"), "best")
    b, c = 12, 5
    p = mcnemar_p(b, c)  # 2 (1 + 17 + 136 + 680 + 2380 + 6188) / 2**17
    assert p == pytest.approx(2 * 9402 / 2**17)
    assert lines == [
        "main against workspace, on the same 20 test images:",
        "  main       fine_tuned          accuracy 0.7500 (95% interval "
        + "{:.4f}-{:.4f})".format(*wilson_interval(15, 20)),
        "  workspace  frozen_augmented    accuracy 0.4000 (95% interval "
        + "{:.4f}-{:.4f})".format(*wilson_interval(8, 20)),
        "  b = 12: images only main gets right; c = 5: only workspace",
        f"  McNemar's exact test: p = {p:.3f}: not distinguishable on these 20 images",
    ]
    assert p == pytest.approx(0.1435, abs=1e-4)


def test_paired_calls_a_lopsided_difference_real_and_takes_a_named_model(runs):
    runs["workspace"].update(run_files({"scratch": answers([True] * 3 + [False] * 17)}))
    runs["main"].update(run_files({"scratch": answers(A_RIGHT)}))
    lines = paired.compare(("main", "workspace"), "scratch")
    assert lines[1].split()[:2] == ["main", "scratch"] and lines[2].split()[:2] == ["workspace", "scratch"]
    assert lines[-2:] == [
        "  b = 12: images only main gets right; c = 0: only workspace",
        "  McNemar's exact test: p < 0.001: a real difference at 5%",
    ]


def test_paired_refuses_different_test_images(runs):
    runs["workspace"]["metrics/evaluate/predictions/frozen_augmented.csv"] = predictions_csv(answers(B_RIGHT)[:-1])
    with pytest.raises(StageError, match=r"^the two runs tested different images \(20 at main, 19 at workspace, 19 in"):
        paired.compare(("main", "workspace"), "best")
    moved = [("test/dog/other.jpg", *row[1:]) if i == 0 else row for i, row in enumerate(answers(B_RIGHT))]
    runs["workspace"]["metrics/evaluate/predictions/frozen_augmented.csv"] = predictions_csv(moved)
    with pytest.raises(StageError, match=r"\(20 at main, 20 at workspace, 19 in both\): a paired test needs the same"):
        paired.compare(("main", "workspace"), "best")


def test_paired_refuses_other_classes_or_labels(runs):
    runs["workspace"]["data/classes.json"] = json.dumps(["cat", "dog", "fox"])
    with pytest.raises(StageError, match=r"^main and workspace have different classes \(data/classes.json\)"):
        paired.compare(("main", "workspace"), "best")
    runs["workspace"]["data/classes.json"] = json.dumps(["cat", "dog"])
    relabelled = [
        (image, "cat", predicted) if i == 4 else (image, actual, predicted)
        for i, (image, actual, predicted) in enumerate(answers(B_RIGHT))
    ]
    runs["workspace"]["metrics/evaluate/predictions/frozen_augmented.csv"] = predictions_csv(relabelled)
    with pytest.raises(StageError, match=r"^test/dog/4.jpg is dog at main but cat at workspace: a paired test needs"):
        paired.compare(("main", "workspace"), "best")


def test_paired_refuses_what_a_run_lacks(runs):
    with pytest.raises(
        StageError, match=r"^workspace has no metrics/evaluate/predictions/fine_tuned.csv: run `dvc repro"
    ):
        paired.compare(("main", "workspace"), "fine_tuned")
    runs["workspace"]["metrics/evaluate/predictions/fine_tuned.csv"] = predictions_csv([])
    with pytest.raises(
        StageError, match=r"^workspace: .*fine_tuned.csv has no predictions: models.fine_tuned was false"
    ):
        paired.compare(("main", "workspace"), "fine_tuned")
    runs["workspace"]["metrics/evaluate.json"] = json.dumps({"best_model": "nonsense"})
    with pytest.raises(StageError, match=r"^workspace: metrics/evaluate.json names best_model 'nonsense', not a model"):
        paired.compare(("main", "workspace"), "best")
    runs["workspace"]["metrics/evaluate.json"] = "{}"
    with pytest.raises(StageError, match=r"^workspace: metrics/evaluate.json names no best_model"):
        paired.compare(("main", "workspace"), "best")
    del runs["workspace"]["metrics/evaluate.json"]
    with pytest.raises(StageError, match=r"^workspace has no metrics/evaluate.json: run `dvc repro evaluate`"):
        paired.compare(("main", "workspace"), "best")
    duplicated = answers(A_RIGHT) + answers(A_RIGHT)[:1]
    runs["main"]["metrics/evaluate/predictions/fine_tuned.csv"] = predictions_csv(duplicated)
    with pytest.raises(StageError, match=r"^main: .*fine_tuned.csv lists an image more than once"):
        paired.compare(("main", "main"), "best")


def test_paired_prints_one_line_for_a_refusal(runs, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_command(["paired", "main", "nope"])
    assert str(stopped.value) == (
        "paired: error: no revision or experiment named 'nope': see `git log`, `git branch`, `dvc exp show`"
    )
    assert run_command(["paired", "main"]) == 0  # against the workspace
    assert capsys.readouterr().out.startswith("main against workspace, on the same 20 test images:\n")


def test_paired_reads_what_evaluate_wrote_names_a_spreadsheet_would_run_included(tmp_path, monkeypatch):
    """The workspace's files as stage evaluate writes them: a class `=cmd` and a path with `,` and `"` go
    through CsvWriter's formula guard and quoting, and come back as they were."""
    monkeypatch.chdir(tmp_path)
    classes = ["=cmd", "'quoted"]
    paths = ['test/=cmd/a,"b".jpg', "test/'quoted/+1.jpg", "test/=cmd/c.jpg"]
    labels = np.array([0, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    predicted = np.array([0, 1, 1])
    for name in ("fine_tuned", "scratch"):
        write_predictions(
            name, paths, labels, predicted if name == "fine_tuned" else 1 - labels, probabilities, classes
        )
    assert Path("metrics/evaluate/predictions/fine_tuned.csv").read_text().splitlines()[1].startswith('"test/=cmd/a,')
    Path("data").mkdir()
    Path("data/classes.json").write_text(json.dumps(classes))
    Path("metrics/evaluate.json").write_text(json.dumps({"best_model": "fine_tuned"}))
    monkeypatch.setattr(paired, "PROJECT_ROOT", tmp_path)
    found = paired.predictions("workspace", "fine_tuned")
    assert found == {paths[0]: ("=cmd", "=cmd"), paths[1]: ("'quoted", "'quoted"), paths[2]: ("=cmd", "'quoted")}
    lines = paired.compare(("workspace", "workspace"), "best")
    assert lines[0] == "workspace against workspace, on the same 3 test images:"
    assert "accuracy 0.6667" in lines[1]
    assert lines[-2] == "  b = 0: images only workspace gets right; c = 0: only workspace"


# --- end to end, in a real repository ---


@pytest.mark.e2e
def test_paired_compares_head_with_the_workspace_through_dvc(tiny_repo):
    tool = [sys.executable, "-m", "classifier", "paired"]  # the repository's own copy
    same = tiny_repo.run(*tool).stdout
    assert same.startswith("HEAD against workspace, on the same 12 test images:\n"), same
    assert "b = 0" in same and "c = 0" in same and "p = 1.000: not distinguishable on these 12 images" in same
    best = json.loads((tiny_repo.path / "metrics/evaluate.json").read_text())["best_model"]
    table = tiny_repo.path / f"metrics/evaluate/predictions/{best}.csv"
    lines = table.read_text().splitlines()
    wrong = sum(line.split(",")[1] != line.split(",")[2] for line in lines[1:])
    fixed = [lines[0]] + [
        ",".join([*line.split(",")[:2], line.split(",")[1], line.split(",")[3]]) for line in lines[1:]
    ]
    try:
        table.write_text("\n".join(fixed) + "\n")  # the workspace's best model now right on every image
        result = tiny_repo.run(*tool, "HEAD", "workspace", "--model", best).stdout
        assert f"b = 0: images only HEAD gets right; c = {wrong}: only workspace" in result
        assert f"{p_text(mcnemar_p(0, wrong))}: {verdict(mcnemar_p(0, wrong), 12)}\n" in result
        refused = tiny_repo.run(*tool, "no-such-rev", check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            "paired: error: no revision or experiment named 'no-such-rev': see `git log`, `git branch`, `dvc exp show`"
        )
    finally:
        tiny_repo.reset()

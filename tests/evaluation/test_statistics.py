"""How sure a test accuracy is: the Wilson interval and McNemar's exact test against values worked out by
hand, the report's paired table, the model card's and the results table's accuracy, and tools/paired.py,
which compares two runs on the same test images."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from test_evaluation import LABELS, P_DOG, cells, make_report, table_after, two_class

from classifier.core.cli import StageError
from classifier.evaluation.plot_data import write_predictions
from classifier.evaluation.report import paired_table
from classifier.evaluation.statistics import (
    Z,
    discordant,
    interval_text,
    mcnemar_p,
    p_text,
    verdict,
    wilson_interval,
)
from classifier.intake.names import CsvWriter
from classifier.serving.card import accuracy_text

REPO = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / f"tools/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the Wilson interval ---


def test_z_is_the_two_sided_95_percent_normal_quantile():
    assert Z == pytest.approx(1.959964, abs=1e-6)


def test_wilson_of_237_right_of_262():
    # p = 0.90458; centre (p + z²/2n) / (1 + z²/n) = 0.89873, half-width 0.03580
    low, high = wilson_interval(237, 262)
    assert low == pytest.approx(0.8629, abs=1e-4)
    assert high == pytest.approx(0.9345, abs=1e-4)
    assert interval_text(237, 262) == "0.905 (0.863-0.935)"


def test_wilson_of_5_right_of_8_by_the_formula():
    p, n, z2 = 5 / 8, 8, Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    assert wilson_interval(5, 8) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert wilson_interval(5, 8) == pytest.approx((0.3057, 0.8632), abs=1e-4)


def test_wilson_at_none_and_all_right_stays_in_0_1_and_is_not_zero_width():
    # at 0 of n the upper bound is z² / (n + z²); at n of n the lower is n / (n + z²)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(Z**2 / (10 + Z**2)))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + Z**2)), 1.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(1, 1) == (pytest.approx(1 / (1 + Z**2)), 1.0)


@pytest.mark.parametrize("total", [1, 2, 7, 50, 1000, 10_000])
def test_wilson_holds_the_accuracy_and_narrows_with_more_images(total):
    for hits in sorted({0, 1, total // 3, total // 2, total - 1, total}):
        low, high = wilson_interval(hits, total)
        assert 0 <= low <= hits / total <= high <= 1
        assert low < high
    assert np.diff(wilson_interval(total // 2, total)) > np.diff(wilson_interval(10 * total // 2, 10 * total))


def test_wilson_refuses_impossible_counts():
    for hits, total in ((1, 0), (0, 0), (5, 4), (-1, 4)):
        with pytest.raises(ValueError, match="need 0 <= hits <= total"):
            wilson_interval(hits, total)


# --- McNemar's exact test ---


def test_mcnemar_of_10_against_2():
    # 2 P(X <= 2), X ~ Binomial(12, 1/2): 2 (1 + 12 + 66) / 4096 = 158 / 4096
    assert mcnemar_p(10, 2) == pytest.approx(158 / 4096, abs=1e-15)
    assert round(mcnemar_p(10, 2), 4) == 0.0386
    assert mcnemar_p(2, 10) == mcnemar_p(10, 2)


def test_mcnemar_without_a_lopsided_count_is_1():
    assert mcnemar_p(0, 0) == 1.0  # the two agree on every image
    assert mcnemar_p(7, 7) == 1.0
    assert mcnemar_p(3, 2) == 1.0  # 2 (1 + 5 + 10) / 32 = 1: capped
    assert mcnemar_p(6, 5) == 1.0


def test_mcnemar_small_hand_values_and_monotony():
    assert mcnemar_p(5, 0) == pytest.approx(2 / 32)  # 2 P(X = 0) of 5 coins
    assert mcnemar_p(6, 0) == pytest.approx(2 / 64)
    assert mcnemar_p(8, 1) == pytest.approx(2 * (1 + 9) / 512)
    values = [mcnemar_p(20 - c, c) for c in range(11)]  # the same 20 images, ever less lopsided
    assert all(a < b for a, b in zip(values, values[1:-1]))


def test_mcnemar_of_large_counts_is_finite_and_near_the_chi_square_approximation():
    # with continuity correction: chi² = (|b - c| - 1)² / (b + c), p = erfc(sqrt(chi² / 2))
    for b, c in ((300, 400), (2000, 2100), (10_000, 10_300)):
        chi2 = (abs(b - c) - 1) ** 2 / (b + c)
        assert mcnemar_p(b, c) == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=0.05)
    assert mcnemar_p(0, 5000) == 0.0  # 2 / 2**5000 is below any float: no overflow, no error


def test_mcnemar_matches_scipys_binomial_test():
    stats = pytest.importorskip("scipy.stats")
    for b, c in ((10, 2), (13, 4), (300, 400), (45, 60), (1, 9)):
        assert mcnemar_p(b, c) == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError, match="need counts of images"):
        mcnemar_p(-1, 3)


def test_discordant_counts_the_images_only_one_gets_right():
    a = [True, True, False, False, True, False]
    b = [True, False, True, False, False, False]
    assert discordant(a, b) == (2, 1)  # 1 and 4 only a; 2 only b
    assert discordant(b, a) == (1, 2)
    with pytest.raises(ValueError, match="one answer per image"):
        discordant(a, b[:-1])


def test_verdict_and_p_text():
    assert verdict(0.0386, 262) == "a real difference at 5%"
    assert verdict(0.05, 262) == "not distinguishable on these 262 images"
    assert verdict(1.0, 12) == "not distinguishable on these 12 images"
    assert p_text(0.0386) == "0.039" and p_text(1.0) == "1.000" and p_text(0.0004) == "< 0.001"


# --- the report ---


def test_the_reports_paired_table_of_the_hand_example():
    # fine_tuned gets 0, 1, 4, 5, 6 right; scratch (always cat) 3, 4, 5, 7: only fine_tuned 0, 1, 6 (b = 3),
    # only scratch 3, 7 (c = 2): p = 2 (1 + 5 + 10) / 32, capped at 1. The other models are fine_tuned's copies.
    report = make_report(["cat", "dog"], LABELS, two_class(P_DOG))
    assert "fine_tuned against each other model on the same 8 test images" in report
    header, rule, *rows = table_after(report, "## Is the difference real?")
    assert cells(header) == [
        "model",
        "accuracy",
        "fine_tuned accuracy",
        "b: only fine_tuned right",
        "c: only it right",
        "p (McNemar)",
        "verdict",
    ]
    assert rule == "|---|---:|---:|---:|---:|---:|---:|"
    assert [cells(row) for row in rows] == [
        [
            "scratch",
            "0.500 (0.215-0.785)",
            "0.625 (0.306-0.863)",
            "3",
            "2",
            "1.000",
            "not distinguishable on these 8 images",
        ],
        *(
            [
                name,
                "0.625 (0.306-0.863)",
                "0.625 (0.306-0.863)",
                "0",
                "0",
                "1.000",
                "not distinguishable on these 8 images",
            ]
            for name in ("scratch_augmented", "feature_extraction", "frozen_augmented")
        ),
    ]
    _, _, *results = table_after(report, "# Dogs vs. Cats")
    assert cells(results[0])[:2] == ["scratch", "0.500 (0.215-0.785)"]
    assert cells(results[-1])[:2] == ["fine_tuned", "0.625 (0.306-0.863)"]


def test_the_paired_table_calls_a_lopsided_difference_real():
    right = np.ones(40, dtype=bool)
    ten_wrong = right.copy()
    ten_wrong[:10] = False
    trade = ten_wrong.copy()
    trade[:2] = True  # 8 only the best gets right...
    best = right.copy()
    best[30:32] = False  # ...and 2 only the other: b = 8, c = 2 -> 2 (1 + 10 + 45) / 1024
    lines = paired_table({"best_one": best, "other": trade, "worse": ten_wrong}, "best_one")
    rows = [cells(line) for line in lines if line.startswith("| ") and "model" not in line]
    assert rows == [
        [
            "other",
            "0.800 (0.652-0.895)",
            "0.950 (0.835-0.986)",
            "8",
            "2",
            "0.109",
            "not distinguishable on these 40 images",
        ],
        ["worse", "0.750 (0.598-0.858)", "0.950 (0.835-0.986)", "10", "2", "0.039", "a real difference at 5%"],
    ]
    assert mcnemar_p(8, 2) == pytest.approx(2 * 56 / 1024)


def test_the_paired_table_of_one_model():
    assert paired_table({"fine_tuned": np.array([True, False])}, "fine_tuned") == [
        "Only fine_tuned was trained: no other model to compare it with."
    ]


# --- the model card and tools/results_table.py ---


def test_the_cards_accuracy_has_its_interval_and_the_number_of_test_images():
    metrics = {"accuracy": 0.9046, "accuracy_low": 0.8629, "accuracy_high": 0.9345, "loss": 0.25, "test_images": 262}
    assert accuracy_text(metrics) == (
        "0.9046 (95% interval 0.8629-0.9345, 262 test images) (metrics/evaluate.json; loss 0.2500)"
    )
    assert accuracy_text({"accuracy": 0.8125, "loss": 0.4321}) == "0.8125 (metrics/evaluate.json; loss 0.4321)"


def test_the_results_table_shows_the_interval_beside_the_test_accuracy():
    tool = load_tool("results_table")
    tested = {"accuracy": 0.90458, "accuracy_low": 0.86294, "accuracy_high": 0.93453, "auc": 0.97, "test_images": 262}
    table = tool.table({"metrics/evaluate.json": {"fine_tuned": tested, "best_model": "fine_tuned"}}, ["a", "b"])
    assert "| fine_tuned | fine_tune | - | not run | 0.905 (0.863-0.935) | 0.970 | - |" in table
    assert "Test accuracy with its 95% interval (Wilson), on 262 test images." in table
    assert "| scratch | train_scratch | - | not run | - | - | - |" in table
    plain = tool.table({"metrics/evaluate.json": {"fine_tuned": {"accuracy": 0.9}}}, ["a", "b"])
    assert "| 0.900 | - | - |" in plain and "interval" not in plain  # metrics without one: the accuracy alone


# --- tools/paired.py ---


@pytest.fixture(scope="module")
def paired():
    return load_tool("paired")


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
def runs(paired, monkeypatch):
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


def test_paired_compares_each_runs_best_model_image_by_image(paired, runs):
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


def test_paired_calls_a_lopsided_difference_real_and_takes_a_named_model(paired, runs):
    runs["workspace"].update(run_files({"scratch": answers([True] * 3 + [False] * 17)}))
    runs["main"].update(run_files({"scratch": answers(A_RIGHT)}))
    lines = paired.compare(("main", "workspace"), "scratch")
    assert lines[1].split()[:2] == ["main", "scratch"] and lines[2].split()[:2] == ["workspace", "scratch"]
    assert lines[-2:] == [
        "  b = 12: images only main gets right; c = 0: only workspace",
        "  McNemar's exact test: p < 0.001: a real difference at 5%",
    ]


def test_paired_refuses_different_test_images(paired, runs):
    runs["workspace"]["metrics/evaluate/predictions/frozen_augmented.csv"] = predictions_csv(answers(B_RIGHT)[:-1])
    with pytest.raises(StageError, match=r"^the two runs tested different images \(20 at main, 19 at workspace, 19 in"):
        paired.compare(("main", "workspace"), "best")
    moved = [("test/dog/other.jpg", *row[1:]) if i == 0 else row for i, row in enumerate(answers(B_RIGHT))]
    runs["workspace"]["metrics/evaluate/predictions/frozen_augmented.csv"] = predictions_csv(moved)
    with pytest.raises(StageError, match=r"\(20 at main, 20 at workspace, 19 in both\): a paired test needs the same"):
        paired.compare(("main", "workspace"), "best")


def test_paired_refuses_other_classes_or_labels(paired, runs):
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


def test_paired_refuses_what_a_run_lacks(paired, runs):
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


def test_paired_prints_one_line_for_a_refusal(paired, runs, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["paired.py", "main", "nope"])
    with pytest.raises(SystemExit) as stopped:
        paired.main()
    assert str(stopped.value) == (
        "paired: error: no revision or experiment named 'nope': see `git log`, `git branch`, `dvc exp show`"
    )
    monkeypatch.setattr(sys, "argv", ["paired.py", "main"])  # against the workspace
    paired.main()
    assert capsys.readouterr().out.startswith("main against workspace, on the same 20 test images:\n")


def test_paired_reads_what_evaluate_wrote_names_a_spreadsheet_would_run_included(paired, tmp_path, monkeypatch):
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
    monkeypatch.setattr(paired, "ROOT", tmp_path)
    found = paired.predictions("workspace", "fine_tuned")
    assert found == {paths[0]: ("=cmd", "=cmd"), paths[1]: ("'quoted", "'quoted"), paths[2]: ("=cmd", "'quoted")}
    lines = paired.compare(("workspace", "workspace"), "best")
    assert lines[0] == "workspace against workspace, on the same 3 test images:"
    assert "accuracy 0.6667" in lines[1]
    assert lines[-2] == "  b = 0: images only workspace gets right; c = 0: only workspace"


# --- end to end, in a real repository ---


@pytest.mark.e2e
def test_paired_compares_head_with_the_workspace_through_dvc(tiny_repo):
    tool = [sys.executable, "tools/paired.py"]
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

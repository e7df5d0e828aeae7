"""Hostile class names: each kept and escaped for the format it goes into, or refused by `split` in one line.

A class name is a folder's name, a label in a labels table or a key in params.yaml (in predict, whatever a
model file says), and it goes into every output. The names kept (NAMES): `a,b "q" |pipe|`, `<!--<script>`,
`=1+1`, `<img src=x onerror=alert(1)>`, `@SUM(A1)`, `-2+3`, ``*x*_[y](z)`~$a$`` and `'quoted`. Each output is
parsed after it is written:

Kept, and escaped
 1. metrics/report.md (report_markdown), with the names in data.classes
    and data.class_groups too                                     -> every table row has its header's cells;
                                                                     rendered (CommonMark + tables): no tag of a
                                                                     name's, no comment, each name a cell's text
 2. the model card models/export/README.md (card)                -> rendered: no tag of a name's, the names as text
 3. evaluate's CSVs: predictions (the confusion matrices), each
    class's ROC and precision-recall points                       -> as many fields as the header, none starting
                                                                     with = + - @ (an apostrophe first), no `<`;
                                                                     DVC's page built from them (dvc_render) keeps
                                                                     each chart's <script> closed
 4. split's data/split/manifest.csv, then prepare's manifest      -> no formula; the names read back exactly
                                                                     (classes.json, prepare's labels)
 5. predict --csv; predict's plain lines with a model whose class
    names hold a newline                                          -> rows as wide as the header, no formula; one
                                                                     line per image
 6. the pictures (most confident mistakes, activations, Grad-CAM)
    with `$x^$` in a class and a file name                        -> drawn as text, not mathtext: the PNGs are written
 7. classifier compare's table, a params key and value with a
    newline and an escape sequence                                -> one line per row, no control character
Refused by split, one line naming the class and the fix, nothing written (data/split of an earlier run kept)
 8. a label (labels table) with a tab, a newline, DEL, C1's NEL,
    U+2028, a right-to-left override; a folder named with NEL       -> "has a control character"
 9. data.class_groups keys with a tab, or of 256 bytes             -> refused by the same check
10. a label of 256 bytes (UTF-8); one of 250 bytes, whose array
    rows' file names (`<label>.<row>.png`) would pass 255         -> "over the 255 of a file name", before
                                                                     data/split is removed
11. the labels `.`, `..`, `.hidden`, `a/b`, `a\\b`                  -> refused with the reason

An end-to-end check (`dvc plots show` itself on evaluate's CSVs, marked e2e) is at the end.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from classifier.commands import compare
from classifier.core.params import load_params
from classifier.core.paths import CLASSES_FILE, EVALUATION_DIR, MODEL_STAGES, PREPARED_DIR, SPLIT_DIR, SPLIT_MANIFEST
from classifier.evaluation.metrics import classification_metrics, confusion, predicted_classes
from classifier.evaluation.plot_data import write_class_curves, write_predictions
from classifier.evaluation.report import report_markdown
from classifier.intake.escaping import csv_dict_rows, csv_value
from classifier.intake.prepared.arrays import load_prepared
from classifier.intake.tables import prepared_rows
from stages import prepare, split
from tests.support.commands import run_command
from tests.support.files import png
from tests.support.params import write_params
from tests.support.paths import ROOT
from tests.support.stages import refused

NAMES = [
    'a,b "q" |pipe|',
    "<!--<script>",
    "=1+1",
    "<img src=x onerror=alert(1)>",
    "@SUM(A1)",
    "-2+3",
    "*x*_[y](z)`~$a$",
    "'quoted",
]
FORMULA_START = tuple("=+-@\t\r")
RAW_HTML = re.compile(r"<\s*(img|script|!--)", re.I)
LOOK_ALIKES = str.maketrans({"\uff1c": "<", "\uff1e": ">"})  # what a chart shows for < and >


# --- parsing what was written --------------------------------------------------------------------------------------


class Rendered(HTMLParser):
    """Rendered HTML: its tags with their attributes, comments, each table's rows of cell texts, and all its text."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.comments, self.tables, self.text = [], [], [], []
        self.in_cell = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self.in_cell = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.in_cell = False

    def handle_comment(self, data):
        self.comments.append(data)

    def handle_data(self, data):
        self.text.append(data)
        if self.in_cell:
            self.tables[-1][-1][-1] += data


def render_markdown(text: str) -> Rendered:
    markdown_it = pytest.importorskip("markdown_it")
    return Rendered(markdown_it.MarkdownIt("commonmark").enable("table").render(text))


def markdown_rows(text: str) -> list[list[list[str]]]:
    """Each Markdown table of `text` as its rows of raw cells (split at the pipes that are not escaped)."""
    tables, previous = [], False
    for line in text.splitlines():
        is_row = line.startswith("|")
        if is_row and not previous:
            tables.append([])
        if is_row:
            tables[-1].append(re.split(r"(?<!\\)\|", line.strip()[1:-1]))
        previous = is_row
    return tables


def check_markdown(text: str) -> Rendered:
    """Every table's rows as wide as its header, raw and rendered; nothing of a name's renders as HTML (the
    report's own picture is the one image)."""
    for table in markdown_rows(text):
        assert all(len(row) == len(table[0]) for row in table), table
    page = render_markdown(text)
    assert page.comments == [] and "script" not in [tag for tag, _ in page.tags]
    assert all(attrs["src"] == "evaluate/most_wrong.png" for tag, attrs in page.tags if tag == "img")
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    for table in page.tables:
        assert all(len(row) == len(table[0]) for row in table), table
    return page


def check_csv(path_or_text, header_width: int | None = None) -> list[list[str]]:
    """The rows of a CSV, each as wide as its header, no field a spreadsheet would run as a formula."""
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows, text
    for row in rows:
        assert len(row) == (header_width or len(rows[0])), row
        assert not any(field.startswith(FORMULA_START) for field in row), row
    return rows


# --- 1-2: Markdown -------------------------------------------------------------------------------------------------


def test_the_report_keeps_each_name_one_cell_of_plain_text():
    labels = np.arange(len(NAMES)).repeat(2)
    probabilities = np.full((len(labels), len(NAMES)), 0.1 / (len(NAMES) - 1))
    guesses = np.roll(labels, 1)  # every image wrong: the confused pairs list names too
    probabilities[np.arange(len(labels)), guesses] = 0.9
    results = {name: classification_metrics(labels, probabilities, 5) for name in MODEL_STAGES}
    counts = {name: confusion(labels, predicted_classes(probabilities), len(NAMES)) for name in MODEL_STAGES}
    params = load_params(ROOT / "params.yaml")
    groups = {"<b>group|1</b>": NAMES[:4], "=group": NAMES[4:]}
    params = params.model_copy(
        update={"data": params.data.model_copy(update={"classes": NAMES, "class_groups": groups})}
    )
    best = {"best_epoch": 1, "epochs_run": 2, "val": {"accuracy": 0.5, "loss": 1.0}}
    correct = {name: predicted_classes(probabilities) == labels for name in MODEL_STAGES}
    report = report_markdown(params, NAMES, results, counts, correct, labels, 16, "fine_tuned", best)

    page = check_markdown(report)
    per_class, every_model = page.tables[2], page.tables[3]  # after the test table and the paired comparisons
    assert [row[0] for row in per_class[1:]] == NAMES
    assert [row[0] for row in every_model[1:]] == NAMES
    assert {tuple(row[:2]) for row in page.tables[4][1:]} <= {(a, b) for a in NAMES for b in NAMES}
    text = "".join(page.text)
    assert f"classes: {', '.join(NAMES)}" in text
    assert "<b>group|1</b>: " + ", ".join(NAMES[:4]) in text
    assert not RAW_HTML.search(report)


def test_the_model_card_shows_the_names_as_text():
    from classifier.serving import card

    model = SimpleNamespace(input_shape=(None, 32, 32, 3), output_shape=(None, len(NAMES)))
    text = card.card("fine_tuned", model, NAMES, {"accuracy": 0.5}, {"seed": 1}, ["litert"])
    page = check_markdown(text)
    assert not RAW_HTML.search(text)
    shown = "".join(page.text)
    assert "in label order: " + ", ".join(f"{label} {name}" for label, name in enumerate(NAMES)) in shown

    sigmoid = SimpleNamespace(input_shape=(None, 32, 32, 3), output_shape=(None, 1))
    text = card.card("fine_tuned", sigmoid, NAMES[2:4], {"accuracy": 0.5}, {}, ["litert"])
    assert not RAW_HTML.search(text)
    assert f"P({NAMES[3]}), the probability of class 1; P({NAMES[2]}) is 1 minus it" in "".join(
        check_markdown(text).text
    )


def test_plain_names_stay_code_in_the_card():
    from classifier.serving import card

    model = SimpleNamespace(input_shape=(None, 32, 32, 3), output_shape=(None, 3))
    text = card.card("fine_tuned", model, ["ant", "bee", "cat"], {"accuracy": 0.5}, {}, ["litert"])
    assert "0 `ant`, 1 `bee`, 2 `cat`" in text


# --- 3: evaluate's CSVs and DVC's plots page -----------------------------------------------------------------------


def evaluate_csvs() -> list[Path]:
    labels = np.arange(len(NAMES)).repeat(2)
    probabilities = np.random.default_rng(0).dirichlet(np.ones(len(NAMES)), len(labels))
    paths = [f"data/split/test/{NAMES[label]}/{i}.png" for i, label in enumerate(labels)]
    write_predictions("fine_tuned", paths, labels, predicted_classes(probabilities), probabilities, NAMES)
    write_class_curves(labels, probabilities, NAMES)
    return [EVALUATION_DIR / "predictions/fine_tuned.csv", *sorted((EVALUATION_DIR / "classes").glob("*.csv"))]


def shown_names(values) -> set[str]:
    """The class names a chart shows, with < and > for their look-alikes."""
    return {csv_value(value).translate(LOOK_ALIKES) for value in values}


def test_evaluates_csvs_hold_no_formula_and_read_back(work):
    predictions, *curves = evaluate_csvs()
    rows = check_csv(predictions)
    assert rows[0] == ["image", "actual", "predicted", "probability"]
    assert shown_names(row[1] for row in rows[1:]) == set(NAMES)
    for path in curves:
        rows = check_csv(path)
        assert shown_names(row[0] for row in rows[1:]) == set(NAMES)
    assert not any("<" in path.read_text() for path in (predictions, *curves))


def inline_scripts(page: str) -> list[str]:
    """Each inline <script> block's text, up to the first `</script` (where an HTML parser ends it, unless
    `<!--` and `<script` inside put it in the state where `</script>` does not end it)."""
    return re.findall(r"<script[^>]*>(.*?)</script", page, re.S | re.I)


def check_page(page: str, charts: int) -> list[dict]:
    """The chart specs of DVC's page, once each chart's <script> is shown to end where it should."""
    specs = []
    for script in inline_scripts(page):
        assert "<!--" not in script and not re.search(r"<\s*/?\s*script", script, re.I), script[:300]
        found = re.search(r"var spec = (\{.*\});\s*vegaEmbed", script, re.S)
        if found:
            specs.append(json.loads(found.group(1)))
    assert len(specs) == charts
    return specs


def test_dvcs_plots_page_keeps_each_chart_in_its_script(work):
    from dvc_render import VegaRenderer, render_html

    predictions, *curves = evaluate_csvs()
    renderers = []
    for path, template, x, y in [
        (predictions, "confusion", "actual", "predicted"),
        *((path, "by_class.json", "fpr" if "roc" in path.name else "recall", None) for path in curves),
    ]:
        with open(path, newline="") as file:
            datapoints = list(csv.DictReader(file))  # what DVC's CSV loader gives the renderer
        y = y or next(field for field in datapoints[0] if field not in ("class", "point", x))
        properties = {"template": template, "template_dir": str(ROOT / ".dvc/plots"), "x": x, "y": y}
        renderers.append(VegaRenderer(datapoints, str(path), **properties))
    render_html(renderers, work / "plots/index.html")

    specs = check_page((work / "plots/index.html").read_text(), len(renderers))
    assert shown_names(value["actual"] for value in specs[0]["data"]["values"]) == set(NAMES)
    for spec in specs[1:]:
        assert shown_names(value["class"] for value in spec["data"]["values"]) == set(NAMES)


# --- 4: split and prepare ------------------------------------------------------------------------------------------


def split_params(work: Path, raw_dir: Path, classes=None, groups=None) -> None:
    shares = {"train": 0.6, "validation": 0.2, "test": 0.2}  # unused: every raw folder here is split already
    data = {"raw_dir": str(raw_dir), "split": shares, "classes": classes, "class_groups": groups, "image_size": 16}
    write_params(work, {f"data.{key}": value for key, value in data.items()})


def already_split(raw_dir: Path, names) -> Path:
    """train/, validation/ and test/ of one image per class: no split to draw."""
    for number, name in enumerate(names):
        for position, part in enumerate(("train", "validation", "test")):
            (raw_dir / part / name).mkdir(parents=True)
            seed = 10 * number + position
            color = (seed * 40 % 256, seed * 7 % 256, 90)
            (raw_dir / part / name / f"{position}.png").write_bytes(png(size=(8, 8), color=color))
    return raw_dir


def test_split_and_prepare_write_manifests_without_formulas_and_read_them_back(work):
    split_params(work, already_split(work.parent / "raw", NAMES))
    split.main()
    assert json.loads(CLASSES_FILE.read_text()) == sorted(NAMES)
    rows = check_csv(SPLIT_MANIFEST)
    assert rows[0] == ["split", "label", "class", "path", "source", "sha256"]
    with open(SPLIT_MANIFEST, newline="") as file:
        manifest = list(csv_dict_rows(file))
    assert sorted(row["class"] for row in manifest) == sorted(NAMES * 3)
    assert all((SPLIT_DIR / row["path"]).is_file() and row["path"].split("/")[1] == row["label"] for row in manifest)

    prepare.main()
    classes = json.loads(CLASSES_FILE.read_text())
    for part in ("train", "validation", "test"):
        for table in (PREPARED_DIR / part).glob("images-*.csv"):
            check_csv(table)
        labels = load_prepared(part)[1]
        rows = prepared_rows(part)
        assert [classes[label] for label in labels] == [row["label"] for row in rows]
        assert sorted(row["label"] for row in rows) == sorted(NAMES)


# --- 5: predict ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A 16x16 softmax classifier of len(NAMES) classes, saved as the project saves models, with given names."""
    import keras

    from classifier.models import saving

    folder = tmp_path_factory.mktemp("model")
    keras.utils.set_random_seed(0)
    pixels = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(pixels))
    model = keras.Model(pixels, keras.layers.Dense(len(NAMES), activation="softmax", name="predictions")(x))

    def saved(names: list[str]) -> Path:
        path = folder / f"model{len(list(folder.iterdir()))}.keras"
        saving.save_model(model, path, names)
        return path

    image = folder / "=cmd.png"  # given as a relative path, a field that starts a formula too
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(image)
    return saved, image


def test_predict_csv_has_no_formula_and_the_names_read_back(tiny_classifier, capsys, monkeypatch):
    saved, image = tiny_classifier
    monkeypatch.chdir(image.parent)
    assert run_command(["predict", image.name, "--model", str(saved(NAMES)), "--csv"]) == 0
    rows = check_csv(capsys.readouterr().out, header_width=2 + len(NAMES))
    assert len(rows) == 2
    assert [csv_value(field) for field in rows[0][2:]] == NAMES
    assert rows[1][0] == "'=cmd.png" and csv_value(rows[1][1]) in NAMES


def test_predict_prints_one_line_per_image_whatever_the_model_names(tiny_classifier, capsys):
    saved, image = tiny_classifier
    names = [f"line\nbreak{i}\x1b[2J" for i in range(len(NAMES))]
    assert run_command(["predict", str(image), "--model", str(saved(names)), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and "\x1b" not in out


# --- 6: pictures ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["$x^$", "a$\\frac$b", "$$"])
def test_pictures_draw_names_as_text(work, name):
    from classifier.evaluation.gallery import most_wrong_gallery
    from classifier.explanation.pictures import activations_figure, grad_cam_figure

    classes = [name, "plain"]
    images = np.zeros((2, 8, 8, 3), np.uint8)
    labels = np.array([0, 1])
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1]])  # both wrong
    files = [f"{name}.png", "b.png"]
    assert most_wrong_gallery(images, labels, probabilities, files, classes, "m", work / "wrong.png") == 2
    activations_figure(images[0], ["conv"], [np.zeros((4, 4, 2))], f"test image 0 ({name})", "m", work / "act.png")
    heatmaps = np.zeros((2, 4, 4))
    grad_cam_figure(images, heatmaps, probabilities, labels, files, classes, "m", work / "cam.png")
    assert all((work / png_name).stat().st_size > 0 for png_name in ("wrong.png", "act.png", "cam.png"))


# --- 7: classifier compare -------------------------------------------------------------------------------------------


def test_compares_table_keeps_each_row_on_one_line():
    runs = {
        "workspace": {"params": {"data.raw_dir": "raw\nfolder", "data.class_groups.a\x1b[2J": ["x"]}, "metrics": {}},
        "other": {"params": {"data.raw_dir": "raw", "data.class_groups.a\x1b[2J": ["y"]}, "metrics": {}},
    }
    lines = compare.table(runs, 120).splitlines()
    assert len(lines) == 4  # the header, the rule, the two params that differ
    assert not any(char in line for line in lines for char in "\x1b\r")


# --- 8-11: refused by split ----------------------------------------------------------------------------------------


def split_refused(work: Path, raw_dir: Path, **params) -> str:
    """split's one-line error; an earlier data/split kept, nothing else written anywhere under the test's folder."""
    split_params(work, raw_dir, **params)
    (work / SPLIT_DIR).mkdir(parents=True)
    (work / SPLIT_DIR / "earlier.txt").write_text("an earlier run's split")
    message = refused(split.main, "stages/split.py", work.parent)
    assert message.isprintable(), message
    return message


def labels_table(raw_dir: Path, labels: list[str]) -> Path:
    """Arrays already split: train, validation and test, one 2x2 image per label each."""
    raw_dir.mkdir()
    for number, part in enumerate(("train", "validation", "test")):  # other pixels in each: the same would be a leak
        np.save(raw_dir / f"{part}.npy", np.arange(len(labels) * 12).reshape(-1, 2, 2, 3).astype(np.uint8) + number)
        with open(raw_dir / f"{part}.csv", "w", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows([["label"], *([label] for label in labels)])
    return raw_dir


def test_a_label_with_a_line_break_is_refused_by_the_table_reader(work):
    message = split_refused(work, labels_table(work.parent / "raw", ["cat", "a\nb"]))
    assert "has a quoted value that runs on to line 4; a label has no line break" in message


@pytest.mark.parametrize("label", ["a\tb", "del\x7f", "ne\x85l", "line\u2028sep", "\u202eevil"])
def test_a_label_with_a_control_character_is_refused(work, label):
    message = split_refused(work, labels_table(work.parent / "raw", ["cat", label]))
    assert message.startswith(f"the class or group name {label!r} cannot be a folder name: it has a control character")
    assert "rename it in data.raw_dir" in message


def test_a_folder_with_a_control_character_is_refused(work):
    raw_dir = already_split(work.parent / "raw", ["cat", "dog\x85"])
    assert "the class or group name 'dog\\x85' cannot be a folder name" in split_refused(work, raw_dir)


@pytest.mark.parametrize("group", ["a\tb", "g" * 256])
def test_a_group_that_cannot_be_a_folder_name_is_refused(work, group):
    raw_dir = already_split(work.parent / "raw", ["cat", "dog"])
    message = split_refused(work, raw_dir, groups={group: ["cat"], "other": ["dog"]})
    assert message.startswith("the class or group name ")
    assert ("control character" if "\t" in group else "is 256 bytes long in UTF-8, over the 255") in message
    assert "data.class_groups" in message


def test_a_label_too_long_for_a_file_name_is_refused(work):
    label = "é" * 128  # 256 bytes in UTF-8
    message = split_refused(work, labels_table(work.parent / "raw", ["cat", label]))
    assert message.startswith(f"the class or group name {label[:60]!r}... cannot be a folder name: it is 256 bytes")


def test_file_names_that_would_be_too_long_are_refused_before_data_split_is_removed(work):
    label = "x" * 250  # a folder name, but `<label>.0.png` is 256 bytes
    message = split_refused(work, labels_table(work.parent / "raw", ["cat", label]))
    assert message.startswith(f"train.npy:1 (and 2 more) would be written under data/split/train/ as '{label[:60]}'...")
    assert "256 bytes, over the" in message and "an array row's: <class>.<row>.png" in message


@pytest.mark.parametrize(
    "label, reason",
    [(".", "starts with '.'"), ("..", "starts with '.'"), (".hidden", "starts with '.'"), ("a/b", "has a '/'")]
    + [("a\\b", "has a '/', a '\\'")],
)
def test_names_that_are_no_folder_names_are_refused_with_the_reason(work, label, reason):
    message = split_refused(work, labels_table(work.parent / "raw", ["cat", label]))
    assert message.startswith(f"the class or group name {label!r} cannot be a folder name: it {reason}")


# --- end to end ------------------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_dvc_plots_show_on_evaluates_csvs(work):
    """`dvc plots show` itself (its own CSV loader and page) on the files evaluate writes."""
    evaluate_csvs()
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], check=True)
    predictions = str(EVALUATION_DIR / "predictions/fine_tuned.csv")
    command = [sys.executable, "-m", "dvc", "plots", "show", predictions, "--template", "confusion"]
    subprocess.run([*command, "-x", "actual", "-y", "predicted", "-o", "shown"], check=True, capture_output=True)
    specs = check_page((work / "shown/index.html").read_text(), 1)
    assert shown_names(value["actual"] for value in specs[0]["data"]["values"]) == set(NAMES)

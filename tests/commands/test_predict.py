"""`classifier predict` (classifier/commands/predict.py) on real and awkward images with a tiny saved model: one
line per image, or CSV; the top K classes; unreadable files reported and the rest predicted; bad arguments
refused by argparse, a missing model in one line. (Folders, links and odd files: tests/serving/test_image_files.py;
a model that is no image classifier: tests/serving/test_predicting.py.)"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from classifier.commands import predict
from classifier.core.paths import MODEL_STAGES
from classifier.intake.decoding import decode_image
from classifier.models import saving
from tests.support.commands import run_command
from tests.support.models import TINY_IMAGE_SIZE as IMAGE_SIZE
from tests.support.models import tiny_transfer_model
from tests.support.paths import KAGGLE_IMAGES, copy_of


def straddle_one_half(model: keras.Model, pixels: np.ndarray) -> None:
    """Set the head so these images get P(dog) on both sides of 0.5, none of them close to it."""
    classifier = model.get_layer("classifier")
    hidden = next(
        layer for layer in classifier.layers if isinstance(layer, keras.layers.Dense) and layer.name != "predictions"
    )
    kernel, bias = hidden.get_weights()
    hidden.set_weights([kernel, bias + 1.0])  # keep the 4 relu units alive
    p = model.predict(pixels.astype(np.float32), verbose=0)[:, 0].astype(np.float64)
    logits = np.sort(np.log(p / (1 - p)))
    middle = len(logits) // 2
    gap = logits[middle] - logits[middle - 1]
    assert gap > 0, "the images should get distinct scores"
    output = classifier.get_layer("predictions")
    kernel, bias = output.get_weights()
    center = (logits[middle - 1] + logits[middle]) / 2
    output.set_weights([kernel * 2 / gap, (bias - center) * 2 / gap])


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory) -> Path:
    """Two real Kaggle JPEGs, an RGBA PNG, a grayscale JPEG and a large 640x480 JPEG."""
    folder = tmp_path_factory.mktemp("images")
    copy_of(KAGGLE_IMAGES / "cat.0.jpg", folder)
    copy_of(KAGGLE_IMAGES / "dog.0.jpg", folder)
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (40, 60, 4)).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "drawing.png")
    gray = np.linspace(0, 255, 50 * 70).reshape(50, 70).astype(np.uint8)
    Image.fromarray(gray, "L").save(folder / "gray.jpg")
    large = rng.integers(0, 256, (480, 640, 3)).astype(np.uint8)
    large[:, :320] //= 4  # not uniform noise: a dark half
    Image.fromarray(large).save(folder / "large.jpg", quality=90)
    return folder


def image_paths(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file())


def decoded(files: list[Path]) -> np.ndarray:
    return np.stack([decode_image(file.read_bytes(), IMAGE_SIZE) for file in files]).astype(np.float32)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, images_dir) -> Path:
    keras.utils.set_random_seed(0)
    model = tiny_transfer_model(2, dense_units=4)
    straddle_one_half(model, decoded(image_paths(images_dir)))
    path = tmp_path_factory.mktemp("model") / "m.keras"
    saving.save_model(model, path, ["cat", "dog"])
    return path


@pytest.fixture(scope="module")
def expected(saved_model, images_dir) -> dict[str, float]:
    """P(dog) per image path: model.predict of the saved model on decode_image at 32."""
    model = keras.models.load_model(saved_model, compile=False)
    files = image_paths(images_dir)
    return {str(file): float(p) for file, p in zip(files, model.predict(decoded(files), verbose=0)[:, 0])}


def parse_lines(out: str) -> list[tuple[str, str, float]]:
    rows = []
    for line in out.splitlines():
        path, label, p = line.rsplit(", ", 2)
        rows.append((path, label, float(p)))
    return rows


def check_row(path: str, label: str, p: float, expected: dict[str, float]) -> None:
    """`p` is the printed probability of the printed `label`; `expected` holds P(dog)."""
    exact = expected[path]
    assert abs(exact - 0.5) > 1e-3  # far enough from 0.5 that rounding cannot flip the label
    assert label == ("dog" if exact >= 0.5 else "cat")
    assert p == pytest.approx(exact if label == "dog" else 1 - exact, abs=6e-5)  # printed with 4 decimals
    assert 0.5 <= p <= 1


def test_the_fixture_model_sees_both_classes(saved_model, expected):
    assert len(expected) == 5
    assert any(p >= 0.5 for p in expected.values()) and any(p < 0.5 for p in expected.values())


def test_a_folder_prints_one_line_per_image(saved_model, images_dir, expected, capsys):
    code = run_command(["predict", str(images_dir), "--model", str(saved_model)])
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    rows = parse_lines(out)
    assert [row[0] for row in rows] == [str(path) for path in image_paths(images_dir)]  # sorted, one each
    for row in rows:
        check_row(*row, expected)
    assert {label for _, label, _ in rows} == {"cat", "dog"}


def test_single_files_keep_the_order_given(saved_model, images_dir, expected, capsys):
    files = [images_dir / "large.jpg", images_dir / "gray.jpg", images_dir / "cat.0.jpg"]
    code = run_command(["predict", *map(str, files), "--model", str(saved_model)])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = parse_lines(out)
    assert [row[0] for row in rows] == [str(file) for file in files]
    for row in rows:
        check_row(*row, expected)


def test_unreadable_files_are_reported_and_the_rest_predicted(saved_model, images_dir, expected, tmp_path, capsys):
    folder = tmp_path / "mixed"
    shutil.copytree(images_dir, folder)
    (folder / "bad.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 500).astype(np.uint8).tobytes())
    missing = tmp_path / "no_such_photo.jpg"
    code = run_command(["predict", str(folder), str(missing), "--model", str(saved_model)])
    out, err = capsys.readouterr()
    assert code == 1
    errors = err.splitlines()
    assert len(errors) == 2
    assert all(line.startswith("predict: error:") for line in errors)
    assert sum(str(folder / "bad.jpg") in line for line in errors) == 1
    assert sum(str(missing) in line for line in errors) == 1
    assert any("No such file" in line for line in errors if str(missing) in line)
    rows = parse_lines(out)
    good = [path for path in image_paths(folder) if path.name != "bad.jpg"]
    assert [row[0] for row in rows] == [str(path) for path in good]
    for path, label, p in rows:
        check_row(str(images_dir / Path(path).name), label, p, expected)


def test_only_unreadable_files_exit_1_with_no_predictions(saved_model, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code = run_command(["predict", str(bad), "--model", str(saved_model)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"predict: error: {bad}")


def test_csv_output(saved_model, images_dir, expected, capsys):
    code = run_command(["predict", str(images_dir), "--model", str(saved_model), "--csv"])
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert out.splitlines()[0] == "path,label,cat,dog"  # one probability column per class
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["path"] for row in rows] == [str(path) for path in image_paths(images_dir)]
    for row in rows:
        check_row(row["path"], row["label"], float(row[row["label"]]), expected)
        assert float(row["cat"]) + float(row["dog"]) == pytest.approx(1, abs=2e-4)


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory) -> Path:
    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("model3") / "flowers.keras"
    saving.save_model(tiny_transfer_model(3, dense_units=4), path, ["daisy", "roses", "tulips"])
    return path


def test_n_classes_print_the_most_likely_class_by_name(three_class_model, images_dir, capsys):
    files = image_paths(images_dir)
    assert run_command(["predict", str(images_dir), "--model", str(three_class_model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    probabilities = keras.models.load_model(three_class_model, compile=False).predict(decoded(files), verbose=0)
    assert len(lines) == len(files)
    for line, file, row in zip(lines, files, probabilities):
        path, label, p = line.rsplit(", ", 2)
        assert path == str(file)
        assert label == ["daisy", "roses", "tulips"][int(np.argmax(row))]
        assert float(p) == pytest.approx(row.max(), abs=6e-5)


def test_top_k_lists_the_k_most_likely_classes_in_order(three_class_model, images_dir, capsys):
    assert run_command(["predict", str(images_dir / "cat.0.jpg"), "--model", str(three_class_model), "--top", "3"]) == 0
    fields = capsys.readouterr().out.strip().split(", ")
    assert len(fields) == 1 + 2 * 3
    names, ps = fields[1::2], [float(p) for p in fields[2::2]]
    assert sorted(names) == ["daisy", "roses", "tulips"]
    assert ps == sorted(ps, reverse=True) and sum(ps) == pytest.approx(1, abs=3e-4)


def test_csv_has_a_column_per_class(three_class_model, images_dir, capsys):
    assert run_command(["predict", str(images_dir), "--model", str(three_class_model), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["path", "label", "daisy", "roses", "tulips"]
    for row in rows:
        ps = {name: float(row[name]) for name in ("daisy", "roses", "tulips")}
        assert row["label"] == max(ps, key=ps.get)


def test_a_model_without_class_names_shows_label_numbers(images_dir, tmp_path, capsys):
    path = tmp_path / "plain.keras"
    tiny_transfer_model(3, dense_units=4).save(path)  # saved by plain Keras: no class names inside
    assert run_command(["predict", str(images_dir / "cat.0.jpg"), "--model", str(path)]) == 0
    assert capsys.readouterr().out.split(", ")[1] in {"0", "1", "2"}


def test_top_below_one_is_an_argparse_error(saved_model, images_dir):
    with pytest.raises(SystemExit) as exit_info:
        run_command(["predict", str(images_dir), "--model", str(saved_model), "--top", "0"])
    assert exit_info.value.code == 2


def test_an_unknown_model_name_is_an_argparse_error(images_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_command(["predict", str(images_dir), "--model", "no_such_model"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no_such_model" in err
    for name in MODEL_STAGES:
        assert name in err


def test_a_missing_custom_model_file_is_named(images_dir, tmp_path, capsys):
    missing = tmp_path / "absent.keras"
    with pytest.raises(SystemExit) as exit_info:
        run_command(["predict", str(images_dir), "--model", str(missing)])
    message = exit_info.value.code
    assert isinstance(message, str) and "\n" not in message
    assert message.startswith("predict: error:")
    assert f"--model {missing} is not a file" in message
    assert capsys.readouterr().out == ""


def test_a_named_model_not_built_yet_says_run_dvc_repro(images_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no models/ here
    monkeypatch.setattr(predict, "PROJECT_ROOT", tmp_path)  # nor in the repository the command reads models from
    with pytest.raises(SystemExit) as exit_info:
        run_command(["predict", str(images_dir), "--model", "feature_extraction"])
    message = exit_info.value.code
    assert isinstance(message, str) and "\n" not in message
    assert "models/feature_extraction.keras" in message and "dvc repro" in message

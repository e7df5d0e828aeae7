"""Stage `explain` (stages/explain.py) in a scratch workspace, on a tiny transfer model and the book's small
convnet: its three pictures, sized by what they hold; a test image beyond the split and a model of other
classes refused."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from classifier.core.errors import StageError
from classifier.explanation import pictures
from classifier.intake.prepared.arrays import save_prepared
from classifier.models import architecture
from classifier.models.saving import save_model
from stages import explain
from tests.support.files import png_size
from tests.support.models import tiny_transfer_model
from tests.support.params import write_params


def seeded_model(num_classes: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return tiny_transfer_model(num_classes)


def workspace(folder: Path, model: keras.Model, class_names: list[str], **explain_params) -> None:
    """params.yaml, data/classes.json, the test arrays (9 images) and models/<explain.model>.keras in `folder`."""
    settings = dict(model="fine_tuned", image=1, filter_steps=2, filter_size=48, gradcam_per_class=2) | explain_params
    write_params(folder, {f"explain.{key}": value for key, value in settings.items()})
    (folder / "data/prepared").mkdir(parents=True)
    (folder / "data/classes.json").write_text(json.dumps(class_names))
    labels = np.arange(9, dtype=np.uint8) % len(class_names)
    images = np.random.default_rng(0).integers(0, 256, (9, *model.input_shape[1:])).astype(np.uint8)
    save_prepared("test", images, labels, folder / "data/prepared")
    save_model(model, folder / "models/fine_tuned.keras", class_names)


def grid_pixels(*rows_per_block: int) -> tuple[int, int]:
    """The size of an activations or filters picture whose blocks hold these rows of cells."""
    inches = pictures.TITLE + sum(rows * pictures.CELL + pictures.TITLE for rows in rows_per_block)
    return round(pictures.GRID_COLUMNS * pictures.CELL * pictures.DPI), round(inches * pictures.DPI)


def test_the_stage_on_a_transfer_model(tmp_path, monkeypatch, capsys):
    workspace(tmp_path, seeded_model(3), ["cat", "dog", "fox"])
    monkeypatch.chdir(tmp_path)
    explain.main()
    assert "explain.activation_layers asks for 4 convolutional layers, the model has 2" in capsys.readouterr().out
    # the image, then two layers of 4 and 8 channels: one row each
    assert png_size(Path("metrics/explain/activations.png")) == grid_pixels(1, 1, 1)
    assert png_size(Path("metrics/explain/filters.png")) == grid_pixels(1, 1)  # 4 filters, then 8
    assert png_size(Path("metrics/explain/gradcam.png")) == (960, round((3.2 * 3 + 0.6) * 80))  # 6 images, 2 a row


def test_the_stage_on_the_small_convnet(tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    workspace(tmp_path, architecture.small_convnet(32, 0.0, 3), ["cat", "dog", "fox"], gradcam_per_class=1, filters=9)
    monkeypatch.chdir(tmp_path)
    explain.main()
    # four layers of 32 to 128 channels, 16 shown: two rows each; 9 filters of 3 layers: two rows each
    assert png_size(Path("metrics/explain/activations.png")) == grid_pixels(1, 2, 2, 2, 2)
    assert png_size(Path("metrics/explain/filters.png")) == grid_pixels(2, 2, 2)
    assert png_size(Path("metrics/explain/gradcam.png")) == (960, round((3.2 * 2 + 0.6) * 80))


def test_a_test_image_beyond_the_split_is_one_line_before_any_work(tmp_path, monkeypatch):
    workspace(tmp_path, seeded_model(2), ["cat", "dog"], image=9)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(explain, "load_model", lambda path: pytest.fail("loaded the model"))
    with pytest.raises(StageError, match=r"^explain.image 9 is beyond the test split's 9 images: give 0 to 8$"):
        explain.main()
    assert not Path("metrics/explain").exists()


def test_a_model_of_other_classes_is_refused(tmp_path, monkeypatch):
    workspace(tmp_path, seeded_model(3), ["cat", "dog"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="trained on other classes than the 2 in data/classes.json"):
        explain.main()

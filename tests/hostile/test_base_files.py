"""Doors a base file could leave open: the .keras file (or weights) named by base.name is the one input
of load_base that a user brings, so each way it could reach outside the repository, or be cut where it
holds no feature map, is refused in one line before anything is written; what is safe is read.

1. bases/base.keras a link to a file outside the repository, or bases/ a link
   to a folder outside                                                            -> refused, naming link and target
2. bases/base.keras a link into DVC's cache, in the repository or elsewhere       -> read
3. base.output_layer naming a layer before any convolution (the input, a
   Rescaling, the caffe preprocessing of a trained model)                        -> refused, naming the allowed ones
4. a .keras base whose output layer is itself a convolution, no activation
   after it: a Conv2D, a Conv2DTranspose                                         -> accepted, fine-tuned from it

Every model here is tiny and built in the test; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from classifier.core.params import load_params
from classifier.models import architecture, saving
from stages import load_base
from tests.support.models import conv_base
from tests.support.params import write_params
from tests.support.paths import ROOT
from tests.support.stages import refused

SIZE = 16


@pytest.fixture
def stage_dir(tmp_path, monkeypatch) -> Path:
    """A workspace with the project's params.yaml and bases/, where load_base runs."""
    work = tmp_path / "work"
    (work / "bases").mkdir(parents=True)
    write_params(work)
    monkeypatch.chdir(work)
    return work


def set_base(folder: Path, **base) -> None:
    """The base section of folder/params.yaml: no weights, no fine_tune_from, and `base`."""
    write_params(
        folder, {f"base.{key}": value for key, value in {"weights": None, "fine_tune_from": None, **base}.items()}
    )


def load_base_error(folder: Path) -> str:
    """load_base's one line, once it is checked that nothing in `folder` was written (no models/)."""
    return refused(load_base.main, "load_base.py", folder)


# --- 1-2: links ---------------------------------------------------------------------------------------------


def test_a_base_linked_to_a_file_outside_the_repository_is_refused(stage_dir, tmp_path):
    outside = tmp_path / "elsewhere" / "base.keras"
    saving.save_model(conv_base(), outside)
    (stage_dir / "bases" / "base.keras").symlink_to(outside)
    set_base(stage_dir, name="bases/base.keras")
    assert load_base_error(stage_dir) == (
        f"base.name 'bases/base.keras' is a link to '{outside}', outside the repository; nothing outside it is "
        f"read as a base (a clone would not have it): copy the file in instead "
        f"(cp --remove-destination {outside} bases/base.keras)"
    )


def test_bases_linked_to_a_folder_outside_the_repository_is_refused(stage_dir, tmp_path):
    saving.save_model(conv_base(), tmp_path / "elsewhere" / "base.keras")
    (stage_dir / "bases").rmdir()
    (stage_dir / "bases").symlink_to(tmp_path / "elsewhere")
    set_base(stage_dir, name="bases/base.keras")
    assert load_base_error(stage_dir).startswith(
        f"base.name 'bases/base.keras' is in bases, a link to '{tmp_path / 'elsewhere'}', outside the repository"
    )


@pytest.mark.parametrize("cache", ["in the repository", "elsewhere"])
def test_a_base_linked_into_the_dvc_cache_is_read(stage_dir, tmp_path, cache, capsys):
    (stage_dir / ".dvc").mkdir()
    folder = stage_dir / ".dvc/cache" if cache == "in the repository" else tmp_path / "cache"
    if cache == "elsewhere":
        (stage_dir / ".dvc/config").write_text(f"[cache]\n    dir = {folder}\n    type = symlink\n")
    cached = folder / "files/md5/3f/0123456789abcdef"  # DVC's cache names files by their hash
    saving.save_model(conv_base(), folder / "base.keras")
    cached.parent.mkdir(parents=True)
    (folder / "base.keras").rename(cached)
    (stage_dir / "bases" / "base.keras").symlink_to(cached)
    set_base(stage_dir, name="bases/base.keras")
    load_base.main()
    assert (stage_dir / "models/base.keras").is_file()


# --- 3-4: where the base is cut ------------------------------------------------------------------------------


def transfer_model() -> keras.Model:
    """A model as the pipeline trains it: pixels, the caffe preprocessing (a fixed 1x1 Conv2D), the base, the head."""
    keras.utils.set_random_seed(0)
    head = architecture.dense_classifier((12, 12, 4), load_params(ROOT / "params.yaml").head, 2)
    return architecture.with_classifier(conv_base(), head, SIZE, "vgg16")


def rescaling_model() -> keras.Model:
    pixels = keras.Input((SIZE, SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="scale")(pixels)
    x = keras.layers.Conv2D(2, 3, name="conv")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    return keras.Model(pixels, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))


@pytest.mark.parametrize(
    "model, layer, allowed",
    [
        (transfer_model, "preprocessing", "tiny_base"),
        (rescaling_model, "scale", "conv, pool"),
        (rescaling_model, "pixels", "conv, pool"),
    ],
)
def test_an_output_layer_before_any_convolution_is_refused(stage_dir, model, layer, allowed):
    saving.save_model(model(), stage_dir / "bases/model.keras")
    set_base(stage_dir, name="bases/model.keras", output_layer=layer)
    message = load_base_error(stage_dir)
    assert message.startswith(f"base.output_layer {layer!r} of base.name 'bases/model.keras' comes before any ")
    assert message.endswith(f"is still pixels, not a feature map; name one of {allowed}, or use null")


@pytest.mark.parametrize("convolution", [keras.layers.Conv2D, keras.layers.Conv2DTranspose])
def test_a_base_ending_in_a_convolution_is_accepted(stage_dir, capsys, convolution):
    pixels = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(pixels)
    saving.save_model(keras.Model(pixels, convolution(4, 3, name="last_conv")(x)), stage_dir / "bases/base.keras")
    set_base(stage_dir, name="bases/base.keras")
    load_base.main()
    out = capsys.readouterr().out
    assert "fine_tune will unfreeze from 'last_conv', the base's last convolutional layer" in out
    assert keras.models.load_model(stage_dir / "models/base.keras").output_shape == (None, None, None, 4)

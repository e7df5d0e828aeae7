"""`classifier own` (`make own`): a folder of real photos (a few of ../shared's flowers, a folder per class) and a base
file, trained and evaluated as a DVC experiment in the workspace, with the models in models/, the
skipped ones left out, the results table and the next commands; bad inputs refused before anything runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from classifier.core.paths import MODEL_STAGES
from classifier.models.downloads import WEIGHTS_HOST, reachable
from tests.support.commands import users_environment
from tests.support.paths import FLOWERS, ROOT, copy_of, needs
from tools.scratch_repo import make_repo

pytestmark = pytest.mark.e2e

CLASSES = ("daisy", "roses", "tulips")
PER_CLASS = 10
# Over the book's settings, shaped as recipes/laptop.yaml is, small and fast: the scratch convnets and
# the frozen pass skipped, the head trained on 2 cached views, fine-tuning starting from it.
TINY_RECIPE = {
    "models": {"scratch": False, "scratch_augmented": False, "frozen_augmented": False},
    "data": {"image_size": 48, "split": {"train": 0.6, "validation": 0.2, "test": 0.2}},
    "base": {"fine_tune_from": None},
    "head": {"pooling": "average", "dense_units": 16},
    "optimizer": {"name": "adamw", "weight_decay": 0.01, "schedule": "cosine", "warmup_epochs": 1},
    "extract_features": {"views": 2},
    "train_classifier": {"epochs": 2, "patience": 1, "batch_size": 8},
    "fine_tune": {"start_from": "feature_extraction", "epochs": 2, "batch_size": 8},
}


@pytest.fixture(scope="module")
def own_run(tiny_repo, tmp_path_factory):
    needs(FLOWERS)
    photos = tmp_path_factory.mktemp("my_photos")
    for name in CLASSES:
        for path in sorted((FLOWERS / name).iterdir())[:PER_CLASS]:
            copy_of(path, photos / name)
    base = tmp_path_factory.mktemp("base") / "my_base.keras"
    shutil.copy2(tiny_repo.path / "models/scratch.keras", base)  # a trained convnet (48 px) as the base
    repo = make_repo(tmp_path_factory.mktemp("own") / "repo", {("explain", "filter_steps"): 2}, lambda raw: None)
    (repo.path / "recipes/tiny.yaml").write_text(yaml.safe_dump(TINY_RECIPE))
    own = [sys.executable, "-m", "classifier", "own"]  # in the repository: its own package is the one imported
    result = repo.run(*own, str(photos), "--base", str(base), "--recipe", "tiny", check=False)
    return repo, photos, base, result


def test_make_own_passes_data_base_and_recipe_to_the_command():
    make = ["make", "-n", "own", "DATA=my photos", "BASE=b.keras", "RECIPE=tiny"]
    planned = subprocess.run(make, cwd=ROOT, capture_output=True, text=True, env=users_environment()).stdout
    assert (
        "'.venv/bin'/python -m classifier own --base='b.keras' --recipe='tiny' -- 'my photos'" in planned.splitlines()
    )


def test_it_trains_the_chosen_models_in_the_workspace_as_an_experiment(own_run):
    repo, photos, _, result = own_run
    assert result.returncode == 0, result.stderr[-3000:]
    for name in MODEL_STAGES:
        placeholder = (repo.path / f"models/{name}.keras").read_bytes().startswith(b"not trained: ")
        assert placeholder == (name in ("scratch", "scratch_augmented", "frozen_augmented")), name
    results = json.loads((repo.path / "metrics/evaluate.json").read_text())
    assert set(results) == {"feature_extraction", "fine_tuned", "best_model"}
    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())["stages"]["fine_tune"]
    assert "models/feature_extraction.keras" in [dep["path"] for dep in lock["deps"]]  # dvc.yaml's ${...}
    assert "models/frozen_augmented.keras" not in [dep["path"] for dep in lock["deps"]]
    assert json.loads((repo.path / "data/classes.json").read_text()) == list(CLASSES)
    params = yaml.safe_load((repo.path / "params.yaml").read_text())
    assert Path(repo.path, params["data"]["raw_dir"]).resolve() == photos.resolve()
    assert params["base"]["name"] == "bases/my_base.keras" and (repo.path / "bases/my_base.keras.dvc").is_file()
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    experiments = [exp for baseline in shown for exp in baseline.get("experiments") or []]
    assert len(experiments) == 1


def test_it_prints_the_results_the_split_warnings_and_the_next_commands_without_dvc_noise(own_run):
    _, _, _, result = own_run
    assert "| feature_extraction | train_classifier |" in result.stdout and "| scratch |" not in result.stdout
    assert "Best on the validation split: " in result.stdout
    assert "classifier predict path/to/photos" in result.stdout and "make compare" in result.stdout
    assert "split: warning: " in result.stdout + result.stderr  # 2 validation and 2 test images per class
    assert "No file hash info" not in result.stdout + result.stderr
    assert ".keras' is empty" not in result.stderr  # DVC's warning for an empty output: the placeholders are not
    assert "Traceback" not in result.stderr and "retracing" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["no/such/folder"], "own: error: DATA=no/such/folder: not a folder; give the folder of your labelled photos"),
        (["PHOTOS", "--base", "nope.keras"], "own: error: BASE=nope.keras: not a .keras file"),
        (["PHOTOS", "--recipe", "lapto"], "own: error: no recipe 'lapto' in recipes/: choose one of"),
        (["PHOTOS", "--recipe", "laptop"], "own: error: base.weights: imagenet, but the ImageNet"),  # offline
        (
            ["PHOTOS", "--recipe", "flowers"],  # a recipe naming a base file, no BASE=
            "own: error: recipes/flowers.yaml names the base file bases/efficientnet_lite0_notop.keras, which is "
            "not there: give it with BASE=path/to/efficientnet_lite0_notop.keras",
        ),
    ],
)
def test_a_bad_input_is_one_line_before_anything_runs(own_run, arguments, message):
    repo, photos, _, _ = own_run
    if "laptop" in arguments and reachable(WEIGHTS_HOST):
        pytest.skip("online: the ImageNet weights can be downloaded here")
    params = (repo.path / "params.yaml").read_bytes()
    arguments = [str(photos) if argument == "PHOTOS" else argument for argument in arguments]
    refused = repo.run(sys.executable, "-m", "classifier", "own", *arguments, check=False)
    assert refused.returncode == 1 and refused.stderr.strip().startswith(message), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Running stage" not in refused.stdout
    assert (repo.path / "params.yaml").read_bytes() == params


def test_the_plots_page_loads_every_plot_of_a_run_that_skipped_models(own_run):
    repo, _, _, _ = own_run
    shown = repo.dvc("plots", "show", "-o", "plots_page")
    assert "failed to load" not in shown.stdout + shown.stderr  # the skipped models' files are header only
    assert (repo.path / "plots_page/index.html").is_file()

"""End to end: a network trained on one task becomes the base of the next (the CIFAR notebooks'
superclass-to-subclass experiment, tiny): task A trains the small convnet on animal vs. vehicle
(`data.class_groups`), its file goes into bases/ with `dvc add`, and task B (the ten classes)
builds its transfer models on A's convolutional part. A new version of the file reruns load_base."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from classifier.models.graph import nested_base
from classifier.models.saving import load_model, saved_class_names
from tests.support.paths import CIFAR10, needs
from tests.support.repos import CIFAR10_CLASSES, CIFAR_PARAMS, copy_cifar
from tools.scratch_repo import make_repo, set_params

pytestmark = pytest.mark.e2e

SUPERCLASSES = {
    "animal": ["bird", "cat", "deer", "dog", "frog", "horse"],
    "vehicle": ["airplane", "automobile", "ship", "truck"],
}


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory):
    """(repo, dvc repro output of task B) after task A trained and its model became B's base."""
    needs(CIFAR10 / "train/cat/0000.jpg")
    repo = make_repo(
        tmp_path_factory.mktemp("two_tasks"), {**CIFAR_PARAMS, ("data", "class_groups"): SUPERCLASSES}, copy_cifar
    )
    assert "train_scratch" in repo.repro("train_scratch")  # task A: only what its model needs
    assert saved_class_names(repo.path / "models/scratch.keras") == ["animal", "vehicle"]
    shutil.copy2(repo.path / "models/scratch.keras", repo.path / "bases/task_a.keras")
    repo.dvc("add", "bases/task_a.keras")
    set_params(
        repo.path,
        {
            ("data", "class_groups"): None,
            ("base", "name"): "bases/task_a.keras",
            ("base", "weights"): None,
            ("base", "fine_tune_from"): None,
        },
    )
    repo.commit("task A's network as task B's base")
    output = repo.dvc("repro", "fine_tune").stdout
    repo.commit("task B")
    return repo, output


def test_task_b_fine_tunes_task_a_network_on_ten_classes(two_tasks):
    repo, output = two_tasks
    assert "feature map (2, 2, 128) from the output of its layer 'max_pooling2d_3', its weights" in output
    assert "fine_tune will unfreeze from 'conv2d_3', the base's last convolutional layer" in output
    assert "fine_tune: unfreezing from 'conv2d_3'" in output
    base, task_a = load_model(repo.path / "models/base.keras"), load_model(repo.path / "bases/task_a.keras")
    assert base.output_shape == (None, 2, 2, 128)
    tuned = load_model(repo.path / "models/fine_tuned.keras")
    tuned_base = nested_base(tuned)
    for layer in ("conv2d", "conv2d_1", "conv2d_2"):  # frozen in both of task B's stages: still task A's weights
        assert all(
            np.array_equal(a, b)
            for a, b in zip(tuned_base.get_layer(layer).get_weights(), task_a.get_layer(layer).get_weights())
        )
    assert not np.array_equal(
        tuned_base.get_layer("conv2d_3").get_weights()[0], task_a.get_layer("conv2d_3").get_weights()[0]
    )
    assert saved_class_names(repo.path / "models/fine_tuned.keras") == CIFAR10_CLASSES
    assert tuned.output_shape == (None, 10)


def test_a_new_version_of_the_base_file_reruns_load_base_without_force(two_tasks):
    repo, _ = two_tasks
    assert "load_base" not in repo.dvc("status", "load_base").stdout  # up to date
    task_a = keras.models.load_model(repo.path / "bases/task_a.keras")
    task_a.get_layer("conv2d").set_weights([w * 0.5 for w in task_a.get_layer("conv2d").get_weights()])
    (repo.path / "bases/task_a.keras").unlink()  # dvc add linked it from the cache: write a new file
    task_a.save(repo.path / "bases/task_a.keras")
    repo.dvc("add", "bases/task_a.keras")
    status = repo.dvc("status", "load_base").stdout
    assert "load_base:" in status and "modified:" in status and "bases" in status
    assert repo.repro("load_base") == ["load_base"]
    rebuilt = load_model(repo.path / "models/base.keras")
    np.testing.assert_allclose(
        rebuilt.get_layer("conv2d").get_weights()[0], task_a.get_layer("conv2d").get_weights()[0]
    )

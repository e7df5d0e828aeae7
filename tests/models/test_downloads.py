"""classifier/models/downloads.py: ImageNet weights offline are named before any stage runs."""

from __future__ import annotations

import socket

import pytest

from classifier.core.schema import BaseParams
from classifier.models.downloads import imagenet_weights_problem

VGG16 = BaseParams(name="vgg16", weights="imagenet", output_layer=None, fine_tune_from=None, preprocessing="native")


@pytest.fixture
def closed_port():
    """A local port nobody listens on: connecting to it fails at once, as offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return "127.0.0.1", probe.getsockname()[1]


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "models"


def test_imagenet_weights_neither_cached_nor_reachable_get_one_line(empty_cache, closed_port):
    problem = imagenet_weights_problem(VGG16, closed_port)
    assert problem.startswith(
        f"base.weights: imagenet, but the ImageNet weights of vgg16 are not in {empty_cache}/ and 127.0.0.1 "
        "cannot be reached (offline?): give a base file (`make own BASE=path/to/base.keras`"
    )
    assert "\n" not in problem


def test_cached_weights_need_no_network(empty_cache, closed_port):
    empty_cache.mkdir(parents=True)
    (empty_cache / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"")
    assert imagenet_weights_problem(VGG16, closed_port) is None
    mobilenet = VGG16.model_copy(update={"name": "mobilenet_v2"})
    assert imagenet_weights_problem(mobilenet, closed_port) is not None, "vgg16's file is not mobilenet_v2's"
    (empty_cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5").write_bytes(b"")
    assert imagenet_weights_problem(mobilenet, closed_port) is None


def test_a_reachable_host_means_keras_can_download(empty_cache):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert imagenet_weights_problem(VGG16, server.getsockname()) is None


@pytest.mark.parametrize("change", [{"weights": None}, {"name": "bases/base.keras", "weights": None}])
def test_other_weights_are_not_asked_about(empty_cache, closed_port, change):
    assert imagenet_weights_problem(VGG16.model_copy(update=change), closed_port) is None

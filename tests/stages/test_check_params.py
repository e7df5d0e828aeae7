"""Stage check_params (stages/check_params.py): all of params.yaml checked in the first stage, including
what the environment cannot give: a Keras backend that is not installed, ImageNet weights offline."""

from __future__ import annotations

import importlib.util

import pytest

from classifier.core.errors import ParamsError
from classifier.models import downloads
from stages import check_params
from tests.support.params import write_params
from tests.support.stages import stage_error


def test_check_params_says_when_the_backend_is_not_installed(tmp_path, monkeypatch):
    write_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "torch" else find_spec(name, *args)
    )
    with pytest.raises(ParamsError) as info:
        check_params.main()
    assert str(info.value) == (
        "KERAS_BACKEND=torch, but torch is not installed here: pip install -r requirements-torch.txt, "
        "or run with KERAS_BACKEND=tensorflow"
    )


def test_valid_params_are_said_valid_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    write_params(tmp_path, {"base.weights": None})
    monkeypatch.chdir(tmp_path)
    check_params.main()
    assert capsys.readouterr().out == "check_params: params.yaml is valid\n"
    assert [path.name for path in tmp_path.iterdir()] == ["params.yaml"]


def test_imagenet_weights_that_cannot_be_had_offline_stop_the_first_stage(tmp_path, monkeypatch):
    write_params(tmp_path, {"base.name": "vgg16", "base.weights": "imagenet"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(downloads, "cached_weights", lambda name: False)
    monkeypatch.setattr(downloads, "reachable", lambda host: False)  # offline
    message = stage_error(check_params.main, "check_params.py")
    assert message.startswith("base.weights: imagenet, but the ImageNet weights of vgg16 are not in ")
    assert message.endswith("or set base.weights: null to train on random weights")

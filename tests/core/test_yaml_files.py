"""classifier/core/yaml_files.py: what aliases expand to, and how deep a file nests (the bombs refused:
tests/hostile/test_recipes_and_yaml.py)."""

from __future__ import annotations

import pytest

from classifier.core.errors import ParamsError
from tests.support.paths import ROOT


def test_aliases_are_counted_as_what_they_expand_to_each_node_sized_once(tmp_path, monkeypatch):
    import classifier.core.yaml_files as yaml_files

    path = tmp_path / "params.yaml"
    path.write_text("a: &a [1, 2, 3]\nb: [*a, *a]\n")  # 1 + (1 + 4) + (1 + 1 + 2 * 4) = 16 values, keys included
    monkeypatch.setattr(yaml_files, "MAX_YAML_NODES", 16)
    assert yaml_files.read_yaml(path) == {"a": [1, 2, 3], "b": [[1, 2, 3], [1, 2, 3]]}
    monkeypatch.setattr(yaml_files, "MAX_YAML_NODES", 15)
    with pytest.raises(ParamsError, match=r"^params.yaml holds over 15 values once its aliases \(&name, \*name\)"):
        yaml_files.read_yaml(path, "params.yaml")


def test_flow_depth_leaves_out_brackets_in_quotes_and_comments():
    from classifier.core.yaml_files import flow_depth

    assert flow_depth('a: [[1], {b: [2]}]  # [[[[[[\nc: \'[[[\'\nd: "[[[\\"[["\ne: x#[[\n') == 3
    assert flow_depth((ROOT / "params.yaml").read_text()) == 1

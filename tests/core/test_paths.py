"""classifier/core/paths.py: where a model and a training stage's metrics lie, and DVC's caches found from
DVC's config files read as text (a link into a cache is read as DVC's own: bases/, the raw data)."""

from __future__ import annotations

from pathlib import Path

from classifier.core import paths


def test_a_model_and_its_stage_s_metrics_have_one_place_each():
    assert paths.model_path("fine_tuned") == Path("models/fine_tuned.keras")
    assert paths.model_path(paths.BEST) == Path("models/best.keras")
    assert paths.training_summary("fine_tune") == Path("metrics/fine_tune/metrics.json")
    assert paths.training_summary("fine_tune").parent == paths.stage_metrics_dir("fine_tune")
    assert paths.training_summary(paths.MODEL_STAGES["fine_tuned"]) == paths.training_summary("fine_tune")


def test_a_config_value_is_read_as_dvc_writes_it(tmp_path):
    config = tmp_path / "config"
    config.write_text(
        "[core]\n"
        "    remote = storage\n"
        "    dir = not/the/cache\n"
        "['remote \"storage\"']\n"
        "    url = /mnt/remote\n"
        "[cache]\n"
        "    # dir = commented/out\n"
        "    type = symlink\n"
        "    dir = '/mnt/big disk/cache'\n"
    )
    assert paths.config_value(config, "cache", "dir") == "/mnt/big disk/cache"
    assert paths.config_value(config, "cache", "type") == "symlink"
    assert paths.config_value(config, "cache", "shared") is None
    assert paths.config_value(tmp_path / "absent", "cache", "dir") is None


def test_the_caches_are_the_project_s_own_and_each_configured_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    (tmp_path / "user/dvc").mkdir(parents=True)
    (tmp_path / "user/dvc/config").write_text("[cache]\n    dir = /srv/user_cache\n")
    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    (project / ".dvc/config").write_text("[cache]\n    dir = ../../shared_cache\n")  # relative to .dvc/
    (project / ".dvc/config.local").write_text("[cache]\n    dir = /srv/local_cache\n")
    (project / "data/raw").mkdir(parents=True)
    found = paths.dvc_cache_dirs(project / "data/raw")  # from inside the project: its .dvc is above
    assert found[0] == (project / ".dvc/cache").resolve()
    assert found[-3:] == [Path("/srv/user_cache"), (tmp_path / "shared_cache").resolve(), Path("/srv/local_cache")]


def test_outside_a_project_only_the_user_s_and_the_system_s_caches_count(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    assert not any(tmp_path in cache.parents for cache in paths.dvc_cache_dirs(tmp_path))

"""tools/scratch_repo.py: the scratch git + DVC repositories that the end-to-end tests and the benchmark's
dvc row run `dvc repro` in."""

from __future__ import annotations

import yaml

from tools.scratch_repo import make_repo


def test_the_shared_builder_makes_a_git_repo_with_data_raw_tracked_by_dvc(tmp_path):
    def fill_raw(raw):
        for label in ("cat", "dog"):
            (raw / f"{label}.0.jpg").write_bytes(label.encode())

    repo = make_repo(tmp_path / "repo", {("data", "image_size"): 48}, fill_raw)
    assert repo.run("git", "status", "--porcelain").stdout == ""
    tracked = repo.run("git", "ls-files").stdout.split()
    assert "data/raw.dvc" in tracked and not [name for name in tracked if name.startswith("data/raw/")]
    (out,) = yaml.safe_load((repo.path / "data/raw.dvc").read_text())["outs"]
    assert out["path"] == "raw" and out["nfiles"] == 2  # the images are DVC's, not git's
    assert "image_size: 48" in (repo.path / "params.yaml").read_text()

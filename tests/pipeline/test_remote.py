"""DVC remotes: push, a fresh clone, pull, and nothing reruns; raw data tracked with `dvc add`."""
from __future__ import annotations

import pytest

from tests.conftest import ran_stages, sh

pytestmark = pytest.mark.pipeline


def test_push_clone_pull_reruns_nothing_with_raw_data_under_dvc(repo_copy, tmp_path):
    repo, remote, clone = repo_copy, tmp_path / "remote", tmp_path / "clone"
    # Raw data moves from git to DVC (as large raw sets should): the pipeline sees the same bytes.
    sh(repo, "git", "rm", "-r", "-q", "--cached", "data/raw")
    sh(repo, "dvc", "add", "-q", "data/raw")
    sh(repo, "dvc", "remote", "add", "-d", "storage", str(remote))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "raw data under dvc; a remote")
    assert ran_stages(sh(repo, "dvc", "repro").stdout) == []
    sh(repo, "dvc", "push")
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "data" / "raw").exists() and not (clone / "data" / "curate" / "curated.parquet").exists()
    sh(clone, "dvc", "pull")
    assert sorted(p.name for p in (clone / "data" / "raw").iterdir()) == sorted(
        p.name for p in (repo / "data" / "raw").iterdir())
    assert "up to date" in sh(clone, "dvc", "status").stdout
    assert ran_stages(sh(clone, "dvc", "repro").stdout) == []
    assert (clone / "data" / "report" / "model_card.md").read_bytes() == (
        repo / "data" / "report" / "model_card.md").read_bytes()

"""Reading artifacts at a git revision through DVC (real git, real dvc, real cache)."""
from __future__ import annotations

import shutil

import polars as pl
import pytest

from tunebuild import revs
from tunebuild.errors import UserError
from tests.conftest import sh


@pytest.fixture
def two_revs(tmp_path):
    sh(tmp_path, "git", "init", "-q", "-b", "main")
    sh(tmp_path, "dvc", "init", "-q")
    (tmp_path / "data").mkdir()
    for n in (2, 3):
        pl.DataFrame({"a": list(range(n))}).write_parquet(tmp_path / "data/a.parquet")
        sh(tmp_path, "dvc", "add", "-q", "data/a.parquet")
        sh(tmp_path, "git", "add", "-A")
        sh(tmp_path, "git", "commit", "-qm", f"{n} rows")
    return tmp_path


def test_reads_each_revision_and_the_workspace(two_revs):
    assert revs.read_parquet("data/a.parquet", "HEAD~1", two_revs).height == 2
    assert revs.read_parquet("data/a.parquet", "HEAD", two_revs).height == 3
    assert revs.read_parquet("data/a.parquet", None, two_revs).height == 3
    assert revs.resolve("main", two_revs) == sh(two_revs, "git", "rev-parse", "HEAD").stdout.strip()


@pytest.mark.parametrize("path, rev, words", [
    ("data/a.parquet", "no-such-branch", "not a git revision"),
    ("data/b.parquet", "HEAD", "not in git revision"),
    ("data/b.parquet", None, "not found in the workspace"),
])
def test_user_errors(two_revs, path, rev, words):
    with pytest.raises(UserError, match=words):
        revs.read_bytes(path, rev, two_revs)


def test_artifact_not_in_cache(two_revs):
    shutil.rmtree(two_revs / ".dvc" / "cache")
    with pytest.raises(UserError, match="not in the local DVC cache or remote"):
        revs.read_bytes("data/a.parquet", "HEAD~1", two_revs)


def test_history_git_text_and_describe(two_revs):
    shas = sh(two_revs, "git", "log", "--format=%H").stdout.split()
    assert revs.history("data/a.parquet.dvc", None, two_revs) == shas
    assert revs.history("data/a.parquet.dvc", "HEAD~1", two_revs) == shas[1:]
    assert "md5" in revs.git_text("data/a.parquet.dvc", shas[0], two_revs)
    assert revs.git_text("data/nothing.dvc", shas[0], two_revs) is None
    assert revs.describe(None, two_revs) == {"rev": "workspace", "commit": shas[0], "uncommitted_changes": False}
    (two_revs / "data/a.parquet.dvc").write_text("changed\n")
    assert revs.describe(None, two_revs)["uncommitted_changes"] is True
    assert revs.describe("HEAD~1", two_revs)["commit"] == shas[1]


def test_output_of_a_stage_never_run_is_not_in_the_revision(two_revs):
    (two_revs / "dvc.yaml").write_text("stages:\n  copy:\n    cmd: cp data/a.parquet data/c.parquet\n"
                                       "    deps: [data/a.parquet]\n    outs: [data/c.parquet]\n")
    sh(two_revs, "git", "add", "-A")
    sh(two_revs, "git", "commit", "-qm", "a stage, not run")
    assert revs.exists("data/a.parquet", "HEAD", two_revs) and revs.exists("dvc.yaml", "HEAD", two_revs)
    assert not revs.exists("data/c.parquet", "HEAD", two_revs) and not revs.exists("data/c.parquet", None, two_revs)
    with pytest.raises(UserError, match="not in git revision 'HEAD'"):
        revs.read_bytes("data/c.parquet", "HEAD", two_revs)

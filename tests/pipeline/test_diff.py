"""`tunebuild diff` on a real two-commit repo: rows added, removed, relabelled and a curate rule tightened."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml

from tunebuild.diff import diff
from tunebuild.records import record_id
from tests.browser import DIFF_SECTIONS, assert_clean, look, shot_path
from tests.conftest import ENV, ROOT, make_repo, sh
from tests.pipeline.test_pipeline import set_param

pytestmark = pytest.mark.pipeline
MIN_WORDS = 6
Q1, Q2 = "data/raw/helpdesk/tickets-2026-q1.jsonl", "data/raw/helpdesk/tickets-2026-q2.jsonl"
NEW = ["Please add a dark mode to the mobile dashboard for night shifts",
       "The export button crashes the desktop app when the report has charts"]


def words(text: str) -> int:
    return len(text.split())


def commit_data(repo: Path, message: str) -> None:
    sh(repo, "dvc", "repro", "tokenize")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", message)


@pytest.fixture(scope="module")
def revisions(tmp_path_factory) -> tuple[Path, dict]:
    """HEAD~1: the tiny project's data stages. HEAD: the last two q2 tickets removed, two q1 tickets relabelled,
    two tickets added (end of q1), curate.min_words raised to MIN_WORDS. HEAD~2: no pipeline outputs at all."""
    repo = make_repo(tmp_path_factory.mktemp("diff") / "repo")
    commit_data(repo, "base data")
    curated = pl.read_parquet(repo / "data/curate/curated.parquet")
    alive = dict(zip(curated["record_id"], curated["text"]))
    q1 = [json.loads(line) for line in (repo / Q1).read_text().splitlines()]
    q2 = (repo / Q2).read_text().splitlines()
    removed = [record_id(json.loads(line)["text"]) for line in q2[-2:]]
    relabel = [row for row in q1 if record_id(row["text"]) in alive and words(row["text"]) >= MIN_WORDS][:2]
    assert len(relabel) == 2 and all(r in alive and words(alive[r]) >= MIN_WORDS for r in removed)
    for row in relabel:
        row["label"] = "billing" if row["label"] != "billing" else "refund"
    q1 += [{"id": f"HD-NEW-{i}", "text": t, "label": "feature_request", "created": "2026-03-01"} for i, t in enumerate(NEW)]
    (repo / Q1).write_text("".join(json.dumps(row) + "\n" for row in q1))
    (repo / Q2).write_text("".join(line + "\n" for line in q2[:-2]))
    set_param(repo, "config.yaml", "curate.min_words", MIN_WORDS)
    commit_data(repo, "head data")
    short = sorted(r for r, t in alive.items() if words(t) < MIN_WORDS)
    return repo, {"added": sorted(record_id(t) for t in NEW), "removed": sorted(removed), "short": short,
                  "relabelled": sorted(record_id(r["text"]) for r in relabel)}


def test_counts_are_exact(revisions):
    repo, want = revisions
    r = diff("HEAD~1", "HEAD", "curate", repo, examples=50)
    assert want["short"], "the tightened rule must reject something in the tiny set"
    assert r["rows"]["added"] == 2 and r["rows"]["changed"] == 2 and r["rows"]["moved"] == 0
    assert r["rows"]["removed"] == len(want["removed"]) + len(want["short"])
    assert [x["record_id"] for x in r["examples"]["added"]] == want["added"]
    assert sorted(x["record_id"] for x in r["examples"]["removed"]) == sorted(want["removed"] + want["short"])
    assert r["fields"] == {"label": 2}
    assert [x["record_id"] for x in r["examples"]["changed"]] == want["relabelled"]
    transitions = {(t["from"], t["to"]): (t["rows"], t["raw_changed"]) for t in r["curate"]["transitions"]}
    assert transitions[("absent", "curated")] == (2, 0)
    assert transitions[("curated", "absent")] == (2, 0)
    assert transitions[("curated", "too_few_words")] == (len(want["short"]), 0)  # the rule moved them, not the data
    assert (r["curate"]["newly_rejected"], r["curate"]["newly_admitted"]) == (len(want["short"]), 0)
    head_curated = pl.read_parquet(repo / "data/curate/curated.parquet")
    head_rejected = pl.read_parquet(repo / "data/curate/rejected.parquet")
    assert {x["value"]: x["head"] for x in r["counts"]["label"] if x["head"]} == dict(
        head_curated.group_by("label").len().iter_rows())
    moved = {x["rule"]: x for x in r["rejections"]}
    assert moved["too_few_words"]["head"] == head_rejected.filter(pl.col("rule") == "too_few_words").height
    assert moved["too_few_words"]["delta"] >= len(want["short"])
    assert r["rerun"]["stages"] == ["ingest", "curate", "split", "tokenize"]
    assert "param curate" in r["rerun"]["reasons"]["curate"] and "dep data/raw" in r["rerun"]["reasons"]["ingest"]
    assert r["tokens"]["train"]["tokens"]["head"] == json.loads((repo / "data/tokenize/stats.json").read_text())[
        "train"]["tokens"]
    assert r["schema"] == {"added": [], "removed": [], "retyped": []}


@pytest.mark.parametrize("stage, fields", [("split", {"label": 2}), ("tokenize", {"label": 2, "label_id": 2})])
def test_split_and_tokenize_datasets(revisions, stage, fields):
    repo, want = revisions
    r = diff("HEAD~1", "HEAD", stage, repo)
    assert (r["rows"]["added"], r["rows"]["changed"]) == (2, 2)
    assert r["rows"]["removed"] == len(want["removed"]) + len(want["short"])
    assert r["fields"] == fields
    assert sum(x["delta"] for x in r["counts"]["split"]) == 2 - r["rows"]["removed"]
    assert r["lengths"]["unit"] == ("tokens" if stage == "tokenize" else "chars")


def test_workspace_is_the_default_head(revisions):
    repo, _ = revisions
    ws, head = diff("HEAD~1", None, "curate", repo), diff("HEAD~1", "HEAD", "curate", repo)
    assert ws["head"] == {"rev": None, "commit": None, "rows": head["head"]["rows"]}
    assert {k: v for k, v in ws.items() if k != "head"} == {k: v for k, v in head.items() if k != "head"}


def test_cli_markdown_and_json(revisions):
    repo, want = revisions
    md = sh(repo, "tunebuild", "diff", "--base", "HEAD~1").stdout
    sha = sh(repo, "git", "rev-parse", "--short=7", "HEAD~1").stdout.strip()
    assert md.startswith(f"### Dataset diff: `curate`, `HEAD~1` ({sha}) → workspace\n\n|  | base | head | Δ |")
    assert "| added |  |  | 2 |" in md and "| changed |  |  | 2 (label 2) |" in md
    assert f"<summary>Curate effect: {len(want['short'])} newly rejected, 0 newly admitted</summary>" in md
    assert "**Stages that would rerun:** `ingest` (dep data/raw" in md
    data = json.loads(sh(repo, "tunebuild", "diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "json").stdout)
    assert data["rows"]["added"] == 2 and data["head"]["rev"] == "HEAD" and data["version"] == 1


def test_diff_page_in_a_browser(revisions, tmp_path):
    """`--format html`: one offline page whose counts are the JSON report's."""
    repo, want = revisions
    page = tmp_path / "diff.html"
    page.write_text(sh(repo, "tunebuild", "diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "html").stdout)
    found = look(page, shot_path(tmp_path, "diff"))
    assert_clean(found, DIFF_SECTIONS)
    data = json.loads(sh(repo, "tunebuild", "diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "json").stdout)
    for change in ("added", "removed", "changed", "moved", "unchanged"):
        assert f"{data['rows'][change]}\n{change}" in found["text"]  # the tiles
    assert f"{len(want['short'])} newly rejected" in found["text"]
    assert all(rid in found["text"] for rid in want["added"])  # the examples


@pytest.mark.parametrize("args, words", [
    (["--base", "no-such-branch"], "'no-such-branch': not a git revision"),
    (["--base", "HEAD~2"], "data/curate/curated.parquet: not in git revision 'HEAD~2'"),
    (["--base", "HEAD~1", "--stage", "train"], "--stage 'train': no dataset to diff for that stage; choose one of"),
])
def test_user_errors_are_one_line(revisions, args, words):
    repo, _ = revisions
    proc = sh(repo, "tunebuild", "diff", *args, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_not_pulled_is_one_line(revisions, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(revisions[0], repo, symlinks=True)
    shutil.rmtree(repo / ".dvc" / "cache")
    proc = sh(repo, "tunebuild", "diff", "--base", "HEAD~1", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not in the local DVC cache or remote" in proc.stderr and "dvc pull" in proc.stderr


WORKFLOW = ROOT / ".github/workflows/dataset-diff.yml"


def step(name: str) -> str:
    """The `run:` script of a step of the dataset-diff workflow."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["diff"]["steps"]
    return next(s["run"] for s in steps if s.get("name") == name)


def test_workflow_passes_the_linters():
    sh(ROOT, "check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))
    sh(ROOT, "zizmor", "--offline", "--persona", "pedantic", str(WORKFLOW))


def test_workflow_steps_on_a_fresh_clone_without_a_remote(revisions, tmp_path):
    """The workflow's own shell steps, as a runner runs them: no cache, no remote, so both revisions are rebuilt."""
    repo, want = revisions
    clone, runner = tmp_path / "clone", tmp_path / "runner"
    runner.mkdir()
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    env = {**ENV, "BASE_SHA": sh(repo, "git", "rev-parse", "HEAD~1").stdout.strip(), "RUNNER_TEMP": str(runner),
           "GITHUB_ENV": str(runner / "env"), "GITHUB_WORKSPACE": str(clone), "GITHUB_STEP_SUMMARY": str(runner / "summary")}
    for name in ("Get the data of both revisions", "Diff"):
        proc = subprocess.run(["bash", "-c", step(name)], cwd=clone, env=env, capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        env |= dict(line.split("=", 1) for line in (runner / "env").read_text().splitlines())
    assert env["BASE"] == env["BASE_SHA"]
    md = (runner / "diff.md").read_text()
    assert md == (runner / "summary").read_text() and "| added |  |  | 2 |" in md
    report = json.loads((runner / "diff.json").read_text())
    assert report["rows"]["removed"] == len(want["removed"]) + len(want["short"])
    assert report["curate"]["newly_rejected"] == len(want["short"])
    assert (runner / "diff.html").read_text().startswith("<!DOCTYPE html>")

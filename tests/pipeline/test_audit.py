"""tunebuild audit / trace / forget on a real (tiny) pipeline: real dvc repro, git, parquet files."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from tunebuild.records import record_id
from tests.conftest import ran_stages, sh

pytestmark = pytest.mark.pipeline
SPLITS = ("train", "validation", "test")


def audit(repo: Path, *args: str, rc: int = 0) -> dict:
    proc = sh(repo, "tunebuild", "audit", "--format", "json", *args, check=False)
    assert proc.returncode == rc, proc.stderr
    return json.loads(proc.stdout)


def kinds(report: dict) -> set[str]:
    return {f["kind"] for f in report["findings"]}


def edit_params(repo: Path, **changes) -> None:
    """Set dotted keys in params.yaml (as `dvc exp run -S` would), without recomposing."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = params
        for k in parents:
            node = node[k]
        node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def one_error_line(proc) -> str:
    """A user error: exit code 2, one line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_audit_counts_equal_counts_from_the_parquet_files(built_repo):
    report = audit(built_repo, "--strict")
    data = built_repo / "data"
    rejected = pl.read_parquet(data / "curate/rejected.parquet")
    quarantine = pl.read_parquet(data / "ingest/quarantine.parquet")
    splits = {n: pl.read_parquet(data / f"split/{n}.parquet") for n in SPLITS}

    assert report["findings"] == [] and report["status"] == {"checked": True, "stale": {}, "lock": []}
    assert report["rejected"]["total"] == rejected.height
    assert {(x["rule"], x["source"]): x["rows"] for x in report["rejected"]["by_rule_and_source"]} == {
        (rule, src): n for rule, src, n in rejected.group_by("rule", "source").len().iter_rows()}
    assert report["quarantine"]["total"] == quarantine.height
    for n in SPLITS:
        assert report["splits"][n]["rows"] == splits[n].height
        assert report["splits"][n]["sha256"] == hashlib.sha256((data / f"split/{n}.parquet").read_bytes()).hexdigest()
        for s in report["sources"]:
            assert s[n] == splits[n].filter((pl.col("source") == s["source"]) & (pl.col("license") == s["license"])).height
    assert sum(s[n] for s in report["sources"] for n in SPLITS) == sum(df.height for df in splits.values())
    allowlist = yaml.safe_load((built_repo / "params.yaml").read_text())["curate"]["license_allowlist"]
    assert all(s["allowed"] == (s["license"] in allowlist) for s in report["sources"])
    # PII and duplicates: the curate stage counted them its own way in stats.json
    stats = json.loads((data / "curate/stats.json").read_text())
    for kind, v in stats["pii"].items():
        assert {k: report["pii"][kind][k] for k in ("found", "redacted", "rejected")} == v
    assert report["duplicates"] == {r: stats["rejected_by_rule"][r] for r in ("duplicate", "near_duplicate", "label_conflict")}
    assert report["metrics"] == json.loads((data / "evaluate/metrics.json").read_text())
    assert report["leakage"]["near_duplicates"] == json.loads((data / "split/leakage.json").read_text())["count"]
    lock = yaml.safe_load((built_repo / "dvc.lock").read_text())["stages"]
    assert report["built_by"]["train"]["code"]["stages/train.py"] == next(
        d["md5"] for d in lock["train"]["deps"] if d["path"] == "stages/train.py")
    assert report["built_by"]["curate"]["params"]["curate"]["license_allowlist"] == allowlist

    md = sh(built_repo, "tunebuild", "audit").stdout
    for heading in ("Sources and licenses", "Quarantine and rejections", "PII", "Duplicates removed", "Splits",
                    "Leakage", "Built by", "Model", "Forget list", "Status"):
        assert f"## {heading}" in md
    assert "**No findings.**" in md and "`dvc status`: clean." in md


def test_trace_kept_and_rejected_records(built_repo):
    train = pl.read_parquet(built_repo / "data/split/train.parquet")
    kept = train["record_id"][0]
    out = sh(built_repo, "tunebuild", "trace", kept).stdout
    row = train.row(0, named=True)
    assert f"from {row['source']} {row['file']}:{row['line']} license {row['license']}: kept" in out
    assert "split: train; tokenized: data/tokenize/train.parquet" in out and "trained on by: the full model" in out
    rejected = pl.read_parquet(built_repo / "data/curate/rejected.parquet").row(0, named=True)
    out = sh(built_repo, "tunebuild", "trace", rejected["record_id"]).stdout
    assert f"rejected: {rejected['rule']} ({rejected['reason']})" in out and "split: none" in out
    assert "trained on by: no model" in out
    redacted = pl.read_parquet(built_repo / "data/curate/curated.parquet").filter(pl.col("pii").list.len() > 0)
    if redacted.height:
        out = sh(built_repo, "tunebuild", "trace", redacted["record_id"][0]).stdout
        assert f"PII redacted before training: {', '.join(sorted(redacted['pii'][0]))}" in out


@pytest.mark.parametrize("args, words", [
    (["trace", "0123456789abcdef"], "record 0123456789abcdef: not in data/ingest/records.parquet"),
    (["trace", "not-an-id"], "'not-an-id' is not a record id"),
    (["trace", "--text", "no such ticket text anywhere"], "not in data/ingest/records.parquet"),
    (["audit", "--rev", "no-such-branch"], "'no-such-branch': not a git revision"),
    (["forget", "0123456789abcdef"], "record 0123456789abcdef: not in data/ingest/records.parquet"),
    (["forget"], "nothing to forget"),
])
def test_user_errors_are_one_line(built_repo, args, words):
    assert words in one_error_line(sh(built_repo, "tunebuild", *args, check=False))


def test_missing_artifacts_give_one_clear_message(repo_copy):
    sh(repo_copy, "git", "add", "-A")
    sh(repo_copy, "git", "commit", "-qm", "built")
    shutil.rmtree(repo_copy / ".dvc" / "cache")  # as if never pulled
    line = one_error_line(sh(repo_copy, "tunebuild", "audit", "--rev", "HEAD", check=False))
    assert "not in the local DVC cache or remote" in line and "dvc pull" in line
    (repo_copy / "data/split/train.parquet").unlink()
    line = one_error_line(sh(repo_copy, "tunebuild", "audit", check=False))
    assert "data/split/train.parquet: not found in the workspace" in line


def test_strict_flags_stale_outputs_and_a_disallowed_license(repo_copy):
    report = audit(repo_copy)
    licenses = {s["license"] for s in report["sources"] if any(s[n] for n in SPLITS)}
    dropped = min(licenses)
    edit_params(repo_copy, **{"curate.license_allowlist": sorted(licenses - {dropped})})
    report = audit(repo_copy, "--strict", rc=1)
    assert kinds(report) == {"license", "stale"}
    assert any(dropped in f["message"] for f in report["findings"] if f["kind"] == "license")
    assert "curate" in report["status"]["stale"]
    assert audit(repo_copy)["findings"] == report["findings"]  # without --strict: same findings, exit 0


def test_strict_flags_leakage(repo_copy):
    edit_params(repo_copy, **{"split.leakage.threshold": 0.2, "split.leakage.shingle_words": 1,
                              "split.leakage.max_pairs": 100000})
    assert ran_stages(sh(repo_copy, "dvc", "repro", "split").stdout) == ["split"]
    report = audit(repo_copy, "--strict", rc=1)
    leaks = json.loads((repo_copy / "data/split/leakage.json").read_text())["count"]
    assert leaks > 0 and report["leakage"]["near_duplicates"] == leaks
    assert "leakage" in kinds(report)


def test_strict_flags_unredacted_pii(repo_copy):
    curated = pl.read_parquet(repo_copy / "data/curate/curated.parquet")
    kind = curated.filter(pl.col("pii").list.len() > 0)["pii"][0][0]  # a redacted type in the tiny set
    edit_params(repo_copy, **{f"curate.pii.{kind}": "keep"})
    sh(repo_copy, "dvc", "repro", "split")
    assert audit(repo_copy)["pii"][kind]["in_splits"] > 0 and "pii" not in kinds(audit(repo_copy))  # keep: allowed
    edit_params(repo_copy, **{f"curate.pii.{kind}": "redact"})
    report = audit(repo_copy, "--strict", rc=1)
    assert "pii" in kinds(report)


def test_forget_end_to_end_with_trace_across_revisions(repo_copy):
    repo = repo_copy
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "built")
    raw = repo / "data/raw/helpdesk/tickets-2026-q1.jsonl"  # and a malformed line arrives (quarantined)
    raw.write_text(raw.read_text() + '{"text": "my quarantined ticket never closes", "label": \n')
    train = pl.read_parquet(repo / "data/split/train.parquet")
    gone = train.row(0, named=True)
    conf_before = (repo / "conf/data/support_tickets.yaml").read_text()

    told = sh(repo, "tunebuild", "forget", gone["record_id"]).stdout
    assert "dvc repro" in told and f"{gone['file']}:{gone['line']}" in told and "data/ingest/records.parquet" in told
    conf_after = (repo / "conf/data/support_tickets.yaml").read_text()
    changed = [line for line in conf_after.splitlines() if line not in conf_before.splitlines()]
    assert changed == ["  record_ids:", f'    - "{gone["record_id"]}"']  # comments and the rest kept
    assert sh(repo, "tunebuild", "compose", "--check", "--config", "smoke").returncode == 0
    before = audit(repo, "--strict", rc=1)
    assert {"forget", "stale"} <= kinds(before)
    assert set(before["forget"]["downstream"][gone["record_id"]]) >= {
        "data/curate/curated.parquet", "data/split/train.parquet", "data/tokenize/train.parquet",
        "data/report/lineage.json (train)"}

    assert "train" in ran_stages(sh(repo, "dvc", "repro").stdout)
    after = audit(repo, "--strict")
    fg = after["forget"]
    assert after["findings"] == [] and fg["downstream"] == {} and gone["record_id"] in fg["forgotten"]
    assert fg["model"]["without_forgotten"] and f"{gone['file']}:{gone['line']}" in fg["upstream"]
    quarantine = pl.read_parquet(repo / "data/ingest/quarantine.parquet")
    assert after["quarantine"]["total"] == quarantine.height == 1
    assert after["quarantine"]["by_source_and_error"] == [{"source": "helpdesk", "error": "invalid JSON", "rows": 1}]
    md = sh(repo, "tunebuild", "audit").stdout
    assert "Upstream: raw files under data/raw/ and data/ingest/records.parquet still hold the text" in md
    out = sh(repo, "tunebuild", "trace", gone["record_id"]).stdout
    assert "rejected: forget" in out and "forgotten (data.forget)" in out and "trained on by: no model" in out
    out = sh(repo, "tunebuild", "trace", "--text", "My quarantined ticket never closes").stdout
    assert "quarantined: helpdesk data/raw/helpdesk/tickets-2026-q1.jsonl:" in out
    assert record_id("My quarantined ticket never closes") in out

    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "forget one record")
    out = sh(repo, "tunebuild", "trace", gone["record_id"], "--all-revs").stdout
    blocks = out.split("\n== ")[1:]
    assert [b.split()[0] for b in blocks] == ["workspace", *sh(repo, "git", "log", "--format=%H", "--", "dvc.lock").stdout.split()]
    assert "rejected: forget" in blocks[1] and "rejected: forget" not in blocks[2]
    assert ": kept" in blocks[2] and "trained on by: the full model" in blocks[2]
    old = audit(repo, "--rev", "HEAD~1")
    assert old["revision"]["commit"] == sh(repo, "git", "rev-parse", "HEAD~1").stdout.strip()
    assert old["forget"]["forgotten"] == [] and old["status"]["checked"] is False
    assert old["built_by"]["train"]["recorded_in"] == old["revision"]["commit"]

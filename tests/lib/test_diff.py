"""The diff's pure parts on crafted frames (no git, no DVC)."""
from __future__ import annotations

import json

import polars as pl
import pytest

from tunebuild import diff as d
from tunebuild.errors import UserError


def frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"record_id": pl.String, "text": pl.String, "label": pl.String,
                                      "source": pl.String, "file": pl.String, "line": pl.Int64}, orient="row")


BASE = frame([
    ("a", "same text", "billing", "mail", "f", 1),
    ("b", "to be relabelled", "billing", "mail", "f", 2),
    ("c", "to be removed", "refund", "chat", "f", 3),
    ("d", "to be moved", "refund", "chat", "f", 4),
    ("e", "text edited", "refund", "chat", "f", 5),
])
HEAD = frame([
    ("a", "same text", "billing", "mail", "f", 1),
    ("b", "to be relabelled", "refund", "mail", "f", 2),
    ("d", "to be moved", "refund", "chat", "g", 9),
    ("e", "TEXT  edited", "refund", "chat", "f", 5),
    ("f", "a new | row " + "x" * 98, "billing", "chat", "f", 6),
])


def test_rows_fields_and_examples_are_exact():
    r = d.diff_frames(BASE, HEAD)
    assert r["rows"] == {"added": 1, "removed": 1, "changed": 2, "moved": 1, "unchanged": 1}
    assert r["fields"] == {"label": 1, "text": 1}
    assert [x["record_id"] for x in r["examples"]["added"]] == ["f"]
    assert r["examples"]["added"][0]["text"].endswith("…") and len(r["examples"]["added"][0]["text"]) == d.WIDTH
    assert r["examples"]["removed"] == [{"record_id": "c", "text": "to be removed", "label": "refund", "source": "chat"}]
    assert r["examples"]["changed"] == [{"record_id": "b", "changes": {"label": ["billing", "refund"]}},
                                        {"record_id": "e", "changes": {"text": ["text edited", "TEXT edited"]}}]
    assert d.diff_frames(BASE, BASE)["rows"] == {"added": 0, "removed": 0, "changed": 0, "moved": 0, "unchanged": 5}


def test_counts_shares_and_schema():
    r = d.diff_frames(BASE, HEAD.with_columns(pl.col("line").cast(pl.Int32), split=pl.lit("train")))
    assert r["counts"]["label"] == [
        {"value": "billing", "base": 2, "head": 2, "delta": 0, "share_base": 0.4, "share_head": 0.4},
        {"value": "refund", "base": 3, "head": 3, "delta": 0, "share_base": 0.6, "share_head": 0.6}]
    assert [(x["value"], x["delta"]) for x in r["counts"]["source"]] == [("chat", 0), ("mail", 0)]
    assert "split" not in r["counts"]  # only in head: a schema change, not a count
    assert r["schema"] == {"added": [{"column": "split", "dtype": "String"}], "removed": [],
                           "retyped": [{"column": "line", "base": "Int64", "head": "Int32"}]}
    assert r["rows"] == d.diff_frames(BASE, HEAD)["rows"]  # compared on the columns both sides share, as typed


def test_lengths_and_buckets():
    r = d.diff_frames(BASE, HEAD)
    assert r["lengths"]["unit"] == "chars"
    assert r["lengths"]["base"]["max"] == len("to be relabelled") and r["lengths"]["head"]["max"] == 110
    assert [(b["bucket"], b["base"], b["head"]) for b in r["lengths"]["buckets"]] == [("<16", 4, 3), ("16-31", 1, 1),
                                                                                        ("64-127", 0, 1)]
    toks = pl.DataFrame({"record_id": ["a"], "input_ids": [[1] * 40]})
    assert d.diff_frames(toks, toks)["lengths"]["unit"] == "tokens"


def test_concentration_names_the_overrepresented_segment():
    n = 100
    base = pl.DataFrame({"record_id": [f"{i:03}" for i in range(n)], "label": ["a"] * 90 + ["b"] * 10,
                         "text": ["t"] * n})
    head = base.with_columns(text=pl.when(pl.col("label") == "b").then(pl.lit("u")).otherwise(pl.col("text")))
    r = d.diff_frames(base, head)
    assert r["rows"]["changed"] == 10
    assert r["concentration"]["label"] == [{"value": "b", "rows": 10, "affected": 10, "expected": 1.0, "lift": 10.0}]


def test_duplicate_record_ids_and_unknown_stage_are_user_errors():
    with pytest.raises(UserError, match="record_id is not unique"):
        d.diff_frames(pl.concat([BASE, BASE]), HEAD)
    with pytest.raises(UserError, match="choose one of curate, split, tokenize"):
        d.diff("HEAD", None, "train", "/nonexistent")


def curated_rejected(curated: list[tuple], rejected: list[tuple]) -> tuple[pl.DataFrame, pl.DataFrame]:
    cols = {"record_id": pl.String, "text": pl.String, "label": pl.String, "source": pl.String,
            "license": pl.String, "group": pl.String}
    cur = pl.DataFrame([(*r, "CC0-1.0", None) for r in curated], schema=cols, orient="row")
    rej = pl.DataFrame([(*r[:4], "CC0-1.0", None, *r[4:]) for r in rejected],
                       schema=cols | {"rule": pl.String, "reason": pl.String}, orient="row")
    return cur, rej


def test_curate_effect_separates_rule_changes_from_raw_changes():
    base = curated_rejected([("a", "ok", "x", "s"), ("b", "short", "x", "s"), ("c", "relabel me", "x", "s"),
                             ("g", "gone", "x", "s")],
                            [("d", "long one", "x", "s", "too_long", "too long"),
                             ("e", "dup", "x", "s", "duplicate", "dup of 1"), ("e", "dup", "x", "s", "duplicate", "dup of 1")])
    head = curated_rejected([("a", "ok", "x", "s"), ("d", "long one", "x", "s"), ("n", "new", "x", "s")],
                            [("b", "short", "x", "s", "too_short", "3 chars"),
                             ("c", "relabel me", "unknown", "s", "unknown_label", "label 'unknown'"),
                             ("e", "dup", "x", "s", "duplicate", "dup of 1")])
    r = d.curate_effect(*base, *head, examples=5)
    assert r["records"] == {"base": 6, "head": 6}
    assert r["transitions"] == [
        {"from": "absent", "to": "curated", "rows": 1, "raw_changed": 0},
        {"from": "curated", "to": "absent", "rows": 1, "raw_changed": 0},
        {"from": "curated", "to": "too_short", "rows": 1, "raw_changed": 0},
        {"from": "curated", "to": "unknown_label", "rows": 1, "raw_changed": 1},
        {"from": "too_long", "to": "curated", "rows": 1, "raw_changed": 0},
    ]
    assert (r["newly_rejected"], r["newly_admitted"]) == (2, 1)
    assert [(x["record_id"], x["to"], x["reason"]) for x in r["examples"]["newly_rejected"]] == [
        ("b", "too_short", "3 chars"), ("c", "unknown_label", "label 'unknown'")]
    assert r["examples"]["newly_admitted"] == [{"record_id": "d", "text": "long one", "label": "x", "from": "too_long",
                                                "to": "curated", "reason": "too long"}]
    assert d.rejections(base[1], head[1]) == [
        {"rule": "duplicate", "base": 2, "head": 1, "delta": -1}, {"rule": "too_long", "base": 1, "head": 0, "delta": -1},
        {"rule": "too_short", "base": 0, "head": 1, "delta": 1}, {"rule": "unknown_label", "base": 0, "head": 1, "delta": 1}]


def lock(**stages) -> dict:
    return {"schema": "2.0", "stages": stages}


def test_reruns_compare_commands_deps_and_params():
    ingest = {"cmd": "python -m stages.ingest", "deps": [{"path": "data/raw", "md5": "1"}],
              "params": {"params.yaml": {"ingest": {"chunk_rows": 5}}}}
    curate = {"cmd": "python -m stages.curate", "deps": [{"path": "data/ingest/records.parquet", "md5": "2"}],
              "params": {"params.yaml": {"curate": {"min_words": 2}, "data.labels": ["a"]}}}
    split = {"cmd": "python -m stages.split", "deps": [{"path": "data/curate/curated.parquet", "md5": "3"}]}
    base = lock(ingest=ingest, curate=curate, split=split)
    head = lock(ingest=ingest, curate=curate | {"params": {"params.yaml": {"curate": {"min_words": 3}, "data.labels": ["a"]}}},
                split=split | {"deps": [{"path": "data/curate/curated.parquet", "md5": "4"}]},
                train={"cmd": "python -m stages.train"})
    r = d.reruns(base, head)
    assert r["stages"] == ["curate", "split", "train"]
    assert r["reasons"] == {"curate": ["param curate"], "split": ["dep data/curate/curated.parquet"],
                            "train": ["new stage"]}
    assert d.reruns(base, base)["stages"] == []
    assert d.reruns(head, base)["reasons"]["train"] == ["stage removed"]


def test_tokens_from_stats():
    assert d.tokens(None, {"train": {}}) is None
    t = d.tokens({"train": {"rows": 2, "tokens": 20, "truncated": 0}}, {"train": {"rows": 3, "tokens": 31, "truncated": 1}})
    assert t == {"train": {"rows": {"base": 2, "head": 3, "delta": 1}, "tokens": {"base": 20, "head": 31, "delta": 11},
                           "truncated": {"base": 0, "head": 1, "delta": 1}}}


def full_report() -> dict:
    base_cr = curated_rejected([("a", "same text", "billing", "mail")], [])
    head_cr = curated_rejected([("a", "same text", "billing", "mail")], [("z", "new", "x", "s", "too_short", "r")])
    return d.diff_frames(BASE, HEAD) | {
        "version": d.VERSION, "stage": "curate",
        "base": {"rev": "main", "commit": "0123456789abcdef", "rows": BASE.height},
        "head": {"rev": None, "commit": None, "rows": HEAD.height},
        "curate": d.curate_effect(*base_cr, *head_cr), "rejections": d.rejections(base_cr[1], head_cr[1]),
        "tokens": None, "rerun": d.reruns(lock(), lock(curate={"cmd": "x"}))}


def test_markdown_is_a_pull_request_comment():
    md = d.to_markdown(full_report())
    lines = md.splitlines()
    assert lines[0] == "### Dataset diff: `curate`, `main` (0123456) → workspace"
    assert lines[2:4] == ["|  | base | head | Δ |", "|---|---|---|---|"]  # the summary table comes first
    assert "| changed |  |  | 2 (label 1, text 1) |" in md
    assert "**Stages that would rerun:** `curate` (new stage)." in md
    assert md.index("|---|") < md.index("<details>")
    assert md.count("<details>") == md.count("</details>") >= 5
    for summary in ("Labels: 0 of 2 shifted", "Curate effect: 0 newly rejected, 0 newly admitted",
                    "Rejection reasons: 1 rule(s) moved", "Examples"):
        assert f"<summary>{summary}</summary>" in md
    assert "a new \\| row" in md  # a pipe inside a cell cannot break the table


def test_json_is_stable_and_sorted():
    text = d.to_json(full_report())
    assert text == d.to_json(full_report())
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert set(data) == {"base", "concentration", "counts", "curate", "examples", "fields", "head", "lengths",
                         "rejections", "rerun", "rows", "schema", "stage", "tokens", "version"}

"""`tunebuild trace`: where a record came from and what happened to it, at one or every revision.

For each raw copy (source, file, line, license): quarantined, rejected by which rule and why, or
kept (and which PII was redacted); then the split it is in, the tokenized file that holds it and
the model(s) that trained on it (lineage.json). With all_revs, the same for every commit that
changed dvc.lock, reading old outputs through DVC (cache or remote).
"""
from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from tunebuild import revs
from tunebuild.audit import LINEAGE, Outputs, load
from tunebuild.errors import UserError
from tunebuild.records import normalize, record_id

ID = re.compile(r"[0-9a-f]{16}")


def which_id(rid: str | None, text: str | None) -> str:
    if (rid is None) == (text is None):
        raise UserError("give a record id or --text, not both and not neither "
                        "(`tunebuild trace 0123456789abcdef` or `tunebuild trace --text \"...\"`)")
    if text is not None:
        return record_id(text)
    if not ID.fullmatch(rid):
        raise UserError(f"'{rid}' is not a record id (16 lowercase hex digits, as in the record_id column of "
                        "data/ingest/records.parquet); to look a record up by its text use --text")
    return rid


def trace_at(out: Outputs, rid: str, text: str | None) -> dict:
    """The record's story in one revision's outputs."""
    keys = ["file", "line"]
    copies = out.records.filter(pl.col("record_id") == rid).select("source", "file", "line", "license", "label")
    kept = out.curated.filter(pl.col("record_id") == rid).select(*keys, "pii")
    rejected = out.rejected.filter(pl.col("record_id") == rid).select(*keys, "rule", "reason")
    fates = (copies.join(kept, on=keys, how="left").join(rejected, on=keys, how="left")
             .with_columns(outcome=pl.when(pl.col("rule").is_not_null()).then(pl.format("rejected: {}", "rule"))
                           .otherwise(pl.lit("kept"))).sort(keys))
    quarantined = []
    if text is not None:
        needle = normalize(text)
        quarantined = (out.quarantine.filter(pl.col("raw").str.to_lowercase().str.contains(needle, literal=True))
                       .select("source", "file", "line", "error").sort(keys).to_dicts())
    datasets = out.lineage.get("datasets", {})
    in_lineage = [n for n, d in datasets.items() if rid in d["record_ids"]]
    model = out.lineage.get("model", {})
    trained = "train" in in_lineage
    return {
        "revision": out.where,
        "copies": fates.drop("pii").to_dicts(),
        "redacted": sorted({k for types in kept["pii"].to_list() for k in types}),
        "quarantined": quarantined,
        "forgotten": bool(rejected.filter(pl.col("rule") == "forget").height),
        "split": [n for n, df in out.splits.items() if rid in df["record_id"]],
        "tokenized": [f"data/tokenize/{n}.parquet" for n, df in out.tokenized.items() if rid in df["record_id"]],
        "lineage": in_lineage,
        "models": [{"mode": model.get("mode"), "base_model": model.get("base_model"),
                    "files": model.get("files", {})}] if trained else [],
    }


def trace(rid: str | None, text: str | None, rev: str | None = None, all_revs: bool = False,
          root: str | Path = ".") -> dict:
    """The record's story at `rev` (None: the workspace), or in the workspace and every commit of dvc.lock."""
    rid = which_id(rid, text)
    if all_revs and rev is not None:
        raise UserError("give --rev or --all-revs, not both")
    revisions: list[str | None] = [None, *revs.history("dvc.lock", None, root)] if all_revs else [rev]
    found = []
    for r in revisions:
        try:
            found.append(trace_at(load(r, root), rid, text))
        except UserError as e:
            if not all_revs:
                raise
            found.append({"revision": {"rev": r or "workspace", "commit": r}, "error": str(e)})
    if not any(f.get("copies") or f.get("quarantined") for f in found):
        where = "in any revision of dvc.lock" if all_revs else f"at {rev or 'the workspace'}"
        raise UserError(f"record {rid}: not in data/ingest/records.parquet nor data/ingest/quarantine.parquet "
                        f"{where}; check the id (or the text) against data/ingest/records.parquet"
                        + ("" if text else "; quarantined units have no record id: use --text"))
    return {"record_id": rid, "text": text is not None, "revisions": found}


def render(result: dict) -> str:
    """Plain text, one block per revision."""
    lines = [f"record {result['record_id']}"]
    for r in result["revisions"]:
        w = r["revision"]
        lines.append(f"\n== {w['rev']}" + (f" (commit {w['commit'][:12]})" if w.get("commit") else ""))
        if "error" in r:
            lines.append(f"  not readable: {r['error']}")
            continue
        if not r["copies"] and not r["quarantined"]:
            lines.append("  not in this revision's data")
            continue
        for c in r["copies"]:
            why = f" ({c['reason']})" if c["rule"] else ""
            lines.append(f"  from {c['source']} {c['file']}:{c['line']} license {c['license']}: {c['outcome']}{why}")
        for q in r["quarantined"]:
            lines.append(f"  quarantined: {q['source']} {q['file']}:{q['line']}: {q['error']}")
        if r["redacted"]:
            lines.append(f"  PII redacted before training: {', '.join(r['redacted'])}")
        if r["forgotten"]:
            lines.append("  forgotten (data.forget): text blanked in data/curate/rejected.parquet; the raw file and "
                         "data/ingest/records.parquet still hold it (delete the raw line to erase it)")
        lines.append(f"  split: {', '.join(r['split']) or 'none'}; tokenized: {', '.join(r['tokenized']) or 'none'}")
        for m in r["models"]:
            weights = ", ".join(f"{k} {v[:16]}" for k, v in m["files"].items())
            lines.append(f"  trained on by: the {m['mode']} model on {m['base_model']} ({weights}), per {LINEAGE}")
        if not r["models"]:
            lines.append(f"  trained on by: no model ({LINEAGE} {'lists it in ' + ', '.join(r['lineage']) if r['lineage'] else 'does not list it'})")
    return "\n".join(lines)

"""`tunebuild audit`: governance facts and findings from the pipeline's own outputs at a git revision.

Reads (through tunebuild.revs: the workspace, or any revision from the DVC cache or remote)
params.yaml, dvc.lock and the ingest, curate, split, tokenize, evaluate and report outputs.
Every count is computed from the parquet files themselves, not copied from stats.json.

Findings (exit code 1 under --strict):
  license  a record in a split whose license expression curate.license_allowlist does not allow
  pii      PII of a type set to redact/reject still found in a split's text
  leakage  validation/test records near-duplicating train (leakage.json), or one record id,
           group or near-duplicate cluster in two splits
  stale    `dvc status` is not clean (workspace only), or train/evaluate/report in dvc.lock were
           built from other inputs than the outputs of the stages before them
  forget   a record on the forget list (data.forget) still in curated, split or tokenized data,
           in lineage.json, or with its text in rejected.parquet
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from tunebuild import revs
from tunebuild.params import CurateSections, DataParams, parse_params

SPLITS = ("train", "validation", "test")
KINDS = ("license", "pii", "leakage", "stale", "forget")
CURATED = "data/curate/curated.parquet"
REJECTED = "data/curate/rejected.parquet"
RECORDS = "data/ingest/records.parquet"
QUARANTINE = "data/ingest/quarantine.parquet"
LINEAGE = "data/report/lineage.json"
# a quarantine error's kind: the text before the first colon, numbers generalized ("invalid JSON", "line is N bytes, ...")
ERROR_KIND = pl.col("error").str.split(":").list.first().str.replace_all(r"\d+", "N")
RAW_NOTE = ("raw files under data/raw/ and data/ingest/records.parquet still hold the text of {n} forgotten "
            "record(s) ({where}): curate removes them from everything downstream, not from the raw data; delete "
            "those lines from data/raw/ (and from old DVC cache/remote versions) to erase them at the source")


@dataclass
class Outputs:
    """Everything audit and trace read, at one revision."""

    where: dict
    params: dict
    lock: dict
    records: pl.DataFrame
    quarantine: pl.DataFrame
    curated: pl.DataFrame
    rejected: pl.DataFrame
    splits: dict[str, pl.DataFrame]
    split_sha256: dict[str, str]
    tokenized: dict[str, pl.DataFrame]
    leakage: dict
    lineage: dict
    metrics: dict


def load(rev: str | None = None, root: str | Path = ".") -> Outputs:
    """Read the pipeline's outputs at `rev` (None: the workspace); one UserError for the first one missing."""
    where = revs.describe(rev, root)
    rev = None if rev is None else where["commit"]
    split_bytes = {n: revs.read_bytes(f"data/split/{n}.parquet", rev, root) for n in SPLITS}
    return Outputs(
        where=where,
        params=yaml.safe_load(revs.read_text("params.yaml", rev, root)),
        lock=yaml.safe_load(revs.read_text("dvc.lock", rev, root)),
        records=revs.read_parquet(RECORDS, rev, root),
        quarantine=revs.read_parquet(QUARANTINE, rev, root),
        curated=revs.read_parquet(CURATED, rev, root),
        rejected=revs.read_parquet(REJECTED, rev, root),
        splits={n: pl.read_parquet(io.BytesIO(b)) for n, b in split_bytes.items()},
        split_sha256={n: hashlib.sha256(b).hexdigest() for n, b in split_bytes.items()},
        tokenized={n: revs.read_parquet(f"data/tokenize/{n}.parquet", rev, root).select("record_id") for n in SPLITS},
        leakage=revs.read_json("data/split/leakage.json", rev, root),
        lineage=revs.read_json(LINEAGE, rev, root),
        metrics=revs.read_json("data/evaluate/metrics.json", rev, root),
    )


def curate_params(out: Outputs):
    """The curate, data and task sections of params.yaml at that revision, strictly typed."""
    return parse_params(CurateSections, out.params, f"params.yaml at {out.where['rev']}")


def all_splits(out: Outputs) -> pl.DataFrame:
    return pl.concat([df.with_columns(split=pl.lit(n)) for n, df in out.splits.items()], how="diagonal_relaxed")


def counts(df: pl.DataFrame, *by: str) -> list[dict]:
    return df.group_by(*by).len("rows").sort(*by).to_dicts()


def sources(out: Outputs, allowlist: list[str]) -> list[dict]:
    """Per source and license: rows per split, and whether the license expression is allowed in training
    (its normalised `expression`, `allowed` and `why`: tunebuild.licenses.verdict)."""
    from tunebuild.licenses import verdict

    tagged = all_splits(out)
    rows = tagged.group_by("source", "license").agg(*((pl.col("split") == n).sum().alias(n) for n in SPLITS))
    return [r | verdict(r["license"], allowlist) for r in rows.sort("source", "license").to_dicts()]


def pii_facts(out: Outputs, actions: dict[str, str], by_source: dict | None = None) -> dict:
    """Per PII type: curate's action, rows found, redacted (kept), rejected, and still found in the splits
    (read with each source's settings, `by_source`: tunebuild.pii.settings)."""
    from tunebuild import pii

    everything = pl.concat([out.curated.select("pii"), out.rejected.select("pii")])
    remaining: dict[str, int] = {}
    for df in out.splits.values():
        for _, spans in pii.find_all(df.select("text", "source"), by_source).values():
            for kind in {k for k, _, _ in spans}:
                remaining[kind] = remaining.get(kind, 0) + 1

    def has(df: pl.DataFrame, kind: str) -> int:
        return df.filter(pl.col("pii").list.contains(kind)).height

    return {kind: {"action": actions[kind], "found": has(everything, kind),
                   "redacted": has(out.curated, kind) if actions[kind] == "redact" else 0,
                   "rejected": out.rejected.filter(pl.col("rule") == f"pii_{kind}").height,
                   "in_splits": remaining.get(kind, 0)} for kind in pii.TYPES}


def overlaps(out: Outputs) -> dict:
    """Record ids, groups and near-duplicate clusters found in more than one split."""
    tagged = all_splits(out)
    found = {}
    for col in ("record_id", "group", "cluster"):
        multi = (tagged.filter(pl.col(col).is_not_null()).group_by(col).agg(pl.col("split").unique().sort())
                 .filter(pl.col("split").list.len() > 1).sort(col))
        found[col] = [{col: k, "splits": v} for k, v in multi.iter_rows()]
    return found


def built_by(out: Outputs, root: str | Path) -> dict:
    """Per stage, from dvc.lock: the commit that recorded this build, code hashes, params and output hashes."""
    stages = out.lock.get("stages", {})
    commits = revs.history("dvc.lock", None if out.where["rev"] == "workspace" else out.where["commit"], root)
    locks: dict[str, dict] = {}  # sha -> its dvc.lock stages, read once each

    def entry_at(sha: str, name: str) -> dict | None:
        if sha not in locks:
            locks[sha] = (yaml.safe_load(revs.git_text("dvc.lock", sha, root) or "") or {}).get("stages", {})
        return locks[sha].get(name)

    result = {}
    for name, entry in stages.items():
        recorded = "workspace (dvc.lock not committed)" if out.where["rev"] == "workspace" else None
        for sha in commits:  # newest first: the oldest commit with this same entry recorded the build
            if entry_at(sha, name) != entry:
                break
            recorded = sha
        result[name] = {
            "recorded_in": recorded,
            "code": {d["path"]: d.get("md5") for d in entry.get("deps", []) if d["path"].startswith("stages")},
            "params": {k: v for values in entry.get("params", {}).values() for k, v in values.items()},
            "outs": {o["path"]: o.get("md5") for o in entry.get("outs", [])},
        }
    return result


def lock_outs(out: Outputs) -> dict[str, str]:
    """Every output path in dvc.lock -> its md5."""
    return {o["path"]: o.get("md5") for st in out.lock.get("stages", {}).values() for o in st.get("outs", [])}


def lock_consistency(out: Outputs) -> list[str]:
    """Each stage's deps in dvc.lock equal the outs recorded by the stage that makes them."""
    stages = out.lock.get("stages", {})
    made = lock_outs(out)
    return [f"dvc.lock: stage '{name}' was built from {d['path']} md5 {d.get('md5')}, but the current one is "
            f"{made[d['path']]}; run `dvc repro`"
            for name, st in stages.items() for d in st.get("deps", [])
            if d["path"] in made and d.get("md5") != made[d["path"]]]


def dvc_status(root: str | Path) -> dict:
    """`dvc status` of the workspace: stage -> what changed (empty when up to date)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.status()


def forget_facts(out: Outputs, data: DataParams) -> dict:
    """Where forgotten records still are: downstream (a finding) and upstream (raw data, by design)."""
    ids = set(data.forget.record_ids) | set(out.rejected.filter(pl.col("rule") == "forget")["record_id"].to_list())
    pattern = "|".join(f"(?:{p})" for p in data.forget.patterns)
    places = {CURATED: out.curated} | {f"data/split/{n}.parquet": df for n, df in out.splits.items()}
    downstream: dict[str, list[str]] = {}
    for path, df in places.items():
        hit = pl.col("record_id").is_in(sorted(ids))
        if pattern:
            hit = hit | pl.col("text").fill_null("").str.contains(pattern)
        for rid in df.filter(hit)["record_id"].to_list():
            ids.add(rid)
            downstream.setdefault(rid, []).append(path)
    for n, df in out.tokenized.items():
        for rid in df.filter(pl.col("record_id").is_in(sorted(ids)))["record_id"].to_list():
            downstream.setdefault(rid, []).append(f"data/tokenize/{n}.parquet")
    for n, d in out.lineage.get("datasets", {}).items():
        for rid in sorted(ids & set(d["record_ids"])):
            downstream.setdefault(rid, []).append(f"{LINEAGE} ({n})")
    unblanked = out.rejected.filter((pl.col("rule") == "forget") & pl.col("text").is_not_null())
    for rid in unblanked["record_id"].to_list():
        downstream.setdefault(rid, []).append(f"{REJECTED} (text not blanked)")
    upstream = out.records.filter(pl.col("record_id").is_in(sorted(ids))).sort("file", "line")
    train_deps = {d["path"]: d.get("md5") for d in out.lock.get("stages", {}).get("train", {}).get("deps", [])}
    model = {"trained_on": "data/tokenize/train.parquet", "trained_on_md5": train_deps.get("data/tokenize/train.parquet"),
             "current_md5": lock_outs(out).get("data/tokenize/train.parquet")}
    model["without_forgotten"] = (model["current_md5"] is not None and model["trained_on_md5"] == model["current_md5"]
                                  and not any("tokenize/train" in w for ws in downstream.values() for w in ws))
    return {"record_ids": sorted(data.forget.record_ids), "patterns": list(data.forget.patterns),
            "forgotten": sorted(ids), "downstream": dict(sorted(downstream.items())),
            "upstream": [f"{f}:{line}" for f, line in upstream.select("file", "line").iter_rows()], "model": model}


def findings(report: dict) -> list[dict]:
    """The facts that fail `--strict`, one message each."""
    found: list[dict] = []

    def add(kind: str, message: str) -> None:
        found.append({"kind": kind, "message": message})

    for s in report["sources"]:
        if not s["allowed"] and any(s[n] for n in SPLITS):
            add("license", f"source {s['source']}: license {s['license']} is not allowed by curate.license_allowlist "
                           f"({s['why']}), but "
                           f"{', '.join(f'{s[n]} {n}' for n in SPLITS if s[n])} records carry it; rerun `dvc repro`")
    for kind, v in report["pii"].items():
        if v["in_splits"] and v["action"] != "keep":
            add("pii", f"{v['in_splits']} split records still contain {kind} (curate.pii.{kind}={v['action']}); "
                       "rerun `dvc repro`")
    leak = report["leakage"]
    if leak["near_duplicates"]:
        add("leakage", f"{leak['near_duplicates']} validation/test records have a near-duplicate in train "
                       "(data/split/leakage.json)")
    for col, items in leak["overlaps"].items():
        if items:
            add("leakage", f"{len(items)} {col} value(s) in more than one split, e.g. {items[0][col]} in "
                           f"{', '.join(items[0]['splits'])}")
    status = report["status"]
    if status["stale"]:
        add("stale", "outputs out of date (`dvc status`): " + ", ".join(sorted(status["stale"])) + "; run `dvc repro`")
    for msg in status["lock"]:
        add("stale", msg)
    fg = report["forget"]
    for rid, where in fg["downstream"].items():
        add("forget", f"forgotten record {rid} is still in {', '.join(where)}; run `dvc repro`")
    return found


def audit(rev: str | None = None, root: str | Path = ".") -> dict:
    """The whole audit at `rev` as plain data (what --format json prints)."""
    out = load(rev, root)
    p = curate_params(out)
    tagged = all_splits(out)
    rejected = out.rejected
    report = {
        "revision": out.where,
        "sources": sources(out, p.curate.license_allowlist),
        "license_allowlist": p.curate.license_allowlist,
        "quarantine": {"total": out.quarantine.height, "by_source": counts(out.quarantine, "source"),
                       "by_source_and_error": counts(out.quarantine.with_columns(error=ERROR_KIND), "source", "error")},
        "rejected": {"total": rejected.height, "by_rule": counts(rejected, "rule"),
                     "by_rule_and_source": counts(rejected, "rule", "source")},
        "pii": pii_facts(out, {k: getattr(p.curate.pii, k) for k in vars(p.curate.pii)},
                         pii_settings(p)),
        "duplicates": {r: rejected.filter(pl.col("rule") == r).height
                       for r in ("duplicate", "near_duplicate", "label_conflict")},
        "splits": {n: {"rows": out.splits[n].height, "sha256": out.split_sha256[n],
                       "md5": lock_outs(out).get(f"data/split/{n}.parquet")} for n in SPLITS},
        "records": {"ingested": out.records.height, "curated": out.curated.height, "in_splits": tagged.height},
        "leakage": {"near_duplicates": out.leakage["count"], "threshold": out.leakage["threshold"],
                    "pairs": out.leakage["pairs"], "overlaps": overlaps(out)},
        "built_by": built_by(out, root),
        "metrics": out.metrics,
        "model": {k: out.lineage["model"].get(k) for k in ("mode", "base_model", "files")},
        "forget": forget_facts(out, p.data),
        "status": {"checked": rev is None, "stale": dvc_status(root) if rev is None else {},
                   "lock": lock_consistency(out)},
    }
    report["findings"] = findings(report)
    return report


def pii_settings(p) -> dict:
    from tunebuild import pii

    return pii.settings(p.curate.pii, p.data.sources)


def table(headers: list[str], rows: list[list]) -> str:
    from tunebuild.markdown import table as md_table

    return md_table(headers, rows) if rows else "_none_"


def merged_params(built: dict) -> dict:
    """key -> value over every stage; a key that stages saw with different values lists them per stage."""
    seen: dict[str, dict] = {}
    for stage, b in built.items():
        for key, value in b["params"].items():
            seen.setdefault(key, {})[stage] = value
    return {key: next(iter(v.values())) if all(x == next(iter(v.values())) for x in v.values())
            else {f"(differs) {stage}": x for stage, x in v.items()} for key, v in seen.items()}


def markdown(r: dict) -> str:
    """The audit as a Markdown report."""
    from tunebuild import markdown as md

    w = r["revision"]
    head = (f"# Audit: {w['rev']} (commit {w['commit'][:12]}"
            + (", with uncommitted changes" if w["uncommitted_changes"] else "") + ")")
    verdict = ("**Findings**\n\n" + "\n".join(f"- [{f['kind']}] {f['message']}" for f in r["findings"])
               if r["findings"] else "**No findings.**")
    fg = r["forget"]
    upstream = (RAW_NOTE.format(n=len(fg["upstream"]), where=", ".join(fg["upstream"][:5])
                                + (" ..." if len(fg["upstream"]) > 5 else ""))
                if fg["upstream"] else "no copy in the ingested raw data")
    status = ("not checked (`dvc status` compares the workspace only)" if not r["status"]["checked"]
              else "clean" if not r["status"]["stale"] else "stale: " + ", ".join(sorted(r["status"]["stale"])))
    sections = [
        head, verdict,
        "## Sources and licenses\n\n" + table(["source", "license", "SPDX expression", "allowed", "why", *SPLITS],
                                             [[s["source"], s["license"], md.code(s["expression"]),
                                               "yes" if s["allowed"] else md.bold("no"), s["why"],
                                               *(s[n] for n in SPLITS)] for s in r["sources"]])
        + "\n\nAllowlist (curate.license_allowlist): " + ", ".join(md.code(x) for x in r["license_allowlist"])
        + ". An OR passes when one branch is allowed; an AND or a WITH when every part is.",
        "## Quarantine and rejections\n\n" + f"Quarantined (unreadable) units: {r['quarantine']['total']}\n\n"
        + table(["source", "error", "quarantined"], [[x["source"], x["error"], x["rows"]]
                                                     for x in r["quarantine"]["by_source_and_error"]])
        + f"\n\nRejected records: {r['rejected']['total']}\n\n"
        + table(["rule", "source", "rejected"], [[x["rule"], x["source"], x["rows"]]
                                                 for x in r["rejected"]["by_rule_and_source"]]),
        "## PII\n\n" + table(["type", "action", "found", "redacted", "rejected", "still in splits"],
                             [[k, v["action"], v["found"], v["redacted"], v["rejected"], v["in_splits"]]
                              for k, v in r["pii"].items()]),
        "## Duplicates removed\n\n" + table(["rule", "rejected"], [[k, v] for k, v in r["duplicates"].items()]),
        "## Splits\n\n" + table(["split", "rows", "sha256", "dvc.lock md5"],
                                [[n, v["rows"], md.code(v["sha256"]), md.code(v["md5"])]
                                 for n, v in r["splits"].items()]),
        "## Leakage\n\n" + f"Validation/test records with a near-duplicate in train (similarity >= "
        f"{r['leakage']['threshold']}): {r['leakage']['near_duplicates']}. "
        + "Values in more than one split: " + ", ".join(f"{k} {len(v)}" for k, v in r["leakage"]["overlaps"].items()),
        "## Built by\n\n" + table(["stage", "recorded in commit", "code (md5)", "outputs (md5)"],
                                  [[name, b["recorded_in"] or "?", md.lines_of_code(b["code"]),
                                    md.lines_of_code(b["outs"])]
                                   for name, b in r["built_by"].items()])
        + "\n\nParams the stages were built with (dvc.lock; each key once):\n\n```yaml\n"
        + yaml.safe_dump(merged_params(r["built_by"]), sort_keys=False).rstrip() + "\n```",
        "## Model\n\n" + f"{r['model']['mode']} fine-tune of `{r['model']['base_model']}`; weights: "
        + ", ".join(f"{k} `{v[:16]}`" for k, v in (r["model"]["files"] or {}).items())
        + "\n\n```json\n" + json.dumps(r["metrics"], indent=2, sort_keys=True) + "\n```",
        "## Forget list\n\n" + f"{len(fg['record_ids'])} record ids and {len(fg['patterns'])} patterns in "
        f"data.forget; {len(fg['forgotten'])} records forgotten. Still downstream: "
        + (", ".join(fg["downstream"]) or "none (absent from curated, split and tokenized data and lineage.json)")
        + ".\n\nModel: " + (f"trained on {fg['model']['trained_on']} md5 `{fg['model']['trained_on_md5']}`, the current "
                              "tokenized data, which holds none of the forgotten records."
                              if fg["model"]["without_forgotten"] else
                              "**not shown to be retrained without the forgotten records** (dvc.lock's train stage "
                              "was built from other tokenized data, or that data holds one of them); run `dvc repro`.")
        + f"\n\nUpstream: {upstream}.",
        f"## Status\n\n`dvc status`: {status}.",
    ]
    return "\n\n".join(sections) + "\n"

"""Dataset diff between two revisions: what a change does to the data, keyed by `record_id`.

In:  one stage's dataset at two revisions (curate: curated.parquet; split, tokenize: the three split
     files with a `split` column), plus data/curate/{curated,rejected}.parquet, data/tokenize/stats.json
     (when present) and dvc.lock. Other revisions are read through DVC (cache or remote, never a
     checkout, tunebuild/revs.py); head None is the workspace.
Out: one plain dict (below), rendered as JSON (sorted keys) or as markdown for a pull-request comment.

The core, `diff_frames(base, head)`, works on two polars frames: rows are matched on `record_id`,
compared by a hash of their content columns (and of `file`/`line` apart: a row whose content is the
same but whose position changed is `moved`, not `changed`), and only the changed rows are compared
field by field.

JSON shape (version 1; every list sorted, so equal inputs give equal bytes):
  version, stage
  base, head      {rev (null: workspace), commit (null: workspace), rows}
  rows            {added, removed, changed, moved, unchanged}
  fields          {column: rows whose value changed}           (among `changed` rows)
  schema          {added: [{column, dtype}], removed: [{column, dtype}], retyped: [{column, base, head}]}
  counts          {label|source|split: [{value, base, head, delta, share_base, share_head}]}
  lengths         {unit: chars|tokens, base: {rows, mean, p50, p90, p99, max}, head: {...},
                   buckets: [{bucket, base, head, delta}]}                     (null without text or tokens)
  concentration   {label|source|split|length: [{value, rows, affected, expected, lift}]}
                  segments over-represented among added+removed+changed rows (excess over
                  their share of all rows), most excess first
  examples        {added: [row], removed: [row], changed: [{record_id, changes: {column: [base, head]}}]}
  curate          {records: {base, head}, transitions: [{from, to, rows, raw_changed}],
                   newly_rejected, newly_admitted, examples: {newly_rejected: [...], newly_admitted: [...]}}
                  from/to: "absent", "curated" or the rejecting rule; raw_changed: of those rows, how
                  many had their raw label/source/license/group changed (the rest moved by the rules)
  rejections      [{rule, base, head, delta}]                   (rules whose counts moved)
  tokens          {split: {rows|tokens|truncated: {base, head, delta}}} or null (tokenize not run)
  rerun           {stages: [name], reasons: {name: [what differs]}, method}
"""
from __future__ import annotations

import itertools

import orjson
import polars as pl
import yaml

from tunebuild import revs
from tunebuild.errors import UserError
from tunebuild.markdown import cell as _cell, table

VERSION = 1
SPLITS = ("train", "validation", "test")
STAGES = ("curate", "split", "tokenize")
CURATED, REJECTED = "data/curate/curated.parquet", "data/curate/rejected.parquet"
TOKEN_STATS, LOCK = "data/tokenize/stats.json", "dvc.lock"
POSITION = ("file", "line")          # where a record sits: a change here alone is a move
SEGMENTS = ("label", "source", "split")
EXAMPLE_COLUMNS = ("record_id", "text", "label", "source", "split")
EDGES = [16 << i for i in range(13)]  # length buckets: <16, 16-31, ..., >=65536
WIDTH = 80                            # characters of text shown per example
RAW = ("label", "source", "license", "group")
RERUN_METHOD = ("dvc.lock of both revisions: a stage reruns when its command, a dependency's hash or a "
                "parameter value recorded there differs (the comparison `dvc repro` makes, without a checkout)")


# ---------------------------------------------------------------- the core, on frames


def as_keys(*frames: pl.DataFrame) -> list[pl.DataFrame]:
    """The frames with `record_id` as UInt64 when every id is 16 hex digits (joins on integers are ~2x faster
    than on strings; the order is the same); unchanged otherwise. `_id` turns a key back into its id."""
    ids = pl.col("record_id")
    if any(df.schema["record_id"] != pl.String for df in frames) or not all(
            df.select(ids.str.contains("^[0-9a-f]{16}$").all()).item() for df in frames):
        return list(frames)  # already keys, or ids of another form
    return [df.with_columns(ids.str.to_integer(base=16, dtype=pl.UInt64)) for df in frames]


def _id(key) -> str:
    return f"{key:016x}" if isinstance(key, int) else key


def diff_frames(base: pl.DataFrame, head: pl.DataFrame, examples: int = 3) -> dict:
    """Rows added/removed/changed/moved by record_id, field changes, schema, counts, lengths, concentration."""
    same = [c for c in base.columns if c != "record_id" and c in head.columns and base.schema[c] == head.schema[c]]
    base, head = as_keys(base, head)
    kb, kh = _keyed(base, same), _keyed(head, same)
    rows = _match(kb, kh)
    changed = rows.filter(pl.col("change") == "changed").select("record_id")
    fields, changed_examples = _field_changes(base, head, changed, same, examples)
    return {
        "rows": {k: int(rows["change"].eq(k).sum()) for k in ("added", "removed", "changed", "moved", "unchanged")},
        "fields": fields,
        "schema": _schema(base, head),
        "counts": {c: counts(kb[c], kh[c]) for c in SEGMENTS if c in kb.columns and c in kh.columns},
        "lengths": _lengths(kb, kh, _length(base), _length(head)),
        "concentration": concentration(rows),
        "examples": {"added": _examples(head, rows, "added", examples),
                     "removed": _examples(base, rows, "removed", examples),
                     "changed": changed_examples},
    }


def _length(df: pl.DataFrame) -> tuple[pl.Expr, str] | None:
    """Length of a row: tokens when the frame has input_ids, characters of text otherwise."""
    if "input_ids" in df.columns:
        return pl.col("input_ids").list.len().fill_null(0), "tokens"
    if "text" in df.columns:
        return pl.col("text").str.len_chars().fill_null(0), "chars"
    return None


BUCKETS = [f"<{EDGES[0]}"] + [f"{a}-{b - 1}" for a, b in itertools.pairwise(EDGES)] + [f">={EDGES[-1]}"]


def _bucket(lengths: pl.Series) -> pl.Series:
    """Each length's bucket label: <16, 16-31, ... (powers of two)."""
    return pl.Series(BUCKETS).gather(pl.Series(EDGES).search_sorted(lengths, side="right")).alias("length")


def _keyed(df: pl.DataFrame, same: list[str]) -> pl.DataFrame:
    """record_id, content hash, position hash, segment values and length (`_len`, bucket `length`) of each row."""
    content = [c for c in same if c not in POSITION]
    position = [c for c in same if c in POSITION]
    length = _length(df)
    keyed = df.select(
        "record_id",
        (pl.struct(content).hash() if content else pl.lit(0, pl.UInt64)).alias("_content"),
        (pl.struct(position).hash() if position else pl.lit(0, pl.UInt64)).alias("_position"),
        *(pl.col(c) for c in SEGMENTS if c in df.columns),
        *([length[0].alias("_len")] if length else []),
    )
    return keyed.with_columns(_bucket(keyed["_len"])) if length else keyed


def _match(b: pl.DataFrame, h: pl.DataFrame) -> pl.DataFrame:
    """One row per record_id of either side: `change` and its segment values (head's, else base's)."""
    try:
        joined = b.join(h, on="record_id", how="full", coalesce=True, suffix="_head", validate="1:1")
    except pl.exceptions.ComputeError:
        raise UserError("record_id is not unique in this dataset; diff a curated stage (curate, split, tokenize), "
                        "whose rows are one per record") from None
    change = (pl.when(pl.col("_content_head").is_null()).then(pl.lit("removed"))
              .when(pl.col("_content").is_null()).then(pl.lit("added"))
              .when(pl.col("_content") != pl.col("_content_head")).then(pl.lit("changed"))
              .when(pl.col("_position") != pl.col("_position_head")).then(pl.lit("moved"))
              .otherwise(pl.lit("unchanged")))
    segments = [c for c in (*SEGMENTS, "length") if c in b.columns or c in h.columns]
    values = [(pl.coalesce(f"{c}_head", c) if c in b.columns and c in h.columns else pl.col(c)).alias(c)
              for c in segments]
    return joined.select("record_id", change.alias("change"), *values)


def _field_changes(base, head, changed: pl.DataFrame, same: list[str], examples: int) -> tuple[dict, list]:
    """Per column, how many changed rows differ in it; and the first changed rows, column by column."""
    b = base.join(changed, on="record_id", how="semi").sort("record_id")
    h = head.join(changed, on="record_id", how="semi").sort("record_id")
    differs = pl.DataFrame({c: b[c].ne_missing(h[c]) for c in same}) if same else pl.DataFrame()
    fields = {c: int(differs[c].sum()) for c in same if differs[c].any()}
    shown = []
    for i in range(min(examples, b.height)):
        shown.append({"record_id": _id(b["record_id"][i]),
                      "changes": {c: [_show(b[c][i]), _show(h[c][i])] for c in same if differs[c][i]}})
    return fields, shown


def _schema(base: pl.DataFrame, head: pl.DataFrame) -> dict:
    bs, hs = base.schema, head.schema
    return {"added": [{"column": c, "dtype": str(hs[c])} for c in sorted(set(hs) - set(bs))],
            "removed": [{"column": c, "dtype": str(bs[c])} for c in sorted(set(bs) - set(hs))],
            "retyped": [{"column": c, "base": str(bs[c]), "head": str(hs[c])}
                        for c in sorted(set(bs) & set(hs)) if bs[c] != hs[c]]}


def counts(base: pl.Series, head: pl.Series) -> list[dict]:
    """Rows per value at each side, the difference and each side's share."""
    def tally(s: pl.Series, side: str) -> pl.DataFrame:
        return s.cast(pl.String).fill_null("<null>").alias("value").value_counts(name=side)

    t = (tally(base, "base").join(tally(head, "head"), on="value", how="full", coalesce=True)
         .with_columns(pl.col("base", "head").fill_null(0).cast(pl.Int64)).sort("value"))
    nb, nh = max(base.len(), 1), max(head.len(), 1)
    return [{"value": v, "base": b, "head": h, "delta": h - b, "share_base": round(b / nb, 4),
             "share_head": round(h / nh, 4)} for v, b, h in t.select("value", "base", "head").iter_rows()]


def _lengths(kb: pl.DataFrame, kh: pl.DataFrame, lb, lh) -> dict | None:
    """Length summary and histogram of each side (from the keyed frames' `_len` and `length`)."""
    if lb is None or lh is None or lb[1] != lh[1]:
        return None
    n = pl.col("_len")

    def summary(df: pl.DataFrame) -> dict:
        s = df.select(rows=pl.len(), mean=n.mean(), p50=n.quantile(0.5, "nearest"), p90=n.quantile(0.9, "nearest"),
                      p99=n.quantile(0.99, "nearest"), max=n.max()).row(0, named=True)
        return {k: (round(float(v), 2) if k == "mean" else int(v)) if v is not None else 0 for k, v in s.items()}

    return {"unit": lb[1], "base": summary(kb), "head": summary(kh),
            "buckets": sorted(({"bucket": x["value"], "base": x["base"], "head": x["head"], "delta": x["delta"]}
                               for x in counts(kb["length"], kh["length"])), key=lambda x: BUCKETS.index(x["bucket"]))}


def concentration(rows: pl.DataFrame, top: int = 5) -> dict:
    """Segments (label, source, split, length bucket) over-represented among added/removed/changed rows."""
    affected = pl.col("change").is_in(["added", "removed", "changed"])
    total, hit = rows.height, int(rows.select(affected.sum()).item())
    out = {}
    for seg in (c for c in (*SEGMENTS, "length") if c in rows.columns):
        if not hit:
            out[seg] = []
            continue
        g = (rows.group_by(pl.col(seg).cast(pl.String).fill_null("<null>").alias("value"))
             .agg(rows=pl.len(), affected=affected.sum())
             .with_columns(expected=pl.col("rows") * hit / total)
             .with_columns(excess=pl.col("affected") - pl.col("expected"),
                           lift=(pl.col("affected") / pl.col("expected")).round(2))
             .filter(pl.col("excess") > 0.5).sort(["excess", "value"], descending=[True, False]).head(top))
        out[seg] = [{"value": v, "rows": n, "affected": a, "expected": round(e, 1), "lift": lift}
                    for v, n, a, e, lift in g.select("value", "rows", "affected", "expected", "lift").iter_rows()]
    return out


def _show(value):
    """A value as shown in examples: text cut to WIDTH characters, long lists as their length."""
    if isinstance(value, str):
        flat = " ".join(value.split())
        return flat if len(flat) <= WIDTH else flat[:WIDTH - 1] + "…"
    if isinstance(value, pl.Series):
        value = value.to_list()
    if isinstance(value, list) and len(value) > 8:
        return f"[{len(value)} items]"
    return value


def _example_row(row: dict) -> dict:
    shown = {c: _id(row[c]) if c == "record_id" else _show(row[c]) for c in EXAMPLE_COLUMNS if c in row}
    if "input_ids" in row:
        shown["tokens"] = len(row["input_ids"])
    return shown


def _examples(df: pl.DataFrame, rows: pl.DataFrame, change: str, n: int) -> list[dict]:
    ids = rows.filter(pl.col("change") == change).select("record_id").sort("record_id").head(n)
    return [_example_row(r) for r in df.join(ids, on="record_id", how="semi").sort("record_id").iter_rows(named=True)]


# ---------------------------------------------------------------- the curate stage's effect


def status(curated: pl.DataFrame, rejected: pl.DataFrame, cols: tuple[str, ...] = ()) -> pl.DataFrame:
    """One row per raw record: `status` ("curated" or the rejecting rule of its first copy by file, line),
    `reason`, `label`, `_raw` (a hash of its source, license and group) and `cols`."""
    other = [c for c in RAW if c != "label" and c in curated.columns]
    raw = pl.struct(other).hash() if other else pl.lit(0, pl.UInt64)
    cur = curated.select("record_id", "label", *cols, status=pl.lit("curated"), reason=pl.lit(None, pl.String), _raw=raw)
    rej = rejected.select("record_id", "label", *cols, status=pl.col("rule"), reason=pl.col("reason"), _raw=raw)
    return pl.concat([cur, rej]).unique("record_id", keep="first", maintain_order=True)


def curate_effect(base_curated, base_rejected, head_curated, head_rejected, examples: int = 3) -> dict:
    """Transitions of raw records between absent / curated / rejected-by-rule, base -> head."""
    base_curated, base_rejected, head_curated, head_rejected = as_keys(base_curated, base_rejected, head_curated,
                                                                       head_rejected)
    b, h = status(base_curated, base_rejected), status(head_curated, head_rejected)
    j = b.join(h, on="record_id", how="full", coalesce=True, suffix="_head").with_columns(
        pl.col("status").fill_null("absent").alias("from"), pl.col("status_head").fill_null("absent").alias("to"))
    both = pl.col("status").is_not_null() & pl.col("status_head").is_not_null()
    # a forgotten record's label is blanked: a missing label is no evidence of a relabel
    raw_diff = (pl.col("_raw") != pl.col("_raw_head")) | (pl.col("label") != pl.col("label_head")).fill_null(False)
    moved = j.filter(pl.col("from") != pl.col("to")).select("record_id", "from", "to", raw_changed=both & raw_diff)
    transitions = (moved.group_by("from", "to").agg(rows=pl.len(), raw_changed=pl.col("raw_changed").sum())
                   .sort(["rows", "from", "to"], descending=[True, False, False]))
    rejected_now = (pl.col("from") == "curated") & ~pl.col("to").is_in(["curated", "absent"])
    admitted_now = (pl.col("to") == "curated") & ~pl.col("from").is_in(["curated", "absent"])

    def shown(which: pl.Expr, curated: pl.DataFrame, rejected: pl.DataFrame) -> list[dict]:
        """Text, label and reason as the given side has them, for the first `examples` such records."""
        part = moved.filter(which).sort("record_id").head(examples)
        ids = pl.col("record_id").is_in(part["record_id"].implode())
        side = status(curated.filter(ids), rejected.filter(ids), ("text",)).select("record_id", "text", "label", "reason")
        return [{"record_id": _id(r["record_id"]), "text": _show(r["text"]), "label": r["label"], "from": r["from"],
                 "to": r["to"], "reason": _show(r["reason"])}
                for r in part.join(side, on="record_id").sort("record_id").iter_rows(named=True)]

    return {"records": {"base": b.height, "head": h.height},
            "transitions": [dict(zip(("from", "to", "rows", "raw_changed"), t)) for t in transitions.iter_rows()],
            "newly_rejected": int(moved.select(rejected_now.sum()).item()),
            "newly_admitted": int(moved.select(admitted_now.sum()).item()),
            "examples": {"newly_rejected": shown(rejected_now, head_curated, head_rejected),
                         "newly_admitted": shown(admitted_now, base_curated, base_rejected)}}


def rejections(base_rejected: pl.DataFrame, head_rejected: pl.DataFrame) -> list[dict]:
    """Rejected rows per rule at each side, for the rules whose count moved."""
    return [{"rule": x["value"], "base": x["base"], "head": x["head"], "delta": x["delta"]}
            for x in counts(base_rejected["rule"], head_rejected["rule"]) if x["delta"]]


def tokens(base_stats: dict | None, head_stats: dict | None) -> dict | None:
    """Per split: rows, tokens and truncated rows at each side (from data/tokenize/stats.json)."""
    if base_stats is None or head_stats is None:
        return None
    return {s: {k: {"base": base_stats.get(s, {}).get(k, 0), "head": head_stats.get(s, {}).get(k, 0),
                    "delta": head_stats.get(s, {}).get(k, 0) - base_stats.get(s, {}).get(k, 0)}
                for k in ("rows", "tokens", "truncated")} for s in sorted(set(base_stats) | set(head_stats))}


def reruns(base_lock: dict, head_lock: dict) -> dict:
    """Stages whose command, dependency hashes or parameter values differ between two dvc.lock files."""
    b, h = base_lock.get("stages", {}), head_lock.get("stages", {})
    reasons: dict[str, list[str]] = {}
    for name in [*h, *(n for n in b if n not in h)]:
        if name not in b or name not in h:
            reasons[name] = ["new stage" if name not in b else "stage removed"]
            continue
        why = ["cmd"] if b[name].get("cmd") != h[name].get("cmd") else []
        deps = [{d["path"]: d for d in s[name].get("deps", [])} for s in (b, h)]
        why += [f"dep {p}" for p in sorted(set(deps[0]) | set(deps[1])) if deps[0].get(p) != deps[1].get(p)]
        params = [{(f, k): v for f, kv in s[name].get("params", {}).items() for k, v in kv.items()} for s in (b, h)]
        why += [f"param {k}" for f, k in sorted(set(params[0]) | set(params[1])) if params[0].get((f, k)) != params[1].get((f, k))]
        if why:
            reasons[name] = why
    return {"stages": list(reasons), "reasons": reasons, "method": RERUN_METHOD}


# ---------------------------------------------------------------- two revisions


def read_splits(stage: str, rev: str | None, root) -> pl.DataFrame:
    """The rows of the split or tokenize stage at a revision: its three files, with a `split` column."""
    return pl.concat([revs.read_parquet(f"data/{stage}/{s}.parquet", rev, root).with_columns(split=pl.lit(s))
                      for s in SPLITS])


def diff(base: str, head: str | None = None, stage: str = "curate", root=".", examples: int = 3) -> dict:
    """The full report between revision `base` and `head` (None: the workspace)."""
    if stage not in STAGES:
        raise UserError(f"--stage {stage!r}: no dataset to diff for that stage; choose one of {', '.join(STAGES)}")
    sides = {"base": base, "head": head}
    commits = {side: revs.resolve(rev, root) if rev is not None else None for side, rev in sides.items()}
    read = {side: {"curated": revs.read_parquet(CURATED, rev, root), "rejected": revs.read_parquet(REJECTED, rev, root),
                   "data": None if stage == "curate" else read_splits(stage, rev, root),
                   "tokens": revs.read_json(TOKEN_STATS, rev, root) if revs.exists(TOKEN_STATS, rev, root) else None,
                   "lock": yaml.safe_load(revs.read_text(LOCK, rev, root)) or {}}
            for side, rev in sides.items()}
    frames = [(side, k) for side in sides for k in ("curated", "rejected", "data") if read[side][k] is not None]
    for (side, k), df in zip(frames, as_keys(*(read[side][k] for side, k in frames))):  # ids to keys once, for all
        read[side][k] = df
    data = {side: read[side]["curated"] if stage == "curate" else read[side]["data"] for side in sides}
    report = diff_frames(data["base"], data["head"], examples)
    return report | {
        "version": VERSION, "stage": stage,
        **{side: {"rev": rev, "commit": commits[side], "rows": data[side].height} for side, rev in sides.items()},
        "curate": curate_effect(read["base"]["curated"], read["base"]["rejected"], read["head"]["curated"],
                                read["head"]["rejected"], examples),
        "rejections": rejections(read["base"]["rejected"], read["head"]["rejected"]),
        "tokens": tokens(read["base"]["tokens"], read["head"]["tokens"]),
        "rerun": reruns(read["base"]["lock"], read["head"]["lock"]),
    }


# ---------------------------------------------------------------- output


def to_json(report: dict) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def to_markdown(report: dict) -> str:
    """A pull-request comment: a summary table first, every detail folded in <details>."""
    parts = [_title(report), _summary(report), _reruns_line(report["rerun"])]
    for name, rows in [("label", report["counts"].get("label")), ("source", report["counts"].get("source")),
                       ("split", report["counts"].get("split"))]:
        if rows:
            shifted = sum(1 for x in rows if x["delta"])
            parts.append(_fold(f"{name.capitalize()}s: {shifted} of {len(rows)} shifted", table(
                [name, "base", "head", "Δ", "share base", "share head"],
                [[_cell(x["value"]), f"{x['base']:,}", f"{x['head']:,}", f"{x['delta']:+,}", _pct(x["share_base"]),
                  _pct(x["share_head"])] for x in rows])))
    parts += [_curate_md(report["curate"]), _rejections_md(report["rejections"]), _concentration_md(report),
              _lengths_md(report["lengths"], report["tokens"]), _schema_md(report["schema"]), _examples_md(report)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _fold(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def _side(side: dict) -> str:
    return "workspace" if side["rev"] is None else f"`{side['rev']}` ({side['commit'][:7]})"


def _title(r: dict) -> str:
    return f"### Dataset diff: `{r['stage']}`, {_side(r['base'])} → {_side(r['head'])}"


def _summary(r: dict) -> str:
    rows, cur = r["rows"], r["curate"]
    fields = ", ".join(f"{c} {n:,}" for c, n in sorted(r["fields"].items(), key=lambda x: (-x[1], x[0])))
    lines = [[f"rows ({r['stage']})", f"{r['base']['rows']:,}", f"{r['head']['rows']:,}",
              f"{r['head']['rows'] - r['base']['rows']:+,}"],
             ["added", "", "", f"{rows['added']:,}"], ["removed", "", "", f"{rows['removed']:,}"],
             ["changed", "", "", f"{rows['changed']:,}" + (f" ({fields})" if fields else "")],
             ["moved (file/line only)", "", "", f"{rows['moved']:,}"],
             ["raw records (curated + rejected)", f"{cur['records']['base']:,}", f"{cur['records']['head']:,}",
              f"{cur['records']['head'] - cur['records']['base']:+,}"],
             ["newly rejected / newly admitted by curate", "", "", f"{cur['newly_rejected']:,} / {cur['newly_admitted']:,}"]]
    if r["tokens"]:
        total = {k: sum(s["tokens"][k] for s in r["tokens"].values()) for k in ("base", "head")}
        lines.append(["tokens (all splits)", f"{total['base']:,}", f"{total['head']:,}", f"{total['head'] - total['base']:+,}"])
    if any(r["schema"].values()):
        lines.append(["schema", "", "", "changed (see below)"])
    return table(["", "base", "head", "Δ"], lines)


def _reruns_line(rerun: dict) -> str:
    if not rerun["stages"]:
        return "**Stages that would rerun:** none (dvc.lock records the same inputs)."
    why = "; ".join(f"`{s}` ({', '.join(rerun['reasons'][s][:3])}{', …' if len(rerun['reasons'][s]) > 3 else ''})"
                    for s in rerun["stages"])
    return f"**Stages that would rerun:** {why}."


def _curate_md(cur: dict) -> str:
    if not cur["transitions"]:
        return ""
    rows = [[_cell(t["from"]), _cell(t["to"]), f"{t['rows']:,}", f"{t['raw_changed']:,}",
             f"{t['rows'] - t['raw_changed']:,}"] for t in cur["transitions"]]
    body = ("Raw records by curate outcome: `absent` (not in the raw data), `curated`, or the rule that rejected it.\n\n"
            + table(["base", "head", "rows", "raw row changed", "raw row same (rules moved it)"], rows))
    return _fold(f"Curate effect: {cur['newly_rejected']:,} newly rejected, {cur['newly_admitted']:,} newly admitted", body)


def _rejections_md(rej: list[dict]) -> str:
    if not rej:
        return ""
    return _fold(f"Rejection reasons: {len(rej)} rule(s) moved", table(
        ["rule", "base", "head", "Δ"], [[x["rule"], f"{x['base']:,}", f"{x['head']:,}", f"{x['delta']:+,}"] for x in rej]))


def _concentration_md(r: dict) -> str:
    rows = [[seg, _cell(x["value"]), f"{x['affected']:,}", f"{x['expected']:,}", f"{x['lift']}×", f"{x['rows']:,}"]
            for seg, found in r["concentration"].items() for x in found]
    if not rows:
        return ""
    return _fold("Where the changes concentrate", "Segments with more added, removed or changed rows than their "
                 "share of all rows predicts.\n\n" + table(["by", "value", "affected", "expected", "lift", "rows"], rows))


def _lengths_md(lengths: dict | None, toks: dict | None) -> str:
    body = []
    if lengths:
        keys = ["mean", "p50", "p90", "p99", "max"]
        body.append(table([f"length ({lengths['unit']})", *keys], [[side, *(lengths[side][k] for k in keys)]
                                                                  for side in ("base", "head")]))
        body.append(table(["bucket", "base", "head", "Δ"], [[b["bucket"], f"{b['base']:,}", f"{b['head']:,}",
                                                             f"{b['delta']:+,}"] for b in lengths["buckets"]]))
    if toks:
        body.append(table(["split", "tokens base", "tokens head", "Δ", "truncated base", "truncated head"],
                          [[s, f"{v['tokens']['base']:,}", f"{v['tokens']['head']:,}", f"{v['tokens']['delta']:+,}",
                            v["truncated"]["base"], v["truncated"]["head"]] for s, v in toks.items()]))
    return _fold("Lengths and tokens", "\n\n".join(body)) if body else ""


def _schema_md(schema: dict) -> str:
    rows = ([["added", x["column"], "", x["dtype"]] for x in schema["added"]]
            + [["removed", x["column"], x["dtype"], ""] for x in schema["removed"]]
            + [["retyped", x["column"], x["base"], x["head"]] for x in schema["retyped"]])
    return _fold("Schema changes", table(["change", "column", "base", "head"], rows)) if rows else ""


def _examples_md(r: dict) -> str:
    ex, cur = r["examples"], r["curate"]["examples"]
    body = []
    for kind in ("added", "removed"):
        if ex[kind]:
            cols = list(ex[kind][0])
            body.append(f"**{kind}**\n\n" + table(cols, [[_cell(row.get(c)) for c in cols] for row in ex[kind]]))
    if ex["changed"]:
        body.append("**changed**\n\n" + table(["record_id", "column", "base", "head"], [
            [x["record_id"], c, _cell(v[0]), _cell(v[1])] for x in ex["changed"] for c, v in x["changes"].items()]))
    for kind in ("newly_rejected", "newly_admitted"):
        if cur[kind]:
            body.append(f"**{kind.replace('_', ' ')}**\n\n" + table(
                ["record_id", "text", "label", "base", "head", "reason"],
                [[x["record_id"], _cell(x["text"]), _cell(x["label"]), x["from"], x["to"], _cell(x["reason"])]
                 for x in cur[kind]]))
    return _fold("Examples", "\n\n".join(body)) if body else ""

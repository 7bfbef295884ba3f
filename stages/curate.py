"""Curate: ingested records -> validated training records, every rejection with a reason.

In:  data/ingest/records.parquet
Out: data/curate/curated.parquet   records that pass the task schema and the quality rules
     data/curate/rejected.parquet  the other records, with `rule`, `column` and `reason`
     data/curate/stats.json        counts: kept, rejected per rule, kept per label and source

Rules (first match wins, in this order): empty_text, too_short, too_long,
unknown_label (pandera checks), then label_conflict (one input, several labels:
every copy rejected) and duplicate (same input and label: the first by file and
line is kept, later copies point to it). curated + rejected = ingested, checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandera.polars as pa
import polars as pl

from stages.lib.errors import UserError, run
from stages.lib.files import write_json, write_parquet
from stages.lib.params import DataParams, TaskParams, load_params

IN = Path("data/ingest/records.parquet")
OUT = Path("data/curate")
RULES = ["empty_text", "too_short", "too_long", "unknown_label", "label_conflict", "duplicate"]


@dataclass
class CurateParams:
    min_chars: int
    max_chars: int


@dataclass
class Params:
    curate: CurateParams
    data: DataParams
    task: TaskParams


def _check(name: str, expr) -> pa.Check:
    """A named element-wise pandera check from a polars expression on the column."""
    return pa.Check(lambda d: d.lazyframe.select(expr(pl.col(d.key))), name=name)


def classify_schema(labels: list[str], min_chars: int, max_chars: int) -> pa.DataFrameSchema:
    """The `classify` task: non-empty text within bounds, label from the taxonomy."""
    n_chars = lambda c: c.str.strip_chars().str.len_chars()  # noqa: E731
    return pa.DataFrameSchema({
        "record_id": pa.Column(str, pa.Check.str_matches(r"^[0-9a-f]{16}$"), nullable=False),
        "text": pa.Column(str, [
            _check("empty_text", lambda c: n_chars(c) > 0),
            _check("too_short", lambda c: (n_chars(c) >= min_chars) | (n_chars(c) == 0)),
            _check("too_long", lambda c: c.str.len_chars() <= max_chars),
        ], nullable=False),
        "label": pa.Column(str, _check("unknown_label", lambda c: c.is_in(labels)), nullable=False),
    })


def schema_failures(df: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """Row index -> (rule, column) of the first failing check, in RULES order."""
    try:
        schema.validate(df, lazy=True)
        return pl.DataFrame(schema={"index": pl.Int64, "rule": pl.String, "column": pl.String})
    except pa.errors.SchemaErrors as e:
        fc = e.failure_cases
    unexpected = fc.filter(pl.col("index").is_null())
    if unexpected.height:
        raise UserError(f"{IN}: schema error {unexpected.row(0, named=True)}; rerun `dvc repro ingest`")
    rule = (pl.when(pl.col("check") == "not_nullable")
            .then(pl.when(pl.col("column") == "text").then(pl.lit("empty_text")).otherwise(pl.lit("unknown_label")))
            .otherwise(pl.col("check")))
    return (fc.with_columns(rule=rule, index=pl.col("index").cast(pl.Int64))
            .with_columns(order=pl.col("rule").replace_strict(RULES, list(range(len(RULES))), default=99))
            .sort("index", "order").unique("index", keep="first", maintain_order=True)
            .select("index", "rule", "column"))


def reason_expr(p: CurateParams) -> pl.Expr:
    n = pl.col("text").str.len_chars().cast(pl.String)
    r = pl.col("rule")
    return (pl.when(r == "empty_text").then(pl.lit("text is missing or blank"))
            .when(r == "too_short").then(pl.format("text has {} characters, fewer than curate.min_chars={}", n, pl.lit(p.min_chars)))
            .when(r == "too_long").then(pl.format("text has {} characters, more than curate.max_chars={}", n, pl.lit(p.max_chars)))
            .when(r == "unknown_label").then(pl.format("label '{}' is not in data.labels", pl.col("label").fill_null("<missing>")))
            .otherwise(pl.col("reason")))


def dedupe(valid: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split valid rows into kept and (label_conflict | duplicate) rejections."""
    ranked = valid.sort("file", "line").with_columns(
        n_labels=pl.col("label").n_unique().over("record_id"),
        labels=pl.col("label").unique().sort().str.join(", ").over("record_id"),
        copy=pl.int_range(pl.len()).over("record_id"),
        first=pl.format("{}:{}", pl.col("file"), pl.col("line")).first().over("record_id"),
        copies=pl.len().over("record_id"),
    )
    conflict = pl.col("n_labels") > 1
    dup = ~conflict & (pl.col("copy") > 0)
    rejected = ranked.filter(conflict | dup).with_columns(
        rule=pl.when(conflict).then(pl.lit("label_conflict")).otherwise(pl.lit("duplicate")),
        column=pl.when(conflict).then(pl.lit("label")).otherwise(pl.lit("text")),
        reason=pl.when(conflict)
        .then(pl.format("the same text has {} copies with labels {}; fix the labels at the source", pl.col("copies"), pl.col("labels")))
        .otherwise(pl.format("duplicate of {}", pl.col("first"))),
    )
    return ranked.filter(~(conflict | dup)).select(valid.columns), rejected.select(*valid.columns, "rule", "column", "reason")


def curate(records: pl.DataFrame, p: Params) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """The pure core: ingested records -> (curated, rejected, stats)."""
    if p.task.name != "classify":
        raise UserError(f"params.yaml: task.name: '{p.task.name}' has no curate schema yet (known: classify)")
    schema = classify_schema(p.data.labels, p.curate.min_chars, p.curate.max_chars)
    indexed = records.with_row_index("index").with_columns(pl.col("index").cast(pl.Int64))
    failed = schema_failures(records, schema)
    bad = (indexed.join(failed, on="index").with_columns(reason=pl.lit(None, pl.String))
           .with_columns(reason=reason_expr(p.curate)).drop("index"))
    valid = indexed.join(failed, on="index", how="anti").drop("index")
    kept, dups = dedupe(valid)
    rejected = pl.concat([bad.select(dups.columns), dups]).sort("file", "line")
    curated = schema.validate(kept.sort("record_id"))
    if curated.height + rejected.height != records.height:
        raise RuntimeError(f"curate accounting: {curated.height} + {rejected.height} != {records.height}")
    return curated, rejected, curate_stats(records, curated, rejected)


def _counts(df: pl.DataFrame, col: str) -> dict[str, int]:
    return dict(df.group_by(col).len().sort(col).iter_rows())


def curate_stats(records: pl.DataFrame, curated: pl.DataFrame, rejected: pl.DataFrame) -> dict:
    by_rule = {rule: 0 for rule in RULES} | _counts(rejected, "rule")
    by_source = {}
    for (src,), part in records.group_by(["source"], maintain_order=True):
        rej = rejected.filter(pl.col("source") == src)
        by_source[src] = {"records": part.height, "curated": curated.filter(pl.col("source") == src).height,
                          "rejected": rej.height}
    return {"records": records.height, "curated": curated.height, "rejected": rejected.height,
            "rejected_by_rule": by_rule, "curated_by_label": _counts(curated, "label"),
            "by_source": dict(sorted(by_source.items()))}


def main() -> None:
    params = load_params(Params)
    curated, rejected, stats = curate(pl.read_parquet(IN), params)
    write_parquet(curated, OUT / "curated.parquet")
    write_parquet(rejected, OUT / "rejected.parquet")
    write_json(OUT / "stats.json", stats)
    print(f"curate: {stats['records']} records -> {stats['curated']} curated, {stats['rejected']} rejected "
          f"({', '.join(f'{k} {v}' for k, v in stats['rejected_by_rule'].items() if v)})")


if __name__ == "__main__":
    run(main)

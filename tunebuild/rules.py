"""Curation rules, each declared once: name, the column it checks, the check, the reason, its params.

curate builds everything else from these declarations: the pandera schema (a task's schema rules,
tunebuild.tasks.<task>.schema_rules), the polars pass of the row rules below, the order in which the
first failing rule is recorded, the reasons written to rejected.parquet and the keys of the stats.

Row rules see a record's `text` (for chat tasks: its non-system turns) and what curate.measures counts
in it: `_words`, `_spaces`, `_symbols` (non-word, non-space characters) and `_max_run` (the longest run
of one repeated character, counted only where it can exceed curate.max_char_run).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from tunebuild import licenses
from tunebuild.params import CurateParams, ForgetParams

RECORD_ID = r"^[0-9a-f]{16}$"


@dataclass(frozen=True)
class Rule:
    name: str                            # rejected.rule and the key of stats.rejected_by_rule
    column: str                          # rejected.column; a schema rule: the columns it checks, joined by ","
    check: Callable[[pl.Expr], pl.Expr]  # the checked column -> true where a record passes
    reason: pl.Expr                      # why a failing record failed (over the record's columns)
    params: tuple[str, ...] = ()         # the params keys it reads
    only: pl.Expr | None = None          # rows it can fail on (a cheap prefilter); the others pass

    def columns(self) -> list[str]:
        return self.column.split(",")


def ratio(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return a.cast(pl.Float64) / pl.max_horizontal(b, pl.lit(1))


def request_rules(forget: ForgetParams, allowlist: list[str]) -> list[Rule]:
    """The rules that come first: records removed on request, and sources whose license is not allowed."""
    text = pl.col("text").fill_null("")
    by_pattern = "|".join(f"(?:{f})" for f in forget.patterns)
    matched = text.str.contains(by_pattern) if forget.patterns else pl.lit(False)
    license_reason = pl.format("license {} of source {} is not allowed by curate.license_allowlist: {}",
                               pl.col("license"), pl.col("source"), licenses.why(pl.col("license"), allowlist))
    return [
        Rule("forget", "record_id", lambda c: ~(c.is_in(forget.record_ids) | matched),
             pl.lit("removed on request (data.forget); text blanked"), ("data.forget",)),
        Rule("license", "license", lambda c: licenses.allowed(c, allowlist), license_reason,
             ("curate.license_allowlist",)),
    ]


def quality_rules(c: CurateParams, not_ascii: pl.Expr) -> list[Rule]:
    """The row rules on the text, in the order they are tried (after the task's schema rules)."""
    text = pl.col("text").fill_null("")
    words, symbols, run = pl.col("_words"), pl.col("_symbols"), pl.col("_max_run")
    visible = text.str.len_chars() - pl.col("_spaces")
    letters = text.str.count_matches(r"[^\W\d_]")
    scripts = "".join(rf"\p{{{s}}}" for s in c.scripts)
    in_script = text.str.count_matches(rf"[{scripts}]") if c.scripts else letters
    lines = text.str.strip_chars().str.split("\n")
    boiler = "|".join(f"(?:{b})" for b in c.boilerplate)
    all_boiler = lines.list.eval(pl.element().str.strip_chars().str.contains(f"^(?:{boiler})$")).list.all()
    percent = lambda x: (x * 100).round(0).cast(pl.Int64)  # noqa: E731
    return [
        Rule("too_few_words", "text", lambda _: ~(words < c.min_words),
             pl.format("{} words, fewer than curate.min_words={}", words, pl.lit(c.min_words)),
             ("curate.min_words",)),
        Rule("too_many_words", "text", lambda _: ~(words > c.max_words),
             pl.format("{} words, more than curate.max_words={}", words, pl.lit(c.max_words)),
             ("curate.max_words",)),
        Rule("mostly_symbols", "text", lambda _: ~(ratio(symbols, visible) > c.max_symbol_ratio),
             pl.format("{}% of visible characters are symbols, over curate.max_symbol_ratio={}",
                       percent(ratio(symbols, visible)), pl.lit(c.max_symbol_ratio)),
             ("curate.max_symbol_ratio",)),
        Rule("repeated_chars", "text", lambda _: ~(run > c.max_char_run),
             pl.format("a character repeats {} times in a row, over curate.max_char_run={}", run,
                       pl.lit(c.max_char_run)), ("curate.max_char_run",)),
        Rule("boilerplate", "text", lambda _: ~all_boiler if c.boilerplate else pl.lit(True),
             pl.lit("every line is boilerplate (curate.boilerplate)"), ("curate.boilerplate",)),
        Rule("charset", "text", lambda _: ~((letters > 0) & (ratio(in_script, letters) < c.min_script_ratio)),
             pl.format("{}% of letters are in scripts {}, under curate.min_script_ratio={}",
                       percent(ratio(in_script, letters)), pl.lit(",".join(c.scripts)),
                       pl.lit(c.min_script_ratio)),
             ("curate.scripts", "curate.min_script_ratio"), only=not_ascii),
    ]


def schema(columns: dict[str, tuple[pl.DataType, str]], rules: list[Rule]):
    """The pandera schema of a task: record_id, and each of the task's columns (dtype, the rule a null
    breaks) with the schema rules that check it, in declaration order."""
    import pandera.polars as pa

    def check(rule: Rule) -> pa.Check:
        return pa.Check(lambda data: data.lazyframe.select(rule.check(pl.col(data.key))), name=rule.name)

    return pa.DataFrameSchema({
        "record_id": pa.Column(str, pa.Check.str_matches(RECORD_ID)),
        **{name: pa.Column(dtype, nullable=False, checks=[check(r) for r in rules if name in r.columns()])
           for name, (dtype, _) in columns.items()},
    }, strict=False)


def first_failures(failure_cases: pl.DataFrame, columns: dict[str, tuple[pl.DataType, str]],
                   order: list[str]) -> pl.DataFrame:
    """pandera's failure cases -> per row index, the first failing rule (in `order`) and its column.
    A null breaks the rule its column names."""
    null_rule = pl.col("column").replace_strict({c: r for c, (_, r) in columns.items()}, default=None)
    rule = pl.when(pl.col("check") == "not_nullable").then(null_rule).otherwise(pl.col("check"))
    return (failure_cases.with_columns(rule=rule, index=pl.col("index").cast(pl.Int64))
            .with_columns(order=pl.col("rule").replace_strict(order, list(range(len(order))), default=len(order)))
            .sort("index", "order", "column").unique("index", keep="first", maintain_order=True)
            .select("index", "rule", "column"))

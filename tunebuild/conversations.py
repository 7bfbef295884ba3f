"""Conversations as polars columns (task=sft, preference in curate): the checks of their schema rules,
the text the row rules see, and PII redaction inside the messages."""
from __future__ import annotations

from collections.abc import Callable

import polars as pl

from tunebuild.rules import Rule

MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def role_order(col: pl.Expr) -> pl.Expr:
    """Roles [system], then user/assistant turns in turn, ending with the assistant."""
    roles = col.list.eval(pl.element().struct.field("role")).list.join("|") + "|"
    return roles.str.contains(r"^(system\|)?(user\|assistant\|)+$").fill_null(False)


def no_empty_content(col: pl.Expr) -> pl.Expr:
    blank = pl.element().struct.field("content").fill_null("").str.strip_chars().str.len_chars() == 0
    return ~col.list.eval(blank).list.any().fill_null(True)


def within_chars(col: pl.Expr, max_chars: int) -> pl.Expr:
    return col.list.eval(pl.element().struct.field("content").str.len_chars()).list.sum() <= max_chars


def turn_rules(column: str, max_chars: int) -> list[Rule]:
    """The schema rules every conversation column obeys."""
    n = pl.col("text").str.len_chars().cast(pl.String)
    return [
        Rule("role_order", column, role_order,
             pl.lit("roles must be [system], then user/assistant turns in turn, ending with the assistant")),
        Rule("empty_content", column, no_empty_content, pl.lit("a message has no content")),
        Rule("too_long", column, lambda col: within_chars(col, max_chars),
             pl.format("text has {} characters, more than curate.max_chars={}", n, pl.lit(max_chars)),
             ("curate.max_chars",)),
    ]


def final_content(col: str) -> pl.Expr:
    return pl.col(col).list.last().struct.field("content")


def prompt_key(col: str) -> pl.Expr:
    """The turns before a conversation's final turn, as one string (roles and contents)."""
    turn = pl.format("{}: {}", pl.element().struct.field("role"), pl.element().struct.field("content"))
    return pl.col(col).list.eval(turn).list.head(pl.col(col).list.len() - 1).list.join("\x00")


def turn_text(col: str) -> pl.Expr:
    """A conversation's non-system turns, one per line: the text the rules see."""
    return pl.col(col).list.eval(pl.element().filter(pl.element().struct.field("role") != "system")
                                 .struct.field("content")).list.join("\n")


def redact(df: pl.DataFrame, columns: list[str], rewrite: dict[int, Callable[[str], str]]) -> pl.DataFrame:
    """rewrite[row] (PII redaction, curate.redactions) applied to every message of those rows, in `columns`."""
    if not rewrite:
        return df
    rows = sorted(rewrite)
    new = {f"_{c}": [[{"role": m["role"], "content": rewrite[i](m["content"])} for m in msgs]
                     for i, msgs in zip(rows, df[c].gather(rows).to_list())] for c in columns}
    upd = pl.DataFrame({"_i": rows} | new, schema={"_i": pl.UInt32} | dict.fromkeys(new, MESSAGES))
    return (df.with_row_index("_i").join(upd, on="_i", how="left", maintain_order="left")
            .with_columns(pl.coalesce(f"_{c}", c).alias(c) for c in columns).drop("_i", *new))

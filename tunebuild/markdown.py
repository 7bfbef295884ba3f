"""Markdown pieces shared by the cards (report), `tunebuild audit` and `tunebuild diff`.

Every table cell is escaped (`cell`): text from the data (a quarantine error quoting a key, a label,
a file name) cannot break a table, start code, or inject HTML. Cells the code formats on purpose are
built with `code`, `bold` and `lines`, which escape their parts and mark the result as Markdown.
"""

from __future__ import annotations

import re


class Markdown(str):
    """Text that is already Markdown: `cell` and `table` leave it as it is."""


# What can break a table, open code or inject HTML. (Emphasis characters are left: they cannot.)
ESCAPES = {"\\": "\\\\", "|": "\\|", "`": "\\`", "<": "&lt;", ">": "&gt;", "&": "&amp;"}
NEWLINES = re.compile(r"\r\n|\r|\n")


def escape(text: str) -> str:
    """Plain text as inline Markdown that shows exactly that text (one line: newlines become
    <br>)."""
    escaped = "".join(ESCAPES.get(ch, ch) for ch in text)
    return NEWLINES.sub("<br>", escaped)


def cell(value) -> Markdown:
    """A value as one table cell: empty for None, escaped, on one line."""
    if isinstance(value, Markdown):
        return value
    return Markdown("" if value is None else escape(str(value)))


def code(value) -> Markdown:
    """A value as inline code: a backtick fence longer than any backtick run in it, `|` escaped (a
    table reads `\\|` in code too), on one line."""
    text = NEWLINES.sub(" ", str(value)).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


def bold(value) -> Markdown:
    return Markdown(f"**{cell(value)}**")


def lines(values) -> Markdown:
    """Several cells' worth in one cell, one per line (<br>)."""
    return Markdown("<br>".join(cell(v) for v in values))


def lines_of_code(mapping: dict) -> Markdown:
    """`key value` pairs, one per line, each value as code (paths and their hashes)."""
    return Markdown("<br>".join(f"{cell(k)} {code(v)}" for k, v in mapping.items()))


def table(headers: list, rows: list[list]) -> str:
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)

"""Markdown pieces shared by the cards (report), `tunebuild audit` and `tunebuild diff`."""
from __future__ import annotations


def cell(value) -> str:
    """A value as one table cell: empty for None, `|` escaped, on one line."""
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

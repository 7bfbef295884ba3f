"""Offline PII detection: e-mail, phone, payment card (Luhn), IBAN (mod 97), IP, national id.

Candidates are found with regular expressions and confirmed by checksums or
digit counts, so order numbers and dates are not taken for cards or phones.
`redact` replaces each confirmed span with a typed placeholder such as [EMAIL].
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import polars as pl

TYPES = ("email", "card", "iban", "national_id", "ip", "phone")  # detection order: specific before generic

PATTERNS = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "card": re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
    "national_id": re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"),
    "ip": re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)|\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b"),
    "phone": re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,8}){1,4}(?![\w])"),
}
# A cheap first pass per type (polars runs them over all rows): a necessary condition of each pattern,
# without its look-arounds. `find` tries a type's pattern only on the rows its prefilter matched.
PREFILTERS = {
    "email": "@",
    "card": r"\d(?:[ -]?\d){12}",
    "iban": r"[A-Z]{2}\d{2}",
    "national_id": r"\d{3}-\d{2}-\d{4}",
    "ip": r"(?:\d{1,3}\.){3}\d{1,3}|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
    "phone": r"\d{2}[ .-]\d{2}",
}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _confirmed(kind: str, match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    if kind == "card":
        return 13 <= len(digits) <= 19 and luhn_ok(digits)
    if kind == "iban":
        return iban_ok(match)
    if kind == "ip":
        try:
            ipaddress.ip_address(match)
            return True
        except ValueError:
            return False
    if kind == "phone":
        return 9 <= len(digits) <= 15 and (match.startswith("+") or len(set(digits)) > 2)
    return True


# Where a match can be: it holds one of these characters and is at most this many characters long
# (email: unbounded, so it is searched everywhere).
ANCHORS = {"card": ("0123456789", 40), "iban": ("0123456789", 70), "national_id": ("0123456789", 12),
           "ip": ("0123456789:", 40), "phone": ("0123456789", 60)}


def window(text: str, kind: str) -> tuple[int, int]:
    """(pos, endpos) for PATTERNS[kind].finditer: from `reach` before the first anchor character to `reach`
    after the last, which holds every match (the look-arounds still see the whole text: a search from
    pos looks behind it, and every match ends before endpos). Python's regex engine is slow per
    character, so scanning a long text only around its digits is several times faster. ASCII text
    only (str.find is fast; `\\d` also matches other scripts' digits)."""
    if kind not in ANCHORS or not text.isascii():
        return 0, len(text)
    chars, reach = ANCHORS[kind]
    first = [i for c in chars if (i := text.find(c)) >= 0]
    if not first:
        return 0, 0
    last = max(text.rfind(c) for c in chars)
    return max(0, min(first) - reach), min(len(text), last + reach + 1)


def find(text: str, kinds: Iterable[str] = TYPES) -> list[tuple[str, int, int]]:
    """Confirmed, non-overlapping PII spans (type, start, end) of the given types, in text order."""
    spans: list[tuple[str, int, int]] = []
    for kind in sorted(kinds, key=TYPES.index):
        for m in PATTERNS[kind].finditer(text, *window(text, kind)):
            if any(s < m.end() and m.start() < e for _, s, e in spans):
                continue
            if _confirmed(kind, m.group()):
                spans.append((kind, m.start(), m.end()))
    return sorted(spans, key=lambda s: s[1])


def redact(text: str, spans: list[tuple[str, int, int]], kinds: set[str]) -> str:
    """Replace the spans of the given kinds with [KIND] placeholders."""
    out, last = [], 0
    for kind, start, end in spans:
        if kind in kinds:
            out.append(text[last:start])
            out.append(f"[{kind.upper()}]")
            last = end
    out.append(text[last:])
    return "".join(out)


def find_all(df: pl.DataFrame) -> dict[int, tuple[str, list[tuple[str, int, int]]]]:
    """Row index -> (original text, PII spans), for rows with PII only.

    Each type's prefilter runs in polars over all rows; its pattern only on the rows that matched.
    """
    text = pl.col("text").fill_null("")
    any_type = "|".join(f"(?:{pat})" for pat in PREFILTERS.values())  # one pass over all rows, then per type
    hits = (df.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), "text").filter(text.str.contains(any_type))
            .with_columns(text.str.contains(pat).alias(k) for k, pat in PREFILTERS.items()))
    found = {}
    for i, t, *flags in hits.iter_rows():
        spans = find(t, [k for k, hit in zip(PREFILTERS, flags) if hit])
        if spans:
            found[i] = (t, spans)
    return found

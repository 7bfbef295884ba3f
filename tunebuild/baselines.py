"""Is fine-tuning worth it? The cheap alternatives, bootstrap intervals and likely label errors (evaluate's parts).

- classify: TF-IDF + logistic regression, and logistic regression on frozen base-model embeddings
  (mean-pooled last hidden states of the base at model.path, L2-normalised), both fit on the train split.
- sft: the base model prompted few-shot (k train examples as earlier turns of the conversation); zero-shot
  is evaluate's base (the base model greedy on the prompt).
- Every headline metric gets a percentile bootstrap 95% interval (seeded resamples of the evaluated rows);
  the gain of the tuned model over the best cheap alternative gets a paired one (the same resamples for both).
- Likely label errors: out-of-fold probabilities on the train split (the mean of both classify baselines'),
  then confident learning (Northcutt et al. 2021) exactly as cleanlab's filter_by="confident_learning"
  (tunebuild.metrics.label_issues). Flagged rows are listed, never dropped.
- Macro-F1 is scikit-learn's, over every taxonomy label (tunebuild.metrics.macro_f1).

Every function is deterministic: fixed seeds, lbfgs logistic regression, no_grad forward passes.
"""
from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import polars as pl
import torch

from tunebuild.classifier import collate, length_batches, mean_pool
from tunebuild.metrics import label_issues, macro_f1  # noqa: F401  (evaluate's parts: label_issues)
from tunebuild.progress import Progress

TFIDF = {"ngram_range": (1, 2), "sublinear_tf": True}  # word uni- and bigrams, log term frequency
C_TFIDF, C_EMBEDDING = 1.0, 10.0  # inverse regularisation, chosen on the demo's validation split / out-of-fold
MAX_ITER = 2000
CONFIDENCE = 0.95  # the interval's coverage

Metric = Callable[[np.ndarray], np.ndarray]  # resample indices (..., n) -> one value per resample


# ---- classify: the cheap classifiers --------------------------------------------------------------------------

def tfidf_logreg():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(**TFIDF), LogisticRegression(C=C_TFIDF, max_iter=MAX_ITER))


def embedding_logreg():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C_EMBEDDING, max_iter=MAX_ITER)


@torch.no_grad()
def embed(encoder, ids: list[list[int]], batch_size: int, pad_id: int, what: str = "") -> np.ndarray:
    """Mean-pooled last hidden states (padding excluded), L2-normalised: one row per input, in input order;
    with `what`, progress on stderr."""
    encoder.eval()
    out, no_labels = torch.zeros((len(ids), encoder.config.hidden_size)), [0] * len(ids)
    progress = Progress(what, len(ids))
    for rows in length_batches(ids, batch_size):
        batch = collate(ids, no_labels, rows, pad_id)
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        out[rows] = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
        progress.tick(len(rows))
    return out.numpy()


def probabilities(model, x, k: int) -> np.ndarray:
    """predict_proba over all k labels (a label absent from the training rows gets 0)."""
    out = np.zeros((len(x) if isinstance(x, list) else x.shape[0], k))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def fit_proba(make, x_train, y_train: np.ndarray, x_eval, k: int) -> np.ndarray:
    return probabilities(make().fit(x_train, y_train), x_eval, k)


def out_of_fold(make, x, y: np.ndarray, k: int, folds: int, seed: int) -> np.ndarray:
    """Probabilities for every row from a model that did not see it (stratified k-fold, seeded)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros((len(y), k))
    with warnings.catch_warnings():  # a label with fewer rows than folds: sklearn warns, the folds still work
        warnings.simplefilter("ignore", UserWarning)
        splits = list(StratifiedKFold(min(folds, len(y)), shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    pick = (lambda rows: [x[i] for i in rows]) if isinstance(x, list) else (lambda rows: x[rows])
    for fit_rows, held_out in splits:
        if len(np.unique(y[fit_rows])) < 2:  # nothing to learn: no opinion (every label equally likely)
            out[held_out] = 1.0 / k
            continue
        out[held_out] = fit_proba(make, pick(fit_rows), y[fit_rows], pick(held_out), k)
    return out


def cheap_classifiers(encoder, train: pl.DataFrame, evaluated: pl.DataFrame, k: int, batch_size: int, pad_id: int,
                      folds: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """Fit both cheap classifiers on `train` (text, input_ids, label_id): their predicted label ids on
    `evaluated` (text, input_ids), the mean of their out-of-fold probabilities on `train`, and seconds per part."""
    seconds, start = {}, time.perf_counter()
    x_train, x_eval = (embed(encoder, df["input_ids"].to_list(), batch_size, pad_id, f"evaluate: embedding {name} rows")
                       for name, df in (("train", train), ("evaluated", evaluated)))
    seconds["embed"] = round(time.perf_counter() - start, 3)
    y = train["label_id"].to_numpy().astype(np.int64)
    inputs = {"tfidf_logreg": (tfidf_logreg, train["text"].to_list(), evaluated["text"].to_list()),
              "embedding_logreg": (embedding_logreg, x_train, x_eval)}
    predicted, oof = {}, np.zeros((len(y), k))
    with one_blas_thread():
        for name, (make, xt, xe) in inputs.items():
            print(f"evaluate: fitting {name} and its {folds}-fold label check", file=sys.stderr, flush=True)
            start = time.perf_counter()
            predicted[name] = fit_proba(make, xt, y, xe, k).argmax(1)
            seconds[name] = round(time.perf_counter() - start, 3)
            oof += out_of_fold(make, xt, y, k, folds, seed) / len(inputs)
            seconds[f"{name}_out_of_fold"] = round(time.perf_counter() - start - seconds[name], 3)
    return predicted, oof, seconds


def one_blas_thread():
    """Small solves run faster on one BLAS thread: measured on the demo with 2 busy cores, 0.3 s instead of
    7.6 s for one embedding fit. sklearn is imported first so that the BLAS scipy loads is limited too."""
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


# ---- bootstrap intervals ----------------------------------------------------------------------------------------

def resamples(n: int, count: int, seed: int) -> np.ndarray:
    """`count` bootstrap resamples of n rows (indices, with replacement), seeded."""
    return np.random.default_rng(seed).integers(0, n, size=(count, n))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return (y_true == y_pred).mean(-1)


def mean_of(hits: np.ndarray) -> Metric:
    """A per-row 0/1 outcome (json_valid, exact_match) as a metric."""
    return lambda idx: hits[idx].mean(-1)


def label_metrics(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, Metric]:
    """classify's headline metrics of one set of predictions."""
    return {"accuracy": lambda idx: accuracy(y_true[idx], y_pred[idx]),
            "macro_f1": lambda idx: macro_f1(y_true[idx], y_pred[idx], k)}


def interval(values: np.ndarray) -> dict[str, float]:
    lo, hi = np.percentile(values, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    return {"ci_lo": round(float(lo), 6), "ci_hi": round(float(hi), 6)}


def with_intervals(metrics: dict[str, Metric], idx: np.ndarray) -> dict[str, float]:
    """Each metric on all rows, and its bootstrap interval: {m: value, m_ci_lo: .., m_ci_hi: ..}."""
    everything = np.arange(idx.shape[1])[None]
    out = {}
    for name, f in metrics.items():
        out[name] = round(float(f(everything)[0]), 6)
        out |= {f"{name}_{k}": v for k, v in interval(f(idx)).items()}
    return out


def difference(f: Metric, g: Metric) -> Metric:
    return lambda idx: f(idx) - g(idx)


def paired_gain(a: dict[str, Metric], b: dict[str, Metric], idx: np.ndarray) -> dict[str, float]:
    """a minus b per metric, with an interval from the same resamples for both (a paired bootstrap)."""
    return with_intervals({name: difference(a[name], b[name]) for name in a}, idx)


def compare(systems: dict[str, dict[str, Metric]], alternatives: list[str], primary: str, n: int, count: int,
            seed: int) -> tuple[dict[str, dict], dict]:
    """Every system's metrics with intervals, and the gain of systems["tuned"] over the best of the cheap
    `alternatives` (the highest `primary` metric; the first listed on a tie), with paired intervals."""
    idx = resamples(n, count, seed)
    scored = {name: with_intervals(m, idx) for name, m in systems.items()}
    best = max(alternatives, key=lambda a: (scored[a][primary], -alternatives.index(a)))
    return scored, {"baseline": best, "metric": primary} | paired_gain(systems["tuned"], systems[best], idx)


# ---- sft: few-shot prompts --------------------------------------------------------------------------------------

def few_shot(shots: list[list[dict]], prompt: list[dict]) -> list[dict]:
    """The prompt's leading system turns, then each example conversation (its own system turns left out),
    then the rest of the prompt: the examples read as earlier turns of the same chat."""
    lead = 0
    while lead < len(prompt) and prompt[lead]["role"] == "system":
        lead += 1
    return prompt[:lead] + [m for shot in shots for m in shot if m["role"] != "system"] + prompt[lead:]

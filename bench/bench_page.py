"""The report page (data/report/index.html) for a 1,000,000-row curate run: time to render and size.

Writes synthetic outputs of every stage the report reads into a temporary data/ folder, shaped as
the pipeline writes them: 1M raw units of 4 sources (2% quarantined, 20% rejected by 8 rules), the
curated 780k records split 80/10/10 with texts of 8-40 words and their token ids, near-duplicate
clusters, 2,000 leakage pairs, 30,000 training steps of dvclive curves, 78k test predictions, 40k
label issues. Then times, in one process, what the report stage does for the page: the cards' facts
(stages.report.gather), the page's own reads (tunebuild.report_page.load) and the rendering
(tunebuild.report_page.render). Prints one JSON line: seconds of each part, page bytes.

    python bench/bench_page.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.report import gather  # noqa: E402
from tunebuild import report_page  # noqa: E402

LABELS = [
    "account_access",
    "billing",
    "bug_report",
    "cancellation",
    "feature_request",
    "order_status",
    "product_question",
    "refund",
    "security",
    "technical_setup",
]
SOURCES = ["helpdesk", "email", "chat", "forum"]
RULES = [
    "duplicate",
    "near_duplicate",
    "too_few_words",
    "unknown_label",
    "license",
    "pii_card",
    "too_long",
    "label_conflict",
]
WORDS = np.array(
    "account order invoice charge refund parcel tracking password login error crash app update "
    "card payment subscription plan cancel delivery address email phone support ticket".split()
)
SPLITS = ("train", "validation", "test")


def texts(n: int, rng: np.random.Generator) -> pl.Series:
    lengths = rng.integers(8, 40, n)
    words = pl.Series(WORDS[rng.integers(0, len(WORDS), int(lengths.sum()))])
    row = pl.Series(np.repeat(np.arange(n), lengths))
    return (
        pl.DataFrame({"row": row, "w": words})
        .group_by("row", maintain_order=True)
        .agg(pl.col("w").str.join(" "))["w"]
    )


def records(n: int, rng: np.random.Generator) -> pl.DataFrame:
    ids = pl.Series(
        [f"{x:016x}" for x in rng.integers(0, 2**63, n, dtype=np.int64).tolist()], dtype=pl.String
    )
    return pl.DataFrame(
        {
            "record_id": ids,
            "text": texts(n, rng),
            "label": pl.Series(LABELS)[rng.integers(0, 10, n)],
            "group": None,
            "source": pl.Series(SOURCES)[rng.integers(0, 4, n)],
            "file": "data/raw/x.jsonl",
            "line": np.arange(n),
            "license": "CC0-1.0",
            "pii": [[]] * n,
        }
    ).with_columns(cluster=pl.col("record_id"), group=pl.lit(None, pl.String))


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True))


def synthetic(root: Path, rows: int, seed: int = 0) -> None:
    """Every output the report stage reads, for a curate run of `rows` raw units."""
    rng = np.random.default_rng(seed)
    quarantined, rejected = rows // 50, rows // 5
    curated = rows - quarantined - rejected
    per_source = lambda n: {s: n // 4 for s in SOURCES}  # noqa: E731
    write_json(
        root / "ingest/stats.json",
        {
            "sources": {
                s: {
                    "files": 3,
                    "quarantined": quarantined // 4,
                    "records": (rows - quarantined) // 4,
                    "units": rows // 4,
                }
                for s in SOURCES
            },
            "total": {
                "files": 12,
                "quarantined": quarantined,
                "records": rows - quarantined,
                "units": rows,
            },
        },
    )
    pii = {t: {"found": 1000, "redacted": 900, "rejected": 100} for t in ("card", "email", "phone")}
    write_json(
        root / "curate/stats.json",
        {
            "by_source": {
                s: {
                    "curated": c,
                    "quarantined": quarantined // 4,
                    "records": c + rejected // 4,
                    "rejected": rejected // 4,
                    "units": rows // 4,
                }
                for s, c in per_source(curated).items()
            },
            "clusters": {"kept_with_near_duplicates": 0},
            "curated": curated,
            "curated_by_label": {x: curated // 10 for x in LABELS},
            "pii": pii,
            "pii_by_source": {s: pii for s in SOURCES},
            "records": rows - quarantined,
            "rejected": rejected,
            "rejected_by_rule": {r: rejected // len(RULES) for r in RULES},
        },
    )
    every = records(curated, rng)
    which = rng.choice(np.array(SPLITS), curated, p=[0.8, 0.1, 0.1])
    (root / "split").mkdir(parents=True)
    (root / "tokenize").mkdir(parents=True)
    split_stats = {"leakage": 2000}
    tok_stats = {}
    for name in SPLITS:
        df = every.filter(pl.Series(which == name))
        df.write_parquet(root / f"split/{name}.parquet")
        ids = df.select(
            "record_id",
            "label",
            input_ids=pl.col("text")
            .str.split(" ")
            .list.eval(pl.element().str.len_bytes().cast(pl.UInt32)),
        )
        ids.write_parquet(root / f"tokenize/{name}.parquet")
        lengths = ids["input_ids"].list.len()
        split_stats[name] = {
            "rows": df.height,
            "by_label": dict(df["label"].value_counts().sort("label").rows()),
            "by_source": dict(df["source"].value_counts().sort("source").rows()),
        }
        tok_stats[name] = {
            "rows": df.height,
            "tokens": int(lengths.sum()),
            "mean_length": float(lengths.mean()),
            "max_length": int(lengths.max()),
            "truncated": 0,
        }
    write_json(root / "split/stats.json", split_stats)
    write_json(root / "tokenize/stats.json", tok_stats)
    test = every.filter(pl.Series(which == "test"))
    train = every.filter(pl.Series(which == "train"))
    pairs = [
        {"split": "test", "record_id": a, "train_record_id": b, "similarity": 0.9}
        for a, b in zip(test["record_id"][:2000], train["record_id"][:2000])
    ]
    write_json(
        root / "split/leakage.json",
        {"count": 2000, "max_pairs": 5000, "pairs": pairs, "threshold": 0.8},
    )
    rej = (
        records(rejected, rng)
        .drop("cluster")
        .with_columns(
            rule=pl.Series(RULES)[rng.integers(0, len(RULES), rejected)],
            reason=pl.lit("a reason"),
            column=pl.lit("text"),
        )
    )
    (root / "curate").mkdir(exist_ok=True)
    rej.write_parquet(root / "curate/rejected.parquet")
    model = root / "train/model"
    model.mkdir(parents=True)
    (model / "adapter_model.safetensors").write_bytes(b"\0" * 1024)
    steps = np.arange(1, 30_001)
    for series, metric in (("train", "loss"), ("validation", "loss"), ("validation", "accuracy")):
        folder = root / "train/live/plots/metrics" / series
        folder.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"step": steps, metric: 2 / np.sqrt(steps)}).write_csv(
            folder / f"{metric}.tsv", separator="\t"
        )
    write_json(
        root / "train/live/metrics.json",
        {"step": 30000, "train": {"loss": 0.01}, "validation": {"loss": 0.02, "accuracy": 0.9}},
    )
    scores = {
        "accuracy": 0.9,
        "accuracy_ci_lo": 0.89,
        "accuracy_ci_hi": 0.91,
        "macro_f1": 0.88,
        "macro_f1_ci_lo": 0.87,
        "macro_f1_ci_hi": 0.89,
    }
    write_json(
        root / "evaluate/metrics.json",
        {
            "base": scores,
            "tuned": scores,
            "baselines": {"tfidf_logreg": scores},
            "gain": {"accuracy": 0.0},
            "gain_over_best_baseline": {
                "metric": "accuracy",
                "baseline": "tfidf_logreg",
                "accuracy": 0.0,
                "accuracy_ci_lo": -0.01,
                "accuracy_ci_hi": 0.01,
            },
            "label_issues": {"checked": train.height, "flagged": 40_000},
        },
    )
    write_json(
        root / "evaluate/per_class.json",
        {
            side: {x: {"f1": 0.9, "precision": 0.9, "recall": 0.9, "support": 7800} for x in LABELS}
            for side in ("base", "tuned")
        },
    )
    test.select(
        "record_id", "label", predicted=pl.col("label"), confidence=pl.lit(0.9)
    ).write_parquet(root / "evaluate/predictions.parquet")
    test.select(actual="label", predicted="label").write_csv(root / "evaluate/confusion.csv")
    train.head(40_000).select(
        "record_id",
        "source",
        "label",
        suggested=pl.col("label"),
        confidence=pl.lit(0.5),
        text="text",
    ).write_parquet(root / "evaluate/label_issues.parquet")


CONTEXT = {
    "title": "bench",
    "task": "classify",
    "base_model": "minilm",
    "mode": "lora",
    "data": "synthetic",
    "labels": LABELS,
    "licenses": {s: "CC0-1.0" for s in SOURCES},
    "worth_it": "A sentence.",
    "alternatives": {"tfidf_logreg": "TF-IDF + logistic regression"},
    "missing": [],
}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(root: Path) -> dict:
    """Wall seconds of the cards' facts (gather), the page's reads (load) and rendering; CPU seconds
    (all threads) of the page's part, which a busy machine does not inflate."""
    t0 = time.perf_counter()
    facts = gather(root)
    t1, c1 = time.perf_counter(), cpu()
    extra = report_page.load(facts["splits"], root)
    t2 = time.perf_counter()
    page = report_page.render(facts, extra, CONTEXT)
    t3, c3 = time.perf_counter(), cpu()
    return {
        "gather_s": round(t1 - t0, 3),
        "load_s": round(t2 - t1, 3),
        "render_s": round(t3 - t2, 3),
        "page_s": round(t3 - t1, 3),
        "page_cpu_s": round(c3 - c1, 3),
        "bytes": len(page.encode()),
        "load_average": round(os.getloadavg()[0], 1),
        "page": page,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        synthetic(Path(tmp), args.rows)
        made = time.perf_counter() - t
        result = measure(Path(tmp))
    result.pop("page")
    print(json.dumps({"bench": "page", "rows": args.rows, "synthetic_s": round(made, 1), **result}))


if __name__ == "__main__":
    main()

"""Is fine-tuning worth it, and what does asking cost? The cheap alternatives' time against the train stage's.

Builds the default pipeline (full classify demo) in a temporary git repo, times the train stage and the
evaluate stage, and reads the seconds evaluate spends on the cheap alternatives (embedding the train and test
texts with the frozen base, TF-IDF and embedding logistic regressions, their out-of-fold runs for the label
check, intervals) from its log. Then scores the label check against the demo's planted label noise
(scripts/make_demo_data.py flips 3% of good rows to a neighbouring label). Prints one JSON line per figure.

    python bench/bench_baselines.py
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl
from bench_pipeline import ROOT, STAGES, copy_project

TARGET = 0.25  # the cheap alternatives may take at most this share of the train stage's time


def repro(repo: Path, stage: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "--single-item", stage], cwd=repo, check=True,
                          capture_output=True, text=True)
    return time.perf_counter() - t0, proc.stdout


def planted_noise() -> list[str]:
    """The texts make_demo_data.py relabelled on purpose, regenerated with its own seed and steps."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_demo_data as demo

    r, seen, counts = random.Random(demo.SEED), set(), Counter()
    sources = demo.base_rows(r, seen)
    demo.plant_noise(sources, r)
    demo.plant_pii(sources, r, counts, seen)
    demo.plant_copies(sources, r, counts, seen)
    demo.plant_defects(sources, r, counts, seen)
    return [x["text"] for rows in sources.values() for x in rows if x.get("noise")]


def emit(**figure) -> None:
    print(json.dumps({"bench": "baselines"} | figure), flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_project(Path(tmp) / "repo")
        seconds = {}
        for stage in STAGES[:-1]:
            seconds[stage], log = repro(repo, stage)
        line = next(x for x in log.splitlines() if x.startswith("evaluate timings"))
        parts = json.loads(line.split(": ", 1)[1])
        cheap = round(sum(parts.values()), 2)
        emit(stage="train", seconds=round(seconds["train"], 2))
        emit(stage="evaluate", seconds=round(seconds["evaluate"], 2))
        emit(part="cheap_alternatives", seconds=cheap, detail=parts)
        emit(ratio_to_train=round(cheap / seconds["train"], 3), target=TARGET, ok=cheap <= TARGET * seconds["train"])
        metrics = json.loads((repo / "data/evaluate/metrics.json").read_text())
        emit(metrics={k: metrics[k] for k in ("tuned", "baselines", "gain_over_best_baseline", "label_issues")})
        noisy = set(pl.read_parquet(repo / "data/ingest/records.parquet").filter(
            pl.col("text").is_in(planted_noise()))["record_id"])
        train = set(pl.read_parquet(repo / "data/split/train.parquet")["record_id"])
        flagged = set(pl.read_parquet(repo / "data/evaluate/label_issues.parquet")["record_id"])
        hit = len(flagged & noisy)
        emit(label_issues={"planted_in_train": len(noisy & train), "flagged": len(flagged), "flagged_planted": hit,
                           "precision": round(hit / max(len(flagged), 1), 3),
                           "recall": round(hit / max(len(noisy & train), 1), 3)})


if __name__ == "__main__":
    main()

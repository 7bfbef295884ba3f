"""PII detection's precision and recall per type on the labelled corpus tests/data/pii_corpus.jsonl.

Each corpus line is one short text, the phone region of its source and its true PII spans (type and
exact substring; none for a false candidate). A found span counts as right when its type and
substring are a true one's. Prints JSON lines: one per type (true, found, tp, fp, fn, precision,
recall, and whether it meets the targets precision >= 0.98 and recall >= 0.95), then the totals;
--mistakes also prints each wrong or missed span.

    python bench/bench_pii.py [--mistakes]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tunebuild import pii

CORPUS = Path(__file__).resolve().parents[1] / "tests/data/pii_corpus.jsonl"
TARGETS = {"precision": 0.98, "recall": 0.95}


def load(path: Path = CORPUS) -> list[dict]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def found_spans(row: dict) -> set[tuple[str, str]]:
    s = pii.Settings((row["region"],), tuple(pii.NATIONAL_IDS))
    return {(kind, row["text"][a:b]) for kind, a, b in pii.find(row["text"], pii.TYPES, s)}


def score(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per type: counts, precision and recall; and the mistakes (wrong or missed spans)."""
    counts = {t: {"tp": 0, "fp": 0, "fn": 0} for t in pii.TYPES}
    mistakes = []
    for row in rows:
        truth = {(k, v) for k, v in row["pii"]}
        found = found_spans(row)
        for kind, value in found | truth:
            outcome = (
                "tp"
                if (kind, value) in found and (kind, value) in truth
                else "fp"
                if (kind, value) in found
                else "fn"
            )
            counts[kind][outcome] += 1
            if outcome != "tp":
                mistakes.append(
                    {
                        "mistake": outcome,
                        "type": kind,
                        "value": value,
                        "text": row["text"],
                        "region": row["region"],
                        "about": row["about"],
                    }
                )
    return [line(t, c) for t, c in counts.items()], mistakes


def line(kind: str, c: dict) -> dict:
    found, true = c["tp"] + c["fp"], c["tp"] + c["fn"]
    precision = round(c["tp"] / found, 4) if found else 1.0
    recall = round(c["tp"] / true, 4) if true else 1.0
    return {
        "bench": "pii",
        "type": kind,
        "true": true,
        "found": found,
        **c,
        "precision": precision,
        "recall": recall,
        "meets_targets": precision >= TARGETS["precision"] and recall >= TARGETS["recall"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mistakes", action="store_true", help="also print each wrong or missed span")
    args = ap.parse_args()
    rows = load()
    start = time.perf_counter()
    per_type, mistakes = score(rows)
    seconds = time.perf_counter() - start
    for x in per_type:
        print(json.dumps(x))
    print(
        json.dumps(
            {
                "bench": "pii",
                "candidates": len(rows),
                "true_candidates": sum(bool(r["pii"]) for r in rows),
                "false_candidates": sum(not r["pii"] for r in rows),
                "mistakes": len(mistakes),
                "all_meet_targets": all(x["meets_targets"] for x in per_type),
                "seconds": round(seconds, 3),
            }
        )
    )
    if args.mistakes:
        for m in mistakes:
            print(json.dumps(m, ensure_ascii=False))


if __name__ == "__main__":
    main()

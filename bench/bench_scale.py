"""The data stages at scale: generated rows through ingest -> curate -> split -> tokenize.

Generates support-ticket-like JSONL (about 80 words a row, with exact and near
duplicates, PII and malformed lines mixed in; vectorized, so 10M rows take a
few minutes) in a project copy, runs the real stages one after the other
(`python -m stages.<verb>`) and prints a JSON line per stage: wall and CPU
seconds (with worker processes), rows/s (of the generated rows) and the peak
RSS of the stage's whole process tree. The issue's bar: peak RSS at most 4 GB
for every stage at 10M rows.

    python bench/bench_scale.py --rows 10000000 --workdir /tmp/scale   # keep the data for reruns
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from bench_curate import LABELS, ROOT, WORDS, timed

CHUNK = 250_000
STAGES = ("ingest", "curate", "split", "tokenize")


def make_chunk(start: int, rows: int, rng: np.random.Generator) -> bytes:
    """`rows` JSONL lines: random word texts, 3% exact and 2% near copies of earlier rows of the chunk,
    3% with PII, 0.2% malformed."""
    lengths = rng.integers(60, 101, rows)
    flat = pl.Series(WORDS).gather(rng.integers(0, len(WORDS), int(lengths.sum())))
    row = np.repeat(np.arange(rows), lengths)
    texts = pl.DataFrame({"row": row, "w": flat}).group_by("row", maintain_order=True).agg(pl.col("w").str.join(" "))["w"]
    kind = rng.random(rows)
    earlier = (rng.random(rows) * np.arange(rows)).astype(np.int64)
    ids = np.arange(start, start + rows)
    df = pl.DataFrame({"text": texts, "earlier": earlier, "kind": kind, "id": ids}).with_columns(
        text=pl.when(pl.col("kind") < 0.03).then(pl.col("text").gather(pl.col("earlier")))
        .when(pl.col("kind") < 0.05).then(pl.col("text").gather(pl.col("earlier")) + " " + pl.lit(WORDS[0]))
        .when(pl.col("kind") < 0.065).then(pl.format("{} mail me at user{}@example.com", "text", "id"))
        .when(pl.col("kind") < 0.07).then(pl.format("{} card 4111 1111 1111 1111", "text"))
        .when(pl.col("kind") < 0.08).then(pl.format("{} from 203.0.113.{}", "text", pl.col("id") % 250))
        .otherwise("text"),
        label=pl.Series(LABELS).gather(rng.integers(0, len(LABELS), rows)))
    lines = df.select("text", "label", "id").write_ndjson().encode().split(b"\n")
    for i in range(0, rows, 500):
        lines[i] = b'{"text": "truncated'
    return b"\n".join(lines)


def project(repo: Path, rows: int, files: int) -> None:
    """A project copy with params for the generated source, and the data (reused when it is there)."""
    shutil.rmtree(repo / "stages", ignore_errors=True)
    shutil.copytree(ROOT / "stages", repo / "stages")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["labels"] = LABELS
    params["data"]["sources"] = [{"name": "bench", "format": "text", "files": "bench/*.jsonl", "license": "CC0-1.0",
                                  "text_field": "text", "label_field": "label", "group_field": None,
                                  "rejected_field": None, "encoding": "utf-8", "delimiter": ",", "pii_regions": None}]
    params["curate"]["license_allowlist"] = ["CC0-1.0"]
    params["curate"]["max_words"] = 1000
    params["split"]["leakage"]["max_pairs"] = rows  # report the leaks, do not fail on them
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw = repo / "data/raw/bench"
    if raw.is_dir():
        return
    raw.mkdir(parents=True)
    rng, per_file = np.random.default_rng(0), -(-rows // files)
    for f in range(files):
        with open(raw / f"part-{f}.jsonl", "wb") as out:
            for start in range(f * per_file, min(rows, (f + 1) * per_file), CHUNK):
                out.write(make_chunk(start, min(CHUNK, rows - start, (f + 1) * per_file - start), rng))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--workdir", type=Path, help="keep the generated project here (reused when it exists)")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in pipeline order")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        project(repo, args.rows, args.files)
        size = sum(f.stat().st_size for f in (repo / "data/raw/bench").glob("*.jsonl"))
        print(json.dumps({"bench": "scale", "rows": args.rows, "jsonl_mb": round(size / 1e6),
                          "setup_seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        cpu_before = 0.0
        for stage in [s for s in args.stages.split(",") if s]:
            wall, cpu, rss, _ = timed(repo, f"stages.{stage}")
            print(json.dumps({"bench": "scale", "rows": args.rows, "stage": stage, "seconds": round(wall, 1),
                              "cpu_seconds": round(cpu - cpu_before, 1), "rows_per_s": round(args.rows / wall),
                              "peak_rss_mb": round(rss / 2**20)}), flush=True)
            cpu_before = cpu


if __name__ == "__main__":
    main()

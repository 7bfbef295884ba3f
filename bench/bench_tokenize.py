"""Tokenize stage throughput against the tokenizer's own encode_batch on the same texts.

Texts: the curated demo texts repeated to --rows rows. Prints JSON lines with
tokens/s for `tokenizers.Tokenizer.encode_batch` (ids only, the peer) and for
the stage's core `stages.tokenize.tokenize` (ids into a parquet-ready frame).

    python bench/bench_tokenize.py --rows 200000
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tunebuild.params import load_params  # noqa: E402
from stages.tokenize import Params, load_tokenizer, tokenize  # noqa: E402


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    p = load_params(Params)
    curated = pl.read_parquet("data/curate/curated.parquet") if Path("data/curate/curated.parquet").exists() else None
    if curated is None:
        raise SystemExit("run `dvc repro curate` first")
    reps = args.rows // curated.height + 1
    df = pl.concat([curated] * reps).head(args.rows)
    texts = df["text"].to_list()
    tok = load_tokenizer(p.model.path, p.tokenize.max_length)
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(texts[:1000])) * len(texts) / 1000

    def peer():
        for i in range(0, len(texts), p.tokenize.chunk_rows):
            [e.ids for e in tok.encode_batch(texts[i:i + p.tokenize.chunk_rows])]

    def ours():
        tokenize(df, tok, p.data.labels, p.tokenize.chunk_rows)

    t_peer, t_ours = best_of(args.repeat, peer), best_of(args.repeat, ours)
    for name, t in (("tokenizers.encode_batch", t_peer), ("stages.tokenize", t_ours)):
        print(json.dumps({"bench": "tokenize", "impl": name, "rows": len(texts), "seconds": round(t, 3),
                          "tokens_per_s": round(n_tokens / t)}))
    print(json.dumps({"bench": "tokenize", "ratio_ours_to_peer": round(t_peer / t_ours, 3)}))


if __name__ == "__main__":
    main()

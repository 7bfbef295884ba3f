"""Tokenize: split records -> model inputs, with the base model's own tokenizer (the task says how).

In:  data/split/{train,validation,test}.parquet, the tokenizer of model.path
Out: data/tokenize/{train,validation,test}.parquet
       classify: record_id, label, label_id, input_ids
       sft:      record_id, input_ids, labels (-100 but on assistant turns), prompt_length (where the
                 final answer starts), completion (the final answer's text)
       preference: record_id, chosen_ids, chosen_labels, rejected_ids, rejected_labels (-100 but on the
                 final answer's tokens), prompt_length (of the chosen conversation), chosen, rejected (the
                 answers' text); a pair is dropped when either conversation is
     data/tokenize/stats.json  per split: rows, tokens, truncated rows, mean/max length
                               (sft, preference: also dropped rows and trained-on tokens; preference:
                               rows are pairs, tokens and lengths count both conversations)

No padding here (batches are padded to their own longest row in train); texts longer than
tokenize.max_length tokens are truncated (or, for chat, handled by task.chat.truncation) and counted.
Each split is read and tokenized `tokenize.chunk_rows` rows at a time, so memory does not grow with
the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tunebuild import tasks
from tunebuild.errors import run
from tunebuild.files import atomic_path, scratch_dir, write_json
from tunebuild.params import (
    DataParams,
    ModelParams,
    TaskParams,
    TokenizeParams,
    load_params,
)
from tunebuild.tokens import combine

IN = Path("data/split")
OUT = Path("data/tokenize")
SPLITS = ("train", "validation", "test")


@dataclass
class Params:
    tokenize: TokenizeParams
    model: ModelParams
    data: DataParams
    task: TaskParams


def main() -> None:
    p = load_params(Params)
    task = tasks.load(p.task.name)
    tok = task.tokenizer(p)
    n, stats = p.tokenize.chunk_rows, {}
    with scratch_dir(OUT) as scratch:
        for name in SPLITS:  # a chunk at a time: memory does not grow with the split
            source = pl.scan_parquet(IN / f"{name}.parquet")
            parts, chunk_stats, lengths = [], [], []
            for k, start in enumerate(range(0, max(source.select(pl.len()).collect().item(), 1), n)):
                out, st = task.tokenize(source.slice(start, n).collect(), tok, p)
                parts.append(scratch / f"{name}-{k:09d}.parquet")
                out.write_parquet(parts[-1], compression="lz4", statistics=False)
                chunk_stats.append(st)
                lengths.append(task.lengths(out))
            with atomic_path(OUT / f"{name}.parquet") as tmp:
                pl.scan_parquet(parts).sink_parquet(tmp, compression="zstd", statistics=False)
            stats[name] = combine(chunk_stats, lengths)
    write_json(OUT / "stats.json", stats)
    print("tokenize: " + ", ".join(f"{k} {v['rows']} rows/{v['tokens']} tokens/{v['truncated']} truncated"
                                   for k, v in stats.items()))


if __name__ == "__main__":
    run(main, OUT)

"""Tokenize: split records -> model inputs, with the base model's own tokenizer.

In:  data/split/{train,validation,test}.parquet, the tokenizer.json of model.path
Out: data/tokenize/{train,validation,test}.parquet  record_id, label, label_id, input_ids
     data/tokenize/stats.json  per split: rows, tokens, truncated rows, mean/max length

No padding here (batches are padded to their own longest row in train); texts
longer than tokenize.max_length tokens are truncated and counted.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from tokenizers import Tokenizer

from stages.lib.errors import UserError, run
from stages.lib.files import write_json, write_parquet
from stages.lib.model import resolve_model_path
from stages.lib.params import DataParams, ModelParams, load_params

IN = Path("data/split")
OUT = Path("data/tokenize")
SPLITS = ("train", "validation", "test")


@dataclass
class TokenizeParams:
    max_length: int
    chunk_rows: int


@dataclass
class Params:
    tokenize: TokenizeParams
    model: ModelParams
    data: DataParams


def load_tokenizer(model_path: str, max_length: int) -> Tokenizer:
    path = Path(resolve_model_path(model_path)) / "tokenizer.json"
    if not path.is_file():
        raise UserError(f"{path}: no tokenizer.json for model.path={model_path}; "
                        "tunebuild needs a model with a fast tokenizer")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def list_column(ids: list[list[int]]) -> pl.Series:
    """list[list[int]] -> a polars List(UInt32) column, via flat numpy arrays (5x faster than pl.Series(ids))."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint32, count=int(lengths.sum()))
    row = np.repeat(np.arange(len(ids), dtype=np.uint32), lengths)
    lists = pl.DataFrame({"row": row, "input_ids": flat}).group_by("row", maintain_order=True).agg("input_ids")
    empty = lengths == 0  # rows with no tokens have no group: put them back as empty lists
    if empty.any():
        lists = (pl.DataFrame({"row": np.arange(len(ids), dtype=np.uint32)}).join(lists, on="row", how="left")
                 .with_columns(pl.col("input_ids").fill_null(pl.lit([], pl.List(pl.UInt32)))))
    return lists["input_ids"]


def tokenize(df: pl.DataFrame, tok: Tokenizer, labels: list[str], chunk_rows: int) -> tuple[pl.DataFrame, dict]:
    """The pure core: records -> (record_id, label, label_id, input_ids), stats."""
    ids: list[list[int]] = []
    truncated = 0
    texts = df["text"].to_list()
    limit = tok.truncation["max_length"] if tok.truncation else None
    for start in range(0, len(texts), chunk_rows):
        encodings = tok.encode_batch_fast(texts[start:start + chunk_rows])
        ids.extend(e.ids for e in encodings)
        truncated += sum(1 for e in encodings if len(e.ids) == limit and e.overflowing)
    out = df.select(
        "record_id", "label",
        label_id=pl.col("label").replace_strict(labels, list(range(len(labels))), return_dtype=pl.Int16),
        input_ids=list_column(ids),
    )
    lengths = out["input_ids"].list.len()
    stats = {"rows": out.height, "tokens": int(lengths.sum() or 0), "truncated": truncated,
             "mean_length": round(float(lengths.mean() or 0.0), 3), "max_length": int(lengths.max() or 0)}
    return out, stats


def main() -> None:
    params = load_params(Params)
    tok = load_tokenizer(params.model.path, params.tokenize.max_length)
    stats = {}
    for name in SPLITS:
        out, stats[name] = tokenize(pl.read_parquet(IN / f"{name}.parquet"), tok, params.data.labels,
                                    params.tokenize.chunk_rows)
        write_parquet(out, OUT / f"{name}.parquet")
    write_json(OUT / "stats.json", stats)
    print("tokenize: " + ", ".join(f"{k} {v['rows']} rows/{v['tokens']} tokens/{v['truncated']} truncated"
                                   for k, v in stats.items()))


if __name__ == "__main__":
    run(main, OUT)

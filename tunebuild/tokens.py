"""Token columns and their statistics, shared by the tasks' tokenization (tokenize stage)."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl

from tunebuild.errors import UserError
from tunebuild.model import resolve_model_path

LENGTH_KEYS = ("rows", "tokens", "mean_length", "max_length")


def fast_tokenizer(model_path: str, max_length: int):
    """The model's tokenizer.json (tokenizers), no padding, truncated at max_length."""
    from tokenizers import Tokenizer

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


def length_stats(lengths: pl.Series) -> dict:
    return {"rows": len(lengths), "tokens": int(lengths.sum() or 0),
            "mean_length": round(float(lengths.mean() or 0.0), 3), "max_length": int(lengths.max() or 0)}


def combine(parts: list[dict], lengths: list[pl.Series]) -> dict:
    """One split's stats from its chunks': length stats over all sequences, the counts (and rows) summed."""
    counts = {k: sum(st[k] for st in parts) for k in parts[0] if k not in LENGTH_KEYS}
    return length_stats(pl.concat(lengths)) | counts | {"rows": sum(st["rows"] for st in parts)}

"""Split: curated records -> train / validation / test, by a salted hash of record_id.

In:  data/curate/curated.parquet
Out: data/split/train.parquet, validation.parquet, test.parquet  (rows sorted by record_id)
     data/split/stats.json   rows per split, and per label and source within each split

A record's split depends only on its id and the salt: adding records never
moves existing ones, and copies of one input (same id) cannot straddle splits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from stages.lib.errors import UserError, run
from stages.lib.files import write_json, write_parquet
from stages.lib.params import load_params
from stages.lib.records import unit_hash

IN = Path("data/curate/curated.parquet")
OUT = Path("data/split")
SPLITS = ("train", "validation", "test")


@dataclass
class SplitParams:
    salt: str
    validation: float
    test: float


@dataclass
class Params:
    split: SplitParams


def assign(record_ids: list[str], p: SplitParams) -> list[str]:
    """test if h < test, validation if h < test + validation, else train (h uniform in [0, 1))."""
    if not (0 <= p.test < 1 and 0 <= p.validation < 1 and p.test + p.validation < 1):
        raise UserError(f"params.yaml: split.validation={p.validation}, split.test={p.test}: each must be in "
                        "[0, 1) and their sum below 1 so that train is not empty")
    out = []
    for rid in record_ids:
        h = unit_hash(p.salt, rid)
        out.append("test" if h < p.test else "validation" if h < p.test + p.validation else "train")
    return out


def split(curated: pl.DataFrame, p: SplitParams) -> tuple[dict[str, pl.DataFrame], dict]:
    """The pure core: curated records -> {split name: frame}, stats."""
    tagged = curated.with_columns(split=pl.Series(assign(curated["record_id"].to_list(), p), dtype=pl.String))
    parts = {name: tagged.filter(pl.col("split") == name).drop("split").sort("record_id") for name in SPLITS}
    stats = {name: {"rows": df.height,
                    "by_label": dict(df.group_by("label").len().sort("label").iter_rows()),
                    "by_source": dict(df.group_by("source").len().sort("source").iter_rows())}
             for name, df in parts.items()}
    return parts, stats


def main() -> None:
    params = load_params(Params)
    parts, stats = split(pl.read_parquet(IN), params.split)
    for name, df in parts.items():
        write_parquet(df, OUT / f"{name}.parquet")
    write_json(OUT / "stats.json", stats)
    print("split: " + ", ".join(f"{name} {s['rows']}" for name, s in stats.items()))


if __name__ == "__main__":
    run(main)

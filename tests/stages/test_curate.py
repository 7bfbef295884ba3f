import dataclasses
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.curate import Params, Parts, curate, curate_parts, measures
from stages.ingest import RECORDS_SCHEMA
from tunebuild.pool import pooled
from tunebuild import neardup, pii, rules
from tunebuild.errors import UserError
from tunebuild.params import CurateParams, DataParams, ForgetParams, NearDuplicateParams, PiiParams, TaskParams
from tunebuild.records import record_ids
from tunebuild.tasks import classify, sft

CP = CurateParams(min_chars=3, max_chars=100, min_words=2, max_words=12, max_symbol_ratio=0.5, max_char_run=5,
                  boilerplate=["(?i)sent from my iphone", "-+"], scripts=["Latin"], min_script_ratio=0.7,
                  license_allowlist=["CC0-1.0"],
                  pii=PiiParams(email="redact", phone="redact", card="reject", iban="reject", ip="keep",
                                national_id="reject", date_of_birth="redact", regions=["US"],
                                national_ids=["us.ssn", "es.dni"]),
                  near_duplicates=NearDuplicateParams(action="reject", threshold=0.8, num_perm=128, shingle_words=2, seed=0),
                  chunk_rows=2)  # tiny chunks: duplicates and clusters span chunks
DATA = DataParams(name="d", purpose=None, raw_dir="data/raw", labels=["billing", "refund"], sources=[], forget=ForgetParams(record_ids=[], patterns=[]))
P = Params(curate=CP, data=DATA, task=TaskParams(name="classify", chat=None))


def frame(rows, license="CC0-1.0"):
    texts = [r[0] for r in rows]
    n = len(rows)
    return pl.DataFrame({"record_id": record_ids(texts), "text": texts, "label": [r[1] for r in rows],
                         "group": [None] * n, "source": ["s"] * n, "file": ["f.jsonl"] * n,
                         "line": list(range(1, n + 1)), "license": [license] * n}, schema=RECORDS_SCHEMA)


def rules_of(rejected: pl.DataFrame) -> dict[int, str]:
    return dict(zip(rejected["line"].to_list(), rejected["rule"].to_list()))


# Plain words and runs (the fast path), and what it must leave to the regular expressions: whitespace that
# Python and polars disagree on (\x1c-\x1f, \x85), doubled spaces, symbols, case folding beyond ASCII.
WORD = st.one_of(st.text(alphabet="abZ_1", min_size=1, max_size=9), st.builds(str.__mul__, st.sampled_from("aZ1"), st.integers(1, 9)))
SIMPLE = st.lists(WORD, max_size=8).map(" ".join)
TRICKY = st.text(alphabet=list("aZ1._ ") + ["\t", "\n", "\r", "\x0b", "\x1c", "\x01", "\x85", "\xa0", "\u3000",
                                          "é", "ß", "İ", "ﬁ", "Ⅸ"], max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(SIMPLE, TRICKY, st.none()), max_size=20))
def test_measures_fast_path_equals_regular_expressions_and_band_keys(texts):
    measured, keys = measures(pl.Series(texts, dtype=pl.String), P)
    text = pl.Series(texts, dtype=pl.String).fill_null("")
    assert measured["_symbols"].to_list() == text.str.count_matches(r"[^\w\s]").to_list()
    assert measured["_spaces"].to_list() == text.str.count_matches(r"\s").to_list()
    assert measured["_words"].to_list() == text.str.count_matches(r"\S+").to_list()
    runs = [max((len(m.group()) for m in re.finditer(r"(.)\1*", t, re.DOTALL)), default=0) for t in text]
    assert measured["_max_run"].to_list() == [r if r > CP.max_char_run else 0 for r in runs]
    nd = CP.near_duplicates
    assert np.array_equal(keys, neardup.band_keys(text, nd.threshold, nd.num_perm, nd.shingle_words, nd.seed))


def test_each_rule_with_reason():
    records = frame([
        ("I was charged twice", "billing"),             # 1 kept
        ("", "billing"),                               # 2 empty_text
        (None, "refund"),                              # 3 empty_text
        ("hi", "refund"),                              # 4 too_short
        ("x y " * 30, "refund"),                       # 5 too_long
        ("please refund me", "misc"),                  # 6 unknown_label
        ("please refund me now", None),                # 7 unknown_label
        ("I WAS charged  twice", "billing"),           # 8 duplicate of line 1 (same normalized text)
        ("money back please?", "refund"),              # 9 label_conflict
        ("Money back please?", "billing"),             # 10 label_conflict
        ("", "misc"),                                  # 11 empty_text wins over unknown_label
        ("refund", "refund"),                          # 12 too_few_words
        ("one two three four five six seven eight nine ten eleven twelve thirteen", "refund"),  # 13 too_many_words
        ("$$$ ### !!! ???", "refund"),                 # 14 mostly_symbols
        ("refund meeeeeeeee now", "refund"),           # 15 repeated_chars
        ("Sent from my iPhone\n-----", "refund"),      # 16 boilerplate
        ("Верните мне деньги пожалуйста", "refund"),   # 17 charset
        ("my card 4111 1111 1111 1111 was charged", "billing"),  # 18 pii_card
        ("write to jane.doe@example.com about it", "billing"),   # 19 kept, redacted
        ("I was charged twice today", "billing"),      # 20 near_duplicate of 1? (shingles differ a lot: kept)
    ])
    curated, rejected, stats = curate(records, P)
    assert sorted(curated["line"].to_list()) == [1, 19, 20]
    assert rules_of(rejected) == {2: "empty_text", 3: "empty_text", 4: "too_short", 5: "too_long", 6: "unknown_label",
                                  7: "unknown_label", 8: "duplicate", 9: "label_conflict", 10: "label_conflict",
                                  11: "empty_text", 12: "too_few_words", 13: "too_many_words", 14: "mostly_symbols",
                                  15: "repeated_chars", 16: "boilerplate", 17: "charset", 18: "pii_card"}
    reasons = dict(zip(rejected["line"].to_list(), rejected["reason"].to_list()))
    assert reasons[4] == "text has 2 characters, fewer than curate.min_chars=3"
    assert reasons[6] == "label 'misc' is not in data.labels"
    assert reasons[8] == "duplicate of f.jsonl:1"
    assert "labels billing, refund" in reasons[9]
    assert "repeats 9 times" in reasons[15]
    assert "[CARD]" in rejected.filter(pl.col("line") == 18)["text"][0]  # PII never kept in rejected either
    assert curated.filter(pl.col("line") == 19)["text"][0] == "write to [EMAIL] about it"
    assert curated.filter(pl.col("line") == 19)["pii"].to_list() == [["email"]]
    assert stats["curated"] + stats["rejected"] == stats["records"] == 20
    assert stats["rejected_by_rule"]["empty_text"] == 3
    assert stats["pii"]["email"] == {"found": 1, "redacted": 1, "rejected": 0}
    assert stats["pii"]["card"] == {"found": 1, "redacted": 0, "rejected": 1}


def test_license_forget_and_near_duplicates():
    long = "my parcel has not arrived yet and the tracking page shows nothing at all since last monday morning"
    texts = [long + " please help",
             long + "!! please help!",        # differs only in punctuation: near-duplicate
             long + " please advise",         # one word changed: near-duplicate
             "the invoice total is wrong, I was billed for two seats"]
    records = frame([(t, "refund") for t in texts])
    roomy = dataclasses.replace(CP, max_chars=1000, max_words=100)
    p = dataclasses.replace(P, curate=roomy, data=dataclasses.replace(DATA, forget=ForgetParams(
        record_ids=[records["record_id"][3]], patterns=[])))
    curated, rejected, _ = curate(records, p)
    got = rules_of(rejected)
    assert got[4] == "forget" and rejected.filter(pl.col("line") == 4)["text"][0] is None
    assert got[2] == "near_duplicate" and got[3] == "near_duplicate"
    assert "near-duplicate of f.jsonl:1" in rejected.filter(pl.col("line") == 3)["reason"][0]
    assert curated["line"].to_list() == [1]
    # keep: all stay, in one cluster (split keeps clusters together)
    keep = dataclasses.replace(P, curate=dataclasses.replace(roomy, near_duplicates=dataclasses.replace(
        CP.near_duplicates, action="keep")))
    curated, rejected, stats = curate(records, keep)
    assert curated.height == 4 and curated.filter(pl.col("line") <= 3)["cluster"].n_unique() == 1
    assert stats["clusters"]["kept_with_near_duplicates"] == 1
    # license
    curated, rejected, _ = curate(frame([("a fine ticket text", "refund")], license="CC-BY-NC-4.0"), P)
    assert rejected["rule"].to_list() == ["license"] and "CC-BY-NC-4.0" in rejected["reason"][0]


@pytest.mark.parametrize("license, kept, why", [
    ("MIT OR CC0-1.0", True, None), ("CC0-1.0 AND MIT", False, "every part of the AND must be allowed: MIT is not"),
    ("GPL-2.0", True, None),  # deprecated id; the allowlist holds GPL-2.0-only
    ("Apache-2.0 WITH LLVM-exception", False, "LLVM-exception not in the allowlist"),
])
def test_license_rule_reads_spdx_expressions(license, kept, why):
    p = dataclasses.replace(P, curate=dataclasses.replace(CP, license_allowlist=["CC0-1.0", "GPL-2.0-only",
                                                                                 "Apache-2.0"]))
    curated, rejected, _ = curate(frame([("a fine ticket text", "refund")], license=license), p)
    assert curated.height == int(kept)
    if why:
        assert rejected["rule"].to_list() == ["license"] and why in rejected["reason"][0]


def test_pii_is_validated_and_read_in_the_sources_region():
    from tests.lib.test_pii import source

    texts = ["Meeting at 2024-01-15 10:30 about the refund", "please ring 020 7946 0958 about the refund",
             "my SSN is 078-05-1120 for the refund", "my SSN is 536-22-1234 for the refund"]
    records = frame([(t, "refund") for t in texts])
    us = dataclasses.replace(P, curate=dataclasses.replace(CP, max_words=100))
    curated, rejected, stats = curate(records, us)
    assert curated["text"].to_list()[:2] == texts[:2] and rules_of(rejected) == {4: "pii_national_id"}
    gb = dataclasses.replace(us, data=dataclasses.replace(DATA, sources=[source("s", ["GB"])]))
    curated, _, stats = curate(records, gb)
    assert "please ring [PHONE] about the refund" in curated["text"].to_list()
    assert stats["pii"]["phone"]["redacted"] == 1 and set(stats["pii"]) == set(pii.TYPES)


def test_kept_copy_is_the_first_by_file_and_line_whatever_the_input_order():
    records = frame([("same text here", "refund"), ("Same text here", "refund"), ("other text", "billing")])
    a = curate(records, P)
    b = curate(records.reverse(), P)
    assert a[0].equals(b[0]) and a[1].equals(b[1])
    assert a[0].filter(pl.col("text").str.contains("(?i)same"))["line"].to_list() == [1]


def test_chunk_size_and_worker_processes_do_not_change_the_result(tmp_path):
    rows = [(f"ticket number {i % 7} about the order that never came", "refund") for i in range(30)]
    rows += [("Ticket number 3 about the order that never came", "billing"), ("fine text", "billing"),
             ("mail me at a.b@example.com please", "refund"), ("card 4111 1111 1111 1111 charged", "billing")]
    rows += [("the parcel never arrived and tracking shows nothing since monday", "refund"), ("fine text again", "billing"),
             ("the parcel never arrived, and tracking shows nothing since monday!", "refund")]  # near-duplicates
    records = frame(rows)
    one_chunk = curate(records, dataclasses.replace(P, curate=dataclasses.replace(CP, chunk_rows=1000)))
    tiny_chunks = curate(records, P)
    records.write_parquet(tmp_path / "records.parquet")
    parts = Parts(tmp_path / "records.parquet", 4, tmp_path)  # as the stage runs it: files, worker processes
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        curated, rejected, stats = curate_parts(parts, P, None, None, partial(pooled, pool=pool, helpers=2))
    assert len(list(tmp_path.glob("ruled-*"))) == 10
    pooled_result = (curated.collect(), rejected.collect(), stats)
    for other in (tiny_chunks, pooled_result):
        assert one_chunk[0].equals(other[0]) and one_chunk[1].equals(other[1]) and one_chunk[2] == other[2]
    assert set(one_chunk[1]["rule"]) >= {"duplicate", "label_conflict", "pii_card", "near_duplicate"}


@pytest.mark.parametrize("lines", [[2, 1, 3, 4, 5], [3, 4, 1, 2, 5]], ids=["within-a-chunk", "across-chunks"])
def test_records_out_of_file_line_order_are_refused(lines):
    records = frame([(f"ticket {i} about an order", "refund") for i in range(5)]).with_columns(line=pl.Series(lines))
    with pytest.raises(UserError, match=r"not in \(file, line\) order; rerun `dvc repro ingest`"):
        curate_parts(Parts(records, 2), P, None)


def test_all_clean_and_empty_inputs():
    curated, rejected, _ = curate(frame([("fine text", "billing")]), P)
    assert curated.height == 1 and rejected.height == 0
    curated, rejected, stats = curate(frame([]), P)
    assert curated.height == rejected.height == stats["records"] == 0


def test_accounting_against_ingest_stats():
    records = frame([("fine text", "billing")])
    ok = {"sources": {"s": {"units": 2, "quarantined": 1}}}
    assert curate(records, P, ok)[2]["by_source"]["s"] == {"records": 1, "curated": 1, "rejected": 0, "units": 2,
                                                           "quarantined": 1}
    with pytest.raises(UserError, match="accounting does not add up"):
        curate(records, P, {"sources": {"s": {"units": 5, "quarantined": 1}}})


@pytest.mark.parametrize("change, needle", [
    (dict(task=TaskParams(name="rank", chat=None)), "task.name"),
    (dict(curate=dataclasses.replace(CP, pii=dataclasses.replace(CP.pii, email="hide"))), "curate.pii.email"),
    (dict(curate=dataclasses.replace(CP, boilerplate=["(unclosed"])), "curate.boilerplate"),
])
def test_bad_params_are_user_errors(change, needle):
    with pytest.raises(UserError, match=needle.replace(".", r"\.")):
        curate(frame([("x y z", "billing")]), dataclasses.replace(P, **change))


def test_classify_schema_is_a_dataframe_model():
    p = dataclasses.replace(P, curate=dataclasses.replace(CP, min_chars=1, max_chars=10),
                            data=dataclasses.replace(DATA, labels=["a"]))
    schema = rules.schema(classify.COLUMNS, classify.schema_rules(p))
    schema.validate(pl.DataFrame({"record_id": ["0123456789abcdef"], "text": ["hello"], "label": ["a"]}))


def test_sft_schema_roles_order_contents_length():
    msg = lambda *pairs: [{"role": r, "content": c} for r, c in pairs]  # noqa: E731
    df = pl.DataFrame({"record_id": ["0123456789abcdef"] * 5, "messages": [
        msg(("system", "be brief"), ("user", "hi"), ("assistant", "hello")),   # ok
        msg(("user", "hi"), ("assistant", "hello"), ("user", "more?")),         # ends with user
        msg(("assistant", "hello"), ("user", "hi")),                            # wrong order
        msg(("user", " "), ("assistant", "hello")),                             # empty content
        msg(("user", "x" * 50), ("assistant", "y")),                            # too long
    ]})
    p = dataclasses.replace(P, curate=dataclasses.replace(CP, max_chars=40), task=TaskParams(name="sft", chat=None))
    schema = rules.schema(sft.COLUMNS, sft.schema_rules(p))
    import pandera.polars as pa

    with pytest.raises(pa.errors.SchemaErrors) as e:
        schema.validate(df, lazy=True)
    fc = e.value.failure_cases
    assert sorted(zip(fc["index"].to_list(), fc["check"].to_list())) == [
        (1, "role_order"), (2, "role_order"), (3, "empty_content"), (4, "too_long")]

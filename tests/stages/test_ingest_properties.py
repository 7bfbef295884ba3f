"""Property-based tests of ingest + curate on arbitrary input.

Whatever bytes or JSON values a raw file holds, ingest_frames and curate return
frames (nothing raises), and every unit is accounted for: per source
units == records + quarantined, and curated + rejected == records.
Params are those of the malformed-input corpus (the values of conf/config.yaml).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import tempfile
from pathlib import Path

import orjson
import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stages.curate import curate, rule_names
from stages.curate import Params as CurateStageParams
from stages.ingest import IngestParams, ingest_frames
from stages.ingest import Params as IngestStageParams
from tunebuild.params import DataParams, ForgetParams, SourceParams, TaskParams
from tunebuild.records import record_id
from tests.stages.test_malformed_corpus import CURATE, INGEST, LABELS

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def src(name: str, fmt: str, **overrides) -> SourceParams:
    fields = dict(name=name, format="text", files=f"{name}/*.{fmt}", license="CC0-1.0", text_field="text", label_field="label",
                  group_field=None, rejected_field=None, encoding="utf-8", delimiter=",", pii_regions=None)
    return SourceParams(**(fields | overrides))


def run(files: dict[str, bytes], sources: list[SourceParams], ingest: IngestParams = INGEST, and_curate: bool = True):
    """Write `files` (path under the raw dir -> bytes), ingest and curate them, and check the invariants."""
    data = DataParams(name="d", purpose=None, raw_dir="data/raw", labels=LABELS, sources=sources, forget=ForgetParams(record_ids=[], patterns=[]))
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d)
        for rel, content in files.items():
            (raw / rel).parent.mkdir(parents=True, exist_ok=True)
            (raw / rel).write_bytes(content)
        records, quarantine, stats = ingest_frames(raw, IngestStageParams(ingest=ingest, data=data))
    assert isinstance(records, pl.DataFrame) and isinstance(quarantine, pl.DataFrame)
    for s in sources:
        st_ = stats["sources"][s.name]
        assert st_["units"] == st_["records"] + st_["quarantined"]
        assert records.filter(pl.col("source") == s.name).height == st_["records"]
        assert quarantine.filter(pl.col("source") == s.name).height == st_["quarantined"]
    assert quarantine["error"].null_count() == 0 and quarantine["line"].null_count() == 0
    if not and_curate:
        return records, quarantine, stats

    curate_params = CurateStageParams(curate=CURATE, data=data, task=TaskParams(name="classify", chat=None))
    curated, rejected, cstats = curate(records, curate_params, stats)
    assert isinstance(curated, pl.DataFrame) and isinstance(rejected, pl.DataFrame)
    assert curated.height + rejected.height == records.height
    for s in sources:
        row = cstats["by_source"][s.name]
        assert row["curated"] + row["rejected"] == row["records"] == stats["sources"][s.name]["records"]
        assert row["units"] == row["quarantined"] + row["rejected"] + row["curated"]
    assert set(rejected["rule"].to_list()) <= set(rule_names(curate_params))
    assert rejected["reason"].null_count() == 0
    return records, quarantine, stats, curated, rejected, cstats


# ---- (a) random bytes -------------------------------------------------------------------------------------------

FRAGMENTS = [b"\n", b"\r\n", b"\r", b"\xef\xbb\xbf", b'"', b'""', b",", b";", b"\t", b"{", b"}", b"[", b"]", b":",
             b'"text"', b'"label"', b'"billing"', b'"refund"', b"null", b"NaN", b"\x00", b"\xff", b"\xe9", b"\xc3\xa9",
             b" ", b"text,label\n", b'{"text": "I was charged twice", "label": "billing"}\n',
             b'I was charged twice,billing\n', b'"multi\nline, field",refund\n']
noise = st.lists(st.one_of(st.binary(max_size=24), st.sampled_from(FRAGMENTS)), max_size=40).map(b"".join)
ingest_params = st.builds(IngestParams, max_line_bytes=st.sampled_from([16, 64, 1 << 20]),
                          chunk_rows=st.sampled_from([1, 3, 50000]))


@FAST
@given(content=noise, ingest=ingest_params)
def test_random_bytes_as_jsonl(content, ingest):
    # utf-8 only: under another encoding a line holding '"text"' twice and a non-ASCII byte crashes
    # (the known _duplicate_key bug, in test_malformed_corpus).
    run({"a/f.jsonl": content}, [src("a", "jsonl")], ingest)


CSV_HEADERS = [b"text,label\n", b"id,text,label\r\n", b"\xef\xbb\xbftext,label\n", b"text;label\n", b"label\ttext\n"]


@FAST
@given(header=st.sampled_from(CSV_HEADERS), content=noise, encoding=st.sampled_from(["utf-8", "latin-1", "cp1252"]),
       delimiter=st.sampled_from([",", ";", "\t"]), ingest=ingest_params)
def test_random_bytes_as_csv(header, content, encoding, delimiter, ingest):
    run({"c/f.csv": header + content}, [src("c", "csv", encoding=encoding, delimiter=delimiter)], ingest)


@FAST
@example(content=b"\x80")
@given(content=noise)
def test_random_bytes_as_a_whole_csv_file_header_included(content):
    run({"c/f.csv": content}, [src("c", "csv")])


# ---- (b) random JSON values -------------------------------------------------------------------------------------

TEXTS = ["I was charged twice this month", "please send my money back", "hi", "", "   ",
         "Thanks!\nSent from my iPhone", "my card 4111 1111 1111 1111 was charged", "mail jane.doe@example.com now",
         "Здравствуйте, меня дважды списали деньги", "text", "label"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(
    scalars, lambda children: st.one_of(st.lists(children, max_size=4),
                                        st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(["text", "label"])),
                                                        children, max_size=4)),
    max_leaves=12)
record_like = st.builds(
    lambda fields, extra: {**extra, **fields},
    st.fixed_dictionaries({}, optional={"text": st.one_of(st.sampled_from(TEXTS), st.text(max_size=40), json_values),
                                        "label": st.one_of(st.sampled_from(LABELS + ["other"]), json_values)}),
    st.dictionaries(st.text(max_size=6), json_values, max_size=3))


@FAST
@given(values=st.lists(st.one_of(record_like, json_values), max_size=20), ascii_only=st.booleans(),
       ingest=ingest_params)
def test_random_json_values_one_per_line(values, ascii_only, ingest):
    content = b"".join(json.dumps(v, ensure_ascii=ascii_only).encode("utf-8") + b"\n" for v in values)
    records, quarantine, stats, *_ = run({"a/f.jsonl": content}, [src("a", "jsonl")], ingest)
    assert stats["sources"]["a"]["units"] == len(values)
    # a JSON object with a string (or absent) text and label is always read, never quarantined
    # (unless the line is over max_line_bytes)
    plain = [i + 1 for i, (v, raw) in enumerate(zip(values, content.splitlines(keepends=True)))
             if isinstance(v, dict) and all(isinstance(v.get(k), (str, type(None))) for k in ("text", "label"))
             and len(raw) <= ingest.max_line_bytes and "NaN" not in raw.decode() and "Infinity" not in raw.decode()]
    assert set(plain) <= set(records["line"].to_list())


# ---- record ids and order independence --------------------------------------------------------------------------

def csv_bytes(rows: list[tuple[str, str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)  # "\r\n" terminator: a field holding "\r" or "\n" is quoted
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@FAST
@given(texts=st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=15))
def test_valid_texts_get_16_hex_record_ids_the_same_in_jsonl_and_csv(texts):
    jsonl = b"".join(orjson.dumps({"text": t, "label": "billing"}) + b"\n" for t in texts)
    records, quarantine, _ = run({"a/f.jsonl": jsonl, "c/f.csv": csv_bytes([(t, "billing") for t in texts])},
                                 [src("a", "jsonl"), src("c", "csv")], and_curate=False)
    assert quarantine.height == 0
    for name in ("a", "c"):
        mine = records.filter(pl.col("source") == name).sort("line")
        assert mine["text"].to_list() == texts
        assert all(HEX16.match(i) for i in mine["record_id"].to_list())
        assert mine["record_id"].to_list() == [record_id(t) for t in texts]


WORDS = ["charged", "twice", "refund", "please", "money", "back", "order", "card", "I", "was", "the", "my"]
row_text = st.one_of(st.sampled_from(TEXTS),
                     st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join),
                     st.text(max_size=30))
rows = st.lists(st.tuples(row_text, st.sampled_from(LABELS + ["other"])), min_size=1, max_size=25)


@FAST
@given(rows=rows, split_at=st.integers(0, 25), seed=st.integers(0, 2**32 - 1))
def test_curate_output_does_not_depend_on_row_order(rows, split_at, seed):
    first, second = rows[:split_at], rows[split_at:]
    files = {"a/f1.jsonl": b"".join(orjson.dumps({"text": t, "label": lab}) + b"\n" for t, lab in first),
             "a/f2.jsonl": b"".join(orjson.dumps({"text": t, "label": lab}) + b"\n" for t, lab in second)}
    records, _, stats, curated, rejected, cstats = run(files, [src("a", "jsonl")])
    assert records.height == len(rows)
    params = CurateStageParams(curate=CURATE, data=DataParams(name="d", purpose=None, raw_dir="data/raw", labels=LABELS, sources=[src("a", "jsonl")],
                                                              forget=ForgetParams(record_ids=[], patterns=[])),
                               task=TaskParams(name="classify", chat=None))
    shuffled = records.sample(fraction=1.0, shuffle=True, seed=seed)
    curated2, rejected2, cstats2 = curate(shuffled, params, stats)
    assert curated.equals(curated2)
    assert rejected.equals(rejected2)
    assert cstats == cstats2


# ---- the JSONL reader's blocks and fast path against the line-by-line reading ---------------------------------

def lines_by_readline(path: Path, max_line_bytes: int) -> list[tuple[bytes | None, int]]:
    """The reference: one readline at a time (ingest before it read blocks): (line or None, length)."""
    out = []
    with open(path, "rb") as f:
        while raw := f.readline(max_line_bytes + 1):
            length = len(raw)
            if length > max_line_bytes and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(1 << 20)
                    length += len(raw)
                out.append((None, length))
            else:
                line = raw.removesuffix(b"\n").removesuffix(b"\r")
                out.append((line.removeprefix(b"\xef\xbb\xbf") if not out else line, length))
    return out


line_bytes = st.lists(st.one_of(st.sampled_from([b"\n", b"\r\n", b"\r", b"\xef\xbb\xbf", b"ab", b"x" * 9]),
                                st.binary(max_size=12)), max_size=30).map(b"".join)


@FAST
@given(content=line_bytes, block_bytes=st.integers(1, 40), max_line_bytes=st.integers(1, 20))
def test_iter_lines_in_blocks_equals_readline(content, block_bytes, max_line_bytes):
    from stages.ingest import iter_lines

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.jsonl"
        path.write_bytes(content)
        got = [pair for lines, lengths in iter_lines(path, max_line_bytes, block_bytes) for pair in zip(lines, lengths)]
        assert got == lines_by_readline(path, max_line_bytes)


keys = st.sampled_from(['"text"', '"label"', '"g"', '"input"', '"rejected"', '"te\\u0078t"', '"other"'])
values = st.one_of(st.sampled_from(['"a"', '"b c"', "null", "7", "2.5", "true", "[]", '{"text": "x"}', '"text"',
                                    '[{"role": "user", "content": "hi"}]', '[{"role": 1}]', '"\\u00e9t\\u00e9"']),
                   st.text(max_size=8).map(lambda t: orjson.dumps(t).decode()))
objects = st.lists(st.tuples(keys, values), max_size=5).map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}")
json_lines = st.lists(st.one_of(objects.map(str.encode), st.none(),
                                st.sampled_from([b"", b"  ", b"[1]", b"null", b"{broken", b'{"text": "a"} x', b'{"text": "\xff"}']),
                                st.binary(max_size=10).map(lambda b: b.replace(b"\n", b""))), max_size=12)
sources = st.sampled_from([src("a", "jsonl"), src("a", "jsonl", group_field="g"),
                           src("a", "jsonl", format="prompt_completion"), src("a", "jsonl", format="instruction"),
                           src("a", "jsonl", format="preference", rejected_field="rejected")])


@FAST
@given(lines=json_lines, source=sources)
def test_fast_path_reads_lines_as_parse_json_line_does(lines, source):
    """Rows and quarantined units (reasons, offsets) are the same with the fast path as with parse_json_line alone."""
    from stages.ingest import JsonFields, parse_lines

    lengths = [len(line) + 1 if line is not None else 99 for line in lines]
    jf = JsonFields.of(source)
    assert jf.fast
    fast = parse_lines(lines, lengths, 5, 100, source, jf, 64)
    assert fast == parse_lines(lines, lengths, 5, 100, source, dataclasses.replace(jf, fast=False), 64)

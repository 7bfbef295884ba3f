"""A corpus of malformed raw inputs, each run through ingest and curate end to end.

Every case is one raw file (JSONL, CSV or Parquet, or a directory) of a single
source. The expected outcome is given per unit (a JSONL line, a CSV row by the
line it starts on, a Parquet row; line 0 for a whole Parquet file or path):

    Q("substring")  quarantined by ingest, the error containing the substring
    R("rule")       read as a record, then rejected by curate with that rule
    OK              read as a record and curated

and must match exactly: no unit missing, none extra. The accounting is checked
for every case: units == records + quarantined, records == curated + rejected.

Params are the values of conf/config.yaml (ingest, curate) with a two-label
taxonomy, built here so that edits to conf/ do not move the expectations.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson
import polars as pl
import pytest

from stages.curate import Params as CurateStageParams
from stages.curate import curate
from stages.ingest import IngestParams, ingest_frames
from stages.ingest import Params as IngestStageParams
from tunebuild.errors import UserError
from tunebuild.params import (CurateParams, DataParams, ForgetParams, NearDuplicateParams, PiiParams, SourceParams,
                              TaskParams)
from tunebuild.records import record_id

LABELS = ["billing", "refund"]
INGEST = IngestParams(max_line_bytes=1048576, chunk_rows=50000)          # conf/config.yaml: ingest
CURATE = CurateParams(                                                   # conf/config.yaml: curate
    min_chars=3, max_chars=2000, min_words=2, max_words=400, max_symbol_ratio=0.5, max_char_run=12,
    boilerplate=["(?i)sent from my (iphone|android|mobile device)",
                 "(?i)this (e-?mail|message) (and any attachments )?(is|are) confidential.*",
                 "(?i)(thanks|thank you|regards|best|cheers)[.!,]*",
                 "-+"],
    scripts=["Latin"], min_script_ratio=0.7,
    license_allowlist=["CC-BY-4.0", "CC0-1.0", "LicenseRef-Acme-Internal"],
    pii=PiiParams(email="redact", phone="redact", card="reject", iban="reject", ip="redact", national_id="reject",
                  date_of_birth="redact", regions=["US"], national_ids=["us.ssn"]),
    near_duplicates=NearDuplicateParams(action="reject", threshold=0.8, num_perm=128, shingle_words=2, seed=0),
    chunk_rows=7,  # several chunks per test input
)


def source(fmt: str, **overrides) -> SourceParams:
    fields = dict(name="s", format="text", files=f"s/*.{fmt}", license="CC0-1.0", text_field="text", label_field="label",
                  group_field=None, rejected_field=None, encoding="utf-8", delimiter=",", pii_regions=None)
    return SourceParams(**(fields | overrides))


def data_params(src: SourceParams, forget_texts=()) -> DataParams:
    return DataParams(name="support_tickets", purpose=None, raw_dir="data/raw", labels=LABELS, sources=[src],
                      forget=ForgetParams(record_ids=[record_id(t) for t in forget_texts], patterns=[]))


# ---- expected outcomes ------------------------------------------------------------------------------------------

def Q(error: str) -> tuple[str, str]:
    return ("quarantined", error)


def R(rule: str) -> tuple[str, str]:
    return ("rejected", rule)


OK = ("curated", "")


@dataclass(frozen=True)
class Case:
    id: str
    fmt: str                                   # jsonl | csv | parquet (the file's extension)
    data: bytes | Callable[[Path], None]       # the file's bytes, or a builder that writes `path`
    expect: dict[int, tuple[str, str]]         # line -> Q(...) / R(...) / OK; {} = no units at all
    source: dict = field(default_factory=dict)     # SourceParams overrides
    texts: dict = field(default_factory=dict)      # line -> the text curate outputs (curated or rejected)
    forget: tuple[str, ...] = ()                   # texts whose record ids are in data.forget
    filename: str = "f"


# ---- builders ---------------------------------------------------------------------------------------------------

def J(**obj) -> bytes:
    """One JSONL line."""
    return orjson.dumps(obj) + b"\n"


GOOD = J(text="I was charged twice this month", label="billing")
GOOD2 = J(text="please send my money back", label="refund")


def parquet(**columns) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        pl.DataFrame(columns).write_parquet(path)
    return build


def parquet_frame(df_factory: Callable[[], pl.DataFrame], **kw) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        df_factory().write_parquet(path, **kw)
    return build


def parquet_truncated(path: Path) -> None:
    pl.DataFrame({"text": ["I was charged twice"], "label": ["billing"]}).write_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def parquet_corrupt_page(path: Path) -> None:
    """A valid footer and schema, but the length prefix of a string value in the data is garbage."""
    text = b"I was charged twice this month"
    pl.DataFrame({"text": [text.decode()], "label": ["billing"]}).write_parquet(path, compression="uncompressed")
    data = bytearray(path.read_bytes())
    at = data.find(text)
    assert at >= 4, "the test's builder could not find the value to corrupt"
    data[at - 4:at] = b"\xff\xff\xff\x7f"
    path.write_bytes(bytes(data))


def directory(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("inside a directory that the source glob matches\n")


NESTED_1000 = b"[" * 1000 + b"]" * 1000


LONG_TEXT = " ".join(["abcdefghi"] * 201)                       # 2009 characters, 201 words
NEAR_A = "Hello, I was charged twice for my order last week and nobody answered"
NEAR_B = "Hello I was charged twice for my order last week, and nobody answered!"   # same words, other punctuation


CASES = [
    # ---- JSONL: bytes and lines ----
    Case("jsonl-invalid-utf8", "jsonl", GOOD + b'{"text": "caf\xe9 au lait ok", "label": "billing"}\n' + GOOD2,
         {1: OK, 2: Q("not valid UTF-8"), 3: OK}),
    Case("jsonl-utf8-bom", "jsonl", b"\xef\xbb\xbf" + GOOD + GOOD2, {1: OK, 2: OK}),
    Case("jsonl-crlf", "jsonl", GOOD.replace(b"\n", b"\r\n") + GOOD2.replace(b"\n", b"\r\n"), {1: OK, 2: OK},
         texts={1: "I was charged twice this month", 2: "please send my money back"}),
    Case("jsonl-truncated-last-line", "jsonl", GOOD + b'{"text": "please send my mo', {1: OK, 2: Q("invalid JSON")}),
    Case("jsonl-zero-byte", "jsonl", b"", {}),
    Case("jsonl-line-over-max-line-bytes", "jsonl",
         GOOD + J(text="word " * 220000, label="billing") + GOOD2,
         {1: OK, 2: Q("over ingest.max_line_bytes=1048576"), 3: OK}),
    Case("jsonl-nan", "jsonl", b'{"text": "I was charged twice", "label": "billing", "score": NaN}\n',
         {1: Q("invalid JSON")}),
    Case("jsonl-infinity", "jsonl", b'{"text": "I was charged twice", "label": "billing", "score": Infinity}\n'
                                    b'{"text": "I was charged twice", "label": "billing", "score": -Infinity}\n'
                                    b'{"text": "I was charged twice", "label": "billing", "score": 1e999}\n',
         {1: Q("invalid JSON"), 2: Q("invalid JSON"), 3: Q("infinity")}),
    Case("jsonl-duplicate-text-key", "jsonl", b'{"text": "I was charged twice", "label": "billing", "text": "hi"}\n',
         {1: Q("duplicate key 'text'")}),
    Case("jsonl-duplicate-label-key", "jsonl", b'{"text": "I was charged twice", "label": "billing", "label": "refund"}\n',
         {1: Q("duplicate key 'label'")}),
    Case("jsonl-text-key-in-nested-object-is-no-duplicate", "jsonl",
         b'{"text": "I was charged twice", "label": "billing", "meta": {"text": "x"}}\n', {1: OK}),
    Case("jsonl-duplicate-text-key-escaped", "jsonl",
         b'{"text": "I was charged twice", "label": "billing", "te\\u0078t": "please send my money back"}\n',
         {1: Q("duplicate key 'text'")}),
    Case("jsonl-deep-nesting-over-1024", "jsonl",
         b'{"text": "I was charged twice", "label": "billing", "x": ' + b"[" * 1100 + b"]" * 1100 + b"}\n",
         {1: Q("invalid JSON")}),
    Case("jsonl-deep-nesting-under-orjson-limit-with-text-twice", "jsonl",
         b'{"text": "I was charged twice", "label": "billing", "note": "text", "x": ' + NESTED_1000 + b"}\n",
         {1: OK}),
    Case("jsonl-text-number", "jsonl", J(text=5, label="billing"), {1: Q("field 'text' is int, expected a string")}),
    Case("jsonl-text-float", "jsonl", J(text=1.5, label="billing"), {1: Q("field 'text' is float")}),
    Case("jsonl-text-list", "jsonl", J(text=["I was charged"], label="billing"), {1: Q("field 'text' is list")}),
    Case("jsonl-text-object", "jsonl", J(text={"body": "I was charged"}, label="billing"), {1: Q("field 'text' is dict")}),
    Case("jsonl-text-bool", "jsonl", J(text=True, label="billing"), {1: Q("field 'text' is bool")}),
    Case("jsonl-label-number", "jsonl", J(text="I was charged twice", label=1), {1: Q("field 'label' is int")}),
    Case("jsonl-group-number-is-fine", "jsonl", J(text="I was charged twice", label="billing", customer=42),
         {1: OK}, source={"group_field": "customer"}),
    Case("jsonl-group-bool", "jsonl", J(text="I was charged twice", label="billing", customer=False),
         {1: Q("field 'customer' is bool")}, source={"group_field": "customer"}),
    Case("jsonl-missing-text", "jsonl", J(label="billing"), {1: R("empty_text")}),
    Case("jsonl-text-null", "jsonl", J(text=None, label="billing"), {1: R("empty_text")}),
    Case("jsonl-missing-label", "jsonl", J(text="I was charged twice"), {1: R("unknown_label")}),
    Case("jsonl-extra-fields", "jsonl", J(text="I was charged twice", label="billing", id=7, tags=["a"], meta={}),
         {1: OK}),
    Case("jsonl-array-line", "jsonl", b'["I was charged twice", "billing"]\n', {1: Q("expected a JSON object, got list")}),
    Case("jsonl-string-line", "jsonl", b'"I was charged twice"\n', {1: Q("expected a JSON object, got str")}),
    Case("jsonl-number-line", "jsonl", b"42\n", {1: Q("expected a JSON object, got int")}),
    Case("jsonl-null-line", "jsonl", b"null\n", {1: Q("expected a JSON object")}),
    Case("jsonl-blank-lines", "jsonl", GOOD + b"\n" + b"  \t \r\n" + GOOD2,
         {1: OK, 2: Q("blank line"), 3: Q("blank line"), 4: OK}),
    Case("jsonl-trailing-comma-in-object", "jsonl", b'{"text": "I was charged twice", "label": "billing",}\n',
         {1: Q("invalid JSON")}),
    Case("jsonl-trailing-comma-after-object", "jsonl", b'{"text": "I was charged twice", "label": "billing"},\n',
         {1: Q("invalid JSON")}),
    Case("jsonl-single-quotes", "jsonl", b"{'text': 'I was charged twice', 'label': 'billing'}\n", {1: Q("invalid JSON")}),
    Case("jsonl-raw-control-char-in-string", "jsonl", b'{"text": "I was\tcharged twice", "label": "billing"}\n',
         {1: Q("invalid JSON")}),
    Case("jsonl-lone-surrogate-escape", "jsonl", b'{"text": "I was \\ud800 charged", "label": "billing"}\n',
         {1: Q("invalid JSON")}),
    Case("jsonl-two-objects-on-one-line", "jsonl", GOOD.rstrip(b"\n") + GOOD2, {1: Q("invalid JSON")}),
    Case("jsonl-latin1-declared", "jsonl", '{"text": "caf\xe9 cr\xe8me was cold", "label": "refund"}\n'.encode("latin-1"),
         {1: OK}, source={"encoding": "latin-1"}, texts={1: "caf\xe9 cr\xe8me was cold"}),
    Case("jsonl-latin1-declared-with-text-twice", "jsonl",
         '{"text": "caf\xe9 cr\xe8me was cold", "label": "refund", "note": "text"}\n'.encode("latin-1"),
         {1: OK}, source={"encoding": "latin-1"}),

    # ---- CSV ----
    Case("csv-quoted-newlines", "csv", b'id,text,label\n1,"I was charged\ntwice, sadly",billing\n2,"a\n\nb",refund\n'
                                       b'3,please send my money back,refund\n4,ragged\n',
         {2: OK, 4: OK, 7: OK, 8: Q("row has 2 fields, header has 3")},
         texts={2: "I was charged\ntwice, sadly", 4: "a\n\nb"}),
    Case("csv-ragged-more-fields", "csv", b"text,label\nI was charged twice,billing,extra\n",
         {2: Q("row has 3 fields, header has 2")}),
    Case("csv-ragged-fewer-fields", "csv", b"text,label\nI was charged twice\nplease send my money back,refund\n",
         {2: Q("row has 1 fields, header has 2"), 3: OK}),
    Case("csv-unclosed-quote", "csv", b'text,label\nI was charged twice,billing\n"please send my money back,refund\n',
         {2: OK, 3: Q("unreadable CSV row")}),
    Case("csv-quote-inside-quoted-field", "csv", b'text,label\n"I was "charged" twice",billing\nplease refund me,refund\n',
         {2: Q("unreadable CSV row"), 3: OK}),
    Case("csv-truncated-last-row", "csv", b"text,label\nI was charged twice,billing\nplease send my mo",
         {2: OK, 3: Q("row has 1 fields")}),
    Case("csv-blank-line", "csv", b"text,label\nI was charged twice,billing\n\nplease refund me,refund\n",
         {2: OK, 3: Q("row has 0 fields"), 4: OK}),
    Case("csv-zero-byte", "csv", b"", {}),
    Case("csv-header-only", "csv", b"text,label\n", {}),
    Case("csv-header-missing-text-column", "csv", b"body,label\nI was charged twice,billing\nplease refund,refund\n",
         {1: Q("no column 'text'")}),
    Case("csv-header-missing-label-column", "csv", b"text,category\nI was charged twice,billing\n",
         {1: Q("no column 'label'")}),
    Case("csv-undecodable-header-missing-column", "csv", b"body,caf\xe9\nI was charged twice,billing\n",
         {1: Q("no column 'text'")}),
    Case("csv-bom-in-header", "csv", b"\xef\xbb\xbftext,label\nI was charged twice,billing\n", {2: OK}),
    Case("csv-bom-in-quoted-header", "csv", b'\xef\xbb\xbf"text","label"\nI was charged twice,billing\n', {2: OK}),
    Case("csv-latin1-declared", "csv", "text,label\ncaf\xe9 cr\xe8me was cold,refund\n".encode("latin-1"),
         {2: OK}, source={"encoding": "latin-1"}, texts={2: "caf\xe9 cr\xe8me was cold"}),
    Case("csv-cp1252-undefined-byte", "csv", b"text,label\nI was \x81 charged,billing\nplease refund me,refund\n",
         {2: Q("invalid cp1252 bytes in row"), 3: OK}, source={"encoding": "cp1252"}),
    Case("csv-invalid-utf8", "csv", b"text,label\ncaf\xe9 cr\xe8me was cold,refund\nI was charged twice,billing\n",
         {2: Q("invalid utf-8 bytes in row"), 3: OK}),
    Case("csv-crlf", "csv", b"text,label\r\nI was charged twice,billing\r\nplease refund me,refund\r\n", {2: OK, 3: OK},
         texts={2: "I was charged twice", 3: "please refund me"}),
    Case("csv-semicolon-delimiter", "csv", b"id;text;label\n1;I was charged, twice;billing\n", {2: OK},
         source={"delimiter": ";"}, texts={2: "I was charged, twice"}),
    Case("csv-tab-delimiter", "csv", b"id\ttext\tlabel\n1\tI was charged, twice\tbilling\n2\tragged\n",
         {2: OK, 3: Q("row has 2 fields")},
         source={"delimiter": "\t"}),
    Case("csv-empty-text-cell", "csv", b"text,label\n,billing\n", {2: R("empty_text")}),
    Case("csv-empty-label-cell", "csv", b"text,label\nI was charged twice,\n", {2: R("unknown_label")}),

    # ---- Parquet ----
    Case("parquet-corrupt-bytes", "parquet", b"PAR1 this is not really parquet PAR1", {0: Q("unreadable Parquet file")}),
    Case("parquet-zero-byte", "parquet", b"", {0: Q("unreadable Parquet file")}),
    Case("parquet-truncated", "parquet", parquet_truncated, {0: Q("unreadable Parquet file")}),
    Case("parquet-corrupt-data-page", "parquet", parquet_corrupt_page, {0: Q("unreadable Parquet file")}),
    Case("parquet-missing-column", "parquet", parquet(body=["I was charged twice"], label=["billing"]),
         {0: Q("no column 'text'")}),
    Case("parquet-non-string-text", "parquet", parquet(text=[1, 2], label=["billing", "refund"]),
         {0: Q("Parquet column 'text' is Int64, expected a string")}),
    Case("parquet-binary-text", "parquet", parquet(text=[b"I was charged twice"], label=["billing"]),
         {0: Q("expected a string")}),
    Case("parquet-list-text", "parquet", parquet(text=[["I was charged twice"]], label=["billing"]),
         {0: Q("expected a string")}),
    Case("parquet-categorical-label", "parquet",
         parquet_frame(lambda: pl.DataFrame({"text": ["I was charged twice", "please refund me"],
                                             "label": pl.Series(["billing", "refund"], dtype=pl.Categorical)})),
         {1: OK, 2: OK}),
    Case("parquet-enum-label", "parquet",
         parquet_frame(lambda: pl.DataFrame({"text": ["I was charged twice", "please refund me"],
                                             "label": pl.Series(["billing", "refund"], dtype=pl.Enum(LABELS))})),
         {1: OK, 2: OK}),
    Case("parquet-nulls", "parquet", parquet(text=["I was charged twice", None, "please refund me"],
                                             label=["billing", "refund", None]),
         {1: OK, 2: R("empty_text"), 3: R("unknown_label")}),
    Case("parquet-all-null-text-column", "parquet", parquet(text=[None, None], label=["billing", "refund"]),
         {1: R("empty_text"), 2: R("empty_text")}),
    Case("parquet-zero-rows", "parquet",
         parquet_frame(lambda: pl.DataFrame(schema={"text": pl.String, "label": pl.String})), {}),
    Case("parquet-brackets-in-file-name", "parquet", parquet(text=["I was charged twice"], label=["billing"]),
         {1: OK}, filename="export[1]"),

    # ---- paths ----
    Case("directory-matching-the-source-glob", "jsonl", directory, {0: Q("is a directory")}),

    # ---- curate-side: read fine, rejected (or kept) by a rule ----
    Case("curate-empty-text", "jsonl", J(text="", label="billing"), {1: R("empty_text")}),
    Case("curate-whitespace-only", "jsonl", J(text=" \t\n  ", label="billing"), {1: R("empty_text")}),
    Case("curate-too-short", "jsonl", J(text="hi", label="billing"), {1: R("too_short")}),
    Case("curate-overlong", "jsonl", J(text=LONG_TEXT, label="billing"), {1: R("too_long")}),
    Case("curate-unknown-label", "jsonl", J(text="I was charged twice", label="shipping"), {1: R("unknown_label")}),
    Case("curate-too-few-words", "jsonl", J(text="charged", label="billing"), {1: R("too_few_words")}),
    Case("curate-too-many-words", "jsonl", J(text="a " * 401, label="billing"), {1: R("too_many_words")}),
    Case("curate-mostly-symbols", "jsonl", J(text="!!?? ##%% $$ ok", label="billing"), {1: R("mostly_symbols")}),
    Case("curate-repeated-chars", "jsonl", J(text="I was charged twiiiiiiiiiiiiiiiice", label="billing"),
         {1: R("repeated_chars")}),
    Case("curate-boilerplate-only", "jsonl", J(text="Thanks!\nSent from my iPhone", label="billing"),
         {1: R("boilerplate")}),
    Case("curate-non-latin-script", "jsonl", J(text="Здравствуйте, меня дважды списали деньги", label="billing"),
         {1: R("charset")}),
    Case("curate-card-number", "jsonl", J(text="my card 4111 1111 1111 1111 was charged twice", label="billing"),
         {1: R("pii_card")}, texts={1: "my card [CARD] was charged twice"}),
    Case("curate-iban", "jsonl", J(text="refund to GB82 WEST 1234 5698 7654 32 please", label="refund"),
         {1: R("pii_iban")}),
    Case("curate-national-id", "jsonl", J(text="my ssn is 536-22-1234 for the refund", label="refund"),
         {1: R("pii_national_id")}),
    Case("curate-specimen-ssn-is-not-pii", "jsonl", J(text="my ssn is 078-05-1120 for the refund", label="refund"),
         {1: OK}, texts={1: "my ssn is 078-05-1120 for the refund"}),
    Case("curate-email-redacted", "jsonl", J(text="mail me at jane.doe@example.com about the refund", label="refund"),
         {1: OK}, texts={1: "mail me at [EMAIL] about the refund"}),
    Case("curate-phone-in-pairs-redacted", "jsonl", J(text="call me on 01 23 45 67 89 about the refund", label="refund"),
         {1: OK}, texts={1: "call me on [PHONE] about the refund"}, source={"pii_regions": ["FR"]}),
    Case("curate-date-time-is-not-a-phone", "jsonl", J(text="the call at 2024-01-15 10:30 about the refund", label="refund"),
         {1: OK}, texts={1: "the call at 2024-01-15 10:30 about the refund"}),
    Case("curate-ip-redacted", "jsonl", J(text="login fails from 203.0.113.7 since monday", label="billing"),
         {1: OK}, texts={1: "login fails from [IP] since monday"}),
    Case("curate-license-not-allowed", "jsonl", GOOD, {1: R("license")}, source={"license": "CC-BY-NC-4.0"}),
    Case("curate-forget", "jsonl", GOOD + GOOD2, {1: R("forget"), 2: OK}, forget=("I was charged twice this month",),
         texts={1: None}),
    Case("curate-exact-duplicate", "jsonl", GOOD + J(text="I WAS charged  twice this month", label="billing"),
         {1: OK, 2: R("duplicate")}),
    Case("curate-label-conflict", "jsonl", GOOD + J(text="I was charged twice this month", label="refund"),
         {1: R("label_conflict"), 2: R("label_conflict")}),
    Case("curate-near-duplicate", "jsonl", J(text=NEAR_A, label="billing") + J(text=NEAR_B, label="billing"),
         {1: OK, 2: R("near_duplicate")}),
]


def run_case(case: Case, tmp_path: Path, ingest: IngestParams = INGEST):
    raw = tmp_path / "raw"
    (raw / "s").mkdir(parents=True)
    path = raw / "s" / f"{case.filename}.{case.fmt}"
    if callable(case.data):
        case.data(path)
    else:
        path.write_bytes(case.data)
    src = source(case.fmt, **case.source)
    data = data_params(src, case.forget)
    records, quarantine, stats = ingest_frames(raw, IngestStageParams(ingest=ingest, data=data))
    curated, rejected, cstats = curate(records, CurateStageParams(curate=CURATE, data=data,
                                                                  task=TaskParams(name="classify", chat=None)), stats)
    return records, quarantine, stats, curated, rejected, cstats


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id)
    for c in CASES])
def test_malformed_input(case: Case, tmp_path):
    records, quarantine, stats, curated, rejected, cstats = run_case(case, tmp_path)

    # accounting: every unit in exactly one place
    s = stats["sources"]["s"]
    assert s["files"] == 1
    assert s["units"] == s["records"] + s["quarantined"] == len(case.expect)
    assert (records.height, quarantine.height) == (s["records"], s["quarantined"])
    assert curated.height + rejected.height == records.height
    assert cstats["by_source"]["s"]["units"] == s["quarantined"] + cstats["by_source"]["s"]["rejected"] + curated.height

    # outcome per unit, exactly
    got: dict[int, tuple[str, str]] = {}
    for kind, frame, col in (("quarantined", quarantine, "error"), ("rejected", rejected, "rule"),
                             ("curated", curated, None)):
        for line, value in zip(frame["line"].to_list(), frame[col].to_list() if col else [""] * frame.height):
            assert line not in got, f"line {line} is in two places: {got[line]} and {(kind, value)}"
            got[line] = (kind, value)
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in case.expect.items()}, got
    for line, (kind, want) in case.expect.items():
        if kind == "quarantined":
            assert want in got[line][1], f"line {line}: {got[line][1]!r} lacks {want!r}"
        elif kind == "rejected":
            assert got[line][1] == want, f"line {line}: rule {got[line][1]!r}, expected {want!r}"

    # provenance of quarantined units
    assert set(quarantine["source"].to_list()) <= {"s"}
    assert all(f.endswith(f"{case.filename}.{case.fmt}") for f in quarantine["file"].to_list())

    # texts as curate outputs them
    out = pl.concat([curated.select("line", "text"), rejected.select("line", "text")])
    for line, text in case.texts.items():
        assert out.filter(pl.col("line") == line)["text"].to_list() == [text]


def test_corpus_is_large_and_covers_every_format():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.fmt for c in CASES} == {"jsonl", "csv", "parquet"}
    rules = {v[1] for c in CASES for v in c.expect.values() if v[0] == "rejected"}
    assert {"empty_text", "too_short", "too_long", "unknown_label", "too_few_words", "mostly_symbols",
            "repeated_chars", "boilerplate", "charset", "pii_card", "license", "forget", "duplicate",
            "label_conflict", "near_duplicate"} <= rules


# ---- cases that do not fit the one-outcome-per-unit table ------------------------------------------------------

def test_csv_field_over_the_csv_module_limit_is_one_unit(tmp_path):
    data = (b'text,label\n"' + b"A" * 140_000 + b"\nphantom text here,refund\nend of it\",billing\n"
            b"please send my money back,refund\n")
    case = Case("csv-huge-quoted-field", "csv", data, {})
    records, quarantine, stats, curated, rejected, _ = run_case(case, tmp_path)
    # The huge row (line 2..4) is one unit, quarantined or rejected (too_long); line 5 is a good record.
    assert stats["sources"]["s"]["units"] == 2
    lines = set(records["line"].to_list()) | set(quarantine["line"].to_list())
    assert lines == {2, 5}
    assert curated["line"].to_list() == [5]


def test_unknown_encoding_is_a_user_error_for_jsonl_as_for_csv(tmp_path):
    """Not a quarantined unit per line: the source's params are wrong, so the stage stops."""
    for fmt, data in (("csv", b"text,label\nI was charged twice,billing\n"), ("jsonl", GOOD)):
        case = Case(f"{fmt}-unknown-encoding", fmt, data, {}, source={"encoding": "no-such-codec"})
        with pytest.raises(UserError, match="unknown encoding 'no-such-codec'"):
            run_case(case, tmp_path / fmt)


def test_redaction_that_lengthens_a_text_at_max_chars_does_not_crash_curate(tmp_path):
    """'[EMAIL]' (7 chars) replacing a 6-char address pushes a text of exactly max_chars over the limit."""
    text = " ".join(["abcdefghi"] * 199) + " qqq a@b.co"
    assert len(text) == CURATE.max_chars
    case = Case("email-at-max-chars", "jsonl", J(text=text, label="billing"), {})
    records, _, _, curated, rejected, _ = run_case(case, tmp_path)
    assert curated.height + rejected.height == records.height == 1
    assert all(len(t) <= CURATE.max_chars for t in curated["text"].to_list())


def test_every_case_is_independent_of_chunking(tmp_path):
    """The multi-unit cases give the same outcome when each chunk holds a single unit."""
    one_per_chunk = dataclasses.replace(INGEST, chunk_rows=1)
    for case in CASES:
        if len(case.expect) < 2:
            continue
        _, quarantine, _, curated, rejected, _ = run_case(case, tmp_path / case.id, one_per_chunk)
        got = {**dict.fromkeys(quarantine["line"].to_list(), "quarantined"),
               **dict.fromkeys(rejected["line"].to_list(), "rejected"),
               **dict.fromkeys(curated["line"].to_list(), "curated")}
        assert got == {k: v[0] for k, v in case.expect.items()}, case.id

import polars as pl
import pytest

from stages.ingest import (IngestParams, Params, assign_files, ingest, parse_csv, parse_jsonl, parse_parquet,
                           to_frames)
from stages.lib.errors import UserError
from stages.lib.params import DataParams, SourceParams

SRC = SourceParams(name="s", files="s/*", license="CC0-1.0", text_field="text", label_field="label")


def test_jsonl_good_and_bad_lines():
    data = (b'\xef\xbb\xbf{"text": "a", "label": "x"}\r\n'
            b'{"text": "b", "label": "y", "extra": 1}\n'
            b'{broken\n'
            b'[1, 2]\n'
            b'{"text": 5, "label": "x"}\n'
            b'\n'
            b'{"label": "z"}\n'
            b'{"text": "' + b"x" * 50 + b'"}\n')
    parsed = parse_jsonl(data, "text", "label", max_line_bytes=40)
    assert parsed.rows == [(1, "a", "x"), (2, "b", "y"), (7, None, "z")]
    errors = {line: err for line, err, _ in parsed.bad}
    assert set(errors) == {3, 4, 5, 6, 8}
    assert errors[3].startswith("invalid JSON")
    assert "expected a JSON object" in errors[4]
    assert "field 'text' is int" in errors[5]
    assert errors[6] == "blank line"
    assert "max_line_bytes" in errors[8]


def test_jsonl_truncated_last_line_is_quarantined():
    parsed = parse_jsonl(b'{"text": "a", "label": "x"}\n{"text": "b", "lab', "text", "label", 1000)
    assert [r[0] for r in parsed.rows] == [1] and [b[0] for b in parsed.bad] == [2]


def test_csv_line_numbers_quoted_newlines_and_ragged_rows():
    data = b'id,text,label\n1,"multi\nline, quoted",x\n2,plain,y\n3,ragged,z,extra\n4,short\n5,"last",w\n'
    parsed = parse_csv(data, "text", "label")
    assert parsed.rows == [(2, "multi\nline, quoted", "x"), (4, "plain", "y"), (7, "last", "w")]
    assert [(line, err) for line, err, _ in parsed.bad] == [
        (5, "row has 4 fields, header has 3"), (6, "row has 2 fields, header has 3")]


def test_csv_missing_column_and_bad_utf8_quarantine_the_file():
    assert "no column 'label'" in parse_csv(b"id,text\n1,a\n", "text", "label").bad[0][1]
    bad = parse_csv(b"text,label\na,b\n\xff\xfe,c\n", "text", "label")
    assert bad.rows == [] and bad.bad[0][0] == 3 and "invalid UTF-8" in bad.bad[0][1]
    assert parse_csv(b"", "text", "label").rows == []


def test_parquet_rows_and_schema_problems(tmp_path):
    good = tmp_path / "good.parquet"
    pl.DataFrame({"text": ["a", None], "label": ["x", "y"]}).write_parquet(good)
    assert parse_parquet(good, "text", "label").rows == [(1, "a", "x"), (2, None, "y")]
    other = tmp_path / "other.parquet"
    pl.DataFrame({"body": ["a"], "label": ["x"]}).write_parquet(other)
    assert "no column 'text'" in parse_parquet(other, "text", "label").bad[0][1]
    typed = tmp_path / "typed.parquet"
    pl.DataFrame({"text": [1], "label": ["x"]}).write_parquet(typed)
    assert "expected a string" in parse_parquet(typed, "text", "label").bad[0][1]
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    assert "unreadable Parquet" in parse_parquet(corrupt, "text", "label").bad[0][1]


def test_to_frames_adds_identity_and_provenance():
    records, quarantine = to_frames(parse_jsonl(b'{"text": "Hi", "label": "x"}\n{\n', "text", "label", 100), SRC, "f.jsonl")
    row = records.row(0, named=True)
    assert row["source"] == "s" and row["file"] == "f.jsonl" and row["line"] == 1 and row["license"] == "CC0-1.0"
    assert len(row["record_id"]) == 16
    assert quarantine.select("file", "line").rows() == [("f.jsonl", 2)]


def test_assign_files_errors(tmp_path):
    with pytest.raises(UserError, match="raw data directory not found"):
        assign_files(tmp_path / "missing", [SRC])
    (tmp_path / "s").mkdir()
    with pytest.raises(UserError, match="match nothing"):
        assign_files(tmp_path, [SRC])
    (tmp_path / "s" / "a.jsonl").write_text("{}\n")
    (tmp_path / "stray.csv").write_text("a\n")
    with pytest.raises(UserError, match="stray.csv: no source"):
        assign_files(tmp_path, [SRC])
    (tmp_path / "stray.csv").unlink()
    (tmp_path / "s" / "b.txt").write_text("x")
    with pytest.raises(UserError, match="unsupported format"):
        assign_files(tmp_path, [SRC])


def test_ingest_counts_every_unit(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "a.jsonl").write_text('{"text": "one", "label": "x"}\nnot json\n{"text": "two"}\n')
    params = Params(ingest=IngestParams(max_line_bytes=1000),
                    data=DataParams(name="d", labels=["x"], sources=[SRC]))
    records, quarantine, stats = ingest(tmp_path, params)
    assert records.height == 2 and quarantine.height == 1
    assert stats["sources"]["s"] == {"files": 1, "units": 3, "records": 2, "quarantined": 1}

import json
from pathlib import Path

import polars as pl
import pytest

from stages.ingest import IngestParams, Params, assign_files, ingest_frames, read_file, to_frames
from tunebuild.errors import UserError
from tunebuild.params import DataParams, ForgetParams, SourceParams

IP = IngestParams(max_line_bytes=80, chunk_rows=3)


def src(**kw) -> SourceParams:
    base = dict(name="s", format="text", files="s/*", license="CC0-1.0", text_field="text", label_field="label",
                group_field=None, rejected_field=None, encoding="utf-8", delimiter=",", pii_regions=None)
    return SourceParams(**(base | kw))


def read(tmp_path: Path, name: str, data, source=None) -> tuple[list, list]:
    path = tmp_path / name
    if isinstance(data, pl.DataFrame):
        data.write_parquet(path)
    else:
        path.write_bytes(data)
    rows, bad = [], []
    for parsed in read_file(path, source or src(), IP):
        rows += parsed.rows
        bad += parsed.bad
    return rows, bad


def test_jsonl_good_and_bad_lines_in_chunks(tmp_path):
    data = (b'\xef\xbb\xbf{"text": "a", "label": "x"}\r\n'
            b'{"text": "b", "label": "y", "extra": 1}\n'
            b'{broken\n'
            b'[1, 2]\n'
            b'{"text": 5, "label": "x"}\n'
            b'\n'
            b'{"label": "z"}\n'
            b'{"text": "' + b"x" * 100 + b'"}\n'
            b'{"text": "c", "text": "d", "label": "x"}\n'
            b'{"text": "e", "label": "x", "meta": {"text": 1}}\n')
    rows, bad = read(tmp_path, "a.jsonl", data)
    assert rows == [(1, "a", "x", None), (2, "b", "y", None), (7, None, "z", None), (10, "e", "x", None)]
    errors = {line: err for line, _, err, _ in bad}
    assert set(errors) == {3, 4, 5, 6, 8, 9}
    assert errors[3].startswith("invalid JSON")
    assert "expected a JSON object" in errors[4]
    assert "field 'text' is int" in errors[5]
    assert errors[6] == "blank line"
    assert "max_line_bytes" in errors[8]
    assert errors[9] == "duplicate key 'text'"
    offsets = {line: off for line, off, _, _ in bad}
    assert offsets[3] == data.index(b"{broken")


def test_jsonl_truncated_last_line_is_quarantined(tmp_path):
    rows, bad = read(tmp_path, "a.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b", "lab')
    assert [r[0] for r in rows] == [1] and [b[0] for b in bad] == [2]


def test_csv_line_numbers_quoted_newlines_and_ragged_rows(tmp_path):
    data = b'id,text,label\n1,"multi\nline, quoted",x\n2,plain,y\n3,ragged,z,extra\n4,short\n5,"last",w\n'
    rows, bad = read(tmp_path, "a.csv", data)
    assert rows == [(2, "multi\nline, quoted", "x", None), (4, "plain", "y", None), (7, "last", "w", None)]
    assert [(line, err) for line, _, err, _ in bad] == [
        (5, "row has 4 fields, header has 3"), (6, "row has 2 fields, header has 3")]


def test_csv_missing_column_bad_bytes_and_options(tmp_path):
    assert "no column 'label'" in read(tmp_path, "a.csv", b"id,text\n1,a\n")[1][0][2]
    rows, bad = read(tmp_path, "b.csv", b"text,label\na,b\n\xff\xfe,c\nd,e\n")
    assert [r[0] for r in rows] == [2, 4] and bad[0][0] == 3 and "invalid utf-8" in bad[0][2]
    assert read(tmp_path, "c.csv", b"") == ([], [])
    rows, _ = read(tmp_path, "d.csv", "text;label\ncafé;x\n".encode("latin-1"), src(encoding="latin-1", delimiter=";"))
    assert rows == [(2, "café", "x", None)]


def test_parquet_rows_groups_and_schema_problems(tmp_path):
    df = pl.DataFrame({"text": ["a", None], "label": ["x", "y"], "cust": [7, 8]})
    rows, _ = read(tmp_path, "good.parquet", df, src(group_field="cust"))
    assert rows == [(1, "a", "x", "7"), (2, None, "y", "8")]
    assert "no column 'text'" in read(tmp_path, "o.parquet", df.rename({"text": "body"}))[1][0][2]
    assert "expected a string" in read(tmp_path, "t.parquet", df.with_columns(text=pl.lit(1)))[1][0][2]
    assert "unreadable Parquet" in read(tmp_path, "c.parquet", b"PAR1 not really")[1][0][2]
    cat = df.with_columns(pl.col("label").cast(pl.Categorical))
    assert read(tmp_path, "cat.parquet", cat)[0][0] == (1, "a", "x", None)


def test_to_frames_adds_identity_and_provenance(tmp_path):
    rows, bad = read(tmp_path, "a.jsonl", b'{"text": "Hi", "label": "x"}\n{\n')
    from stages.ingest import Parsed

    records, quarantine = to_frames(Parsed(rows, bad), src(), "f.jsonl")
    row = records.row(0, named=True)
    assert row["source"] == "s" and row["file"] == "f.jsonl" and row["line"] == 1 and row["license"] == "CC0-1.0"
    assert len(row["record_id"]) == 16
    assert quarantine.select("file", "line").rows() == [("f.jsonl", 2)]


def test_assign_files_errors(tmp_path):
    with pytest.raises(UserError, match="raw data directory not found"):
        assign_files(tmp_path / "missing", [src()])
    (tmp_path / "s").mkdir()
    with pytest.raises(UserError, match="match nothing"):
        assign_files(tmp_path, [src()])
    (tmp_path / "s" / "a.jsonl").write_text("{}\n")
    (tmp_path / "stray.csv").write_text("a\n")
    with pytest.raises(UserError, match="stray.csv: no source"):
        assign_files(tmp_path, [src()])
    (tmp_path / "stray.csv").unlink()
    (tmp_path / "s" / "b.txt").write_text("x")
    with pytest.raises(UserError, match="unsupported format"):
        assign_files(tmp_path, [src()])


def test_ingest_counts_every_unit(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "a.jsonl").write_text('{"text": "one", "label": "x"}\nnot json\n{"text": "two"}\n')
    (tmp_path / "s" / "dir.jsonl").mkdir()
    params = Params(ingest=IP, data=DataParams(name="d", purpose=None, raw_dir="data/raw", labels=["x"], sources=[src()],
                                               forget=ForgetParams(record_ids=[], patterns=[])))
    records, quarantine, stats = ingest_frames(tmp_path, params)
    assert records.height == 2 and quarantine.height == 2
    assert "is a directory" in quarantine.filter(pl.col("file").str.ends_with("dir.jsonl"))["error"][0]
    assert stats["sources"]["s"] == {"files": 2, "units": 4, "records": 2, "quarantined": 2}


@pytest.mark.parametrize("data, block_bytes, max_bytes, expected", [
    # a line spanning two blocks (and three), then one that ends a block exactly
    (b'{"a": 1}\n{"b": 22}\n', 4, 80, [(b'{"a": 1}', 9), (b'{"b": 22}', 10)]),
    (b'{"a": 1}\n{"b": 22}\n', 9, 80, [(b'{"a": 1}', 9), (b'{"b": 22}', 10)]),
    # a line over the limit across blocks: skipped with its full length, the next line read
    (b"x" * 25 + b"\nok\n", 4, 10, [(None, 26), (b"ok", 3)]),
    (b"ok\n" + b"x" * 11 + b"\n", 3, 10, [(b"ok", 3), (None, 12)]),
    (b"x" * 10 + b"\n", 3, 10, [(b"x" * 10, 11)]),  # exactly at the limit
    # CRLF split across a block boundary: the CR still goes
    (b"ab\r\ncd\r\n", 3, 80, [(b"ab", 4), (b"cd", 4)]),
    (b"abc\r\n", 4, 80, [(b"abc", 5)]),
    # the last line without a newline, within a block, spanning blocks, over the limit, with a CR
    (b"ab\ncd", 80, 80, [(b"ab", 3), (b"cd", 2)]),
    (b"ab\ncdefg", 4, 80, [(b"ab", 3), (b"cdefg", 5)]),
    (b"ab\n" + b"x" * 11, 4, 10, [(b"ab", 3), (None, 11)]),
    (b"ab\r", 2, 80, [(b"ab", 3)]),
    # a BOM on line 1 only, even when line 1 spans blocks; blank lines stay lines
    (b"\xef\xbb\xbfab\n\xef\xbb\xbfcd\n", 2, 80, [(b"ab", 6), (b"\xef\xbb\xbfcd", 6)]),
    (b"\n\r\n\n", 1, 80, [(b"", 1), (b"", 2), (b"", 1)]),
    (b"", 4, 80, []),
])
def test_iter_lines_at_block_boundaries(tmp_path, data, block_bytes, max_bytes, expected):
    from stages.ingest import iter_lines

    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    got = [(line, length) for lines, lengths in iter_lines(path, max_bytes, block_bytes)
           for line, length in zip(lines, lengths)]
    assert got == expected


def test_jsonl_in_small_blocks_and_chunks_reads_the_same(tmp_path):
    """Offsets and line numbers of quarantined units stay right when lines span blocks and chunks."""
    from stages.ingest import read_jsonl

    data = (b'{"text": "a", "label": "x"}\r\n{broken\n' + b'{"text": "' + b"y" * 100 + b'"}\n'
            b'\n{"text": "b", "text": "c"}\n{"text": "d", "label": "z"}')
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    [whole] = read_jsonl(path, src(), 80, 1000)
    rows, bad = whole.rows, whole.bad
    assert [r[0] for r in rows] == [1, 6] and [b[0] for b in bad] == [2, 3, 4, 5]
    assert [b[1] for b in bad] == [data.index(b"{broken"), data.index(b'{"text": "yy'), data.index(b"\n\n") + 1,
                                   data.index(b'{"text": "b"')]
    for block_bytes in (1, 2, 7, 64):
        for chunk_rows in (1, 2, 4):
            again = list(read_jsonl(path, src(), 80, chunk_rows, block_bytes))
            assert [r for p in again for r in p.rows] == rows
            assert [b for p in again for b in p.bad] == bad


def test_maybe_duplicate_on_lines_polars_cannot_decode_says_maybe():
    from stages.ingest import _maybe_duplicate

    assert _maybe_duplicate([b'{"text": "a"}', b'{"text": "a", "text": "b"}', b'{"te\\u0078t": 1}'],
                            (b'"text"',)) == [False, True, True]
    assert _maybe_duplicate([b'{"text": "a"}', b'{"text": "\xff"}'], (b'"text"',)) == [True, True]
    assert _maybe_duplicate([], (b'"text"',)) == []


def test_main_in_worker_processes_writes_what_ingest_frames_reads(tmp_path, monkeypatch):
    """The stage as run on big data: files read by worker processes, the records written while they read
    (streamed_parts). Same tables as the in-memory path; a worker's error stops it with its message and
    leaves no output, temp file or scratch behind."""
    import dataclasses

    import yaml

    from stages import ingest

    raw = tmp_path / "data" / "raw" / "s"
    raw.mkdir(parents=True)
    for i in range(5):  # more files than workers, several chunks each, defects among them
        lines = [f'{{"text": "ticket {i}-{n}", "label": "x"}}' for n in range(7)] + ["not json", '{"text": 3}']
        (raw / f"f{i}.jsonl").write_text("\n".join(lines) + "\n")
    (raw / "empty.jsonl").write_text("")
    (raw / "g.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "bom", "label": "x"}\r\n' + b'{"text": "a b", "label": "x"}\r\n' * 3
                                  + b'{"text": "' + b"y" * 90 + b'"}\n\n{"text": "last, no end", "label": "x"}')
    params = Params(ingest=IngestParams(max_line_bytes=80, chunk_rows=2),
                    data=DataParams(name="d", purpose=None, raw_dir="data/raw", labels=["x"], sources=[src()],
                                    forget=ForgetParams(record_ids=[], patterns=[])))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(dataclasses.asdict(params)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ingest, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(ingest, "PIECE_BYTES", 50)  # JSONL files read in pieces of a line or two
    assert len(ingest.pieces(raw / "f0.jsonl", ingest.piece_bytes(raw / "f0.jsonl", 2))) > 3
    ingest.main()
    records, quarantine, stats = ingest_frames(Path("data/raw"), params)
    assert pl.read_parquet("data/ingest/records.parquet").equals(records) and records.height == 40
    assert pl.read_parquet("data/ingest/quarantine.parquet").equals(quarantine) and quarantine.height == 12
    assert json.loads(Path("data/ingest/stats.json").read_text()) == stats
    assert sorted(p.name for p in Path("data/ingest").iterdir()) == ["quarantine.parquet", "records.parquet", "stats.json"]

    broken = dataclasses.replace(params, data=dataclasses.replace(params.data, sources=[
        src(files="s/f[0-3].jsonl"), src(name="t", files="s/[!f]*.jsonl", encoding="no-such-codec"),
        src(name="u", files="s/f4.jsonl")]))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(dataclasses.asdict(broken)))
    for name in ("records.parquet", "quarantine.parquet", "stats.json"):
        (Path("data/ingest") / name).unlink()
    with pytest.raises(UserError, match="unknown encoding 'no-such-codec'"):
        ingest.main()
    assert list(Path("data/ingest").iterdir()) == []

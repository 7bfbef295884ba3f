"""Ingest: raw examples under data/raw/ -> one normalized table.

In:  the files matched by each source in `data.sources` (JSONL, CSV, Parquet).
Out: data/ingest/records.parquet     record_id, text, label, source, file, line, license
     data/ingest/quarantine.parquet  source, file, line, error, raw (units that could not be read)
     data/ingest/stats.json          per-source counts of units, records and quarantined units

Every raw unit (a JSONL line, a CSV row, a Parquet row) ends up in exactly one
of the two tables; a file no source claims is an error, not silently skipped.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from stages.lib.errors import UserError, run
from stages.lib.files import write_json, write_parquet
from stages.lib.params import DataParams, SourceParams, load_params
from stages.lib.records import record_ids

RAW_DIR = Path("data/raw")
OUT = Path("data/ingest")
RAW_EXCERPT = 500
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}

RECORDS_SCHEMA = {"record_id": pl.String, "text": pl.String, "label": pl.String, "source": pl.String,
                  "file": pl.String, "line": pl.Int64, "license": pl.String}
QUARANTINE_SCHEMA = {"source": pl.String, "file": pl.String, "line": pl.Int64, "error": pl.String,
                     "raw": pl.String}


@dataclass
class IngestParams:
    max_line_bytes: int


@dataclass
class Params:
    ingest: IngestParams
    data: DataParams


@dataclass
class Parsed:
    """What one file gave: rows (line, text, label) and quarantined units (line, error, raw)."""
    rows: list[tuple[int, Any, Any]]
    bad: list[tuple[int, str, str]]


def parse_jsonl(data: bytes, text_field: str, label_field: str, max_line_bytes: int) -> Parsed:
    """One JSON object per line; a bad line is quarantined, the rest go on."""
    rows, bad = [], []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for n, raw in enumerate(lines, start=1):
        raw = raw.removesuffix(b"\r")
        if n == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        excerpt = raw[:RAW_EXCERPT].decode("utf-8", "replace")
        if not raw.strip():
            bad.append((n, "blank line", excerpt))
            continue
        if len(raw) > max_line_bytes:
            bad.append((n, f"line is {len(raw)} bytes, over ingest.max_line_bytes={max_line_bytes}", excerpt))
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            bad.append((n, f"invalid JSON: {e}", excerpt))
            continue
        if not isinstance(obj, dict):
            bad.append((n, f"expected a JSON object, got {type(obj).__name__}", excerpt))
            continue
        text, label = obj.get(text_field), obj.get(label_field)
        wrong = [f for f, v in ((text_field, text), (label_field, label)) if not (v is None or isinstance(v, str))]
        if wrong:
            bad.append((n, f"field '{wrong[0]}' is {type(obj[wrong[0]]).__name__}, expected a string", excerpt))
            continue
        rows.append((n, text, label))
    return Parsed(rows, bad)


def parse_csv(data: bytes, text_field: str, label_field: str) -> Parsed:
    """RFC 4180 CSV with a header; `line` is the line where the row starts."""
    rows, bad = [], []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return Parsed([], [(line, f"invalid UTF-8 at byte {e.start}; whole file quarantined", "")])
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return Parsed([], [])
    except csv.Error as e:
        return Parsed([], [(1, f"unreadable CSV header: {e}", "")])
    missing = [f for f in (text_field, label_field) if f not in header]
    if missing:
        return Parsed([], [(1, f"CSV header has no column {missing[0]!r} (columns: {', '.join(header)}); "
                               "whole file quarantined", ",".join(header)[:RAW_EXCERPT])])
    ti, li = header.index(text_field), header.index(label_field)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            bad.append((start, f"unreadable CSV row: {e}", ""))
            start = reader.line_num + 1
            continue
        if len(row) != len(header):
            bad.append((start, f"row has {len(row)} fields, header has {len(header)}", ",".join(row)[:RAW_EXCERPT]))
        elif row:
            rows.append((start, row[ti], row[li]))
        start = reader.line_num + 1
    return Parsed(rows, bad)


def parse_parquet(path: Path, text_field: str, label_field: str) -> Parsed:
    """Parquet rows; `line` is the 1-based row number. A missing column quarantines the file."""
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several types for corrupt files
        return Parsed([], [(0, f"unreadable Parquet file: {str(e).splitlines()[0]}", "")])
    for name in (text_field, label_field):
        if name not in df.columns:
            return Parsed([], [(0, f"Parquet file has no column {name!r} (columns: {', '.join(df.columns)}); "
                                   "whole file quarantined", "")])
        if df.schema[name] not in (pl.String, pl.Null):
            return Parsed([], [(0, f"Parquet column {name!r} is {df.schema[name]}, expected a string; "
                                   "whole file quarantined", "")])
    texts, labels = df[text_field].to_list(), df[label_field].to_list()
    return Parsed([(i + 1, t, lab) for i, (t, lab) in enumerate(zip(texts, labels))], [])


def parse_file(path: Path, source: SourceParams, max_line_bytes: int) -> Parsed:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt == "parquet":
        return parse_parquet(path, source.text_field, source.label_field)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror}); check its permissions") from None
    if fmt == "jsonl":
        return parse_jsonl(data, source.text_field, source.label_field, max_line_bytes)
    return parse_csv(data, source.text_field, source.label_field)


def to_frames(parsed: Parsed, source: SourceParams, file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pure core: parsed units of one file -> (records, quarantine) frames."""
    lines, texts, labels = (list(c) for c in zip(*parsed.rows)) if parsed.rows else ([], [], [])
    records = pl.DataFrame({
        "record_id": record_ids(texts), "text": texts, "label": labels, "source": source.name,
        "file": file, "line": lines, "license": source.license,
    }, schema=RECORDS_SCHEMA)
    quarantine = pl.DataFrame(
        [(source.name, file, line, err, raw) for line, err, raw in parsed.bad],
        schema=QUARANTINE_SCHEMA, orient="row")
    return records, quarantine


def assign_files(raw_dir: Path, sources: list[SourceParams]) -> dict[str, list[Path]]:
    """Each raw file belongs to exactly one source; unclaimed or doubly claimed files are errors."""
    if not raw_dir.is_dir():
        raise UserError(f"{raw_dir}: raw data directory not found; create it and put your "
                        "JSONL/CSV/Parquet files there (see README, 'Use your own data')")
    owner: dict[Path, str] = {}
    assigned: dict[str, list[Path]] = {}
    for src in sources:
        files = sorted(p for p in raw_dir.glob(src.files) if p.is_file())
        if not files:
            raise UserError(f"data.sources[{src.name}]: files '{src.files}' match nothing under {raw_dir}/")
        for f in files:
            if f.suffix.lower() not in FORMATS:
                raise UserError(f"{f}: unsupported format '{f.suffix}' (source {src.name}); "
                                f"use one of {', '.join(sorted(FORMATS))}")
            if f in owner:
                raise UserError(f"{f}: claimed by sources '{owner[f]}' and '{src.name}'; make the globs disjoint")
            owner[f] = src.name
        assigned[src.name] = files
    all_files = {p for p in raw_dir.rglob("*") if p.is_file() and not p.name.startswith(".")}
    unclaimed = sorted(all_files - owner.keys())
    if unclaimed:
        raise UserError(f"{unclaimed[0]}: no source in data.sources claims this file; add a source "
                        "for it in conf/data/ (then `tunebuild compose`) or move it out of data/raw/")
    return assigned


def ingest(raw_dir: Path, params: Params) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    by_name = {s.name: s for s in params.data.sources}
    records, quarantine, stats = [], [], {}
    for name, files in assign_files(raw_dir, params.data.sources).items():
        source = by_name[name]
        n_rec = n_bad = 0
        for path in files:
            rec, bad = to_frames(parse_file(path, source, params.ingest.max_line_bytes), source,
                                 path.as_posix())
            records.append(rec)
            quarantine.append(bad)
            n_rec, n_bad = n_rec + rec.height, n_bad + bad.height
        stats[name] = {"files": len(files), "units": n_rec + n_bad, "records": n_rec, "quarantined": n_bad}
    rec = pl.concat(records).sort("file", "line")
    bad = pl.concat(quarantine).sort("file", "line")
    totals = {k: sum(s[k] for s in stats.values()) for k in ("files", "units", "records", "quarantined")}
    return rec, bad, {"sources": stats, "total": totals}


def main() -> None:
    params = load_params(Params)
    records, quarantine, stats = ingest(RAW_DIR, params)
    write_parquet(records, OUT / "records.parquet")
    write_parquet(quarantine, OUT / "quarantine.parquet")
    write_json(OUT / "stats.json", stats)
    t = stats["total"]
    print(f"ingest: {t['units']} units from {t['files']} files -> {t['records']} records, "
          f"{t['quarantined']} quarantined")


if __name__ == "__main__":
    run(main)

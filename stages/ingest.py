"""Ingest: raw examples under data.raw_dir -> one normalized table, every raw unit accounted for.

In:  the files matched by each source in `data.sources` (JSONL, CSV, Parquet).
Out: data/ingest/records.parquet     record_id, text, label, group, source, file, line, license
                                     (sft: `text` is the conversation as JSON messages; preference: the
                                     pair as JSON {"chosen": messages, "rejected": messages}; tunebuild/chat.py)
     data/ingest/quarantine.parquet  source, file, line, offset, error, raw (units that could not be read)
     data/ingest/stats.json          per source: files, raw units, records, quarantined units

A unit is a JSONL line, a CSV row or a Parquet row (or a whole file when the
file itself cannot be read as its format). Every unit lands in exactly one of
the two tables. Files are read in chunks of `ingest.chunk_rows` units, so
memory stays bounded as raw data grows. A file no source claims is an error.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate, compress, repeat
from operator import itemgetter
from pathlib import Path
from typing import Iterator

import orjson
import polars as pl

from tunebuild import chat
from tunebuild.errors import UserError, run
from tunebuild.files import HANDOFF, atomic_paths, scratch_dir, streamed, synced_while_written, write_json
from tunebuild.licenses import check_license
from tunebuild.params import DataParams, IngestParams, SourceParams, load_params
from tunebuild.pool import process_map
from tunebuild.records import record_ids

OUT = Path("data/ingest")
RAW_EXCERPT = 300
MAX_JSON_DEPTH = 1024  # orjson's nesting limit
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}

RECORDS_SCHEMA = {"record_id": pl.String, "text": pl.String, "label": pl.String, "group": pl.String,
                  "source": pl.String, "file": pl.String, "line": pl.Int64, "license": pl.String}
QUARANTINE_SCHEMA = {"source": pl.String, "file": pl.String, "line": pl.Int64, "offset": pl.Int64,
                     "error": pl.String, "raw": pl.String}


@dataclass
class Params:
    ingest: IngestParams
    data: DataParams


@dataclass
class Parsed:
    """One chunk of a file: rows (line, text, label, group) and quarantined units (line, offset, error, raw)."""
    rows: list[tuple] = field(default_factory=list)
    bad: list[tuple] = field(default_factory=list)


def _excerpt(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:RAW_EXCERPT]


def _as_text(value, name: str) -> tuple[str | None, str | None]:
    """A field value as a string (or None); numbers in a group key are fine, elsewhere an error."""
    if value is None or isinstance(value, str):
        return value, None
    if name == "group" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value), None
    return None, f"is {type(value).__name__}, expected a string"


def _duplicate_key(data: bytes, keys: tuple[str, ...], quoted: tuple[bytes, ...]) -> str | None:
    """orjson keeps one of two equal keys silently; an ambiguous line is quarantined instead.

    Only lines that could hold a duplicate (a key name twice, or an escape) are re-parsed;
    `quoted` holds the keys as JSON string bytes (_maybe_duplicate: the same test on many lines).
    """
    if b"\\u" not in data and all(data.count(q) < 2 for q in quoted):
        return None
    objects: list[list[str]] = []  # keys of each object, innermost first: the last is the line's
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * MAX_JSON_DEPTH))  # orjson already accepted the nesting
    try:
        json.loads(data, object_pairs_hook=lambda pairs: objects.append([k for k, _ in pairs]) or {})
    finally:
        sys.setrecursionlimit(limit)
    return next((k for k in keys if objects and objects[-1].count(k) > 1), None)


def _maybe_duplicate(lines: list[bytes], quoted: tuple[bytes, ...]) -> list[bool]:
    """_duplicate_key's first test for many lines at once: True where a line could hold a duplicate key
    (overlapping matches count too, so a few more lines may be True, never fewer)."""
    try:
        text = pl.Series(lines, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:  # orjson read them, but polars finds one not UTF-8: parse_json_line tests each
        return [True] * len(lines)
    found = text.str.extract_many(list(dict.fromkeys(q.decode() for q in quoted)) + ["\\u"], overlapping=True)
    return ((found.list.len() > found.list.n_unique()) | found.list.contains("\\u")).to_list()


@dataclass(frozen=True)
class JsonFields:
    """What parse_json_line needs of a source, worked out once per file."""
    utf8: bool
    fields: dict  # role (text, label, group) -> field name or None
    keys: tuple[str, ...]
    quoted: tuple[bytes, ...]
    fast: bool  # fast_rows can read its lines (UTF-8, no messages lists)

    @classmethod
    def of(cls, src: SourceParams) -> "JsonFields":
        fields = chat.source_fields(src)
        keys = tuple(k for k in fields.values() if k)
        utf8 = codecs.lookup(src.encoding).name == "utf-8"
        return cls(utf8, fields, keys, tuple(orjson.dumps(k) for k in keys), utf8 and src.format != "messages")


def parse_json_line(n: int, offset: int, raw: bytes, src: SourceParams, parsed: Parsed, jf: JsonFields) -> None:
    """One JSONL line into a row or a quarantined unit."""
    if not raw.strip():
        parsed.bad.append((n, offset, "blank line", ""))
        return
    try:
        data = raw if jf.utf8 else raw.decode(src.encoding).encode("utf-8")
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as e:
        parsed.bad.append((n, offset, f"invalid JSON: {str(e).splitlines()[0]}", _excerpt(raw)))
        return
    if not isinstance(obj, dict):
        parsed.bad.append((n, offset, f"expected a JSON object, got {type(obj).__name__}", _excerpt(raw)))
        return
    dup = _duplicate_key(data, jf.keys, jf.quoted)
    if dup:
        parsed.bad.append((n, offset, f"duplicate key '{dup}'", _excerpt(raw)))
        return
    values = []
    for role, name in jf.fields.items():
        value = obj.get(name) if name else None
        value, err = chat.parse_messages(value) if chat.takes_messages(src.format, role, value) else _as_text(value, role)
        if err:
            parsed.bad.append((n, offset, f"field '{name}' {err}", _excerpt(raw)))
            return
        values.append(value)
    parsed.rows.append((n, *values))


STRING_OR_NONE = {str, type(None)}


def fast_rows(lines: list[bytes | None], n: int, jf: JsonFields) -> tuple[list[tuple], list[int]]:
    """The rows of lines that are JSON objects with string (or absent) fields and no possible duplicate key,
    worked out column by column; and the indices of the other lines, for parse_json_line."""
    objs = []
    for raw in lines:
        try:
            objs.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            objs.append(None)
    found = [i for i, obj in enumerate(objs) if type(obj) is dict]
    dicts = [objs[i] for i in found]
    names = list(jf.fields.values())
    columns = [list(map(dict.get, dicts, repeat(name))) if name else [None] * len(dicts) for name in names]
    keep = [not maybe for maybe in _maybe_duplicate([lines[i] for i in found], jf.quoted)]
    for name, column in zip(names, columns):
        if name and not STRING_OR_NONE.issuperset(map(type, column)):
            keep = [k and type(value) in STRING_OR_NONE for k, value in zip(keep, column)]
    fast = list(compress(found, keep))
    rows = list(compress(zip([n + i for i in found], *columns), keep))
    return rows, sorted(set(range(len(lines))).difference(fast))


def parse_lines(lines: list[bytes | None], lengths: list[int], n: int, offset: int, src: SourceParams,
                jf: JsonFields, max_line_bytes: int) -> Parsed:
    """Lines n, n+1, ... (from byte `offset`; None: over max_line_bytes) into rows and quarantined units,
    in line order: fast_rows reads most lines, parse_json_line the rest one by one."""
    rows, slow = fast_rows(lines, n, jf) if jf.fast else ([], range(len(lines)))
    parsed, starts = Parsed(), list(accumulate(lengths, initial=offset))
    for i in slow:
        if lines[i] is None:
            parsed.bad.append((n + i, starts[i], f"line is {lengths[i]} bytes, over ingest.max_line_bytes={max_line_bytes}", ""))
        else:
            parse_json_line(n + i, starts[i], lines[i], src, parsed, jf)
    parsed.rows = sorted(rows + parsed.rows, key=itemgetter(0)) if parsed.rows else rows
    return parsed


BLOCK_BYTES = 1 << 24  # JSONL files are read in blocks of this many bytes


def _tidy(lines: list[bytes], lengths: list[int], limit: int, first: bool, cr: bool = True
          ) -> tuple[list[bytes | None], list[int]]:
    """Lines without CR (`cr`: some may end with one) and line 1 without a UTF-8 BOM; None for a line
    whose length is over `limit`."""
    if first:
        lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")
    if cr:
        lines = [line.removesuffix(b"\r") for line in lines]
    if max(lengths) > limit:
        lines = [None if length > limit else line for line, length in zip(lines, lengths)]
    return lines, lengths


def iter_lines(path: Path, max_line_bytes: int, block_bytes: int = BLOCK_BYTES, start: int = 0,
               end: int | None = None) -> Iterator[tuple[list[bytes | None], list[int]]]:
    """The file's lines (bytes start to end, where lines start: `pieces`) a block at a time: each line
    without its end (LF or CRLF), or None when it is over max_line_bytes, and its length in bytes with
    the end. A line may span blocks: the unfinished one is carried over (at most max_line_bytes + 1 of
    its bytes: enough to tell it is too long)."""
    with open(path, "rb") as f:
        f.seek(start)
        head, head_length, first, left = b"", 0, start == 0, -1 if end is None else end - start
        while block := f.read(block_bytes if left < 0 else min(block_bytes, left)):
            left -= len(block)
            lines = block.split(b"\n")
            tail = lines.pop()
            if not lines:  # no line ends in this block
                head, head_length = (head + tail)[:max_line_bytes + 1], head_length + len(tail)
                continue
            lengths = [len(line) + 1 for line in lines]
            lengths[0] += head_length
            lines[0] = head + lines[0]
            yield _tidy(lines, lengths, max_line_bytes + 1, first, b"\r" in block or head.endswith(b"\r"))
            head, head_length, first = tail[:max_line_bytes + 1], len(tail), False
        if head_length:  # the last line has no end
            yield _tidy([head], [head_length], max_line_bytes, first)


PIECE_BYTES = 1 << 20  # the least bytes of a piece (pieces: a big JSONL file read in parallel)


def piece_bytes(path: Path, chunk_rows: int) -> int:
    """Bytes of a piece that holds a little under chunk_rows lines (one chunk, one part) at the average line
    length of the file's first MiB."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    return max(PIECE_BYTES, int(0.9 * chunk_rows * len(head) / max(1, head.count(b"\n"))))


def pieces(path: Path, target: int) -> list[tuple[int, int | None]]:
    """A JSONL file cut into byte ranges (start, end; None: to the end) of about `target` bytes, each
    starting where a line starts, so that each is read on its own (the lines within a piece are
    numbered from 1: streamed_parts adds the lines of the pieces before)."""
    size, bounds = path.stat().st_size, [0]
    with open(path, "rb") as f:
        while bounds[-1] + target < size:
            f.seek(at := bounds[-1] + target - 1)
            while (block := f.read(1 << 16)) and (found := block.find(b"\n")) < 0:
                at += len(block)
            if not block or at + found + 1 >= size:
                break
            bounds.append(at + found + 1)
    return list(zip(bounds, bounds[1:] + [None]))


def read_jsonl(path: Path, src: SourceParams, max_line_bytes: int, chunk_rows: int,
               block_bytes: int = BLOCK_BYTES, start: int = 0, end: int | None = None) -> Iterator[Parsed]:
    jf = JsonFields.of(src)
    lines, lengths, n, offset = [], [], 1, start
    for block_lines, block_lengths in iter_lines(path, max_line_bytes, block_bytes, start, end):
        lines += block_lines
        lengths += block_lengths
        done = 0
        while len(lines) - done >= chunk_rows:
            yield parse_lines(lines[done:done + chunk_rows], lengths[done:done + chunk_rows], n, offset, src, jf,
                              max_line_bytes)
            n, offset, done = n + chunk_rows, offset + sum(lengths[done:done + chunk_rows]), done + chunk_rows
        del lines[:done], lengths[:done]
    yield parse_lines(lines, lengths, n, offset, src, jf, max_line_bytes)


def _shown(cell: str) -> str:
    """Undecodable bytes (kept as surrogates while parsing) shown as U+FFFD."""
    return cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_csv(path: Path, src: SourceParams, chunk_rows: int, max_bytes: int) -> Iterator[Parsed]:
    """RFC 4180 CSV with a header; `line` is where the row starts. Undecodable rows are quarantined."""
    utf8 = codecs.lookup(src.encoding).name == "utf-8"
    csv.field_size_limit(sys.maxsize)  # the size rule below quarantines big fields as one unit
    with open(path, encoding="utf-8-sig" if utf8 else src.encoding, errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=src.delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            yield Parsed()
            return
        except csv.Error as e:
            yield Parsed(bad=[(1, None, f"unreadable CSV header: {e}; whole file quarantined", "")])
            return
        header = [_shown(h) for h in header]
        missing = [name for name in chat.required_columns(src) if name not in header]
        if missing:
            yield Parsed(bad=[(1, None, f"CSV header has no column {missing[0]!r} (columns: {', '.join(header)}); "
                                        "whole file quarantined", _excerpt(",".join(header)))])
            return
        idx = [header.index(name) if name in header else None for name in chat.source_fields(src).values()]
        parsed, start = Parsed(), reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                parsed.bad.append((start, None, f"unreadable CSV row: {e}", ""))
                row = None
            if row is None:
                pass
            elif any("\udc80" <= ch <= "\udcff" for cell in row for ch in cell):
                parsed.bad.append((start, None, f"invalid {src.encoding} bytes in row", _excerpt(",".join(row).encode("utf-8", "replace"))))
            elif any(len(cell) > max_bytes for cell in row):
                parsed.bad.append((start, None, f"a field is over ingest.max_line_bytes={max_bytes}", ""))
            elif len(row) != len(header):
                parsed.bad.append((start, None, f"row has {len(row)} fields, header has {len(header)}", _excerpt(",".join(row))))
            else:
                parsed.rows.append((start, *(row[i] if i is not None else None for i in idx)))
            start = reader.line_num + 1
            if len(parsed.rows) + len(parsed.bad) >= chunk_rows:
                yield parsed
                parsed = Parsed()
        yield parsed


def read_parquet(path: Path, src: SourceParams, chunk_rows: int) -> Iterator[Parsed]:
    """Parquet rows (`line` = 1-based row). A missing or non-text column quarantines the file."""
    try:
        schema = pl.scan_parquet(path, glob=False).collect_schema()
    except Exception as e:  # polars raises several types for corrupt files
        yield Parsed(bad=[(0, None, f"unreadable Parquet file: {str(e).splitlines()[0]}; whole file quarantined", "")])
        return
    fields = list(chat.source_fields(src).values())
    names = chat.required_columns(src)
    extra = [c for c in chat.optional_columns(src) if c in schema]  # instruction: `input`
    for name in names + extra:
        if name not in schema:
            yield Parsed(bad=[(0, None, f"Parquet file has no column {name!r} (columns: {', '.join(schema)}); "
                                        "whole file quarantined", "")])
            return
        textual = schema[name] in (pl.String, pl.Null, pl.Categorical) or isinstance(schema[name], pl.Enum)
        if not textual and not (name == src.group_field and schema[name].is_integer()):
            yield Parsed(bad=[(0, None, f"Parquet column {name!r} is {schema[name]}, expected a string; "
                                        "whole file quarantined", "")])
            return
    try:  # decoding can still fail on a corrupt data page: then the whole file is one quarantined unit
        df = pl.scan_parquet(path, glob=False).select(pl.col(n).cast(pl.String) for n in names + extra).collect()
    except Exception as e:
        yield Parsed(bad=[(0, None, f"unreadable Parquet file: {str(e).splitlines()[0]}; whole file quarantined", "")])
        return
    for start in range(0, max(df.height, 1), chunk_rows):
        part = df.slice(start, chunk_rows)
        cols = [part[n].to_list() if n in part.columns else [None] * part.height for n in fields]
        yield Parsed(rows=[(start + i + 1, *vals) for i, vals in enumerate(zip(*cols))])


def read_file(path: Path, src: SourceParams, p: IngestParams, start: int = 0, end: int | None = None
              ) -> Iterator[Parsed]:
    """The file's units, a chunk at a time (JSONL: those of bytes start to end, a piece)."""
    try:
        codecs.lookup(src.encoding)
    except LookupError:
        raise UserError(f"data.sources[{src.name}].encoding: unknown encoding '{src.encoding}'") from None
    if path.is_dir():
        yield Parsed(bad=[(0, None, "is a directory, expected a file; whole path quarantined", "")])
        return
    try:
        fmt = FORMATS[path.suffix.lower()]
        if fmt == "parquet":
            yield from read_parquet(path, src, p.chunk_rows)
        elif fmt == "csv":
            yield from read_csv(path, src, p.chunk_rows, p.max_line_bytes)
        else:
            yield from read_jsonl(path, src, p.max_line_bytes, p.chunk_rows, start=start, end=end)
    except PermissionError:
        raise UserError(f"{path}: permission denied; make it readable (chmod a+r) and rerun") from None
    except LookupError:
        raise UserError(f"data.sources[{src.name}].encoding: unknown encoding '{src.encoding}'") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e}); check the file and rerun") from None


def to_frames(parsed: Parsed, src: SourceParams, file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pure core: parsed units of one chunk -> (records, quarantine) frames."""
    lines, texts, labels, groups, *extra = (list(c) for c in zip(*parsed.rows)) if parsed.rows else ([], [], [], [])
    n = len(lines)
    if src.format == "text":
        texts = pl.Series(texts, dtype=pl.String)
        ids = record_ids(texts)
    elif src.format == "preference":  # the pair as {"chosen": messages, "rejected": messages} (JSON in `text`)
        pairs = [chat.preference_pair(*row) for row in zip(texts, labels, *(extra or [[None] * n]))]
        texts, labels, ids = [chat.dumps(x) for x in pairs], [None] * n, [chat.conversation_id(x["chosen"]) for x in pairs]
    else:  # sft: the row as messages (JSON in `text`); the id hashes the turns before the final answer
        convs = [chat.conversation(src.format, *row) for row in zip(texts, labels, *(extra or [[None] * n]))]
        texts, labels, ids = [chat.dumps(c) for c in convs], [None] * n, [chat.conversation_id(c) for c in convs]
    records = pl.DataFrame({"record_id": ids, "text": texts, "label": labels, "group": groups,
                            "source": pl.repeat(src.name, n, eager=True), "file": pl.repeat(file, n, eager=True),
                            "line": lines, "license": pl.repeat(src.license, n, eager=True)}, schema=RECORDS_SCHEMA)
    quarantine = pl.DataFrame([(src.name, file, *unit) for unit in parsed.bad], schema=QUARANTINE_SCHEMA, orient="row")
    return records, quarantine


def assign_files(raw_dir: Path, sources: list[SourceParams]) -> list[tuple[Path, SourceParams]]:
    """Each raw path belongs to exactly one source; unclaimed or doubly claimed paths are errors."""
    if not raw_dir.is_dir():
        raise UserError(f"{raw_dir}: raw data directory not found; create it and put your "
                        "JSONL/CSV/Parquet files there (see README, 'Use your own data')")
    owner: dict[Path, SourceParams] = {}
    for i, src in enumerate(sources):
        check_license(src.license, f"data.sources[{i}].license")
        matched = sorted(raw_dir.glob(src.files))
        if not matched:
            raise UserError(f"data.sources[{src.name}]: files '{src.files}' match nothing under {raw_dir}/")
        for f in matched:
            if f.suffix.lower() not in FORMATS:
                raise UserError(f"{f}: unsupported format '{f.suffix}' (source {src.name}); "
                                f"use one of {', '.join(sorted(FORMATS))}")
            chat.check_source(src, FORMATS[f.suffix.lower()], f"data.sources[{i}]")
            if f in owner:
                raise UserError(f"{f}: claimed by sources '{owner[f].name}' and '{src.name}'; make the globs disjoint")
            owner[f] = src
    files = {p for p in raw_dir.rglob("*") if p.is_file() and not p.name.startswith(".")}
    inside_claimed_dir = {p for p in files for d in owner if d.is_dir() and d in p.parents}
    unclaimed = sorted(files - owner.keys() - inside_claimed_dir)
    if unclaimed:
        raise UserError(f"{unclaimed[0]}: no source in data.sources claims this file; add a source "
                        f"for it in conf/data/ (then `tunebuild compose`) or move it out of {raw_dir}/")
    return sorted(owner.items(), key=lambda kv: kv[0].as_posix())


PARALLEL_BYTES = 64 << 20  # raw data above this is read by one process per core, a file or piece at a time
COUNTS = ("units", "records", "quarantined")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Reading allocates rows by the million and no reference cycles: the cyclic GC would only rescan them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_counted(path: Path, src: SourceParams, p: IngestParams, sink, piece: tuple[int, int | None] = (0, None)
                 ) -> dict:
    """Read one file (or a piece of it) chunk by chunk; `sink(chunk index, records, quarantine)` takes each;
    returns its counts."""
    counts = dict.fromkeys(COUNTS, 0)
    with gc_paused():
        for k, parsed in enumerate(read_file(path, src, p, *piece)):
            rec, bad = to_frames(parsed, src, path.as_posix())
            sink(k, rec, bad)
            counts["units"] += rec.height + bad.height
            counts["records"] += rec.height
            counts["quarantined"] += bad.height
    return counts


def summarize(params: Params, per_file: list[tuple[str, dict]]) -> dict:
    stats = {s.name: {"files": 0} | dict.fromkeys(COUNTS, 0) for s in params.data.sources}
    for name, counts in per_file:
        stats[name]["files"] += 1
        for k in COUNTS:
            stats[name][k] += counts[k]
    totals = {k: sum(s[k] for s in stats.values()) for k in ("files", *COUNTS)}
    return {"sources": dict(sorted(stats.items())), "total": totals}


def ingest(raw_dir: Path, params: Params, sink) -> dict:
    """Read every claimed file chunk by chunk; `sink(records, quarantine)` takes each chunk."""
    per_file = [(src.name, read_counted(path, src, params.ingest, lambda _, rec, bad: sink(rec, bad)))
                for path, src in assign_files(raw_dir, params.data.sources)]
    return summarize(params, per_file)


def ingest_frames(raw_dir: Path, params: Params) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Everything in memory (for tests and small data)."""
    recs, bads = [pl.DataFrame(schema=RECORDS_SCHEMA)], [pl.DataFrame(schema=QUARANTINE_SCHEMA)]
    stats = ingest(raw_dir, params, lambda r, b: (recs.append(r), bads.append(b)))
    return pl.concat(recs), pl.concat(bads), stats


def write_file_parts(job: tuple[int, Path, SourceParams, IngestParams, Path, tuple[int, int | None]]) -> dict:
    """One file's (or piece's) chunks as numbered Arrow IPC parts (job index, chunk index: the order of the
    output), each renamed into place once written, so that a part that exists is whole (streamed_parts
    reads it); returns its counts."""
    index, path, src, p, parts, piece = job

    def write(k: int, rec: pl.DataFrame, bad: pl.DataFrame) -> None:
        for name, df in (("records", rec), ("quarantine", bad)):  # uncompressed: cheapest to write and read
            part = parts / f"{name}-{index:06d}-{k:09d}.arrow"
            df.write_ipc(part.with_suffix(".tmp"), compression="uncompressed")
            os.replace(part.with_suffix(".tmp"), part)

    return read_counted(path, src, p, write, piece)


POLL_SECONDS = 0.01


def streamed_parts(parts: Path, name: str, jobs: int, done: Callable[[int], bool],
                   first_line: Callable[[int], int]) -> Iterator[pl.DataFrame]:
    """The parts `name`-<job>-<chunk>.arrow, job by job and chunk by chunk, each as soon as it exists
    (deleted once read), its lines numbered from first_line(job) (a piece's lines are numbered from 1);
    job i has no more parts once done(i) is true. Lets the output be written while the workers still read."""
    for i in range(jobs):
        shift = first_line(i) - 1  # the jobs before i are done: their lines are counted
        for k in itertools.count():
            part = parts / f"{name}-{i:06d}-{k:09d}.arrow"
            while not part.exists() and not done(i):
                time.sleep(POLL_SECONDS)
            if not part.exists():  # done(i) was true before this look: job i wrote all its parts
                break
            df = pl.read_ipc(part)
            part.unlink()
            yield df.with_columns(pl.col("line") + shift) if shift else df


def reading_jobs(files: list[tuple[Path, SourceParams]], parallel: bool, chunk_rows: int
                 ) -> list[tuple[int, Path, tuple[int, int | None]]]:
    """(file index, path, piece): whole files, or JSONL files in pieces of about a chunk when read in parallel."""
    return [(f, path, piece) for f, (path, src) in enumerate(files)
            for piece in (pieces(path, piece_bytes(path, chunk_rows))
                          if parallel and path.is_file() and FORMATS[path.suffix.lower()] == "jsonl" else [(0, None)])]


def main() -> None:
    params = load_params(Params)
    # the scratch parts are removed before the outputs are synced: else the sync writes them to disk too
    with atomic_paths([OUT / "records.parquet", OUT / "quarantine.parquet"]) as tmps, scratch_dir(OUT) as parts:
        files = assign_files(Path(params.data.raw_dir), params.data.sources)
        parallel = sum(path.stat().st_size for path, _ in files if path.is_file()) > PARALLEL_BYTES
        plan = reading_jobs(files, parallel, params.ingest.chunk_rows)
        jobs = [(i, path, files[f][1], params.ingest, parts, piece) for i, (f, path, piece) in enumerate(plan)]
        counts: list[dict] = []
        with (process_map(min(os.cpu_count() or 1, len(jobs)) if parallel else 1) as mapper,
              ThreadPoolExecutor(1) as thread):

            def read_all() -> None:
                for job_counts in mapper(write_file_parts, jobs):
                    counts.append(job_counts)  # in order: job i is done once counts holds i + 1 entries

            def first_line(i: int) -> int:  # 1 + the lines of the pieces of the same file before job i
                return 1 + sum(c["units"] for (f, _, _), c in zip(plan[:i], counts) if f == plan[i][0])

            reading = thread.submit(read_all)
            done = lambda i: len(counts) > i or reading.done()  # noqa: E731
            records = streamed(lambda: streamed_parts(parts, "records", len(jobs), done, first_line),
                               pl.Schema(RECORDS_SCHEMA))
            with synced_while_written(tmps[0]):
                records.sink_parquet(tmps[0], compression=HANDOFF, statistics=False)
            reading.result()  # a worker's error, if any (the records written so far are discarded)
        quarantine = streamed(lambda: streamed_parts(parts, "quarantine", len(jobs), done, first_line),
                              pl.Schema(QUARANTINE_SCHEMA))
        quarantine.sink_parquet(tmps[1], compression=HANDOFF, statistics=False)
        per_file = {f: (files[f][1].name, dict.fromkeys(COUNTS, 0)) for f, _, _ in plan}
        for (f, _, _), job_counts in zip(plan, counts):
            for key in COUNTS:
                per_file[f][1][key] += job_counts[key]
        stats = summarize(params, list(per_file.values()))
    write_json(OUT / "stats.json", stats)
    t = stats["total"]
    print(f"ingest: {t['units']} units from {t['files']} files -> {t['records']} records, "
          f"{t['quarantined']} quarantined")


if __name__ == "__main__":
    run(main, OUT, fast_exit=True)

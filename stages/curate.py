"""Curate: ingested records -> validated training records, every rejection with a rule and a reason.

In:  data/ingest/records.parquet, data/ingest/stats.json (for the accounting check)
Out: data/curate/curated.parquet   records that pass; PII redacted per curate.pii; `cluster` = the
                                   record_id of the record's near-duplicate cluster (itself if none)
     data/curate/rejected.parquet  every other record with `rule`, `column`, `reason` (PII redacted;
                                   text of forgotten records blanked)
     data/curate/stats.json        counts per rule, per source (with the accounting check), PII per
                                   type and source, labels

Rules, first match wins: forget, license, the task's schema rules checked by pandera (classify:
empty_text, too_short, too_long, unknown_label; tunebuild/tasks/<task>.py), quality rules
(too_few_words, too_many_words, mostly_symbols, repeated_chars, boilerplate, charset), pii_<type>
(types set to reject), label_conflict, duplicate, near_duplicate. Each rule is declared once
(tunebuild/rules.py: name, column, check, reason, params); the schema, the reasons and the stats'
keys are built from the declarations. Per source: raw units = quarantined (ingest) + rejected +
curated, checked.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import string
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from tunebuild import licenses, neardup, pii, rules, tasks
from tunebuild.errors import UserError, run
from tunebuild.files import (
    HANDOFF,
    atomic_paths,
    read_json,
    scratch_dir,
    streamed,
    synced_while_written,
    write_json,
)
from tunebuild.params import CurateSections, NearDuplicateParams, load_params
from tunebuild.pool import process_map
from tunebuild.records import id_numbers, not_ascii, plain
from tunebuild.rules import Rule

IN = Path("data/ingest/records.parquet")
INGEST_STATS = Path("data/ingest/stats.json")
OUT = Path("data/curate")
DEDUPE_RULES = ["label_conflict", "duplicate", "near_duplicate"]
PII_ACTIONS = ("redact", "reject", "keep")
PII_TABLE = {"source": pl.String, "type": pl.String, "found": pl.Int64, "redacted": pl.Int64, "rejected": pl.Int64}


Params = CurateSections


def check_params(p: Params) -> None:
    tasks.load(p.task.name)
    for kind in pii.TYPES:
        if getattr(p.curate.pii, kind) not in PII_ACTIONS:
            raise UserError(f"params.yaml: curate.pii.{kind}: '{getattr(p.curate.pii, kind)}' is not one of "
                            f"{', '.join(PII_ACTIONS)}")
    pii.check(p.curate.pii, p.data.sources)
    licenses.check_allowlist(p.curate.license_allowlist, "curate.license_allowlist")
    if p.curate.near_duplicates.action not in ("reject", "keep"):
        raise UserError(f"params.yaml: curate.near_duplicates.action: '{p.curate.near_duplicates.action}' "
                        "is not one of reject, keep")
    nd = p.curate.near_duplicates
    neardup.check(nd.threshold, nd.num_perm, nd.shingle_words, "curate.near_duplicates")
    for name, patterns in (("curate.boilerplate", p.curate.boilerplate), ("data.forget.patterns", p.data.forget.patterns)):
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as e:
                raise UserError(f"params.yaml: {name}: '{pattern}' is not a valid regular expression ({e})") from None


def row_rules(p: Params) -> list[Rule]:
    """The rules curate tests with polars (tunebuild/rules.py): on request and license, then quality."""
    return (rules.request_rules(p.data.forget, p.curate.license_allowlist)
            + rules.quality_rules(p.curate, not_ascii(pl.col("text").fill_null(""))))


def rule_names(p: Params) -> list[str]:
    """Every rule in the order it is tried (the first that fails is recorded): on request, license, the
    task's schema rules, quality rules, PII types set to reject, then the dedupe rules."""
    declared = row_rules(p)
    request, quality = declared[:2], declared[2:]
    schema = [r.name for r in tasks.load(p.task.name).schema_rules(p)]
    return ([r.name for r in request] + list(dict.fromkeys(schema)) + [r.name for r in quality]
            + [f"pii_{t}" for t in pii.TYPES] + DEDUPE_RULES)


def schema_failures(df: pl.DataFrame, p: Params) -> pl.DataFrame:
    """Row index -> (rule, column) of the first failing rule of the task's pandera schema."""
    import pandera.polars as pa

    task = tasks.load(p.task.name)
    schema = schema_for(p)
    empty = pl.DataFrame(schema={"index": pl.Int64, "rule": pl.String, "column": pl.String})
    try:
        schema.validate(df, lazy=True)
        return empty
    except pa.errors.SchemaErrors as e:
        fc = e.failure_cases
    unexpected = fc.filter(pl.col("index").is_null())
    if unexpected.height:
        raise UserError(f"{IN}: schema error {unexpected.row(0, named=True)}; rerun `dvc repro ingest`")
    return rules.first_failures(fc, task.COLUMNS, rule_names(p))


def spaces_and_words(texts: pl.Series) -> pl.DataFrame:
    """Per text, `_spaces` (whitespace characters) and `_words` (runs of non-whitespace).

    For plain texts (records.plain) a literal count of spaces gives both; regular expressions count
    the others.
    """
    text = pl.col("text")
    df = pl.DataFrame({"text": texts.fill_null("")}).with_row_index("_row")
    fast = df.filter(plain(text)).select("_row", _spaces=text.str.count_matches(" ", literal=True), _empty=text == "").select(
        "_row", "_spaces", _words=pl.when("_empty").then(0).otherwise(pl.col("_spaces") + 1))
    slow = df.filter(~plain(text)).select("_row", _spaces=text.str.count_matches(r"\s"), _words=text.str.count_matches(r"\S+"))
    return pl.concat([fast, slow]).sort("_row").select(pl.col("_spaces", "_words").cast(pl.Int64))


def measures(texts: pl.Series, p: Params, timings: dict | None = None) -> tuple[pl.DataFrame, np.ndarray]:
    """What the quality rules count in each text (`_symbols`, `_spaces`, `_words`, `_max_run`) and its LSH
    band keys (neardup.band_keys), from one cut of the text into words.

    Most texts are simple: plain (records.plain) and without symbols, so ASCII words with one space
    between them. Cut at spaces once (polars), their words are what the rules count (spaces = words - 1)
    and what near-duplicate detection hashes (there is nothing else to cut at), and only a text with a
    word longer than curate.max_char_run can hold a longer run of one character. The other texts are
    counted by regular expressions (spaces_and_words, max_char_run) and cut by neardup.words.
    """
    text, nd = pl.col("text"), p.curate.near_duplicates
    with phase(timings, "rules"):
        df = pl.DataFrame({"text": texts.fill_null("")}).with_row_index("_row").with_columns(
            _symbols=text.str.count_matches(r"[^\w\s]").cast(pl.Int64))
        df = df.with_columns(_simple=plain(text) & (pl.col("_symbols") == 0))
        simple, other = df.filter("_simple"), df.filter(~pl.col("_simple"))
        words = simple["text"].str.to_lowercase().str.split(" ")
        counted = pl.concat([
            simple.select("_row", "_symbols", _words=pl.when(text == "").then(0).otherwise(words.list.len()).cast(pl.Int64),
                          _long=words.list.eval(pl.element().str.len_bytes()).list.max() > p.curate.max_char_run),
            pl.concat([other.select("_row", "_symbols", _long=True), spaces_and_words(other["text"])], how="horizontal"),
        ], how="diagonal").sort("_row").with_columns(_spaces=pl.coalesce("_spaces", (pl.col("_words") - 1).clip(0)))
        runs = counted["_long"].arg_true()
        max_run = pl.zeros(len(df), pl.Int64, eager=True).scatter(runs, max_char_run(df["text"].gather(runs), p.curate.max_char_run))
    with phase(timings, "dedupe"):
        keys = np.zeros((len(df), neardup.lsh_shape(nd.threshold, nd.num_perm)[0]), np.uint64)
        for rows, cut in ((simple["_row"], words), (other["_row"], other["text"])):
            keys[rows.to_numpy()] = neardup.band_keys(cut, nd.threshold, nd.num_perm, nd.shingle_words, nd.seed)
    return counted.select("_symbols", "_spaces", "_words", _max_run=max_run), keys


def max_char_run(texts: pl.Series, limit: int) -> pl.Series:
    """Longest run of one repeated character, for texts with a run over `limit` (else 0).

    polars' regex engine has no backreferences: it pre-filters ASCII texts with one
    alternative per printable character; Python's `re` measures the candidates and
    every non-ASCII text.
    """
    filled = texts.fill_null("")
    ascii_runs = "|".join(re.escape(c) + f"{{{limit + 1},}}" for c in string.printable)
    candidate = (filled.str.contains(ascii_runs) | not_ascii(filled)).to_list()
    run_re = re.compile(rf"(.)\1{{{limit},}}", re.DOTALL)
    out = [0] * len(candidate)
    for i in (i for i, c in enumerate(candidate) if c):
        t = texts[i]
        out[i] = max((len(m.group()) for m in run_re.finditer(t)), default=0)
    return pl.Series(out, dtype=pl.Int64)


def add_time(timings: dict | None, name: str, seconds: float) -> None:
    if timings is not None:
        timings[name] = round(timings.get(name, 0.0) + seconds, 3)


def add_times(timings: dict | None, spent: dict[str, float]) -> None:
    for name, seconds in spent.items():
        add_time(timings, name, seconds)


@contextlib.contextmanager
def phase(timings: dict | None, name: str):
    """Adds the seconds spent in the block to timings[name] (printed by main, never written to outputs)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        add_time(timings, name, time.perf_counter() - start)


def apply_rules(df: pl.DataFrame, failed: pl.DataFrame, measured: pl.DataFrame, p: Params) -> pl.DataFrame:
    """Adds `rule` (first failing rule or null), `reason` and `column` to every record.

    `failed` holds the schema failures (schema_failures) of the same rows, `measured` their counts (measures).
    """
    declared = row_rules(p)
    df = pl.concat([df.with_row_index("index").with_columns(pl.col("index").cast(pl.Int64)), measured], how="horizontal")
    df = df.join(failed.rename({"rule": "_schema_rule", "column": "_schema_col"}), on="index", how="left")
    # Each rule's test runs once, a rule with a prefilter (charset) only on the rows it can fail on.
    fails = {r.name: (~r.check(pl.col(r.column))).fill_null(False) for r in declared}
    flags = df.select("index", *(fails[r.name].alias(r.name) for r in declared if r.only is None))
    for r in (r for r in declared if r.only is not None):
        flags = flags.join(df.filter(r.only).select("index", fails[r.name].alias(r.name)), on="index",
                           how="left").with_columns(pl.col(r.name).fill_null(False))
    order = [r.name for r in declared[:2]] + ["_schema"] + [r.name for r in declared[2:]]
    rule = pl.lit(None, pl.String)
    for name in reversed(order):
        hit = pl.col("_schema_rule").is_not_null() if name == "_schema" else pl.col(f"_f_{name}")
        rule = pl.when(hit).then(pl.col("_schema_rule") if name == "_schema" else pl.lit(name)).otherwise(rule)
    df = df.join(flags.rename({n: f"_f_{n}" for n in flags.columns if n != "index"}), on="index")
    df = df.with_columns(rule=rule).drop(pl.selectors.starts_with("_f_"))
    # Reasons and columns are written only for the rows that failed (few), not computed for all.
    reason, column = pl.lit(None, pl.String), pl.lit(None, pl.String)
    for r in tasks.load(p.task.name).schema_rules(p):
        reason = pl.when(pl.col("rule") == r.name).then(r.reason).otherwise(reason)
        column = pl.when(pl.col("rule") == r.name).then(pl.col("_schema_col")).otherwise(column)
    for r in declared:
        reason = pl.when(pl.col("rule") == r.name).then(r.reason).otherwise(reason)
        column = pl.when(pl.col("rule") == r.name).then(pl.lit(r.column)).otherwise(column)
    failing = df.filter(pl.col("rule").is_not_null()).select("index", _reason=reason, _column=column)
    df = df.join(failing, on="index", how="left").rename({"_reason": "reason", "_column": "column"})
    return df.drop("index", *measured.columns, "_schema_rule", "_schema_col")


def redact_for_training(records: pl.DataFrame, p: Params) -> tuple[pl.DataFrame, dict]:
    """Text with the `redact` PII types replaced: what would be trained on, and what the rules see."""
    found = pii.find_all(records, pii.settings(p.curate.pii, p.data.sources))
    kinds = {k for k in pii.TYPES if getattr(p.curate.pii, k) == "redact"}
    if not found:
        return records, found
    rows = list(found)
    texts = records["text"].scatter(rows, [pii.redact(found[i][0], found[i][1], kinds) for i in rows])
    return records.with_columns(text=texts), found


def redactions(df: pl.DataFrame, kinds: dict[int, set[str]], p: Params) -> dict[int, Callable[[str], str]]:
    """Row index -> how to redact a text of that row (the types kinds[row], read with the row's source's
    PII settings): what a task applies inside its own columns (task.redact)."""
    read = pii.settings_of_rows(df, sorted(kinds), p.curate.pii, p.data.sources)
    return {i: functools.partial(redact_text, kinds=kinds[i], settings=read[i]) for i in kinds}


def redact_text(text: str, kinds: set[str], settings) -> str:
    return pii.redact(text, pii.find(text, s=settings), kinds)


def apply_pii(df: pl.DataFrame, found: dict, p: Params) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Reject `reject` PII types (rule pii_<type>); rejected rows get every PII type redacted.

    Returns the frame with `pii` (types found) and rule/reason updated, and one row per
    (source, type) with counts found / redacted / rejected.
    """
    actions = {k: getattr(p.curate.pii, k) for k in pii.TYPES}
    hit = list(found)
    part = df.select("text", "rule", "reason", "column", "source")[hit] if hit else df.select(
        "text", "rule", "reason", "column", "source").clear()
    rules, reasons, columns, texts, types = [], [], [], [], []
    counts: dict[tuple[str, str], list[int]] = {}
    for (text, rule, reason, column, source), i in zip(part.iter_rows(), hit):
        original, sp = found[i]
        kinds = sorted({k for k, _, _ in sp}, key=pii.TYPES.index)
        rejected_kind = next((k for k in kinds if actions[k] == "reject"), None)
        if rule is None and rejected_kind:
            rule, column = f"pii_{rejected_kind}", "text"
            reason = f"contains {rejected_kind.replace('_', ' ')} (curate.pii.{rejected_kind}=reject); redacted here"
        kept = rule is None
        texts.append(text if kept or not sp else pii.redact(original, sp, set(pii.TYPES)))
        rules.append(rule), reasons.append(reason), columns.append(column), types.append(kinds)  # noqa: E401
        for k in kinds:
            c = counts.setdefault((source, k), [0, 0, 0])
            c[0] += 1
            c[1] += int(kept and actions[k] == "redact")
            c[2] += int(rule == f"pii_{k}")
    updates = pl.DataFrame({"_i": hit, "text": texts, "rule": rules, "reason": reasons, "column": columns,
                            "pii": types}, schema={"_i": pl.Int64, "text": pl.String, "rule": pl.String,
                                                   "reason": pl.String, "column": pl.String, "pii": pl.List(pl.String)})
    out = (df.with_row_index("_i").with_columns(pl.col("_i").cast(pl.Int64), pii=pl.lit([], pl.List(pl.String)))
           .update(updates, on="_i", include_nulls=True).drop("_i"))
    table = pl.DataFrame([(s, k, *c) for (s, k), c in sorted(counts.items())], orient="row", schema=PII_TABLE)
    return out, table


def dedupe(ids: np.ndarray, live: np.ndarray, parts: "Parts", p: NearDuplicateParams) -> tuple[pl.DataFrame, int]:
    """Exact (same record_id) then near duplicates among rows not yet rejected, first by (file, line) kept.

    `ids` holds every row's record_id as a u64 and `live` whether no rule rejected it yet (rules_pass),
    in (file, line) order; `parts` holds the rows (ruled-*) and the live rows' LSH band keys (keys-*).
    9 bytes per row stay in memory, the band keys are read one band at a time, and only the few rows
    that are duplicates, or share a band key, are read back. Returns, per row this step rejects or
    clusters (cluster = the record_id of another record): _i, d_rule, d_column, d_reason, cluster; and
    how many clusters keep near duplicates in the curated data (action keep).
    """
    live_at = np.flatnonzero(live)
    copied = live_at[neardup.repeated(ids[live_at])]  # the few live rows whose text repeats
    copies = parts.rows(copied, ["_i", "record_id", "label", "source", "file", "line"])
    where = pl.format("{}:{}", pl.col("file"), pl.col("line"))
    ranked = copies.with_columns(
        n_labels=pl.col("label").n_unique().over("record_id"),
        labels=pl.col("label").unique().sort().str.join(", ").over("record_id"),
        copy=pl.int_range(pl.len()).over("record_id"),
        first=where.first().over("record_id"),
        copies=pl.len().over("record_id"),
    )
    conflict = pl.col("n_labels") > 1
    exact = ranked.filter(conflict | (pl.col("copy") > 0)).select(
        "_i", "source", "label",
        d_rule=pl.when(conflict).then(pl.lit("label_conflict")).otherwise(pl.lit("duplicate")),
        d_column=pl.when(conflict).then(pl.lit("label")).otherwise(pl.lit("text")),
        d_reason=pl.when(conflict).then(pl.format("the same text has {} copies with labels {}; fix the labels at the "
                                                  "source", pl.col("copies"), pl.col("labels")))
        .otherwise(pl.format("duplicate of {}", pl.col("first"))))
    keep = np.ones(len(live_at), bool)  # the live rows that survive exact dedupe (their band keys are in keys-*)
    keep[np.searchsorted(live_at, exact["_i"].to_numpy())] = False
    bands = range(neardup.lsh_shape(p.threshold, p.num_perm)[0])
    flagged = np.flatnonzero(keep)[neardup.shared(lambda b: parts.band(b)[keep], len(bands))]  # positions in live_at
    keys = np.stack([parts.band(b)[flagged] for b in bands], axis=1)
    rows = parts.rows(live_at[flagged], ["_i", "record_id", "source", "label", "file", "line", "text"])
    rep, sim = neardup.clusters(keys, rows["text"].to_list(), p.threshold, p.shingle_words, p.seed)
    member = np.flatnonzero(rep != np.arange(len(rep)))  # in a cluster whose first record is another one
    first = rows[rep[member]]
    reject = p.action == "reject"
    marks = pl.DataFrame({
        "_i": rows["_i"].gather(member), "d_rule": ["near_duplicate" if reject else None] * len(member),
        "d_column": ["text" if reject else None] * len(member),
        "d_reason": [f"near-duplicate of {w} (similarity {s:.2f})" if reject else None
                     for w, s in zip(first.select(where).to_series().to_list(), sim[member].tolist())],
        "cluster": first["record_id"], "source": rows["source"].gather(member), "label": rows["label"].gather(member)},
        schema=DECISIONS | {"cluster": pl.String, "source": pl.String, "label": pl.String})
    kept_clusters = 0 if reject else len(np.unique(rep[member]))
    return pl.concat([exact.with_columns(cluster=pl.lit(None, pl.String)), marks], how="diagonal"), kept_clusters


SCHEMAS: dict[str, object] = {}  # built once per process and params


def schema_for(p: Params):
    """The task's pandera schema, built from its declared schema rules."""
    key = repr(p)
    if key not in SCHEMAS:
        task = tasks.load(p.task.name)
        SCHEMAS[key] = rules.schema(task.COLUMNS, task.schema_rules(p))
    return SCHEMAS[key]


def rule_chunk(chunk: pl.DataFrame, p: Params) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame, dict]:
    """The row-local rules on one chunk (PII, the pandera schema, quality rules): adds rule, reason,
    column, pii; returns the chunk, its rows' LSH band keys (measures), its PII counts and seconds per
    phase. Runs in worker processes."""
    timings: dict[str, float] = {}
    task = tasks.load(p.task.name)
    chunk = task.records(chunk)
    schema_for(p)  # built (and pandera imported) before the timed phases, once per process
    with phase(timings, "pii"):
        staged, found = redact_for_training(chunk, p)
        redact = {k for k in pii.TYPES if getattr(p.curate.pii, k) == "redact"}
        staged = task.redact(staged, redactions(staged, {i: redact for i in found}, p))
    with phase(timings, "pandera"):
        failed = schema_failures(staged.select("record_id", *task.COLUMNS), p)
    measured, keys = measures(staged["text"], p, timings)
    with phase(timings, "rules"):
        ruled = apply_rules(staged, failed, measured, p)
    with phase(timings, "pii"):
        ruled, pii_table = apply_pii(ruled, found, p)
        rejected_rows = [i for i in found if ruled["rule"][i] is not None]
        ruled = task.redact(ruled, redactions(ruled, dict.fromkeys(rejected_rows, set(pii.TYPES)), p))
    return ruled, keys, pii_table, timings


@dataclass(frozen=True)
class Parts:
    """The records, a chunk of `chunk_rows` at a time, and what curate keeps per chunk between its
    passes (frames, band keys): files in `scratch` (the stage: worker processes read and write them)
    or, with no scratch, a dict in this process (tests, small data)."""
    records: Path | pl.DataFrame  # in (file, line) order
    chunk_rows: int
    scratch: Path | None = None
    memory: dict = field(default_factory=dict, compare=False)

    def _scan(self) -> pl.LazyFrame:
        return self.records.lazy() if isinstance(self.records, pl.DataFrame) else pl.scan_parquet(self.records)

    def count(self) -> int:
        """Chunks (at least one, so that empty input still yields its empty outputs)."""
        return max(1, -(-self._scan().select(pl.len()).collect().item() // self.chunk_rows))

    def chunk(self, k: int) -> pl.DataFrame:
        return self._scan().slice(k * self.chunk_rows, self.chunk_rows).collect()

    def put(self, name: str, df: pl.DataFrame) -> None:
        if self.scratch is None:
            self.memory[name] = df
        else:  # scratch: uncompressed Arrow IPC, the cheapest to write and read back; the outputs are compressed once
            df.write_ipc(self.scratch / f"{name}.arrow", compression="uncompressed")

    def drop(self, name: str) -> None:
        if self.scratch is None:
            del self.memory[name]
        else:
            (self.scratch / f"{name}.arrow").unlink()

    def scan(self, name: str) -> pl.LazyFrame:
        return self.memory[name].lazy() if self.scratch is None else pl.scan_ipc(self.scratch / f"{name}.arrow")

    def rows(self, at: np.ndarray, columns: list[str]) -> pl.DataFrame:
        """`columns` of the rows `_i` in `at` (sorted) of the ruled chunks, in that order."""
        bounds = np.searchsorted(at, np.arange(self.count() + 1) * self.chunk_rows)
        frames = [self.scan("ruled-000000").select(columns).head(0).collect()]
        chunks = np.flatnonzero(np.diff(bounds)).tolist()
        for start in range(0, len(chunks), ROWS_BATCH):  # a few chunks read at once, in parallel
            for found in pl.collect_all([
                    self.scan(f"ruled-{k:06d}").select(*dict.fromkeys([*columns, "_i"]))
                    .filter(pl.col("_i").is_in(pl.Series(at[bounds[k]:bounds[k + 1]], dtype=pl.Int64).implode()))
                    .select(columns) for k in chunks[start:start + ROWS_BATCH]]):
                # a copy: the filtered strings would keep the whole chunk's buffers alive (6 GB at 10M rows)
                frames.append(pl.DataFrame(found.to_dict(as_series=False), schema=found.schema))
        return pl.concat(frames)

    def put_keys(self, k: int, keys: np.ndarray) -> None:
        """Chunk k's band keys (rows x bands), kept band by band so that `band` reads one band."""
        if self.scratch is None:
            self.memory[f"keys-{k:06d}"] = keys
        else:
            neardup.save_bands(self.scratch / f"keys-{k:06d}.npy", keys)

    def band(self, b: int) -> np.ndarray:
        """Band b's keys of every chunk, in order."""
        if self.scratch is None:
            return np.concatenate([self.memory[f"keys-{k:06d}"][:, b] for k in range(self.count())])
        return neardup.load_band([self.scratch / f"keys-{k:06d}.npy" for k in range(self.count())], b)


ROWS_BATCH = 4  # chunks that Parts.rows reads at once (their text buffers are in memory together)
DECISIONS = {"_i": pl.Int64, "d_rule": pl.String, "d_column": pl.String, "d_reason": pl.String}
ORDER = f"{IN}: records are not in (file, line) order; rerun `dvc repro ingest`"


def counted(task: str) -> list[pl.Expr]:
    """The keys of the stats' row counts: source, rule (null: curated) and the task's label."""
    return [pl.col("source"), pl.col("rule"), tasks.load(task).counted_label()]


def rules_pass(k: int, parts: Parts, p: Params) -> tuple[np.ndarray, np.ndarray, tuple, pl.DataFrame, pl.DataFrame, dict]:
    """Pass 1 on chunk k (in a worker process): the row-local rules, then the LSH band keys of the rows
    they let through. Keeps the ruled chunk (ruled-k) and the keys (keys-k) in `parts`; returns what
    dedupe needs of each row (its record_id as a u64, whether no rule rejected it), the chunk's first
    and last (file, line), its PII counts, its row counts (counted) and the seconds per phase."""
    ruled, keys, pii_table, timings = rule_chunk(parts.chunk(k), p)
    start = k * parts.chunk_rows
    ruled = ruled.with_columns(_i=pl.int_range(start, start + ruled.height, dtype=pl.Int64))
    file, line = pl.col("file"), pl.col("line")
    in_order = (file > file.shift()) | ((file == file.shift()) & (line >= line.shift()))
    if not ruled.select(in_order.fill_null(True).all()).item():
        raise UserError(ORDER)
    live = ruled["rule"].is_null()
    parts.put_keys(k, keys[live.to_numpy()])
    parts.put(f"ruled-{k:06d}", ruled)
    ends = (ruled.select("file", "line").row(0), ruled.select("file", "line").row(-1)) if ruled.height else ()
    ids = id_numbers(ruled["record_id"], strict=False).fill_null(0).to_numpy()  # rows with no id are not live
    return ids, live.to_numpy(), ends, pii_table, ruled.group_by(*counted(p.task.name)).len(), timings


def outcome(parts: Parts, k: int, decisions: pl.DataFrame, columns: tuple[str, ...]) -> pl.LazyFrame:
    """Chunk k's records with their final rule (null: curated), reason, column and cluster: the ruled
    chunk with its dedupe decisions applied, forgotten text blanked."""
    out = parts.scan(f"ruled-{k:06d}").join(decisions.lazy(), on="_i", how="left", maintain_order="left").with_columns(
        rule=pl.coalesce("rule", "d_rule"), column=pl.coalesce("column", "d_column"),
        reason=pl.coalesce("reason", "d_reason"), cluster=pl.coalesce("cluster", "record_id"))
    forgotten = pl.col("rule") == "forget"
    names = out.collect_schema().names()
    return out.drop("_i", "d_rule", "d_column", "d_reason").with_columns(
        pl.when(forgotten).then(None).otherwise(pl.col(c)).alias(c)
        for c in dict.fromkeys(("text", "label", *columns)) if c in names)


def finish(parts: Parts, jobs: list[tuple[int, pl.DataFrame]], expected: dict[str, int],
           columns: tuple[str, ...]) -> Iterator[pl.DataFrame]:
    """Pass 2, while the curated output is written: each chunk's outcome; its rejected rows (few) put to
    `parts` as rejected-k, its curated rows yielded, then its ruled chunk dropped. Checks at the end that
    the rows written add up to the stats (`expected`: curated and rejected counts)."""
    written = dict.fromkeys(expected, 0)
    drops = []
    with ThreadPoolExecutor(1) as dropper:  # deleting a big file takes a while (the disk discards it): aside
        for k, decisions in jobs:
            every = outcome(parts, k, decisions, columns).collect()
            rejected = every.filter(pl.col("rule").is_not_null()).drop("cluster")
            parts.put(f"rejected-{k:06d}", rejected)
            drops.append(dropper.submit(parts.drop, f"ruled-{k:06d}"))
            curated = every.filter(pl.col("rule").is_null()).drop("rule", "reason", "column")
            written["curated"] += curated.height
            written["rejected"] += rejected.height
            yield curated
    for done in drops:
        done.result()
    if written != expected:
        raise RuntimeError(f"curate accounting: wrote {written}, the stats say {expected}")


def curate_parts(parts: Parts, p: Params, ingest_stats: dict | None, timings: dict | None = None,
                 mapper: Callable = map) -> tuple[pl.LazyFrame, pl.LazyFrame, dict]:
    """The core, a chunk at a time: records in (file, line) order -> (curated, rejected), lazy frames over
    the chunks in `parts`, and the stats. Sink or collect curated first (pass 2 writes the rejected
    parts as it goes), then rejected, while `parts` exists.

    `mapper` runs pass 1 over the chunks (map, or pooled across processes). Only a few chunks'
    text is in memory at a time, plus 9 bytes per record for dedupe (and one band of keys while it runs).
    """
    check_params(p)
    ids, live, ends, pii_tables, counts = [], [], [], [], []
    n = parts.count()
    for chunk_ids, chunk_live, chunk_ends, pii_table, chunk_counts, spent in mapper(
            functools.partial(rules_pass, parts=parts, p=p), range(n)):
        add_times(timings, spent)
        ids.append(chunk_ids), live.append(chunk_live), pii_tables.append(pii_table), counts.append(chunk_counts)  # noqa: E401
        ends.extend(chunk_ends)
    if ends != sorted(ends):  # each chunk is in order (rules_pass): so is the whole if their ends are
        raise UserError(ORDER)
    ids, live = np.concatenate(ids), np.concatenate(live)
    with phase(timings, "dedupe"):
        decisions, kept_clusters = dedupe(ids, live, parts, p.curate.near_duplicates)
    moved = (decisions.filter(pl.col("d_rule").is_not_null()).with_columns(rule=pl.col("d_rule"))  # rows dedupe
             .group_by(*counted(p.task.name)).agg(len=pl.len().cast(pl.Int64)))  # rejects: from curated to their rule
    counts = pl.concat([*counts, moved.with_columns(rule=pl.lit(None, pl.String), len=-pl.col("len")), moved],
                       how="vertical_relaxed")
    counts = counts.group_by("source", "rule", "label").agg(pl.col("len").sum()).filter(pl.col("len") != 0)
    pii_table = pl.concat(pii_tables).group_by("source", "type").sum().sort("source", "type")
    stats = curate_stats(counts, pii_table, kept_clusters, ingest_stats, rule_names(p))
    decisions = decisions.select(*DECISIONS, "cluster")
    by_chunk = decisions.with_columns(k=pl.col("_i") // parts.chunk_rows).partition_by("k", as_dict=True, include_key=False)
    jobs = [(k, by_chunk.get((k,), decisions.clear())) for k in range(n)]
    columns = tuple(tasks.load(p.task.name).COLUMNS)
    every = outcome(parts, 0, jobs[0][1], columns).collect_schema()
    expected = {"curated": stats["curated"], "rejected": stats["rejected"]}
    curated = streamed(lambda: finish(parts, jobs, expected, columns),
                       pl.Schema({c: t for c, t in every.items() if c not in ("rule", "reason", "column")}))
    rejected = streamed(lambda: (parts.scan(f"rejected-{k:06d}").collect() for k in range(n)),
                        pl.Schema({c: t for c, t in every.items() if c != "cluster"}))
    return curated, rejected, stats


def curate(records: pl.DataFrame, p: Params, ingest_stats: dict | None = None,
           timings: dict | None = None) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """In memory (tests, small data): ingested records -> (curated, rejected, stats), both in (file, line) order."""
    parts = Parts(records.sort("file", "line", maintain_order=True), p.curate.chunk_rows)
    curated, rejected, stats = curate_parts(parts, p, ingest_stats, timings)
    return curated.collect(), rejected.collect(), stats


def _counts(counts: pl.DataFrame, col: str) -> dict[str, int]:
    return dict(counts.filter(pl.col(col).is_not_null()).group_by(col).agg(pl.col("len").sum()).sort(col).iter_rows())


def curate_stats(counts: pl.DataFrame, pii_table: pl.DataFrame, kept_clusters: int, ingest_stats: dict | None,
                 names: list[str]) -> dict:
    """Counts (from the rows per source, rule and label: rule null for curated), and the accounting check
    per source: raw units = quarantined + rejected + curated."""
    curated, rejected = counts.filter(pl.col("rule").is_null()), counts.filter(pl.col("rule").is_not_null())
    by_source = {}
    sources = sorted(set(counts["source"].to_list()) | set((ingest_stats or {}).get("sources", {})))
    for src in sources:
        row = {"curated": curated.filter(pl.col("source") == src)["len"].sum(),
               "rejected": rejected.filter(pl.col("source") == src)["len"].sum()}
        row = {"records": row["curated"] + row["rejected"]} | row
        if ingest_stats is not None:
            ing = ingest_stats["sources"].get(src, {"units": 0, "quarantined": 0})
            row |= {"units": ing["units"], "quarantined": ing["quarantined"]}
            if ing["units"] != ing["quarantined"] + row["rejected"] + row["curated"]:
                raise UserError(f"{IN}: accounting does not add up for source '{src}': {ing['units']} raw units != "
                                f"{ing['quarantined']} quarantined + {row['rejected']} rejected + {row['curated']} curated; "
                                "rerun `dvc repro` (the ingest outputs do not match its stats)")
        by_source[src] = row
    pii_stats = {t: {"found": 0, "redacted": 0, "rejected": 0} for t in pii.TYPES}
    pii_by_source: dict[str, dict] = {}
    for src, kind, found, redacted, rej in pii_table.iter_rows():
        for key, val in (("found", found), ("redacted", redacted), ("rejected", rej)):
            pii_stats[kind][key] += val
        pii_by_source.setdefault(src, {})[kind] = {"found": found, "redacted": redacted, "rejected": rej}
    return {"records": counts["len"].sum(), "curated": curated["len"].sum(), "rejected": rejected["len"].sum(),
            "rejected_by_rule": dict.fromkeys(names, 0) | _counts(rejected, "rule"),
            "curated_by_label": _counts(curated, "label"), "by_source": by_source,
            "pii": pii_stats, "pii_by_source": dict(sorted(pii_by_source.items())),
            "clusters": {"kept_with_near_duplicates": kept_clusters}}


def main() -> None:
    params = load_params(Params)
    timings: dict[str, float] = {}
    # the scratch is removed before the outputs are synced: else the sync writes it to disk too
    with atomic_paths([OUT / "curated.parquet", OUT / "rejected.parquet"]) as tmps, scratch_dir(OUT) as scratch:
        parts = Parts(IN, params.curate.chunk_rows, scratch)
        with process_map(min(os.cpu_count() or 1, parts.count())) as mapper:
            curated, rejected, stats = curate_parts(parts, params, read_json(INGEST_STATS), timings, mapper)
        for frame, tmp in zip((curated, rejected), tmps):
            with synced_while_written(tmp):
                frame.sink_parquet(tmp, compression=HANDOFF, statistics=False)
    write_json(OUT / "stats.json", stats)
    print(f"curate: {stats['records']} records -> {stats['curated']} curated, {stats['rejected']} rejected "
          f"({', '.join(f'{k} {v}' for k, v in stats['rejected_by_rule'].items() if v)})")
    print(f"curate timings: {json.dumps(timings)}")


if __name__ == "__main__":
    run(main, OUT, fast_exit=True)

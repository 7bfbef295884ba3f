"""`tunebuild forget`: add records to the forget list in conf/, keeping its comments, and recompose.

The list is `forget:` (record_ids, patterns) of the data config that the primary config selects
(conf/data/<choice>.yaml). After the edit params.yaml is recomposed exactly as `tunebuild compose`
does; `dvc repro` then rejects the records in curate (rule `forget`) and rebuilds everything
downstream, and `tunebuild audit` shows they are gone. Raw files and data/ingest/records.parquet
keep the text: only deleting the raw lines erases it.
"""
from __future__ import annotations

import re
from pathlib import Path

from tunebuild.errors import UserError
from tunebuild.records import record_id
from tunebuild.trace import which_id

RECORDS = Path("data/ingest/records.parquet")


def data_file(conf: Path, config: str) -> Path:
    """conf/data/<option>.yaml: the data config that `config` selects."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(conf.resolve()), version_base=None):
        cfg = compose(config_name=config, return_hydra_config=True)
    choice = cfg.hydra.runtime.choices.get("data")
    path = conf / "data" / f"{choice}.yaml"
    if choice is None or not path.is_file():
        raise UserError(f"{conf}/{config}.yaml: selects no data config file (defaults: - data: <name>); "
                        "tunebuild forget edits conf/data/<name>.yaml")
    import yaml

    picked = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("defaults")
    if picked and isinstance(picked[0], str):  # a task's default (conf/data/<task>.yaml) names the option
        path = conf / "data" / f"{picked[0]}.yaml"
    return path


def add_to_list(path: Path, ids: list[str], patterns: list[str]) -> tuple[list[str], list[str]]:
    """Append what is new to forget.record_ids / forget.patterns; returns what was added.

    ruamel.yaml finds where the lists are; the new items are inserted as lines there, so every
    other byte of the file (comments, quoting, flow lists, `null`s) stays as it was.
    """
    import json

    import yaml
    from ruamel.yaml import YAML

    text = path.read_text(encoding="utf-8")
    doc = YAML().load(text)
    forget = doc.get("forget") if isinstance(doc, dict) else None
    if not isinstance(forget, dict) or not all(isinstance(forget.get(k), list) for k in ("record_ids", "patterns")):
        raise UserError(f"{path}: no `forget:` mapping with `record_ids: []` and `patterns: []`; add one "
                        "(see conf/data/support_tickets.yaml)")
    added = {"record_ids": [i for i in dict.fromkeys(ids) if i not in forget["record_ids"]],
             "patterns": [p for p in dict.fromkeys(patterns) if p not in forget["patterns"]]}
    lines = text.splitlines(keepends=True)
    # bottom-up, so line numbers found by ruamel stay valid
    for key in sorted(added, key=lambda k: forget.lc.key(k)[0], reverse=True):
        if added[key]:
            lines = insert_items(lines, forget, key, added[key], json.dumps)
    new_text = "".join(lines)
    want = {k: list(forget[k]) + added[k] for k in added}
    if {k: (yaml.safe_load(new_text) or {}).get("forget", {}).get(k) for k in want} != want:
        raise UserError(f"{path}: could not add to the forget lists safely (unusual layout); add the entries by "
                        f"hand: {want}")
    if new_text != text:
        from tunebuild.files import write_text

        write_text(path, new_text)
    return added["record_ids"], added["patterns"]


def insert_items(lines: list[str], forget, key: str, items: list[str], quote) -> list[str]:
    """Lines with `items` appended to the list under `key`; a one-line flow list (`[]`) becomes a block list."""
    seq = forget[key]
    key_line, key_col = forget.lc.key(key)
    head = lines[key_line]
    if head[key_col + len(key):].lstrip(" :").startswith("["):
        if head.count("[") != 1 or "]" not in head:
            raise UserError(f"forget.{key}: a flow list over several lines; write it as a block list (`- item`)")
        comment = head[head.index("]") + 1:].rstrip("\n")
        block = [f"{' ' * key_col}{key}:{comment}\n"]
        block += [f"{' ' * (key_col + 2)}- {quote(v)}\n" for v in [*seq, *items]]
        return lines[:key_line] + block + lines[key_line + 1:]
    last_line, last_col = seq.lc.item(len(seq) - 1)
    new = [f"{' ' * (last_col - 2)}- {quote(v)}\n" for v in items]
    return lines[:last_line + 1] + new + lines[last_line + 1:]


def raw_copies(ids: list[str], patterns: list[str]) -> list[str]:
    """file:line of every ingested copy of the records (what curate cannot erase)."""
    import polars as pl

    if not RECORDS.is_file():
        return []
    hit = pl.col("record_id").is_in(ids)
    if patterns:
        hit = hit | pl.col("text").fill_null("").str.contains("|".join(f"(?:{p})" for p in patterns))
    rows = pl.read_parquet(RECORDS).filter(hit).sort("file", "line")
    return [f"{f}:{n}" for f, n in rows.select("file", "line").iter_rows()]


def check(ids: list[str], patterns: list[str]) -> None:
    if not ids and not patterns:
        raise UserError("nothing to forget: give record ids, --text or --pattern")
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise UserError(f"--pattern '{p}': not a valid regular expression ({e})") from None
    if RECORDS.is_file():
        import polars as pl

        known = set(pl.read_parquet(RECORDS, columns=["record_id"])["record_id"].to_list())
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise UserError(f"record {unknown[0]}: not in {RECORDS}; check the id (`tunebuild trace --text` "
                            "computes it from a text), or forget by --pattern")


def forget(ids: list[str], texts: list[str], patterns: list[str], conf: Path, params: Path,
           config: str | None = None) -> str:
    """Edit the forget list, recompose params.yaml; returns what to tell the user."""
    from tunebuild.compose import compose, config_name, validate
    from tunebuild.files import write_text

    ids = [which_id(i, None) for i in ids] + [record_id(t) for t in texts]
    check(ids, patterns)
    config = config or config_name(conf)
    path = data_file(conf, config)
    new_ids, new_patterns = add_to_list(path, ids, patterns)
    text = compose(conf, [], config)
    validate(text, f"{conf}/ (composed)")
    if not params.is_file() or params.read_text(encoding="utf-8") != text:
        write_text(params, text)
    copies = raw_copies(ids, patterns)
    lines = [(f"{path}: added {len(new_ids)} record id(s) and {len(new_patterns)} pattern(s) to forget "
              f"({len(ids) - len(new_ids) + len(patterns) - len(new_patterns)} already there); {params} recomposed "
              f"from {conf}/{config}.yaml."),
             ("Next: `dvc repro` (reruns curate, split, tokenize, train, evaluate and report without them), then "
              "`tunebuild audit --strict` to check they are gone from curated and tokenized data, lineage and the "
              "model; commit conf/, params.yaml and dvc.lock.")]
    if copies:
        lines.append(f"Not erased: the raw data still holds the text ({', '.join(copies[:10])}"
                     + (" ..." if len(copies) > 10 else "") + ") and so does data/ingest/records.parquet; delete "
                     "those lines from data/raw/ to erase it at the source (older DVC cache/remote versions keep it "
                     "until you `dvc gc` them).")
    return "\n".join(lines)

"""`tunebuild diff` on two generated revisions of 1,000,000 curated rows each, both in the DVC cache.

Builds a temporary git + DVC repo whose `curate` and `tokenize` stages (a generator, run by `dvc repro`)
write curate-shaped outputs; commits one revision, changes it (2% removed, 3% added, 1% relabelled,
0.5% texts edited, 1% moved, 1% newly rejected, some rejected rows admitted), reproduces and commits
again. Then times the diff between the two commits in process and as the `tunebuild diff` command
(python start-up and imports included). Prints JSON lines: wall seconds, and CPU seconds (all threads;
on a shared machine wall time also counts the waits for a core), with the load average.

    python bench/bench_diff.py --rows 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml

LABELS = ["account_access", "billing", "bug_report", "cancellation", "feature_request", "order_status",
          "product_question", "refund", "security", "technical_setup"]
SOURCES = ["helpdesk", "email", "chat", "forum"]
WORDS = ("account order invoice charge refund parcel tracking password login error crash app update card payment "
         "subscription plan upgrade cancel delivery address email phone support ticket urgent please help today "
         "yesterday week month again still never always cannot unable failed broken wrong double twice").split()


def rows(ids: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    """Curate-shaped rows for integer ids: text of 8-40 words, label, source, position, license."""
    n = len(ids)
    lengths = rng.integers(8, 40, n)
    words = np.array(WORDS)[rng.integers(0, len(WORDS), int(lengths.sum()))]
    cuts = np.cumsum(lengths)[:-1]
    texts = [" ".join(w) + f" #{i}" for w, i in zip(np.split(words, cuts), ids)]
    return pl.DataFrame({
        "record_id": [f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}" for i in ids.tolist()],
        "text": texts,
        "label": np.array(LABELS)[ids % len(LABELS)],
        "group": pl.Series([None] * n, dtype=pl.String),
        "source": np.array(SOURCES)[ids % len(SOURCES)],
        "file": [f"data/raw/{SOURCES[i % 4]}/part-{i % 8}.jsonl" for i in ids.tolist()],
        "line": ids // 8 + 1,
        "license": "CC0-1.0",
        "pii": pl.Series([[]] * n, dtype=pl.List(pl.String)),
    })


def make(n: int, revision: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(curated, rejected) of revision 0 or 1; revision 1 changes a fixed share of revision 0's rows."""
    rejected_n = n // 10
    all_ids = np.arange(n + rejected_n + n * 3 // 100)
    df = rows(all_ids, np.random.default_rng(0))  # the same rows in both revisions; revision 0 lacks the last 3%
    if not revision:
        df = df.head(n + rejected_n)
    status = pl.when(pl.col("_i") < n).then(pl.lit(None, pl.String)).when(pl.col("_i") < n + rejected_n).then(
        pl.lit("too_long")).otherwise(pl.lit(None, pl.String))
    df = df.with_columns(_i=pl.Series(all_ids[:df.height]), cluster=pl.col("record_id")).with_columns(rule=status)
    if revision:
        i = pl.col("_i")
        df = df.filter(i % 50 != 7).with_columns(  # 2% removed, 3% added (the ids past n + rejected_n)
            label=pl.when(i % 100 == 1).then(pl.lit("refund")).otherwise(pl.col("label")),
            text=pl.when(i % 200 == 2).then(pl.col("text").str.to_uppercase()).otherwise(pl.col("text")),
            line=pl.when(i % 100 == 3).then(pl.col("line") + 1_000_000).otherwise(pl.col("line")),
            rule=pl.when((i < n) & (i % 100 == 4)).then(pl.lit("too_few_words"))
            .when((i >= n) & (i % 10 == 5)).then(pl.lit(None, pl.String)).otherwise(pl.col("rule")))
    curated = df.filter(pl.col("rule").is_null()).drop("_i", "rule").sort("record_id")
    rejected = (df.filter(pl.col("rule").is_not_null()).drop("_i", "cluster")
                .with_columns(reason=pl.format("rule {}", pl.col("rule")), column=pl.lit("text")).sort("file", "line"))
    return curated, rejected


def generate() -> None:
    """The bench repo's stage command: writes data/curate/* and data/tokenize/stats.json for params make.*."""
    p = yaml.safe_load(Path("params.yaml").read_text())["make"]
    curated, rejected = make(p["rows"], p["revision"])
    Path("data/curate").mkdir(parents=True, exist_ok=True)
    Path("data/tokenize").mkdir(parents=True, exist_ok=True)
    curated.write_parquet("data/curate/curated.parquet", compression="zstd", statistics=False)
    rejected.write_parquet("data/curate/rejected.parquet", compression="zstd", statistics=False)
    tokens = int(curated["text"].str.count_matches(r"\S+").sum()) + 2 * curated.height
    Path("data/tokenize/stats.json").write_text(json.dumps({"train": {"rows": curated.height, "tokens": tokens,
                                                                      "truncated": 0}}))


PIPELINE = {"stages": {"curate": {"cmd": f"python {Path(__file__).resolve()} --generate", "params": ["make"],
                                  "outs": ["data/curate/curated.parquet", "data/curate/rejected.parquet"],
                                  "metrics": [{"data/tokenize/stats.json": {"cache": False}}]}}}


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def sh(repo: Path, *cmd: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def build(repo: Path, n: int) -> None:
    """Two commits of the generated pipeline (revision 0, then 1) in a new git + DVC repo."""
    repo.mkdir(parents=True, exist_ok=True)
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "config", "core.analytics", "false")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    t0 = time.perf_counter()
    for revision in (0, 1):
        (repo / "params.yaml").write_text(yaml.safe_dump({"make": {"rows": n, "revision": revision}}))
        sh(repo, "dvc", "repro", "-q")
        sh(repo, "git", "add", "-A")
        sh(repo, "git", "commit", "-qm", f"revision {revision}")
    mb = sum((repo / "data/curate" / f).stat().st_size for f in ("curated.parquet", "rejected.parquet")) / 1e6
    print(json.dumps({"bench": "diff", "rows": n, "parquet_mb_per_revision": round(mb, 1),
                      "setup_seconds": round(time.perf_counter() - t0, 1)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repo", type=Path, help="build the repo here and keep it (reused when it is already built)")
    ap.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        return generate()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tunebuild import revs
    from tunebuild.diff import diff

    with tempfile.TemporaryDirectory() as tmp:
        repo = args.repo or Path(tmp)
        if not (repo / "dvc.lock").exists():
            build(repo, args.rows)
        for i in range(args.repeat):
            revs._fs.cache_clear()
            start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
            report = diff("HEAD~1", "HEAD", "curate", repo)
            print(json.dumps({"bench": "diff", "run": i, "where": "in process", "seconds":
                              round(time.perf_counter() - start, 2), "cpu_seconds":
                              round(cpu_seconds(resource.RUSAGE_SELF) - cpu, 2),
                              "load_average": os.getloadavg()[0], "rows": report["rows"],
                              "newly_rejected": report["curate"]["newly_rejected"],
                              "newly_admitted": report["curate"]["newly_admitted"]}), flush=True)
        for fmt in ("md", "json"):
            start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
            out = sh(repo, "tunebuild", "diff", "--base", "HEAD~1", "--head", "HEAD", "--format", fmt)
            print(json.dumps({"bench": "diff", "where": "tunebuild diff (cli)", "format": fmt, "seconds":
                              round(time.perf_counter() - start, 2), "cpu_seconds":
                              round(cpu_seconds(resource.RUSAGE_CHILDREN) - cpu, 2),
                              "load_average": os.getloadavg()[0], "output_bytes": len(out)}), flush=True)


if __name__ == "__main__":
    main()

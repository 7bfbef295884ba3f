"""Ingest + curate throughput and memory on generated data (default 1,000,000 rows, ~500 MB JSONL).

Generates support-ticket-like rows (about 80 words) with PII, exact and near
duplicates and malformed lines mixed in, in a temporary project copy; runs the
real stages (`python -m stages.ingest`, `python -m stages.curate`); prints JSON
lines: wall and CPU seconds, rows/s and peak RSS (the stage's whole process tree,
summed, sampled every 0.1 s) per stage, and
curate's own timing breakdown (pandera's share of it).

    python bench/bench_curate.py --rows 1000000
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["billing", "refund", "order_status", "account_access", "bug_report"]
WORDS = ("account order invoice charge refund parcel tracking password login error crash app update card payment "
         "subscription plan upgrade cancel delivery address email phone support ticket urgent please help today "
         "yesterday week month again still never always cannot unable failed broken wrong double twice missing "
         "late slow screen button page settings profile device router printer laptop install setup sync backup").split()


def make_rows(n: int, rng: random.Random):
    recent: list[str] = []
    for i in range(n):
        r = rng.random()
        if r < 0.002:
            yield '{"text": "truncated'  # malformed
            continue
        if r < 0.03 and recent:
            text = rng.choice(recent)  # exact duplicate
        elif r < 0.05 and recent:
            words = rng.choice(recent).split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)  # near duplicate
            text = " ".join(words)
        else:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 100)))
            if r < 0.08:
                text += rng.choice([" mail me at user%d@example.com" % i, " call +1 415 555 01%02d" % (i % 100),
                                    " card 4111 1111 1111 1111", " from 203.0.113.%d" % (i % 250)])
        if len(recent) < 1000:
            recent.append(text)
        elif rng.random() < 0.01:
            recent[rng.randrange(1000)] = text
        yield json.dumps({"text": text, "label": rng.choice(LABELS), "id": i})


def timed(repo: Path, module: str) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (with worker processes) and peak RSS of the whole process tree (summed)."""
    start, peak = time.perf_counter(), 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", module], cwd=repo, stdout=out, stderr=err)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            time.sleep(0.1)
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise SystemExit(err.read())
        return wall, usage.ru_utime + usage.ru_stime, peak, out.read()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--workdir", type=Path, help="keep the generated project here (reused when it exists)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = args.workdir or Path(tmp)
        reuse = (repo / "data/raw/bench").is_dir()
        shutil.rmtree(repo / "stages", ignore_errors=True)
        shutil.copytree(ROOT / "stages", repo / "stages")
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["data"]["labels"] = LABELS
        params["data"]["sources"] = [{"name": "bench", "format": "text", "files": "bench/*.jsonl", "license": "CC0-1.0",
                                      "text_field": "text", "label_field": "label", "rejected_field": None, "group_field": None,
                                      "encoding": "utf-8", "delimiter": ",", "pii_regions": None}]
        params["curate"]["license_allowlist"] = ["CC0-1.0"]
        params["curate"]["max_words"] = 1000
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        raw = repo / "data/raw/bench"
        raw.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        rng = random.Random(0)
        rows = make_rows(args.rows, rng)
        per_file = args.rows // args.files + 1
        for f in range(0 if reuse else args.files):
            with open(raw / f"part-{f}.jsonl", "w") as out:
                for _, line in zip(range(per_file), rows):
                    out.write(line + "\n")
        size = sum(f.stat().st_size for f in raw.glob("*.jsonl"))
        print(json.dumps({"bench": "curate", "generated_rows": args.rows, "jsonl_mb": round(size / 1e6, 1),
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        total, cpu_before = 0.0, 0.0
        for stage in ("ingest", "curate"):
            wall, cpu, rss, out = timed(repo, f"stages.{stage}")
            total += wall
            print(json.dumps({"bench": "curate", "stage": stage, "seconds": round(wall, 2),
                              "cpu_seconds": round(cpu - cpu_before, 2), "rows_per_s": round(args.rows / wall),
                              "peak_rss_mb": round(rss / 2**20)}), flush=True)
            cpu_before = cpu
            for line in out.splitlines():
                if line.startswith("curate timings:"):
                    timings = json.loads(line.split(":", 1)[1])
                    share = timings["pandera"] / sum(timings.values())
                    print(json.dumps({"bench": "curate", "curate_timings_s": timings,
                                      "pandera_share": round(share, 3)}), flush=True)
        print(json.dumps({"bench": "curate", "stage": "ingest+curate", "seconds": round(total, 1),
                          "rows_per_s": round(args.rows / total)}), flush=True)
        stats = json.loads((repo / "data/curate/stats.json").read_text())
        print(json.dumps({"bench": "curate", "curated": stats["curated"], "rejected_by_rule":
                          {k: v for k, v in stats["rejected_by_rule"].items() if v}}), flush=True)


if __name__ == "__main__":
    main()

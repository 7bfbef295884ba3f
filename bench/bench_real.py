"""The real-data suite: does the default beat its own cheap alternatives on data nobody here wrote?

For each set (bench/real/sets.py: extracted offline from pinned Debian and PyPI packages) and for
the demo, follow the README's "Use your own data" in a temporary git repo copy of the project: files
under data/raw/<source>/, a conf/data/<set>.yaml, the set selected in conf/config.yaml (and its
license allowed), `tunebuild compose`, then `dvc repro` stage by stage. Prints one JSON line per
set: the tuned model and every cheap alternative with their 95% intervals, the paired gain over the
best one, the best system, seconds per stage (train: the whole `dvc repro` of the train stage,
process start included), curated / rejected / quarantined counts. Stage logs (progress lines
included) go to stderr.

    python bench/bench_real.py                                 # every set and the demo
    python bench/bench_real.py --sets wordnet,demo --out bench/results/real.jsonl
    python bench/bench_real.py --sets fortunes -S train=lora -S train.lr=0.0005   # overrides
    python bench/bench_real.py --keep /tmp/real   # keep each repo (e.g. for bench/bench_choices.py)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import ROOT, STAGES, copy_project  # noqa: E402
from real import sets  # noqa: E402

DEMO = "demo"
SOURCE = """  - name: {name}
    format: text
    files: {name}/*.jsonl
    license: {license}
    text_field: text
    label_field: label
    rejected_field: null
    group_field: null
    encoding: utf-8
    delimiter: ","
    pii_regions: null
"""


def data_conf(name: str, labels: list[str], license_id: str) -> str:
    """conf/data/<name>.yaml: one JSONL source under data/raw/<name>/ ("Use your own data")."""
    return (
        f"# {name}: bench/real/sets.py\nname: {name}\npurpose: null\nraw_dir: data/raw\n"
        f"labels: [{', '.join(labels)}]\n"
        f"sources:\n{SOURCE.format(name=name, license=license_id)}"
        "forget:\n  record_ids: []\n  patterns: []\n"
    )


def select_set(repo: Path, name: str, license_id: str) -> None:
    """Select conf/data/<name>.yaml in conf/config.yaml, allow its license, title the cards."""
    path = repo / "conf" / "config.yaml"
    text = path.read_text()
    for old, new in (
        ("  - data: ${task}", f"  - data: {name}"),
        ("license_allowlist: [", f"license_allowlist: [{license_id}, "),
        ("  title: Support ticket router", f"  title: {name} classifier (bench/real)"),
        (
            "  intended_use: Route incoming customer-support tickets to the right queue.",
            f"  intended_use: Benchmark of the default on {name}.",
        ),
    ):
        if old not in text:
            raise SystemExit(f"conf/config.yaml: expected `{old}` to edit it for set {name}")
        text = text.replace(old, new)
    path.write_text(text)


def add_real_set(repo: Path, name: str) -> dict:
    """data/raw holds only this set's files; its conf/data yaml; selected in conf/config.yaml."""
    shutil.rmtree(repo / "data" / "raw")
    info = sets.extract(name, repo / "data" / "raw" / name)
    (repo / "conf" / "data" / f"{name}.yaml").write_text(
        data_conf(name, info["labels"], info["license"])
    )
    select_set(repo, name, info["license"])
    return info


def sh(repo: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed in {repo} (exit {proc.returncode})")
    return proc.stdout


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def repro(repo: Path) -> tuple[dict[str, float], dict[str, float]]:
    """`dvc repro` stage by stage, its output streamed to stderr: wall and CPU seconds per stage."""
    wall, cpu = {}, {}
    for stage in STAGES:
        print(f"bench_real: {repo.name}: dvc repro {stage}", file=sys.stderr, flush=True)
        start, cpu_start = time.perf_counter(), child_cpu()
        cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", stage]
        subprocess.run(cmd, cwd=repo, stdout=sys.stderr, check=True)
        wall[stage] = round(time.perf_counter() - start, 1)
        cpu[stage] = round(child_cpu() - cpu_start, 1)
    return wall, cpu


def prepare(name: str, repo: Path, overrides: list[str]) -> dict:
    """A project copy at `repo` with the set in place and params.yaml composed."""
    copy_project(repo)
    info = (
        {"set": DEMO, "package": "data/raw (scripts/make_demo_data.py)"}
        if name == DEMO
        else add_real_set(repo, name)
    )
    sh(repo, sys.executable, "-m", "tunebuild.cli", "compose", *overrides)
    return info


def summary(repo: Path) -> dict:
    """What the suite reports from the pipeline's own outputs."""
    read = lambda p: json.loads((repo / p).read_text())  # noqa: E731
    m, cur, ing, live = (
        read(f"data/{p}")
        for p in (
            "evaluate/metrics.json",
            "curate/stats.json",
            "ingest/stats.json",
            "train/live/metrics.json",
        )
    )
    keep = (
        "accuracy",
        "accuracy_ci_lo",
        "accuracy_ci_hi",
        "macro_f1",
        "macro_f1_ci_lo",
        "macro_f1_ci_hi",
    )
    return {
        "tuned": {k: m["tuned"][k] for k in keep},
        "base_accuracy": m["base"]["accuracy"],
        "baselines": {n: {k: v[k] for k in keep} for n, v in m["baselines"].items()},
        "gain_over_best_baseline": m["gain_over_best_baseline"],
        "best_system": m.get("best_system"),
        "best_epoch": live.get("validation", {}).get("best_epoch"),
        "raw_units": ing["total"]["units"],
        "quarantined": ing["total"]["quarantined"],
        "curated": cur["curated"],
        "rejected": cur["rejected"],
        "rejected_by_rule": {r: n for r, n in cur["rejected_by_rule"].items() if n},
    }


def revision() -> str:
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return rev.stdout.strip() + ("+dirty" if dirty else "")


def run_set(name: str, work: Path, overrides: list[str]) -> dict:
    repo, rev = work / name, revision()  # the code copied into the repo
    info = prepare(name, repo, overrides)
    wall, cpu = repro(repo)
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    head = {"bench": "real", "set": name, "rev": rev, "overrides": overrides}
    seconds = {"train_seconds": wall["train"], "train_cpu_seconds": cpu["train"]}
    seconds["threads"] = threads
    return (
        head
        | {k: v for k, v in info.items() if k != "set"}
        | summary(repo)
        | seconds
        | {"stage_seconds": wall, "stage_cpu_seconds": cpu}
    )


NAMES = {"tfidf_logreg": "TF-IDF", "embedding_logreg": "embeddings"}


def interval(scores: dict, metric: str = "accuracy") -> str:
    lo, hi = scores[f"{metric}_ci_lo"], scores[f"{metric}_ci_hi"]
    return f"{scores[metric]:.3f} [{lo:.3f}, {hi:.3f}]"


def table_row(line: dict) -> str:
    """A Markdown row: set, counts, tuned, best cheap alternative, gain, best system, train s."""
    gain = line["gain_over_best_baseline"]
    best = gain["baseline"]
    cells = [
        line["set"],
        f"{line['curated']} / {line['rejected']}",
        interval(line["tuned"]),
        f"{NAMES.get(best, best)} {interval(line['baselines'][best])}",
        f"{100 * gain['accuracy']:+.1f} [{100 * gain['accuracy_ci_lo']:+.1f}, "
        f"{100 * gain['accuracy_ci_hi']:+.1f}]",
        line["best_system"],
        f"{line['train_seconds']:.0f} ({line['train_cpu_seconds']:.0f} CPU)",
    ]
    return "| " + " | ".join(cells) + " |"


def table(path: Path) -> str:
    """The suite's table from bench_real JSON lines (the last line of each set)."""
    last = {}
    for text in path.read_text().splitlines():
        line = json.loads(text)
        if line.get("bench") == "real":
            last[line["set"]] = line
    head = [
        "| set | curated / rejected | tuned accuracy [95% CI] | best cheap alternative | "
        "gain, points [paired 95% CI] | best system | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + [table_row(line) for line in last.values()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join([*sets.SETS, DEMO]))
    ap.add_argument("--out", type=Path, help="append the JSON lines to this file too")
    ap.add_argument("--keep", type=Path, help="build each repo under this folder and keep it")
    ap.add_argument(
        "-S", dest="overrides", action="append", default=[], help="a `tunebuild compose` override"
    )
    ap.add_argument("--note", default="", help="a note stored with each line")
    ap.add_argument("--table", type=Path, help="print the Markdown table of a results file")
    args = ap.parse_args()
    if args.table:
        return print(table(args.table))
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        work = args.keep or Path(tmp)
        for name in args.sets.split(","):
            line = run_set(name, work, args.overrides) | ({"note": args.note} if args.note else {})
            text = json.dumps(line)
            print(text, flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(text + "\n")


if __name__ == "__main__":
    main()

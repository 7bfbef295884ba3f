"""Time the default pipeline: a fresh `dvc repro` stage by stage, then a no-op repro.

Copies the project (code, conf, full demo data) into a temporary git repo so the
working tree is untouched. Prints one JSON line per measurement.

    python bench/bench_pipeline.py            # the default config (what the README runs)
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["stages", "tunebuild", "conf", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore",
         "data/raw"]
STAGES = ["ingest", "curate", "split", "tokenize", "train", "evaluate", "report"]


def sh(cwd: Path, *cmd: str) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def copy_project(repo: Path) -> Path:
    """The project's code, config and full demo data in a fresh git repo at `repo`."""
    for name in FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, repo / name)
    sh(repo, "git", "init", "-q")
    return repo


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_project(Path(tmp) / "repo")
        total = 0.0
        for stage in STAGES:
            t0 = time.perf_counter()
            sh(repo, sys.executable, "-m", "dvc", "repro", "--single-item", stage)
            dt = time.perf_counter() - t0
            total += dt
            print(json.dumps({"bench": "pipeline", "stage": stage, "seconds": round(dt, 2)}), flush=True)
        print(json.dumps({"bench": "pipeline", "stage": "all", "seconds": round(total, 2)}), flush=True)
        noop = []
        for _ in range(3):
            t0 = time.perf_counter()
            sh(repo, sys.executable, "-m", "dvc", "repro")
            noop.append(time.perf_counter() - t0)
        print(json.dumps({"bench": "pipeline", "stage": "noop_repro", "seconds": round(min(noop), 2)}), flush=True)
        metrics = json.loads((repo / "data/evaluate/metrics.json").read_text())
        print(json.dumps({"bench": "pipeline", "metrics": metrics}), flush=True)


if __name__ == "__main__":
    main()

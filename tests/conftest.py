"""Shared fixtures: a small copy of the project in a temporary git repo.

The copy keeps the project's code, conf/ and dvc.yaml, takes the first rows of
every demo raw file (defects included) and composes conf/smoke.yaml, so a real
`dvc repro` runs in seconds.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["stages", "tunebuild", "conf", "models", "data/general", "dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore"]
RAW_DIRS = ["data/raw", "data/raw_chat", "data/raw_pref"]  # the classify, sft and preference demos
TINY_ROWS = 25
ENV = {**os.environ, "PYTHONHASHSEED": "random", "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
       "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
ENV["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{ENV['PATH']}"
# Users' Pythons write bytecode (__pycache__/*.pyc next to every module imported); these machines set
# PYTHONDONTWRITEBYTECODE, which would hide from the tests what bytecode does to DVC's hashes.
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def sh(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a real command (dvc, git, tunebuild, python) in `cwd`."""
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def head_raw(src: Path, dst: Path, rows: int) -> None:
    """The first `rows` units of a raw file, in its own format."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix == ".parquet":
        pl.read_parquet(src).head(rows).write_parquet(dst)
    elif src.suffix == ".csv":
        reader = csv.reader(io.StringIO(src.read_text(encoding="utf-8"), newline=""))
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        for i, row in enumerate(reader):
            if i > rows:
                break
            writer.writerow(row)
        dst.write_text(out.getvalue(), encoding="utf-8")
    else:
        lines = src.read_bytes().split(b"\n")[:rows]
        dst.write_bytes(b"\n".join(lines) + b"\n")


def make_repo(dest: Path, rows: int = TINY_ROWS, overrides: tuple[str, ...] = ()) -> Path:
    """A git repo holding the project with a small raw set and the smoke params composed (with overrides)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src, dst = ROOT / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    for src in sorted(f for d in RAW_DIRS for f in (ROOT / d).rglob("*")):
        if src.is_file():
            head_raw(src, dest / src.relative_to(ROOT), rows)
    sh(dest, "git", "init", "-q", "-b", "main")
    sh(dest, "dvc", "config", "hydra.config_name", "smoke")
    sh(dest, "tunebuild", "compose", "--config", "smoke", *overrides)
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-qm", "tiny project")
    return dest


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory) -> Path:
    """A tiny repo after one full `dvc repro` (read-only for tests: copy it to change it)."""
    repo = make_repo(tmp_path_factory.mktemp("built") / "repo")
    sh(repo, "dvc", "repro")
    return repo


@pytest.fixture
def repo_copy(built_repo, tmp_path) -> Path:
    """A private copy of the built repo (outputs, cache, dvc.lock and git included)."""
    dest = tmp_path / "repo"
    shutil.copytree(built_repo, dest, symlinks=True)
    return dest


def ran_stages(output: str) -> list[str]:
    """Stages that `dvc repro` actually ran, from its output."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]

"""Read pipeline artifacts as they were at a git revision, through DVC.

`rev=None` reads the workspace. Any other rev is read through DVC's file system
from the local cache (or the default remote), never by checking out. Errors a
user can cause (unknown revision, artifact not in that revision, artifact not
pulled) are one UserError each.
"""
from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from tunebuild.errors import UserError


@lru_cache(maxsize=8)
def _fs(root: str, sha: str):
    from dvc.api import DVCFileSystem

    return DVCFileSystem(root, rev=sha)


def read_bytes(path: str, rev: str | None = None, root: str | Path = ".") -> bytes:
    """The bytes of `path` (relative to the repo root) at `rev` (None: workspace)."""
    if rev is None:
        p = Path(root) / path
        if not p.is_file():
            raise UserError(f"{p}: not found in the workspace; run `dvc repro` (or `dvc pull`) first")
        return p.read_bytes()
    fs = _rev_fs(rev, root)
    try:
        if not _recorded(fs, path):
            raise UserError(f"{path}: not in git revision {rev!r} (neither in git nor in its dvc.lock); "
                            "was the pipeline run and committed at that revision?")
        return fs.read_bytes(path)
    except UserError:
        raise
    except Exception as e:  # missing from cache and remote: FileNotFoundError / PathMissingError / CheckoutError
        raise UserError(f"{path} at {rev!r}: the data is not in the local DVC cache or remote ({e}); "
                        f"run `dvc pull --all-commits` or `git checkout {rev} && dvc repro`") from None


def exists(path: str, rev: str | None = None, root: str | Path = ".") -> bool:
    """Whether `path` is in revision `rev` (in git or in its dvc.lock), pulled or not."""
    if rev is None:
        return (Path(root) / path).is_file()
    return _recorded(_rev_fs(rev, root), path)


def _recorded(fs, path: str) -> bool:
    """In git, or a DVC output whose hash that revision records (a stage in dvc.yaml never run records none)."""
    if not fs.exists(path):
        return False
    entry = (fs.info(path).get("dvc_info") or {}).get("entry")
    return entry is None or entry.hash_info is not None or entry.meta is not None


def _rev_fs(rev: str, root: str | Path):
    return _fs(str(Path(root).resolve()), resolve(rev, root))


def read_parquet(path: str, rev: str | None = None, root: str | Path = "."):
    import polars as pl

    return pl.read_parquet(io.BytesIO(read_bytes(path, rev, root)))


def read_json(path: str, rev: str | None = None, root: str | Path = ".") -> Any:
    return json.loads(read_bytes(path, rev, root))


def read_text(path: str, rev: str | None = None, root: str | Path = ".") -> str:
    return read_bytes(path, rev, root).decode("utf-8")


def resolve(rev: str, root: str | Path = ".") -> str:
    """The full commit sha of `rev`, or a UserError naming it."""
    import subprocess

    r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                       cwd=root, capture_output=True, text=True, check=False)
    if r.returncode:
        raise UserError(f"{rev!r}: not a git revision in {Path(root).resolve()}; "
                        "give a branch, tag or commit that exists (see `git log`)")
    return r.stdout.strip()


def git(root: str | Path, *args: str) -> str:
    """`git args` run in `root`: its output, or one UserError line."""
    import subprocess

    r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if r.returncode:
        raise UserError(f"git {' '.join(args)} failed in {Path(root).resolve()}: {r.stderr.strip()}")
    return r.stdout


def history(path: str, rev: str | None = None, root: str | Path = ".") -> list[str]:
    """Full shas of the commits reachable from `rev` (None: HEAD) that changed `path`, newest first."""
    return git(root, "log", "--format=%H", resolve(rev or "HEAD", root), "--", path).split()


def git_text(path: str, sha: str, root: str | Path = ".") -> str | None:
    """The text of a git-tracked file at commit `sha`, or None when that commit does not have it."""
    import subprocess

    r = subprocess.run(["git", "show", f"{sha}:{path}"], cwd=root, capture_output=True, text=True, check=False)
    return r.stdout if r.returncode == 0 else None


def describe(rev: str | None = None, root: str | Path = ".") -> dict:
    """Which code a read at `rev` sees: the commit, and for the workspace whether it has uncommitted changes."""
    if rev is not None:
        return {"rev": rev, "commit": resolve(rev, root), "uncommitted_changes": False}
    head = resolve("HEAD", root)
    dirty = bool(git(root, "status", "--porcelain", "--untracked-files=no").strip())
    return {"rev": "workspace", "commit": head, "uncommitted_changes": dirty}

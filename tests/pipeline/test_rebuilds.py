"""Exact rebuilds on a machine like a user's: bytecode writing on (tests/conftest.py removes
PYTHONDONTWRITEBYTECODE from every subprocess), every `tunebuild` command run from the repo root,
then `dvc status` is clean and `dvc repro` reruns nothing. And the rebuild matrix of code edits:
a CLI-only module reruns nothing, a stage file reruns that stage, a module only training imports
reruns train.

The commands run as `python -m tunebuild ...` in the repo, so Python imports the repo's own
tunebuild/ (not the checkout this venv's editable install points at) and writes its bytecode into the
repo's tunebuild/__pycache__/, where DVC sees it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import ENV, ran_stages, sh

pytestmark = pytest.mark.pipeline
COMMENT = "\n# a comment changes the file's hash, not what it does\n"


def tb(repo: Path, *args: str, check: bool = True):
    """`python -m tunebuild ARGS` from the repo root, as a user with an editable install would run it."""
    return sh(repo, sys.executable, "-m", "tunebuild", *args, check=check)


def lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def out_hashes(repo: Path) -> dict[str, str]:
    """Every output path in dvc.lock -> its md5."""
    return {o["path"]: o["md5"] for st in lock(repo).values() for o in st.get("outs", [])}


def assert_clean(repo: Path) -> None:
    """`dvc status` lists nothing, and `dvc repro` reruns no stage."""
    status = sh(repo, "dvc", "status", "--json").stdout
    assert json.loads(status) == {}, f"dvc status is not clean:\n{status}"
    again = sh(repo, "dvc", "repro")
    assert ran_stages(again.stdout) == [], again.stdout


def project_modules(repo: Path) -> list[str]:
    """Dotted names of every module of the project in the repo (tunebuild/ and stages/)."""
    files = [f for pkg in ("tunebuild", "stages") for f in sorted((repo / pkg).rglob("*.py"))
             if "__pycache__" not in f.parts and f.name != "__main__.py"]  # __main__ runs the CLI when imported
    return [".".join(f.relative_to(repo).with_suffix("").parts).removesuffix(".__init__") for f in files]


def missing_bytecode(repo: Path) -> list[str]:
    """Project .py files with no .pyc of this Python in their __pycache__/."""
    tag = sys.implementation.cache_tag
    return [f.relative_to(repo).as_posix() for pkg in ("tunebuild", "stages") for f in sorted((repo / pkg).rglob("*.py"))
            if "__pycache__" not in f.parts and f.name != "__main__.py"
            and not (f.parent / "__pycache__" / f"{f.stem}.{tag}.pyc").is_file()]


def test_bytecode_is_written_in_these_tests():
    """The premise of this file: the subprocesses write bytecode, as on a user's machine."""
    assert "PYTHONDONTWRITEBYTECODE" not in ENV and "PYTHONPYCACHEPREFIX" not in ENV
    proc = sh(Path("/"), sys.executable, "-c", "import sys; print(sys.dont_write_bytecode, sys.pycache_prefix)")
    assert proc.stdout.split() == ["False", "None"]


def test_repro_twice_reruns_nothing(repo_copy):
    """A fresh repo's `dvc repro` (the session fixture's) left bytecode in the repo; a second reruns nothing."""
    repo = repo_copy
    assert (repo / "stages/__pycache__").is_dir() and (repo / "tunebuild/__pycache__").is_dir(), \
        "the first dvc repro wrote no bytecode in the repo"
    assert_clean(repo)


def test_every_command_then_repro_reruns_nothing(repo_copy):
    """`dvc repro`, every tunebuild command from the repo root with bytecode on, every module imported:
    bytecode is then in the repo next to every module, yet `dvc status` is clean and `dvc repro` reruns nothing."""
    repo = repo_copy
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "pipeline run")  # a revision for diff, trace --all-revs and experiments
    where = sh(repo, sys.executable, "-c", "import tunebuild; print(tunebuild.__file__)").stdout.strip()
    assert Path(where) == repo / "tunebuild/__init__.py", f"imported {where}, not the repo's own tunebuild"

    assert "up to date" in tb(repo, "compose", "--config", "smoke", "--check").stdout
    assert tb(repo, "audit").stdout.startswith("# Audit: ")
    report = json.loads(tb(repo, "audit", "--format", "json").stdout)
    assert report["status"]["checked"] and report["status"]["stale"] == {}, report["status"]
    assert not [f for f in report["findings"] if f["kind"] == "stale"], report["findings"]

    train = pl.read_parquet(repo / "data/split/train.parquet")
    rid = train["record_id"][0]
    raw = pl.read_parquet(repo / "data/ingest/records.parquet").filter(pl.col("record_id") == rid)["text"][0]
    for args in ([rid], ["--text", raw], [rid, "--all-revs"]):
        out = tb(repo, "trace", *args).stdout
        assert out.startswith(f"record {rid}") and "split: train" in out, out

    md = tb(repo, "diff", "--base", "HEAD").stdout
    assert md.startswith("### Dataset diff: `curate`, `HEAD`"), md
    assert json.loads(tb(repo, "diff", "--base", "HEAD", "--format", "json").stdout)["rows"]["added"] == 0

    # promote needs an experiment: one that reruns report only, in a temporary copy (the workspace stays as it is)
    exp = sh(repo, "dvc", "exp", "run", "--temp", "-S", "report.owner=ml-team@example.com")
    assert ran_stages(exp.stdout) == ["report"], exp.stdout
    assert "promoted experiment" in tb(repo, "promote", "--metric", "tuned.loss", "--min", "--branch", "best").stdout
    assert sh(repo, "git", "show", "best:cards/model_card.md").stdout.startswith("<!-- A copy of data/report/")

    # the commands wrote their bytecode in the repo, next to their modules
    tag = sys.implementation.cache_tag
    cli = [m for m in ("cli", "compose", "audit", "trace", "diff", "promote", "revs")
           if not (repo / f"tunebuild/__pycache__/{m}.{tag}.pyc").is_file()]
    assert not cli, f"the commands wrote no bytecode in the repo for tunebuild/{cli}"

    # every module of the project imported once, from the repo, so that every .pyc exists
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)"
    sh(repo, sys.executable, "-c", code, *project_modules(repo))
    assert not missing_bytecode(repo), f"no bytecode written for {missing_bytecode(repo)}"
    assert (repo / "tunebuild/__pycache__").is_dir() and (repo / "stages/__pycache__").is_dir()

    assert_clean(repo)
    assert json.loads(tb(repo, "audit", "--format", "json").stdout)["status"]["stale"] == {}


def test_forget_reruns_curate_and_downstream_only(repo_copy):
    """`tunebuild forget` (with bytecode on) edits conf/ and recomposes params.yaml; `dvc repro` reruns curate and
    what is downstream of it where its inputs changed, never ingest; then nothing reruns. The forgotten record is
    a test record: train's inputs (tokenized train and validation) stay byte-identical, so train does not rerun
    (which also keeps this test a minute shorter; tests/pipeline/test_audit.py forgets a train record)."""
    repo = repo_copy
    before = out_hashes(repo)
    rid = pl.read_parquet(repo / "data/split/test.parquet")["record_id"][0]
    assert "dvc repro" in tb(repo, "forget", rid).stdout
    assert rid in yaml.safe_load((repo / "params.yaml").read_text())["data"]["forget"]["record_ids"]
    assert "up to date" in tb(repo, "compose", "--config", "smoke", "--check").stdout
    tb(repo, "compose", "--config", "smoke")
    ran = ran_stages(sh(repo, "dvc", "repro").stdout)
    assert ran == ["curate", "split", "tokenize", "evaluate", "report"], ran
    after = out_hashes(repo)
    assert rid not in set(pl.read_parquet(repo / "data/split/test.parquet")["record_id"])
    assert after["data/split/test.parquet"] != before["data/split/test.parquet"]
    for path in ("data/tokenize/train.parquet", "data/tokenize/validation.parquet"):
        assert after[path] == before[path], f"{path} changed: train would have rerun"
    assert "rejected: forget" in tb(repo, "trace", rid).stdout
    assert json.loads(tb(repo, "audit", "--format", "json").stdout)["status"]["stale"] == {}
    assert (repo / f"tunebuild/__pycache__/forget.{sys.implementation.cache_tag}.pyc").is_file()
    assert_clean(repo)


def append_comment(repo: Path, rel: str) -> None:
    with open(repo / rel, "a", encoding="utf-8") as f:
        f.write(COMMENT)


def test_cli_only_module_edit_reruns_nothing(repo_copy):
    repo = repo_copy
    deps = {d for st in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].values() for d in st["deps"]}
    assert "tunebuild/diff.py" not in deps and "tunebuild" not in deps
    append_comment(repo, "tunebuild/diff.py")
    assert_clean(repo)


def test_tokenize_stage_edit_reruns_tokenize_only(repo_copy):
    """A comment in stages/tokenize.py reruns tokenize; its outputs are the same, so nothing after it reruns."""
    repo = repo_copy
    before = out_hashes(repo)
    append_comment(repo, "stages/tokenize.py")
    ran = ran_stages(sh(repo, "dvc", "repro").stdout)
    assert ran == ["tokenize"], ran
    assert out_hashes(repo) == before
    assert_clean(repo)


def train_only_modules(repo: Path) -> list[str]:
    """tunebuild/*.py files in train's deps and in no other stage's deps (from dvc.yaml)."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    others = {d for verb, st in stages.items() if verb != "train" for d in st["deps"]}
    return sorted(d for d in stages["train"]["deps"]
                  if d.startswith("tunebuild/") and d.endswith(".py") and d not in others)


def test_train_only_module_edit_reruns_train_only(repo_copy):
    """A comment in a module that only training imports reruns train and nothing upstream; training is
    deterministic on CPU, so the model is byte-identical and nothing downstream reruns either."""
    repo = repo_copy
    modules = train_only_modules(repo)
    assert modules, "no module only train imports (dvc.yaml: no tunebuild/*.py in train's deps alone)"
    before = out_hashes(repo)
    append_comment(repo, modules[0])
    ran = ran_stages(sh(repo, "dvc", "repro").stdout)
    assert ran == ["train"], f"a comment in {modules[0]} ran {ran}"
    assert out_hashes(repo) == before
    assert_clean(repo)

"""The task seam: a task defined only under tests/ runs through `dvc repro` without touching a stage."""
from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ROOT, make_repo, ran_stages, sh

pytestmark = pytest.mark.pipeline


def test_a_task_of_your_own_runs_through_every_stage(tmp_path):
    repo = make_repo(tmp_path / "repo")
    before = {f: f.read_bytes() for f in sorted((repo / "stages").glob("*.py"))}
    (repo / "mytasks").mkdir()
    shutil.copy(ROOT / "tests" / "tasks" / "keywords.py", repo / "mytasks" / "keywords.py")
    sh(repo, "tunebuild", "compose", "--config", "smoke", "task.name=mytasks.keywords", "train=full")
    out = sh(repo, "dvc", "repro").stdout
    assert ran_stages(out) == ["ingest", "curate", "split", "tokenize", "train", "evaluate", "report"]
    assert before == {f: f.read_bytes() for f in sorted((repo / "stages").glob("*.py"))}
    tokens = pl.read_parquet(repo / "data/tokenize/train.parquet")
    assert tokens.columns == ["record_id", "label_id", "input_ids"]  # its own tokenization, no tokenizer files
    assert (repo / "data/train/model/model.safetensors").is_file()  # its own model, saved
    card = (repo / "data/report/model_card.md").read_text()
    assert "to sort texts by their words" in card
    assert "too_short" not in Path(repo / "data/curate/stats.json").read_text()  # classify's rule is not its own

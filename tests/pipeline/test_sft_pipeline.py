"""task=sft for real: dvc repro / dvc exp run in a temporary git repo on the chat demo, and a kill mid-training."""
from __future__ import annotations

import json
import shutil
import time

import polars as pl
import pytest
import yaml

from tests.browser import REPORT_SECTIONS, assert_clean, look, shot_path
from tests.conftest import make_repo, ran_stages, sh
from tests.pipeline.test_crash import kill_tree, stage_outs, stage_process, start
from tests.pipeline.test_pipeline import STAGES
from tests.pipeline.test_pipeline import (
    test_contract_every_stage_has_module_params_and_outputs as check_contract,
)

pytestmark = pytest.mark.pipeline
# A small sft run: ~50 training conversations, ~2 per packed row, one row per step, a checkpoint every 4 steps.
SFT = ("task=sft", "tokenize.max_length=128", "train.epochs=3", "train.batch_size=1", "train.chat.pack_length=160",
       "train.chat.checkpoint_every=4", "task.chat.samples=4", "task.chat.max_new_tokens=16")


@pytest.fixture(scope="module")
def sft_repo(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("sft") / "repo", overrides=SFT)
    sh(repo, "dvc", "repro")
    return repo


def test_sft_repro_writes_the_task_outputs(sft_repo):
    repo = sft_repo
    assert "up to date" in sh(repo, "dvc", "status").stdout
    assert ran_stages(sh(repo, "dvc", "repro").stdout) == []
    ingest = json.loads((repo / "data/ingest/stats.json").read_text())
    assert set(ingest["sources"]) == {"conversations", "email", "forms"}  # one source per input format
    tok = json.loads((repo / "data/tokenize/stats.json").read_text())
    assert {"truncated", "dropped", "trained_tokens"} <= set(tok["train"])
    rows = pl.read_parquet(repo / "data/tokenize/train.parquet")
    assert rows.columns == ["record_id", "input_ids", "labels", "prompt_length", "completion"]
    metrics = json.loads((repo / "data/evaluate/metrics.json").read_text())
    assert {"loss", "perplexity", "json_valid", "exact_match"} <= set(metrics["tuned"])
    assert metrics["tuned"]["loss"] < metrics["base"]["loss"]
    samples = pl.read_parquet(repo / "data/evaluate/predictions.parquet")
    assert samples.columns == ["record_id", "reference", "base", "tuned", "few_shot", "nearest_few_shot"]
    assert samples.height == 4
    assert set(metrics["baselines"]) == {"zero_shot", "few_shot", "nearest_few_shot"}
    assert metrics["baselines"]["few_shot"]["shots"] == metrics["baselines"]["nearest_few_shot"]["shots"] == 3
    general = metrics["general"]  # what the tuning cost elsewhere: loss on data/general's passages
    assert general["passages"] >= 40 and general["base_loss"] == metrics["base"]["general_loss"]
    assert general["loss_change_ci_lo"] <= general["loss_change"] <= general["loss_change_ci_hi"]
    for s in (metrics["tuned"], metrics["base"], *metrics["baselines"].values(), metrics["gain_over_best_baseline"]):
        for m in ("json_valid", "exact_match"):
            assert s[f"{m}_ci_lo"] <= s[m] <= s[f"{m}_ci_hi"], (s, m)
    assert metrics["baselines"]["zero_shot"]["exact_match"] == metrics["base"]["exact_match"]  # zero-shot = base
    assert metrics["gain_over_best_baseline"]["metric"] == "exact_match"
    assert pl.read_parquet(repo / "data/evaluate/label_issues.parquet").height == 0  # no labels to check in sft
    assert set(json.loads((repo / "data/evaluate/per_class.json").read_text())["tuned"]) == {"category", "priority",
                                                                                           "product"}
    assert (repo / "data/train/model/model.safetensors").is_file()  # the sft default is full fine-tuning
    assert not (repo / "data/train/checkpoint").exists()  # scratch state goes once the model is saved
    card = (repo / "data/report/model_card.md").read_text()
    assert "pipeline_tag: text-generation" in card and "| json_valid |" in card
    assert "the base model prompted few-shot (3 train examples in the prompt)" in card
    evaluation = card.split("## Evaluation (test split)\n\n")[1]
    assert evaluation.startswith("Exact match of greedy JSON answers on 4 test conversations: tuned ")
    assert "prompted zero-shot" in evaluation.split("\n")[0] and "nearest to each prompt" in evaluation.split("\n")[0]
    assert "General ability: on " in card
    check_contract(repo)


def test_sft_report_page_in_a_browser(sft_repo, tmp_path):
    """The chat task's page: sources instead of labels, field accuracy, the greedy samples."""
    found = look(sft_repo / "data/report/index.html", shot_path(tmp_path, "report-sft"))
    assert_clean(found, REPORT_SECTIONS)
    text = found["text"]
    assert "Sources per split" in text and "Accuracy per JSON field" in text and "Samples from the test split" in text
    metrics = json.loads((sft_repo / "data/evaluate/metrics.json").read_text())
    key = metrics["gain_over_best_baseline"]["metric"]
    assert float(found["headline_values"][0]) == metrics["tuned"][key]


def test_exp_run_switches_the_task(repo_copy):
    """From the classify repo: `dvc exp run -S task=sft` swaps data, model and training, and runs every stage."""
    repo = repo_copy
    overrides = ("task=sft", "train=sft_lora", "tokenize.max_length=128", "train.epochs=1", "task.chat.samples=2",
                 "task.chat.max_new_tokens=8")
    out = sh(repo, "dvc", "exp", "run", *[a for o in overrides for a in ("-S", o)])
    assert ran_stages(out.stdout) == STAGES
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["task"]["name"] == "sft" and params["data"]["name"] == "ticket_chat"
    assert params["model"]["path"] == "models/tiny-chat" and params["train"]["lora"]["target_modules"] == ["all-linear"]
    assert (repo / "data/train/model/adapter_model.safetensors").is_file()
    assert "ticket_chat" in sh(repo, "dvc", "exp", "show", "--json").stdout


def never_trained(sft_repo, dest):
    """A copy of the repo as before its first training: no train entry in dvc.lock (nor in the run cache)."""
    shutil.copytree(sft_repo, dest, symlinks=True)
    lock = yaml.safe_load((dest / "dvc.lock").read_text())
    del lock["stages"]["train"]
    (dest / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    shutil.rmtree(dest / ".dvc/cache/runs", ignore_errors=True)
    return dest


def test_kill_during_training_then_repro_resumes_bitwise(sft_repo, tmp_path):
    """SIGKILL the train stage after a checkpoint; `dvc repro` resumes from it and ends with the same bits."""
    repo = never_trained(sft_repo, tmp_path / "repo")
    expected = stage_outs(sft_repo)["train"]
    proc = start(repo, "repro", "--force", "--single-item", "train")
    child = stage_process(proc, "train")
    assert child is not None
    checkpoint = repo / "data/train/checkpoint/checkpoint.safetensors"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and child.is_running():
        time.sleep(0.005)
    assert kill_tree(child), "training ended before it could be killed"
    proc.wait(timeout=60)
    assert checkpoint.exists(), "killed before the first checkpoint"
    out = sh(repo, "dvc", "repro", "train").stdout
    assert "resumed from checkpoint at step" in out
    assert ran_stages(out) == ["train"]
    assert stage_outs(repo)["train"] == expected
    assert not (repo / "data/train/checkpoint").exists()

"""task=preference for real: `dvc exp run -S task=preference` in a temporary git repo on the preference demo."""
from __future__ import annotations

import json
import math

import polars as pl
import pytest
import yaml

from tests.browser import REPORT_SECTIONS, assert_clean, look, shot_path
from tests.conftest import make_repo, ran_stages, sh
from tests.pipeline.test_pipeline import STAGES
from tests.pipeline.test_pipeline import (
    test_contract_every_stage_has_module_params_and_outputs as check_contract,
)

pytestmark = pytest.mark.pipeline
# ~45 training pairs, 3 epochs of 6 steps; a few greedy samples.
PREFERENCE = ("task=preference", "tokenize.max_length=128", "train.epochs=3", "task.chat.samples=3",
              "task.chat.max_new_tokens=8")


@pytest.fixture(scope="module")
def pref_repo(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("pref") / "repo")
    out = sh(repo, "dvc", "exp", "run", *[a for o in PREFERENCE for a in ("-S", o)])
    assert ran_stages(out.stdout) == STAGES
    return repo


def test_exp_run_trains_and_evaluates_preferences(pref_repo):
    repo = pref_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["name"] == "ticket_prefs" and params["train"]["preference"]["loss"] == "sigmoid"
    assert set(json.loads((repo / "data/ingest/stats.json").read_text())["sources"]) == {"conversations", "pairs",
                                                                                          "review"}
    rows = pl.read_parquet(repo / "data/tokenize/train.parquet")
    assert rows.columns == ["record_id", "chosen_ids", "chosen_labels", "rejected_ids", "rejected_labels", "chosen",
                            "rejected", "prompt_length"]
    metrics = json.loads((repo / "data/evaluate/metrics.json").read_text())
    keys = {"loss", "preference_accuracy", "reward_accuracy", "reward_margin", "json_valid", "exact_match"}
    assert set(metrics["gain"]) == keys | {"general_loss"}  # loss on data/general's text: what tuning cost elsewhere
    intervals = {f"{m}_ci_{end}" for m in ("preference_accuracy", "json_valid", "exact_match") for end in ("lo", "hi")}
    assert set(metrics["base"]) == set(metrics["tuned"]) == keys | {"general_loss"} | intervals
    gain = metrics["gain_over_start"]  # paired bootstrap: tuned minus the starting point, on the same resamples
    assert gain["preference_accuracy"] == pytest.approx(metrics["gain"]["preference_accuracy"], abs=1e-6)
    assert gain["preference_accuracy_ci_lo"] <= gain["preference_accuracy"] <= gain["preference_accuracy_ci_hi"]
    # the base is the reference: no margin, the loss at log 2; training moves both the right way
    assert metrics["base"]["reward_margin"] == 0 and metrics["base"]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert metrics["tuned"]["loss"] < metrics["base"]["loss"] and metrics["tuned"]["reward_margin"] > 0
    live = json.loads((repo / "data/train/live/metrics.json").read_text())
    assert live["validation"]["reward_margin"] > 0
    samples = pl.read_parquet(repo / "data/evaluate/predictions.parquet")
    assert samples.columns == ["record_id", "chosen", "rejected", "base", "tuned", "margin"] and samples.height == 3
    card = (repo / "data/report/model_card.md").read_text()
    assert "Direct Preference Optimization" in card and "| preference_accuracy |" in card
    evaluation = card.split("## Evaluation (test split)\n\n")[1]
    assert evaluation.startswith("Preference accuracy on the test pairs: tuned ") and "for the starting point" in evaluation
    assert "General ability: on " in card
    assert "preference tuning (DPO)" in (repo / "data/report/data_card.md").read_text()
    check_contract(repo)


def test_lineage_commands_follow_pairs(pref_repo):
    """audit finds nothing wrong; trace follows a pair from its raw line to the model."""
    repo = pref_repo
    sh(repo, "tunebuild", "audit", "--strict")
    rid = pl.read_parquet(repo / "data/split/train.parquet")["record_id"][0]
    out = sh(repo, "tunebuild", "trace", rid).stdout
    assert "data/raw_pref/" in out and "train" in out
    rejected = pl.read_parquet(repo / "data/curate/rejected.parquet")
    assert set(rejected["rule"]) >= {"same_answers", "prompt_mismatch", "duplicate"}


def test_preference_report_page_in_a_browser(pref_repo, tmp_path):
    """The preference task's page: no interval to show, base and tuned side by side, the pairs' samples."""
    found = look(pref_repo / "data/report/index.html", shot_path(tmp_path, "report-preference"))
    assert_clean(found, REPORT_SECTIONS)
    metrics = json.loads((pref_repo / "data/evaluate/metrics.json").read_text())
    assert float(found["headline_values"][0]) == metrics["tuned"]["preference_accuracy"]
    assert "Samples from the test split" in found["text"] and "reward_margin" in found["text"]

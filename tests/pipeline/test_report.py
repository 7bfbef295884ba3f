"""The report stage's pieces on the outputs of a real (tiny) pipeline run."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from stages.lib.params import load_params
from stages.report import MISSING, Params, data_card, gather, lineage, model_card, owner_fact, table

pytestmark = pytest.mark.pipeline


def test_table_and_missing_owner_facts():
    assert table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    p = load_params(Params, "params.yaml")
    assert owner_fact(dataclasses.replace(p.report, owner=None), "owner") == MISSING.format("owner")
    assert owner_fact(dataclasses.replace(p.report, owner="ml@example.com"), "owner") == "ml@example.com"


def test_cards_and_lineage_come_from_the_outputs(built_repo):
    p = load_params(Params, built_repo / "params.yaml")
    facts = gather(built_repo / "data")
    card = data_card(facts, p)
    for source, stats in facts["ingest"]["sources"].items():
        assert f"| {source} | {stats['files']} | {stats['units']} | {stats['quarantined']} |" in card
    for rule, n in facts["curate"]["rejected_by_rule"].items():
        if n:
            assert f"| {rule} | {n} |" in card
    assert MISSING.format("owner") in card  # the smoke config leaves report.owner null
    front = yaml.safe_load(model_card(facts, p).split("---")[1])
    assert front["base_model"] == p.model.name and front["license"] == p.model.license
    assert front["model-index"][0]["results"][0]["metrics"][0]["value"] == facts["metrics"]["tuned"]["accuracy"]
    lin = lineage(facts, p)
    assert {n: d["rows"] for n, d in lin["datasets"].items()} == {n: facts["split"][n]["rows"]
                                                                   for n in ("train", "validation", "test")}
    assert set(lin["model"]["files"]) == {f.name for f in (built_repo / "data/train/model").iterdir()}
    with pytest.raises(FileNotFoundError):
        gather(built_repo / "nowhere")

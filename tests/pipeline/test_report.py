"""The report stage's pieces on the outputs of a real (tiny) pipeline run."""
from __future__ import annotations

import dataclasses
import json

import polars as pl
import pytest
import yaml

from tunebuild.params import load_params
from stages.report import (
    MISSING,
    SPLITS,
    Params,
    data_card,
    gather,
    lineage,
    model_card,
    owner_fact,
    table,
    worth_it,
)

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
    globs = {s.name: s.files for s in p.data.sources}
    for source, stats in facts["ingest"]["sources"].items():
        assert f"| {source} | `{globs[source]}` | {stats['files']} | {stats['units']} | {stats['quarantined']} |" in card
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


DATASHEET_SECTIONS = ["Motivation", "Composition", "Collection process", "Preprocessing, cleaning and labeling",
                      "Uses", "Distribution", "Maintenance"]


def test_data_card_has_every_datasheet_section_and_marks_owner_facts(built_repo):
    p = load_params(Params, built_repo / "params.yaml")
    card = data_card(gather(built_repo / "data"), p)
    headings = [line[3:] for line in card.splitlines() if line.startswith("## ")]
    assert [h for h in headings if h in DATASHEET_SECTIONS] == DATASHEET_SECTIONS
    for key in ("motivation", "collection", "maintenance", "owner"):  # null in the smoke config
        assert MISSING.format(key) in card
    filled = dataclasses.replace(p, report=dataclasses.replace(p.report, motivation="Route tickets faster."))
    assert "Why it was made: Route tickets faster." in data_card(gather(built_repo / "data"), filled)
    splits = pl.concat([pl.read_parquet(built_repo / f"data/split/{n}.parquet").with_columns(split=pl.lit(n))
                        for n in SPLITS])
    for (source, license_id), rows in splits.group_by("source", "license"):
        counts = [rows.filter(pl.col("split") == n).height for n in SPLITS]
        assert f"| {source} | {license_id} | {' | '.join(map(str, counts))} |" in card


def test_croissant_is_valid_and_reads_the_split_files(built_repo):
    import mlcroissant as mlc

    path = built_repo / "data/report/croissant.json"
    meta = json.loads(path.read_text())
    ds = mlc.Dataset(jsonld=path)  # raises ValidationError on any error
    assert not ds.metadata.ctx.issues.errors
    assert all("recommended" in w for w in ds.metadata.ctx.issues.warnings)  # datePublished, version: no timestamps
    for n in SPLITS:
        frame = pl.read_parquet(built_repo / f"data/split/{n}.parquet")
        records = list(ds.records(n))  # mlcroissant opens the file and checks its sha256
        assert [r[f"{n}/record_id"].decode() for r in records] == frame["record_id"].to_list()
    rai = {k for k in meta if k.startswith("rai:")}
    assert {"rai:dataCollection", "rai:dataPreprocessingProtocol", "rai:personalSensitiveInformation",
            "rai:dataUseCases", "rai:dataLimitations", "rai:dataBiases"} <= rai
    curate = json.loads((built_repo / "data/curate/stats.json").read_text())
    assert f"phone: found in {curate['pii']['phone']['found']} records" in " ".join(meta["rai:personalSensitiveInformation"])


def gain_metrics(gain: float, lo: float, hi: float) -> dict:
    return {"baselines": {"tfidf_logreg": {}, "few_shot": {"shots": 3}},
            "gain_over_best_baseline": {"baseline": "tfidf_logreg", "metric": "accuracy", "accuracy": gain,
                                        "accuracy_ci_lo": lo, "accuracy_ci_hi": hi}}


@pytest.mark.parametrize("gain, lo, hi, sentence", [
    (0.024, 0.008, 0.041, ("Fine-tuning adds 2.4 points accuracy [0.8, 4.1] over TF-IDF + logistic regression, "
                           "the best cheap alternative.")),
    (-0.003, -0.019, 0.012, ("Fine-tuning does not clearly beat TF-IDF + logistic regression, the best cheap "
                             "alternative: -0.3 points accuracy [-1.9, +1.2], an interval that includes 0: this test "
                             "set cannot tell them apart.")),
    (0.009, 0.0, 0.02, ("Fine-tuning does not clearly beat TF-IDF + logistic regression, the best cheap alternative: "
                        "+0.9 points accuracy [+0.0, +2.0], an interval that includes 0: this test set cannot tell "
                        "them apart.")),
    (-0.05, -0.08, -0.02, ("Fine-tuning loses 5.0 points accuracy [2.0, 8.0] to TF-IDF + logistic regression, the "
                           "best cheap alternative, which is better on this test set.")),
])
def test_worth_it_sentence(gain, lo, hi, sentence):
    assert worth_it(gain_metrics(gain, lo, hi)) == sentence


def test_worth_it_names_the_shots_and_says_when_nothing_was_compared():
    m = gain_metrics(0.1, 0.05, 0.15)
    m["gain_over_best_baseline"] |= {"baseline": "few_shot", "metric": "exact_match", "exact_match": 0.1,
                                     "exact_match_ci_lo": 0.05, "exact_match_ci_hi": 0.15}
    assert worth_it(m).startswith("Fine-tuning adds 10.0 points exact match [5.0, 15.0] over the base model prompted "
                                  "few-shot (3 train examples in the prompt)")
    assert worth_it({}).startswith("No cheap alternative was scored")

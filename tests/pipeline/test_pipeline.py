"""The whole pipeline for real: dvc repro in a temporary git repo, on the smoke config."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from stages.report import worth_it
from stages.tokenize import SPLITS
from tests.conftest import make_repo, ran_stages, sh

pytestmark = pytest.mark.pipeline
STAGES = ["ingest", "curate", "split", "tokenize", "train", "evaluate", "report"]


def lock_hashes(repo: Path) -> dict[str, str]:
    """Every out/metric/plot path in dvc.lock -> its md5."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for st in lock["stages"].values() for o in st.get("outs", [])}


def set_param(repo: Path, conf_file: str, key: str, value) -> None:
    """Edit one key of a conf/ file, the way a user would, then compose."""
    path = repo / "conf" / conf_file
    cfg = yaml.safe_load(path.read_text())
    node = cfg
    *parents, last = key.split(".")
    for k in parents:
        node = node.setdefault(k, {})
    node[last] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    sh(repo, "tunebuild", "compose", "--config", "smoke")


def test_full_repro_is_clean_and_idempotent(built_repo):
    status = sh(built_repo, "dvc", "status")
    assert "up to date" in status.stdout, status.stdout
    again = sh(built_repo, "dvc", "repro")
    assert ran_stages(again.stdout) == []
    metrics = json.loads((built_repo / "data/evaluate/metrics.json").read_text())
    assert set(metrics) == {"base", "tuned", "gain", "baselines", "gain_over_best_baseline", "label_issues",
                            "macro_f1_definition"}
    card = (built_repo / "data/report/model_card.md").read_text()
    assert card.startswith("---\nbase_model: sentence-transformers/all-MiniLM-L6-v2")
    lineage = json.loads((built_repo / "data/report/lineage.json").read_text())
    train_ids = pl.read_parquet(built_repo / "data/split/train.parquet")["record_id"].to_list()
    assert lineage["datasets"]["train"]["record_ids"] == train_ids


def test_evaluate_scores_the_cheap_alternatives_with_intervals(built_repo):
    metrics = json.loads((built_repo / "data/evaluate/metrics.json").read_text())
    assert set(metrics["baselines"]) == {"tfidf_logreg", "embedding_logreg"}
    scored = [metrics["tuned"], metrics["base"], *metrics["baselines"].values(), metrics["gain_over_best_baseline"]]
    for s in scored:
        for m in ("accuracy", "macro_f1"):
            assert s[f"{m}_ci_lo"] <= s[m] <= s[f"{m}_ci_hi"], (s, m)
    gain = metrics["gain_over_best_baseline"]
    best = max(metrics["baselines"], key=lambda b: metrics["baselines"][b]["accuracy"])
    assert gain["baseline"] == best and gain["metric"] == "accuracy"
    assert gain["accuracy"] == pytest.approx(metrics["tuned"]["accuracy"] - metrics["baselines"][best]["accuracy"],
                                             abs=2e-6)  # each rounded to 6 places
    card = (built_repo / "data/report/model_card.md").read_text()
    assert f"**{worth_it(metrics)}**" in card and "| TF-IDF + logistic regression |" in card
    # likely label errors: a review table of train rows (never removed from train), counted in the metrics
    issues = pl.read_parquet(built_repo / "data/evaluate/label_issues.parquet")
    train = pl.read_parquet(built_repo / "data/split/train.parquet")
    assert issues.columns == ["record_id", "source", "label", "suggested", "confidence", "text"]
    assert set(issues["record_id"]) <= set(train["record_id"]) and (issues["label"] != issues["suggested"]).all()
    assert metrics["label_issues"] == {"checked": train.height, "flagged": issues.height}
    assert f"Likely label errors: {issues.height} of {train.height} train records" in \
        (built_repo / "data/report/data_card.md").read_text()


def test_every_raw_unit_is_accounted_for(built_repo):
    ingest = json.loads((built_repo / "data/ingest/stats.json").read_text())["total"]
    curate = json.loads((built_repo / "data/curate/stats.json").read_text())
    assert ingest["units"] == ingest["quarantined"] + curate["curated"] + curate["rejected"]
    splits = sum(pl.read_parquet(built_repo / f"data/split/{s}.parquet").height for s in ("train", "validation", "test"))
    assert splits == curate["curated"]


def test_metrics_and_plots_are_visible_to_dvc(built_repo):
    shown = sh(built_repo, "dvc", "metrics", "show", "--json").stdout
    assert "tuned" in shown and "rejected_by_rule" in shown
    assert sh(built_repo, "dvc", "metrics", "diff").returncode == 0
    plots = sh(built_repo, "dvc", "plots", "show", "--json").stdout
    assert "confusion.csv" in plots and "loss.tsv" in plots


REBUILD_MATRIX = [
    ("raw file added", None, ["ingest", "curate", "split", "tokenize", "train", "evaluate", "report"]),
    ("curate rule", ("smoke.yaml", "curate.min_chars", 25), ["curate", "split", "tokenize", "train", "evaluate", "report"]),
    ("split salt", ("smoke.yaml", "split.salt", "other"), ["split", "tokenize", "train", "evaluate", "report"]),
    ("tokenize max_length", ("smoke.yaml", "tokenize.max_length", 16), ["tokenize", "train", "evaluate", "report"]),
    ("train lr", ("smoke.yaml", "train.lr", 0.002), ["train", "evaluate", "report"]),
    ("evaluate param", ("smoke.yaml", "evaluate.seed", 7), ["evaluate", "report"]),
    ("report param", ("smoke.yaml", "report.owner", "ml-team@example.com"), ["report"]),
]


def test_rebuild_matrix(repo_copy):
    """Each change reruns exactly the stages that depend on it, in one repo, one after another."""
    repo = repo_copy
    for name, change, expected in REBUILD_MATRIX:
        if change is None:
            extra = repo / "data/raw/helpdesk/tickets-extra.jsonl"
            extra.write_text(json.dumps({"text": "my parcel never arrived, tracking shows nothing", "label": "order_status"}) + "\n")
        else:
            set_param(repo, *change)
        ran = ran_stages(sh(repo, "dvc", "repro").stdout)
        assert ran == expected, f"{name}: ran {ran}, expected {expected}"
    # train=full swaps the whole train group
    smoke = yaml.safe_load((repo / "conf/smoke.yaml").read_text())
    smoke["defaults"].insert(1, {"override train": "full"})
    (repo / "conf/smoke.yaml").write_text(yaml.safe_dump(smoke, sort_keys=False))
    sh(repo, "tunebuild", "compose", "--config", "smoke")
    assert ran_stages(sh(repo, "dvc", "repro").stdout) == ["train", "evaluate", "report"]
    assert (repo / "data/train/model/model.safetensors").is_file()
    # a change to one stage's code reruns that stage (and what its outputs feed)
    with open(repo / "stages/report.py", "a") as f:
        f.write("\n# a comment changes the code hash\n")
    assert ran_stages(sh(repo, "dvc", "repro").stdout) == ["report"]


def test_deterministic_across_clean_runs(built_repo, tmp_path):
    """A second repo built from scratch gets the same hash for every output in dvc.lock."""
    other = make_repo(tmp_path / "other")
    sh(other, "dvc", "repro")
    assert lock_hashes(other) == lock_hashes(built_repo)


def test_exp_run_composes_and_runs(repo_copy):
    repo = repo_copy
    out = sh(repo, "dvc", "exp", "run", "-S", "train=full", "-S", "train.lr=0.0003")
    assert ran_stages(out.stdout) == ["train", "evaluate", "report"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["mode"] == "full" and params["train"]["lr"] == 0.0003
    assert params["train"]["epochs"] == 1  # the smoke config still applies
    shown = sh(repo, "dvc", "exp", "show", "--json").stdout
    assert "0.0003" in shown


def test_contract_every_stage_has_module_params_and_outputs(built_repo):
    pipeline = yaml.safe_load((built_repo / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((built_repo / "params.yaml").read_text())
    assert list(pipeline) == STAGES
    for verb, stage in pipeline.items():
        assert stage["cmd"] == f"python -m stages.{verb}"
        assert (built_repo / "stages" / f"{verb}.py").is_file()
        assert verb in params, f"params.yaml has no '{verb}' section"
        assert f"stages/{verb}.py" in stage["deps"]
        declared = {next(iter(o)) if isinstance(o, dict) else o
                    for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])}
        assert all(path.startswith(f"data/{verb}/") for path in declared), declared
        # nothing undeclared is written under data/<verb>/
        for f in (built_repo / "data" / verb).rglob("*"):
            if f.is_file() and f.name != ".gitignore":
                rel = f.relative_to(built_repo).as_posix()
                assert any(rel == d or rel.startswith(d + "/") for d in declared), f"{rel} is not declared"


def test_user_errors_are_one_line(repo_copy):
    repo = repo_copy
    # unknown key
    text = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(text.replace("curate:\n", "curate:\n  max_char: 3\n"))
    proc = sh(repo, "python", "-m", "stages.curate", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "curate.max_char" in proc.stderr
    # wrong type
    (repo / "params.yaml").write_text(text.replace("  lr: 0.001", "  lr: fast"))
    proc = sh(repo, "python", "-m", "stages.train", check=False)
    assert proc.returncode == 2 and "train.lr" in proc.stderr and "Traceback" not in proc.stderr
    # a value outside the allowed set
    (repo / "params.yaml").write_text(text.replace("  split: test", "  split: train"))
    proc = sh(repo, "python", "-m", "stages.evaluate", check=False)
    assert proc.returncode == 2 and "evaluate.split" in proc.stderr and "Traceback" not in proc.stderr
    # stale params.yaml
    proc = sh(repo, "tunebuild", "compose", "--config", "smoke", "--check", check=False)
    assert proc.returncode == 1 and "stale" in proc.stderr and "Traceback" not in proc.stderr
    (repo / "params.yaml").write_text(text)
    assert sh(repo, "tunebuild", "compose", "--config", "smoke", "--check").returncode == 0
    # missing raw directory
    shutil.rmtree(repo / "data/raw")
    proc = sh(repo, "python", "-m", "stages.ingest", check=False)
    assert proc.returncode == 2 and "data/raw" in proc.stderr and "Traceback" not in proc.stderr


def test_tokenize_in_small_chunks_gives_the_same_outputs(repo_copy):
    """tokenize.chunk_rows bounds memory only: outputs and stats are the same in small chunks."""
    before = {name: pl.read_parquet(repo_copy / f"data/tokenize/{name}.parquet") for name in SPLITS}
    stats = json.loads((repo_copy / "data/tokenize/stats.json").read_text())
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["tokenize"]["chunk_rows"] = 3
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(repo_copy, sys.executable, "-m", "stages.tokenize")
    assert before["train"].height > 2 * 3  # several chunks
    for name, frame in before.items():
        assert pl.read_parquet(repo_copy / f"data/tokenize/{name}.parquet").equals(frame)
    assert json.loads((repo_copy / "data/tokenize/stats.json").read_text()) == stats

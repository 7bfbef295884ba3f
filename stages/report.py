"""Report: the pipeline's own outputs -> a data card, a model card and lineage.

In:  data/{ingest,curate,split,tokenize}/stats.json, data/split/*.parquet,
     data/train/model/, data/evaluate/{metrics,per_class}.json
Out: data/report/data_card.md   what data went in: sources, licenses, rejections, splits
     data/report/model_card.md  Hugging Face model card (YAML front matter + sections)
     data/report/lineage.json   model weights -> split file hashes -> record ids

Every number comes from a pipeline output; what only the owner knows comes
from the `report` params and is marked missing when null.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import polars as pl
import yaml

from stages.lib.errors import run
from stages.lib.files import read_json, sha256_file, write_json, write_text
from stages.lib.params import DataParams, ModelParams, TaskParams, TrainParams, load_params

OUT = Path("data/report")
SPLITS = ("train", "validation", "test")
MISSING = "_missing: set `report.{}` in conf/config.yaml_"


@dataclass
class ReportParams:
    title: str
    owner: Optional[str]
    intended_use: Optional[str]
    out_of_scope_use: Optional[str]


@dataclass
class Params:
    report: ReportParams
    model: ModelParams
    data: DataParams
    train: TrainParams
    task: TaskParams


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def owner_fact(p: ReportParams, key: str) -> str:
    value = getattr(p, key)
    return value if value else MISSING.format(key)


def gather(root: Path = Path("data")) -> dict:
    """Read every pipeline output the cards need into one plain dict."""
    splits = {name: pl.read_parquet(root / "split" / f"{name}.parquet") for name in SPLITS}
    weights = sorted(p for p in (root / "train" / "model").iterdir() if p.is_file())
    return {
        "ingest": read_json(root / "ingest" / "stats.json"),
        "curate": read_json(root / "curate" / "stats.json"),
        "split": read_json(root / "split" / "stats.json"),
        "tokenize": read_json(root / "tokenize" / "stats.json"),
        "metrics": read_json(root / "evaluate" / "metrics.json"),
        "per_class": read_json(root / "evaluate" / "per_class.json"),
        "splits": splits,
        "split_sha256": {n: sha256_file(root / "split" / f"{n}.parquet") for n in SPLITS},
        "model_files": {p.name: sha256_file(p) for p in weights},
        "licenses": (pl.concat([df.select("source", "license") for df in splits.values()])
                     .group_by("source", "license").len().sort("source").rows()),
    }


def lineage(facts: dict, p: Params) -> dict:
    return {
        "model": {"mode": p.train.mode, "base_model": p.model.name, "files": facts["model_files"]},
        "datasets": {n: {"file": f"data/split/{n}.parquet", "sha256": facts["split_sha256"][n],
                         "rows": facts["splits"][n].height,
                         "record_ids": facts["splits"][n]["record_id"].to_list()} for n in SPLITS},
    }


def data_card(facts: dict, p: Params) -> str:
    ing, cur = facts["ingest"], facts["curate"]
    src_rows = [[s, v["files"], v["units"], v["quarantined"], cur["by_source"].get(s, {}).get("rejected", 0),
                 cur["by_source"].get(s, {}).get("curated", 0)] for s, v in ing["sources"].items()]
    rule_rows = [[r, n] for r, n in cur["rejected_by_rule"].items() if n]
    pii_rows = [[t, v["found"], v["redacted"], v["rejected"]] for t, v in cur["pii"].items()]
    split_rows = [[n, facts["split"][n]["rows"], facts["tokenize"][n]["tokens"], facts["tokenize"][n]["truncated"],
                   f"`{facts['split_sha256'][n][:16]}`"] for n in SPLITS]
    label_rows = [[lab] + [facts["split"][n]["by_label"].get(lab, 0) for n in SPLITS] for lab in p.data.labels]
    return "\n\n".join([
        f"# Data card: {p.data.name}",
        f"Built by tunebuild for *{p.report.title}*. Every number below comes from the pipeline's outputs.",
        "## Motivation\n\n" + f"Intended use: {owner_fact(p.report, 'intended_use')}\n\nOwner: {owner_fact(p.report, 'owner')}",
        "## Composition\n\n" + table(["source", "license"], facts["licenses"]) + "\n\n"
        + table(["label"] + list(SPLITS), label_rows),
        "## Collection and accounting\n\nEvery raw unit is curated, rejected (with a rule) or quarantined (unreadable).\n\n"
        + table(["source", "files", "raw units", "quarantined", "rejected", "curated"], src_rows),
        "## Preprocessing and cleaning\n\n" + table(["rule", "rejected"], rule_rows)
        + "\n\nRejected rows with their reasons: `data/curate/rejected.parquet`; unreadable units: "
          "`data/ingest/quarantine.parquet`.\n\nPersonal data found (rows), by type:\n\n"
        + table(["type", "found", "redacted", "rejected"], pii_rows),
        "## Splits\n\nAssigned by a salted hash of `record_id` (or of the record's group / near-duplicate "
        "cluster, which stay in one split): adding data never moves a record. Validation/test records with a "
        f"near-duplicate in train (leakage check): {facts['split']['leakage']}.\n\n"
        + table(["split", "rows", "tokens", "truncated", "sha256"], split_rows),
        "## Uses\n\n" + f"Out of scope: {owner_fact(p.report, 'out_of_scope_use')}",
        f"## Distribution and maintenance\n\nVersioned with DVC; `dvc repro` rebuilds it from `{p.data.raw_dir}/` and `params.yaml`.",
    ]) + "\n"


def task_card(facts: dict, p: Params) -> dict:
    """What the model card says that depends on the task: pipeline tag, metrics, description, tables."""
    m, pc = facts["metrics"], facts["per_class"]
    if p.task.name == "sft":
        return {"tag": "text-generation",
                "metrics": [{"type": k, "value": m["tuned"][k]} for k in ("perplexity", "json_valid", "exact_match")
                            if k in m["tuned"]],
                "what": "to answer in chat (loss on the assistant turns only)",
                "base": "Base = the base model before tuning (the same greedy decoding).",
                "details": table(["JSON field", "base", "tuned"], [[f, pc["base"][f], v] for f, v in pc["tuned"].items()]),
                "limits": "answers were checked on the test split only (greedy samples: "
                          "`data/evaluate/predictions.parquet`); check the field accuracy above before relying on them."}
    return {"tag": "text-classification",
            "metrics": [{"type": "accuracy", "value": m["tuned"]["accuracy"]},
                        {"type": "f1", "name": "macro-F1", "value": m["tuned"]["macro_f1"]}],
            "what": f"to route support tickets to one of {len(p.data.labels)} labels: {', '.join(p.data.labels)}",
            "base": "Base = the same model with an untrained classification head.",
            "details": table(["label", "precision", "recall", "f1", "support"],
                             [[lab, v["precision"], v["recall"], v["f1"], v["support"]] for lab, v in pc["tuned"].items()]),
            "limits": "labels outside the taxonomy are never predicted. Check per-class recall above before relying "
                      "on rare labels."}


def model_card(facts: dict, p: Params) -> str:
    m, t = facts["metrics"], task_card(facts, p)
    front = {
        "base_model": p.model.name, "license": p.model.license, "library_name": "peft" if p.train.mode == "lora" else "transformers",
        "pipeline_tag": t["tag"], "datasets": [p.data.name],
        "model-index": [{"name": p.report.title, "results": [{
            "task": {"type": t["tag"]}, "dataset": {"name": p.data.name, "type": p.data.name, "split": "test"},
            "metrics": t["metrics"]}]}],
    }
    eval_rows = [[k, m["base"][k], m["tuned"][k], f"{m['gain'][k]:+.4f}"] for k in m["gain"]]
    hyper = {k: v for k, v in asdict(p.train).items() if v is not None}
    data_rows = [[n, facts["split"][n]["rows"], f"`{facts['split_sha256'][n]}`"] for n in SPLITS]
    return "\n\n".join([
        "---\n" + yaml.safe_dump(front, sort_keys=False).rstrip() + "\n---",
        f"# {p.report.title}",
        f"Fine-tuned from `{p.model.name}` ({p.train.mode}) {t['what']}. Owner: {owner_fact(p.report, 'owner')}.",
        "## Intended use\n\n" + owner_fact(p.report, "intended_use")
        + "\n\nOut of scope: " + owner_fact(p.report, "out_of_scope_use"),
        "## Training data\n\n" + table(["split", "rows", "sha256"], data_rows)
        + "\n\nRecord-level lineage: `data/report/lineage.json`; data card: `data/report/data_card.md`.",
        "## Training procedure\n\n```yaml\n" + yaml.safe_dump(hyper, sort_keys=True).rstrip() + "\n```",
        f"## Evaluation (test split)\n\n{t['base']}\n\n"
        + table(["metric", "base", "tuned", "gain"], eval_rows) + "\n\n" + t["details"],
        f"## Limitations\n\nTrained on the sources listed in the data card only; {t['limits']}",
    ]) + "\n"


def main() -> None:
    p = load_params(Params)
    facts = gather()
    write_text(OUT / "data_card.md", data_card(facts, p))
    write_text(OUT / "model_card.md", model_card(facts, p))
    write_json(OUT / "lineage.json", lineage(facts, p))
    print(f"report: cards and lineage written to {OUT}/")


if __name__ == "__main__":
    run(main, OUT)

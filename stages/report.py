"""Report: the pipeline's own outputs -> a data card, a model card, lineage and Croissant metadata.

In:  data/{ingest,curate,split,tokenize}/stats.json, data/split/*.parquet,
     data/train/model/, data/evaluate/{metrics,per_class}.json
Out: data/report/data_card.md   Datasheets for Datasets sections: motivation, composition, collection,
                                preprocessing, uses, distribution, maintenance
     data/report/model_card.md  Hugging Face model card (YAML front matter + sections)
     data/report/lineage.json   model weights -> split file hashes -> record ids
     data/report/croissant.json MLCommons Croissant 1.0 JSON-LD of the curated splits, with the
                                responsible-AI (RAI) fields the pipeline knows
     data/report/index.html     one offline page of all of it, with charts (tunebuild/report_page.py; it
                                also reads leakage, curves, confusion, label issues, samples, rejections)

Every number comes from a pipeline output; what only the owner knows comes
from the `report` params and is marked missing when null.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import yaml

from tunebuild import report_page, tasks
from tunebuild.errors import run
from tunebuild.files import read_json, sha256_file, write_json, write_text
from tunebuild.markdown import code, table
from tunebuild.params import (
    DataParams,
    ModelParams,
    ReportParams,
    TaskParams,
    TrainParams,
    load_params,
)

OUT = Path("data/report")
SPLITS = ("train", "validation", "test")
MISSING = "_missing: set `report.{}` in conf/config.yaml_"
CROISSANT_CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "citeAs": "cr:citeAs", "column": "cr:column",
    "equivalentProperty": "cr:equivalentProperty", "samplingRate": "cr:samplingRate",
    "conformsTo": "dct:conformsTo", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract", "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
    "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated",
    "replace": "cr:replace", "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField",
    "transform": "cr:transform",
}
CROISSANT_FIELDS = {"record_id": "sc:Text", "text": "sc:Text", "label": "sc:Text", "source": "sc:Text",
                    "license": "sc:Text", "file": "sc:Text", "line": "sc:Integer"}


@dataclass
class Params:
    report: ReportParams
    model: ModelParams
    data: DataParams
    train: TrainParams
    task: TaskParams


def owner_fact(p: ReportParams, key: str) -> str:
    value = getattr(p, key)
    return value if value else MISSING.format(key)


def gather(root: Path = Path("data")) -> dict:
    """Read every pipeline output the cards need into one plain dict."""
    splits = {name: pl.read_parquet(root / "split" / f"{name}.parquet") for name in SPLITS}
    weights = sorted(p for p in (root / "train" / "model").iterdir() if p.is_file())
    tagged = pl.concat([df.select("source", "license", split=pl.lit(n)) for n, df in splits.items()])
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
        "licenses": (tagged.group_by("source", "license").agg(*((pl.col("split") == n).sum().alias(n) for n in SPLITS))
                     .sort("source", "license").rows()),
    }


def lineage(facts: dict, p: Params) -> dict:
    return {
        "model": {"mode": p.train.mode, "base_model": p.model.name, "files": facts["model_files"],
                  "trained_on": "train", "monitored_on": "validation"},
        "datasets": {n: {"file": f"data/split/{n}.parquet", "sha256": facts["split_sha256"][n],
                         "rows": facts["splits"][n].height,
                         "record_ids": facts["splits"][n]["record_id"].to_list()} for n in SPLITS},
    }


def data_licenses(facts: dict) -> list[str]:
    return sorted({license_id for _, license_id, *_ in facts["licenses"]})


def label_check(facts: dict) -> str:
    issues = facts["metrics"].get("label_issues")
    if issues is None:
        return ""
    return (f"Likely label errors: {issues['flagged']} of {issues['checked']} train records, where out-of-fold "
            "predictions of the cheap classifiers confidently disagree with the given label (confident learning), "
            "are listed for review with a suggested label in `data/evaluate/label_issues.parquet`; none was dropped.")


def data_card(facts: dict, p: Params) -> str:
    """Datasheets for Datasets (Gebru et al.) sections, filled from the outputs and the report params."""
    ing, cur = facts["ingest"], facts["curate"]
    sources = {s.name: s for s in p.data.sources}
    src_rows = [[s, code(sources[s].files) if s in sources else "?", v["files"], v["units"], v["quarantined"],
                 cur["by_source"].get(s, {}).get("rejected", 0), cur["by_source"].get(s, {}).get("curated", 0)]
                for s, v in ing["sources"].items()]
    rule_rows = [[r, n] for r, n in cur["rejected_by_rule"].items() if n]
    pii_rows = [[t, v["found"], v["redacted"], v["rejected"]] for t, v in cur["pii"].items()]
    split_rows = [[n, facts["split"][n]["rows"], facts["tokenize"][n]["tokens"], facts["tokenize"][n]["truncated"],
                   code(facts['split_sha256'][n][:16])] for n in SPLITS]
    label_rows = [[lab] + [facts["split"][n]["by_label"].get(lab, 0) for n in SPLITS] for lab in p.data.labels]
    label_fields = ", ".join(f"`{s.label_field}` ({s.name})" for s in p.data.sources)
    forget = p.data.forget
    dups = {r: cur["rejected_by_rule"].get(r, 0) for r in ("duplicate", "near_duplicate", "label_conflict")}
    describe = tasks.load(p.task.name).describe(p)
    return "\n\n".join([
        f"# Data card: {p.data.name}",
        (f"Built by tunebuild for *{p.report.title}*, following the sections of Datasheets for Datasets. Every "
         "number below comes from the pipeline's outputs; what only the owner knows comes from `report` in conf/."),
        "## Motivation\n\n" + f"Why it was made: {owner_fact(p.report, 'motivation')}\n\n"
        f"Task: {describe[0]}\n\n"
        f"Owner: {owner_fact(p.report, 'owner')}",
        f"## Composition\n\nEach instance is {describe[1]}, with its source, file, line and license.\n\n"
        + table(["source", "license", *SPLITS], facts["licenses"])
        + ("\n\n" + table(["label", *SPLITS], label_rows) if p.data.labels else ""),
        "## Collection process\n\n" + f"How the data was gathered: {owner_fact(p.report, 'collection')}\n\n"
        "Every raw unit is curated, rejected (with a rule) or quarantined (unreadable).\n\n"
        + table(["source", "files", "file count", "raw units", "quarantined", "rejected", "curated"], src_rows),
        "## Preprocessing, cleaning and labeling\n\n" + table(["rule", "rejected"], rule_rows)
        + f"\n\nDuplicates removed: {dups['duplicate']} exact, {dups['near_duplicate']} near "
          f"(MinHash); {dups['label_conflict']} records with conflicting labels.\n\n"
          "Rejected rows with their reasons: `data/curate/rejected.parquet`; unreadable units: "
          "`data/ingest/quarantine.parquet`.\n\nPersonal data found (rows), by type:\n\n"
        + table(["type", "found", "redacted", "rejected"], pii_rows)
        + f"\n\nLabels are taken as given from each source's label field: {label_fields}. " + label_check(facts),
        "## Splits\n\nAssigned by a salted hash of `record_id` (or of the record's group / near-duplicate "
        "cluster, which stay in one split): adding data never moves a record. Validation/test records with a "
        f"near-duplicate in train (leakage check): {facts['split']['leakage']}.\n\n"
        + table(["split", "rows", "tokens", "truncated", "sha256"], split_rows),
        "## Uses\n\n" + f"Intended use: {owner_fact(p.report, 'intended_use')}\n\n"
        f"Out of scope: {owner_fact(p.report, 'out_of_scope_use')}",
        "## Distribution\n\n" + f"Licenses of the records included: {', '.join(data_licenses(facts))}. "
        "Files: `data/split/{train,validation,test}.parquet` (hashes above), versioned with DVC; machine-readable "
        "metadata (MLCommons Croissant): `data/report/croissant.json`.",
        "## Maintenance\n\n" + f"Maintainer: {owner_fact(p.report, 'owner')}. "
        f"Plan: {owner_fact(p.report, 'maintenance')}\n\n"
        f"`dvc repro` rebuilds it from `{p.data.raw_dir}/` and `params.yaml`. Forget list (`data.forget`): "
        f"{len(forget.record_ids)} record ids, {len(forget.patterns)} patterns; "
        f"{cur['rejected_by_rule'].get('forget', 0)} records removed. Add to it with `tunebuild forget`; "
        "`tunebuild audit` checks that forgotten records are absent downstream.",
    ]) + "\n"


ALTERNATIVES = {"tfidf_logreg": "TF-IDF + logistic regression",
                "embedding_logreg": "logistic regression on the frozen base model's embeddings",
                "zero_shot": "the base model prompted zero-shot", "few_shot": "the base model prompted few-shot",
                "nearest_few_shot": "the base model prompted few-shot with the nearest train examples"}
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "exact_match": "exact match",
                "json_valid": "JSON validity"}


def alternative(name: str, metrics: dict) -> str:
    shots = metrics["baselines"][name].get("shots")
    return ALTERNATIVES[name] + (f" ({shots} train examples in the prompt)" if shots is not None else "")


def worth_it(metrics: dict) -> str:
    """One sentence on the tuned model against the best cheap alternative: the gain in points of the primary
    metric with its paired bootstrap 95% interval, and whether that interval clears 0."""
    g = metrics.get("gain_over_best_baseline")
    if g is None:
        return ("No cheap alternative was scored: they are compared on classification labels or on JSON answers "
                "(exact match), and this evaluation has neither.")
    m = g["metric"]
    gain, lo, hi = (100 * g[k] for k in (m, f"{m}_ci_lo", f"{m}_ci_hi"))
    best, what = alternative(g["baseline"], metrics), f"points {METRIC_NAMES[m]}"
    if g[f"{m}_ci_lo"] > 0:
        return f"Fine-tuning adds {gain:.1f} {what} [{lo:.1f}, {hi:.1f}] over {best}, the best cheap alternative."
    if g[f"{m}_ci_hi"] < 0:
        return (f"Fine-tuning loses {-gain:.1f} {what} [{-hi:.1f}, {-lo:.1f}] to {best}, the best cheap "
                "alternative, which is better on this test set.")
    return (f"Fine-tuning does not clearly beat {best}, the best cheap alternative: {gain:+.1f} {what} "
            f"[{lo:+.1f}, {hi:+.1f}], an interval that includes 0: this test set cannot tell them apart.")


def with_interval(scores: dict, metric: str) -> str:
    if metric not in scores:
        return ""
    return f"{scores[metric]:.4f} [{scores[f'{metric}_ci_lo']:.4f}, {scores[f'{metric}_ci_hi']:.4f}]"


def best_system(metrics: dict) -> str:
    """A sentence when a cheap alternative scores higher than the tuned model (metrics.json: best_system)."""
    best = metrics.get("best_system")
    if best in (None, "tuned"):
        return ""
    got, tuned = metrics["baselines"][best]["accuracy"], metrics["tuned"]["accuracy"]
    return (f"\n\n**The best system on this test set is {alternative(best, metrics)} (accuracy {got:.4f}), not the "
            f"fine-tuned model ({tuned:.4f})**: use it instead, or improve the data or the training "
            "(`best_system` in `data/evaluate/metrics.json`, shown by `dvc exp show`; `tunebuild promote` can pick "
            "by `tuned_is_best`).")


def comparison(metrics: dict) -> str:
    """The worth-it sentence (and which system is best when it is not the tuned model), then tuned, base and
    every cheap alternative on the headline metrics, each with its 95% interval."""
    if "baselines" not in metrics:
        return f"**{worth_it(metrics)}**"
    headline = [k for k in METRIC_NAMES if f"{k}_ci_lo" in metrics["tuned"]]
    rows = [["tuned", *(with_interval(metrics["tuned"], k) for k in headline)]]
    rows += [[alternative(n, metrics), *(with_interval(v, k) for k in headline)] for n, v in metrics["baselines"].items()]
    if "zero_shot" not in metrics["baselines"]:
        rows.append(["base (untrained head)", *(with_interval(metrics["base"], k) for k in headline)])
    return (f"**{worth_it(metrics)}**{best_system(metrics)}\n\n" + table(["model", *(f"{METRIC_NAMES[k]} [95% CI]" for k in headline)], rows)
            + "\n\nIntervals: percentile bootstrap over the evaluated rows; the gain over the cheap alternative is "
            "paired (the same resamples for both). The cheap alternatives are fit on (or prompted with) the train "
            "split only.")


def model_card(facts: dict, p: Params) -> str:
    m, t = facts["metrics"], tasks.load(p.task.name).card(facts, p)
    front = {
        "base_model": p.model.name, "license": p.model.license, "library_name": "peft" if p.train.mode == "lora" else "transformers",
        "pipeline_tag": t["tag"], "datasets": [p.data.name], "metrics": [x["type"] for x in t["metrics"]],
        "tags": ["tunebuild", p.train.mode],
        "model-index": [{"name": p.report.title, "results": [{
            "task": {"type": t["tag"]}, "dataset": {"name": p.data.name, "type": p.data.name, "split": "test"},
            "metrics": t["metrics"]}]}],
    }
    eval_rows = [[k, m["base"][k], m["tuned"][k], f"{m['gain'][k]:+.4f}"] for k in m["gain"]]
    hyper = {k: v for k, v in asdict(p.train).items() if v is not None}
    data_rows = [[n, facts["split"][n]["rows"], code(facts['split_sha256'][n])] for n in SPLITS]
    return "\n\n".join([
        "---\n" + yaml.safe_dump(front, sort_keys=False).rstrip() + "\n---",
        f"# {p.report.title}",
        f"Fine-tuned from `{p.model.name}` ({p.train.mode}) {t['what']}. Owner: {owner_fact(p.report, 'owner')}.",
        "## Intended use\n\n" + owner_fact(p.report, "intended_use")
        + "\n\nOut of scope: " + owner_fact(p.report, "out_of_scope_use"),
        "## Training data\n\n" + table(["split", "rows", "sha256"], data_rows)
        + "\n\nRecord-level lineage: `data/report/lineage.json`; data card: `data/report/data_card.md`.",
        "## Training procedure\n\n```yaml\n" + yaml.safe_dump(hyper, sort_keys=True).rstrip() + "\n```",
        "## Evaluation (test split)\n\n" + "\n\n".join(x for x in (  # a task's own lead sentence comes first
            t.get("lead"), comparison(m) if "gain_over_best_baseline" in m or not t.get("lead") else "") if x)
        + f"\n\n{t['base']}\n\n" + table(["metric", "base", "tuned", "gain"], eval_rows) + "\n\n" + t["details"],
        f"## Limitations\n\nTrained on the sources listed in the data card only; {t['limits']}",
    ]) + "\n"


def croissant(facts: dict, p: Params) -> dict:
    """MLCommons Croissant 1.0 JSON-LD: one FileObject and one RecordSet per split, RAI fields filled."""
    cur, ing = facts["curate"], facts["ingest"]
    files = [{"@type": "cr:FileObject", "@id": f"{n}.parquet", "name": f"{n}.parquet",
              "contentUrl": f"../split/{n}.parquet", "encodingFormat": "application/x-parquet",
              "sha256": facts["split_sha256"][n]} for n in SPLITS]
    record_sets = [{"@type": "cr:RecordSet", "@id": n, "name": n, "key": {"@id": f"{n}/record_id"},
                    "description": f"The {n} split: {facts['splits'][n].height} records.",
                    "field": [{"@type": "cr:Field", "@id": f"{n}/{col}", "name": col, "dataType": kind,
                               "source": {"fileObject": {"@id": f"{n}.parquet"}, "extract": {"column": col}}}
                              for col, kind in CROISSANT_FIELDS.items()]} for n in SPLITS]
    known = lambda key: getattr(p.report, key) or MISSING.format(key).strip("_")
    return {
        "@context": CROISSANT_CONTEXT, "@type": "sc:Dataset", "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": p.data.name,
        "description": f"Curated training data for {p.report.title}: {cur['curated']} of {ing['total']['units']} raw "
                       f"units, labels: {', '.join(p.data.labels)}. Built by tunebuild (DVC).",
        "license": [f"https://spdx.org/licenses/{x}.html" if not x.startswith("LicenseRef-") else x
                    for x in data_licenses(facts)],
        "creator": {"@type": "sc:Organization", "name": known("owner")},
        "citeAs": f"{p.data.name}, curated by tunebuild for {p.report.title}",
        "distribution": files, "recordSet": record_sets,
        "rai:dataCollection": f"{known('collection')} Sources: " + "; ".join(
            f"{s.name} ({s.files}, {s.license})" for s in p.data.sources) + ".",
        "rai:dataCollectionRawData": "; ".join(f"{s}: {v['units']} raw units in {v['files']} files"
                                               for s, v in ing["sources"].items()),
        "rai:dataCollectionMissingData": f"{ing['total']['quarantined']} raw units could not be read and are "
                                         "quarantined with file, line and error (data/ingest/quarantine.parquet).",
        "rai:dataPreprocessingProtocol": [f"{r}: {n} records rejected" for r, n in cur["rejected_by_rule"].items() if n]
                                         or ["no record rejected"],
        "rai:dataManipulationProtocol": "PII replaced by typed placeholders such as [EMAIL] for the types set to "
                                        "redact: " + ", ".join(f"{t} {v['redacted']}" for t, v in cur["pii"].items()),
        "rai:dataAnnotationProtocol": [f"labels as given in field {s.label_field} of source {s.name}"
                                       for s in p.data.sources],
        "rai:personalSensitiveInformation": [f"{t}: found in {v['found']} records, {v['redacted']} redacted, "
                                             f"{v['rejected']} rejected" for t, v in cur["pii"].items()],
        "rai:dataBiases": [f"{n} label counts: " + ", ".join(f"{k} {v}" for k, v in facts["split"][n]["by_label"].items())
                           for n in SPLITS],
        "rai:dataUseCases": [known("intended_use"), f"out of scope: {known('out_of_scope_use')}"],
        "rai:dataLimitations": [f"only the sources listed, under licenses {', '.join(data_licenses(facts))}",
                                f"{facts['split']['leakage']} validation/test records with a near-duplicate in train"],
        "rai:dataReleaseMaintenancePlan": f"{known('maintenance')} Rebuilt with `dvc repro`; records are removed on "
                                          "request with `tunebuild forget` (data.forget).",
    }


def page_context(facts: dict, p: Params) -> dict:
    """What the page needs from the params and the card text (tunebuild/report_page.py renders it)."""
    m = facts["metrics"]
    return {"title": p.report.title, "task": p.task.name, "base_model": p.model.name, "mode": p.train.mode,
            "data": p.data.name, "labels": list(p.data.labels), "licenses": {s.name: s.license for s in p.data.sources},
            "worth_it": worth_it(m), "alternatives": {n: alternative(n, m) for n in m.get("baselines", {})},
            "missing": [k for k in ("owner", "motivation", "collection", "intended_use", "out_of_scope_use",
                                    "maintenance") if not getattr(p.report, k)]}


def main() -> None:
    p = load_params(Params)
    facts = gather()
    page = report_page.render(facts, report_page.load(facts["splits"]), page_context(facts, p))
    write_text(OUT / "index.html", page)
    write_text(OUT / "data_card.md", data_card(facts, p))
    write_text(OUT / "model_card.md", model_card(facts, p))
    write_json(OUT / "lineage.json", lineage(facts, p))
    write_json(OUT / "croissant.json", croissant(facts, p))
    print(f"report: cards, lineage and Croissant metadata written to {OUT}/")


if __name__ == "__main__":
    run(main, OUT)

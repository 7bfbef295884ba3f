"""`tunebuild audit --format html`: the audit (tunebuild/audit.py's plain dict) as one offline page.

Pure: the audit dict in, the HTML string out. Findings are those of `--strict` (severity error);
facts a reviewer should still look at are warnings or info. Every number is the audit's own.
"""

from __future__ import annotations

import json

import yaml

from tunebuild.audit import merged_params
from tunebuild.charts import COLORS, SPLIT_COLORS, flow, hbars
from tunebuild.htmlpage import Html, code, figure, findings, num, page, para, section, table, tiles

SPLITS = ("train", "validation", "test")


def checks(r: dict) -> list[dict]:
    """--strict findings as errors, plus what needs a person (warning) and facts (info)."""
    found = [
        {"severity": "error", "kind": f["kind"], "message": f["message"]} for f in r["findings"]
    ]
    for kind, v in r["pii"].items():
        if v["action"] == "keep" and v["in_splits"]:
            found.append(
                {
                    "severity": "warning",
                    "kind": "pii",
                    "message": f"{num(v['in_splits'])} split records contain {kind}, kept by "
                    f"curate.pii.{kind}=keep",
                }
            )
    if r["quarantine"]["total"]:
        found.append(
            {
                "severity": "warning",
                "kind": "quarantine",
                "message": f"{num(r['quarantine']['total'])} raw units could not be read",
            }
        )
    if not r["status"]["checked"]:
        found.append(
            {
                "severity": "info",
                "kind": "stale",
                "message": "`dvc status` not checked: it compares the workspace only",
            }
        )
    if r["forget"]["upstream"]:
        found.append(
            {
                "severity": "info",
                "kind": "forget",
                "message": f"{num(len(r['forget']['upstream']))} raw copies of forgotten records "
                "remain in data/raw/ (curate removes them downstream only)",
            }
        )
    return found


def head(r: dict) -> str:
    w = r["revision"]
    dirty = ", with uncommitted changes" if w["uncommitted_changes"] else ""
    return f"revision {w['rev']} (commit {w['commit'][:12]}{dirty})"


def summary(r: dict) -> tuple:
    rec = r["records"]
    return section(
        "summary",
        "Summary",
        para(f"Audit of {head(r)}: {r['model']['mode']} fine-tune of {r['model']['base_model']}."),
        tiles(
            [
                ("ingested records", rec["ingested"]),
                ("quarantined units", r["quarantine"]["total"]),
                ("rejected records", r["rejected"]["total"]),
                ("curated", rec["curated"]),
                ("in the splits", rec["in_splits"]),
                ("findings (--strict)", len(r["findings"])),
            ]
        ),
        findings(checks(r)),
        para(
            "Error: `tunebuild audit --strict` exits 1 on it; warning: needs a reviewer; "
            "info: a fact."
        ),
    )


def records_flow(r: dict) -> tuple:
    rec, by_rule = r["records"], [(x["rule"], x["rows"]) for x in r["rejected"]["by_rule"]]
    splits = [(n, r["splits"][n]["rows"]) for n in SPLITS]
    links = [
        ("ingested", "rejected", r["rejected"]["total"]),
        ("ingested", "curated", rec["curated"]),
    ]
    links += [("curated", n, v) for n, v in splits]
    colors = {"rejected": COLORS[5], "curated": COLORS[2]} | SPLIT_COLORS
    chart = flow(
        "Ingested records → rejected / curated → splits",
        [
            [("ingested", rec["ingested"])],
            [("rejected", r["rejected"]["total"]), ("curated", rec["curated"])],
            splits,
        ],
        links,
        colors,
    )
    rules = sorted(by_rule, key=lambda x: (-x[1], x[0]))
    quarantine = [
        [x["source"], x["error"], x["rows"]] for x in r["quarantine"]["by_source_and_error"]
    ]
    by_source = [[x["rule"], x["source"], x["rows"]] for x in r["rejected"]["by_rule_and_source"]]
    return section(
        "flow",
        "Quarantine and rejections",
        figure("Where the ingested records went", chart),
        Html("<div class='grid'>"),
        figure("Rejected records by rule", hbars("Rejected records by rule", rules, fill=COLORS[5]))
        if rules
        else Html(""),
        table(["rule", "source", "rejected"], by_source, "Rejected by rule and source"),
        table(
            ["source", "error", "quarantined"], quarantine, "Quarantined units by source and error"
        ),
        Html("</div>"),
    )


def sources(r: dict) -> tuple:
    rows = [
        [s["source"], s["license"], "yes" if s["allowed"] else "NO", *(s[n] for n in SPLITS)]
        for s in r["sources"]
    ]
    pii = [
        [k, v["action"], v["found"], v["redacted"], v["rejected"], v["in_splits"]]
        for k, v in r["pii"].items()
    ]
    return section(
        "sources",
        "Sources, licenses and PII",
        para("Allowed licenses (curate.license_allowlist): " + ", ".join(r["license_allowlist"])),
        table(["source", "license", "allowed", *SPLITS], rows),
        table(
            ["PII type", "action", "found", "redacted", "rejected", "still in splits"],
            pii,
            "PII (records)",
        ),
    )


def splits(r: dict) -> tuple:
    leak = r["leakage"]
    rows = [[n, v["rows"], code(v["sha256"]), code(v["md5"])] for n, v in r["splits"].items()]
    pairs = [
        [x["split"], code(x["record_id"]), code(x["train_record_id"]), x["similarity"]]
        for x in leak["pairs"][:20]
    ]
    overlap = [
        [col, len(items), ", ".join(str(i[col]) for i in items[:5])]
        for col, items in leak["overlaps"].items()
    ]
    return section(
        "splits",
        "Splits, duplicates and leakage",
        table(
            ["rule", "rejected"], [[k, v] for k, v in r["duplicates"].items()], "Duplicates removed"
        ),
        table(["split", "rows", "sha256", "dvc.lock md5"], rows),
        para(
            "Validation/test records with a near-duplicate in train "
            f"(similarity >= {leak['threshold']}): "
            f"{num(leak['near_duplicates'])}."
        ),
        table(["split", "record", "train record", "similarity"], pairs, "Leakage pairs (first 20)"),
        table(["values of", "in more than one split", "first"], overlap),
    )


def built_by(r: dict) -> tuple:
    rows = [
        [
            name,
            code(b["recorded_in"] or "?"),
            Html("<br>".join(f"{code(k)} {code(v)}" for k, v in b["code"].items())),
            Html("<br>".join(f"{code(k)} {code(v)}" for k, v in b["outs"].items())),
        ]
        for name, b in r["built_by"].items()
    ]
    params = yaml.safe_dump(merged_params(r["built_by"]), sort_keys=False)
    return section(
        "built",
        "Built by",
        table(["stage", "recorded in commit", "code (md5)", "outputs (md5)"], rows),
        Html(
            "<details><summary>Params the stages were built with (dvc.lock; each key once)"
            "</summary>"
            f"<pre>{code(params)}</pre></details>"
        ),
    )


def model(r: dict) -> tuple:
    files = [[code(k), code(v)] for k, v in sorted((r["model"]["files"] or {}).items())]
    m = r["metrics"]
    scores = [
        [k, m["base"].get(k), m["tuned"][k]]
        for k in sorted(m.get("tuned", {}))
        if not k.endswith(("_lo", "_hi"))
    ]
    return section(
        "model",
        "Model and metrics",
        para(f"{r['model']['mode']} fine-tune of {r['model']['base_model']}."),
        table(["model file", "sha256"], files),
        table(["metric", "base", "tuned"], scores, "data/evaluate/metrics.json (test split)"),
        Html(
            "<details><summary>metrics.json</summary>"
            f"<pre>{code(json.dumps(m, indent=2, sort_keys=True))}</pre></details>"
        ),
    )


def forget(r: dict) -> tuple:
    fg = r["forget"]
    down = [[code(rid), ", ".join(where)] for rid, where in fg["downstream"].items()]
    trained = (
        "the model was trained on the current tokenized data, which holds none of them"
        if fg["model"]["without_forgotten"]
        else "the model is NOT shown to be retrained without them; run `dvc repro`"
    )
    return section(
        "forget",
        "Forget list",
        tiles(
            [
                ("record ids listed", len(fg["record_ids"])),
                ("patterns", len(fg["patterns"])),
                ("records forgotten", len(fg["forgotten"])),
                ("still downstream", len(fg["downstream"])),
                ("raw copies left", len(fg["upstream"])),
            ]
        ),
        para(f"Model: {trained}."),
        table(["record", "still in"], down, "Forgotten records still downstream"),
        table(
            ["raw copy (file:line)"], [[x] for x in fg["upstream"][:50]], "Raw copies (first 50)"
        ),
    )


def status(r: dict) -> tuple:
    st = r["status"]
    state = (
        "not checked (`dvc status` compares the workspace only)"
        if not st["checked"]
        else "clean"
        if not st["stale"]
        else "stale: " + ", ".join(sorted(st["stale"]))
    )
    return section(
        "status",
        "Status",
        para(f"`dvc status`: {state}."),
        table(["dvc.lock inconsistency"], [[x] for x in st["lock"]]),
    )


def render(r: dict) -> str:
    sections = [
        summary(r),
        records_flow(r),
        sources(r),
        splits(r),
        model(r),
        built_by(r),
        forget(r),
        status(r),
    ]
    return page(
        f"Audit: {r['revision']['rev']}",
        f"tunebuild audit of {head(r)}: every number comes from the "
        "pipeline's outputs at that revision.",
        sections,
    )

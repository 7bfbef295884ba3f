"""The report stage's page, data/report/index.html: the pipeline's outputs as one offline page.

`load(splits, root)` reads the outputs the page needs beyond the cards' facts (leakage, training
curves, confusion, label issues, samples, rejected examples, length histograms); `render(facts,
context)` is pure: plain dicts and small frames in, the HTML string out. `context` holds what the
report stage knows from params (title, task, model, sources and their licenses, the worth-it
sentence, display names of the cheap alternatives, owner facts left unset).

Every number comes from an output: counts from the stats files, metrics and intervals from
metrics.json, curves from dvclive's files; histograms count the split and tokenize rows
themselves (tokens per row as tokenize counts them: per conversation for preference pairs).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl

from tunebuild.charts import (
    COLORS,
    SPLIT_COLORS,
    columns,
    flow,
    grouped_hbars,
    hbars,
    intervals,
    lines,
)
from tunebuild.files import read_json
from tunebuild.htmlpage import (
    Html,
    code,
    esc,
    figure,
    findings,
    fixed,
    interval,
    num,
    page,
    para,
    section,
    table,
    tiles,
)

SPLITS = ("train", "validation", "test")
EXAMPLES = 20  # rows of each example table
TOP_CATEGORIES = 12  # bars of a category chart before the rest is summed into "other"
TOP_RULES = 8  # rule nodes of the flow chart before the rest is summed
EDGES = [8 << i for i in range(16)]  # length buckets: <8, 8-15, 16-31, ... (powers of two)
BUCKETS = (
    [f"<{EDGES[0]}"] + [f"{a}-{b - 1}" for a, b in itertools.pairwise(EDGES)] + [f">={EDGES[-1]}"]
)
HEADLINE = (  # the headline metric: the first the tuned model has (or the worth-it sentence's)
    "accuracy",
    "preference_accuracy",
    "exact_match",
    "macro_f1",
    "json_valid",
    "reward_accuracy",
    "reward_margin",
    "perplexity",
    "loss",
)
DUPLICATE_RULES = ("duplicate", "near_duplicate", "label_conflict")
TOKEN_COLUMNS = ("input_ids", "chosen_ids", "rejected_ids")


# ---------------------------------------------------------------- reading the outputs


def bucket_counts(lengths: pl.Series) -> list[int]:
    """Rows per length bucket (BUCKETS)."""
    index = pl.Series(EDGES).search_sorted(lengths, side="right")
    tally = index.value_counts(name="n")
    found = dict(zip(tally[tally.columns[0]].to_list(), tally["n"].to_list()))
    return [int(found.get(i, 0)) for i in range(len(BUCKETS))]


def token_lengths(path: Path) -> pl.LazyFrame:
    """Tokens per row as tokenize counts them: input_ids, or each of a pair's two conversations."""
    names = pl.read_parquet_schema(path)
    cols = [c for c in TOKEN_COLUMNS if c in names]
    scan = pl.scan_parquet(path)
    return pl.concat([scan.select(n=pl.col(c).list.len()) for c in cols])


def clusters(df: pl.DataFrame) -> list[int]:
    """Near-duplicate clusters kept together in one split (2+ records): how many, records in them. A
    record's `cluster` is the id of its cluster's first record (split keeps a cluster in one
    split)."""
    others = df.filter(pl.col("cluster") != pl.col("record_id"))["cluster"]
    kept = others.n_unique() if len(others) else 0
    return [kept, len(others) + kept]


def curves(folder: Path) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """dvclive's plots: metric -> series (train, validation) -> [(step, value)]."""
    found: dict[str, dict[str, list]] = {}
    for tsv in sorted(folder.glob("*/*.tsv")):
        df = pl.read_csv(tsv, separator="\t")
        found.setdefault(tsv.stem, {})[tsv.parent.name] = list(
            zip(df["step"].to_list(), df[tsv.stem].to_list())
        )
    return dict(sorted(found.items()))


def rejected_examples(path: Path) -> pl.DataFrame:
    """The first rejected rows of each rule (by file, line): rule, reason, text, source, id."""
    keys = pl.read_parquet(path, columns=["rule", "file", "line"]).with_row_index("i")
    first = (
        keys.group_by("rule")
        .agg(pl.col("i").top_k_by(["file", "line"], 3, reverse=True))["i"]
        .explode()
    )
    rows = pl.scan_parquet(path).with_row_index("i").filter(pl.col("i").is_in(first.implode()))
    return (
        rows.select("rule", "reason", "text", "source", "file", "line", "record_id")
        .collect()
        .sort("rule", "file", "line")
    )


def leak_texts(leakage: dict, splits: dict[str, pl.DataFrame]) -> dict[str, str]:
    """record_id -> text of the records in the first leakage pairs shown on the page."""
    wanted = sorted(
        {x[k] for x in leakage["pairs"][:EXAMPLES] for k in ("record_id", "train_record_id")}
    )
    both = pl.concat([df.select("record_id", "text") for df in splits.values()])
    return dict(both.filter(pl.col("record_id").is_in(wanted)).sort("record_id").iter_rows())


def load(splits: dict[str, pl.DataFrame], root: Path = Path("data")) -> dict:
    """What the page needs besides the cards' facts: from the split frames the report stage has read
    (`splits`), and from the other declared outputs under `root`."""
    tokens = pl.collect_all([token_lengths(root / "tokenize" / f"{n}.parquet") for n in SPLITS])
    leakage = read_json(root / "split" / "leakage.json")
    confusion = pl.read_csv(
        root / "evaluate" / "confusion.csv",
        schema_overrides={"actual": pl.String, "predicted": pl.String},
    )
    issues = pl.read_parquet(root / "evaluate" / "label_issues.parquet")
    return {
        "leakage": leakage,
        "leak_texts": leak_texts(leakage, splits),
        "live": read_json(root / "train" / "live" / "metrics.json"),
        "curves": curves(root / "train" / "live" / "plots" / "metrics"),
        "confusion": confusion.group_by("actual", "predicted")
        .len("n")
        .sort("actual", "predicted")
        .rows(),
        "label_issues": issues.sort(["confidence", "record_id"], descending=[True, False]).head(
            EXAMPLES
        ),
        "samples": pl.read_parquet(root / "evaluate" / "predictions.parquet")
        .sort("record_id")
        .head(EXAMPLES),
        "rejected_examples": rejected_examples(root / "curate" / "rejected.parquet"),
        "chars": {n: bucket_counts(splits[n]["text"].str.len_chars().fill_null(0)) for n in SPLITS},
        "tokens": {n: bucket_counts(df["n"]) for n, df in zip(SPLITS, tokens)},
        "clusters": [[n, *clusters(splits[n])] for n in SPLITS],
    }


# ---------------------------------------------------------------- the page


def headline_metric(metrics: dict) -> str:
    g = metrics.get("gain_over_best_baseline")
    if g:
        return g["metric"]
    return next(k for k in (*HEADLINE, *sorted(metrics["tuned"])) if k in metrics["tuned"])


def scored(scores: dict, metric: str) -> Html:
    return interval(scores, metric) if f"{metric}_ci_lo" in scores else fixed(scores[metric])


def trained_on(facts: dict, ctx: dict) -> str:
    rows = {n: facts["split"][n]["rows"] for n in SPLITS}
    licenses = sorted({lic for _, lic, *_ in facts["licenses"]})
    return (
        f"{ctx['mode']} fine-tune of {ctx['base_model']} ({ctx['task']}) on {ctx['data']}: "
        f"{num(rows['train'])} train, {num(rows['validation'])} validation and "
        f"{num(rows['test'])} test records from {len(facts['ingest']['sources'])} sources; "
        f"licenses in the splits: {', '.join(licenses)}."
    )


def checks(facts: dict, extra: dict, ctx: dict) -> list[dict]:
    """What a reviewer should look at, from the outputs: error = `tunebuild audit --strict` fails on
    it, warning = needs a person, info = a fact worth knowing."""
    found = []

    def add(severity: str, kind: str, message: str) -> None:
        found.append({"severity": severity, "kind": kind, "message": message})

    leak = extra["leakage"]
    if leak["count"]:
        add(
            "error",
            "leakage",
            f"{num(leak['count'])} validation/test records have a near-duplicate in train "
            f"(similarity >= {leak['threshold']}; data/split/leakage.json)",
        )
    quarantined = facts["ingest"]["total"]["quarantined"]
    if quarantined:
        add(
            "warning",
            "quarantine",
            f"{num(quarantined)} raw units could not be read (data/ingest/quarantine.parquet)",
        )
    issues = facts["metrics"].get("label_issues")
    if issues and issues["flagged"]:
        add(
            "warning",
            "labels",
            f"{num(issues['flagged'])} of {num(issues['checked'])} train records look "
            "mislabelled (listed under Evaluation; none was dropped)",
        )
    g = facts["metrics"].get("gain_over_best_baseline")
    if g and g[f"{g['metric']}_ci_hi"] < 0:
        add(
            "warning",
            "worth it",
            f"the tuned model is worse than {ctx['alternatives'][g['baseline']]} on {g['metric']}",
        )
    elif g and g[f"{g['metric']}_ci_lo"] <= 0:
        add(
            "info",
            "worth it",
            f"the tuned model is not clearly better than {ctx['alternatives'][g['baseline']]}",
        )
    for kind, v in facts["curate"]["pii"].items():
        kept = v["found"] - v["redacted"] - v["rejected"]
        if kept > 0:
            add(
                "warning",
                "pii",
                f"{num(kept)} records with {kind} kept as they are (curate.pii.{kind}=keep)",
            )
        elif v["found"]:
            add(
                "info",
                "pii",
                f"{kind} found in {num(v['found'])} records: {num(v['redacted'])} redacted, "
                f"{num(v['rejected'])} rejected",
            )
    truncated = sum(facts["tokenize"][n].get("truncated", 0) for n in SPLITS)
    if truncated:
        add(
            "info",
            "truncation",
            f"{num(truncated)} rows longer than tokenize.max_length were truncated",
        )
    if ctx["missing"]:
        add(
            "warning",
            "card",
            "owner facts not set (the cards mark them missing): "
            + ", ".join(f"report.{k}" for k in ctx["missing"]),
        )
    return found


def summary(facts: dict, extra: dict, ctx: dict) -> tuple:
    m = facts["metrics"]
    key = headline_metric(m)
    ing, cur = facts["ingest"]["total"], facts["curate"]
    head = Html(
        f"<p class='headline' id='headline'>Tuned {esc(key)} on the test split: "
        f"{scored(m['tuned'], key)}</p>"
    )
    return section(
        "summary",
        "Summary",
        para(trained_on(facts, ctx)),
        head,
        Html(f"<p><b>{esc(ctx['worth_it'])}</b></p>"),
        tiles(
            [
                ("raw units", ing["units"]),
                ("quarantined", ing["quarantined"]),
                ("rejected", cur["rejected"]),
                ("curated", cur["curated"]),
                ("train records", facts["split"]["train"]["rows"]),
            ]
        ),
        Html("<h3>Findings</h3>"),
        findings(checks(facts, extra, ctx)),
        para(
            "Error: `tunebuild audit --strict` fails on it; warning: needs a reviewer; "
            "info: a fact. "
            "The full audit (licenses, PII still in the splits, stale outputs, the forget list): "
            "`tunebuild audit --format html`."
        ),
    )


def top_rules(by_rule: dict[str, int]) -> list[tuple[str, int]]:
    rules = sorted(((r, n) for r, n in by_rule.items() if n), key=lambda x: (-x[1], x[0]))
    if len(rules) <= TOP_RULES:
        return rules
    rest = rules[TOP_RULES - 1 :]
    return rules[: TOP_RULES - 1] + [(f"{len(rest)} other rules", sum(n for _, n in rest))]


def data_flow(facts: dict, extra: dict) -> tuple:
    ing, cur = facts["ingest"], facts["curate"]
    sources = [(s, v["units"]) for s, v in ing["sources"].items()]
    outcome = [
        ("quarantined", ing["total"]["quarantined"]),
        ("rejected", cur["rejected"]),
        ("curated", cur["curated"]),
    ]
    rules = top_rules(cur["rejected_by_rule"])
    splits = [(n, facts["split"][n]["rows"]) for n in SPLITS]
    links = [(s, o, cur["by_source"].get(s, {}).get(o, 0)) for s, _ in sources for o, _ in outcome]
    links += [("rejected", r, n) for r, n in rules] + [("curated", n, v) for n, v in splits]
    colors = {"quarantined": COLORS[6], "rejected": COLORS[5], "curated": COLORS[2]} | {
        r: COLORS[5] for r, _ in rules
    }
    chart = flow(
        "Raw units by source, what curate did with them, and the splits of the curated records",
        [sources, [o for o in outcome if o[1]], rules + splits],
        links,
        colors | SPLIT_COLORS,
    )
    ex = extra["rejected_examples"].group_by("rule", maintain_order=True).first()
    example = dict(zip(ex["rule"].to_list(), zip(ex["reason"].to_list(), ex["text"].to_list())))
    rows = [
        [r, n, example.get(r, ("", ""))[0], example.get(r, ("", ""))[1]]
        for r, n in sorted(cur["rejected_by_rule"].items(), key=lambda x: (-x[1], x[0]))
        if n
    ]
    return section(
        "flow",
        "Data flow",
        para(
            "Every raw unit ends up quarantined (unreadable), rejected by the first rule that "
            "matched, "
            "or curated; curated records are split by a salted hash of their record id or group."
        ),
        figure("Raw units → quarantined / rejected / curated → rule or split", chart),
        table(["rule", "rejected", "first reason", "first text"], rows, "Rejected by rule"),
    )


def per_source(facts: dict, ctx: dict) -> tuple:
    ing, cur, split = facts["ingest"]["sources"], facts["curate"]["by_source"], facts["split"]
    rows = [
        [
            s,
            ctx["licenses"].get(s, "?"),
            v["files"],
            v["units"],
            v["quarantined"],
            cur.get(s, {}).get("rejected", 0),
            cur.get(s, {}).get("curated", 0),
            *(split[n]["by_source"].get(s, 0) for n in SPLITS),
        ]
        for s, v in ing.items()
    ]
    pii = [
        [s, kind, v["found"], v["redacted"], v["rejected"]]
        for s, kinds in sorted(facts["curate"].get("pii_by_source", {}).items())
        for kind, v in sorted(kinds.items())
        if v["found"]
    ]
    in_splits = [[s, lic, *counts] for s, lic, *counts in facts["licenses"]]
    return section(
        "sources",
        "Sources",
        table(
            [
                "source",
                "license",
                "files",
                "raw units",
                "quarantined",
                "rejected",
                "curated",
                *SPLITS,
            ],
            rows,
        ),
        Html("<div class='grid'>"),
        table(
            ["source", "license in the splits", *SPLITS], in_splits, "Records per license and split"
        ),
        table(["source", "PII type", "found", "redacted", "rejected"], pii, "PII found (records)"),
        Html("</div>"),
    )


def categories(
    by_split: dict[str, dict[str, int]], order: list[str]
) -> tuple[list[str], dict[str, list[int]]]:
    """Categories in taxonomy order (or by total), the smallest summed into `other` past
    TOP_CATEGORIES."""
    totals: dict[str, int] = {}
    for counts in by_split.values():
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    names = [k for k in order if k in totals] + sorted(
        (k for k in totals if k not in order), key=lambda k: (-totals[k], k)
    )
    shown, rest = names[:TOP_CATEGORIES], names[TOP_CATEGORIES:]
    series = {
        n: [by_split[n].get(k, 0) for k in shown]
        + ([sum(by_split[n].get(k, 0) for k in rest)] if rest else [])
        for n in SPLITS
    }
    return shown + ([f"{len(rest)} others"] if rest else []), series


def labels_section(facts: dict, ctx: dict) -> tuple:
    if ctx["labels"]:
        cats, series = categories({n: facts["split"][n]["by_label"] for n in SPLITS}, ctx["labels"])
        what, note = (
            "Labels",
            "Share of each split's records per label (count and share on each bar).",
        )
    else:
        cats, series = categories({n: facts["split"][n]["by_source"] for n in SPLITS}, [])
        what, note = (
            "Sources",
            "This task has no label taxonomy: each split's records per source instead.",
        )
    rows = [[c, *(series[n][i] for n in SPLITS)] for i, c in enumerate(cats)]
    return section(
        "labels",
        f"{what} per split",
        para(note),
        Html("<div class='grid'>"),
        figure(f"{what} per split", grouped_hbars(f"{what} per split", cats, series)),
        table([what.lower()[:-1], *SPLITS], rows),
        Html("</div>"),
    )


def trimmed(series: dict[str, list[int]]) -> tuple[list[str], dict[str, list[int]]]:
    """Buckets from the first to the last with any row."""
    used = [i for i in range(len(BUCKETS)) if any(v[i] for v in series.values())] or [0]
    a, b = used[0], used[-1] + 1
    return BUCKETS[a:b], {n: v[a:b] for n, v in series.items()}


def lengths_section(facts: dict, extra: dict) -> tuple:
    tok = facts["tokenize"]
    charts = []
    for unit, counts in (("characters", extra["chars"]), ("tokens", extra["tokens"])):
        buckets, series = trimmed(counts)
        charts.append(
            figure(
                f"Text length in {unit}, per split",
                columns(f"Text length in {unit}, per split", buckets, series, unit=unit),
            )
        )
        charts.append(
            table(
                [f"{unit}", *SPLITS],
                [[b, *(series[n][i] for n in SPLITS)] for i, b in enumerate(buckets)],
            )
        )
    keys = [
        k
        for k in (
            "rows",
            "tokens",
            "mean_length",
            "max_length",
            "truncated",
            "dropped",
            "trained_tokens",
        )
        if k in tok["train"]
    ]
    return section(
        "lengths",
        "Text lengths",
        para(
            "Characters of each split record's text (sft, preference: the conversation as stored); "
            "tokens as tokenize counted them (preference: each of a pair's two conversations)."
        ),
        Html("<div class='grid'>"),
        *charts,
        Html("</div>"),
        table(
            ["split", *keys],
            [[n, *(tok[n].get(k, 0) for k in keys)] for n in SPLITS],
            "data/tokenize/stats.json",
        ),
    )


def duplicates_section(facts: dict, extra: dict) -> tuple:
    cur, leak = facts["curate"], extra["leakage"]
    by_rule = cur["rejected_by_rule"]
    ex = extra["rejected_examples"].filter(pl.col("rule").is_in(DUPLICATE_RULES))
    pairs = [
        [
            x["split"],
            Html(f"<span class='id'>{esc(x['record_id'])}</span>"),
            extra["leak_texts"].get(x["record_id"], ""),
            Html(f"<span class='id'>{esc(x['train_record_id'])}</span>"),
            extra["leak_texts"].get(x["train_record_id"], ""),
            x["similarity"],
        ]
        for x in leak["pairs"][:EXAMPLES]
    ]
    return section(
        "duplicates",
        "Duplicates and leakage",
        tiles(
            [
                ("exact duplicates rejected", by_rule.get("duplicate", 0)),
                ("near-duplicates rejected", by_rule.get("near_duplicate", 0)),
                ("label conflicts rejected", by_rule.get("label_conflict", 0)),
                (
                    "clusters kept with near-duplicates",
                    cur.get("clusters", {}).get("kept_with_near_duplicates", 0),
                ),
                ("validation/test records leaking from train", leak["count"]),
            ]
        ),
        table(
            ["split", "clusters of 2+ records", "records in them"],
            extra["clusters"],
            "Near-duplicate clusters kept whole in one split",
        ),
        table(
            ["rule", "text", "reason"],
            [[r, t, why] for r, t, why in ex.select("rule", "text", "reason").rows()],
            "First rejected duplicates",
        ),
        table(
            ["split", "record", "text", "train record", "train text", "similarity"],
            pairs,
            f"Leakage pairs (similarity >= {leak['threshold']}, first {EXAMPLES})",
        ),
    )


def training_section(extra: dict) -> tuple:
    charts = [
        figure(f"{metric} by step", lines(f"{metric} by step", series))
        for metric, series in extra["curves"].items()
    ]
    live = extra["live"]
    final = [
        [split, k, v]
        for split, vals in sorted(live.items())
        if isinstance(vals, dict)
        for k, v in sorted(vals.items())
    ]
    return section(
        "training",
        "Training curves",
        Html("<div class='grid'>"),
        *charts,
        Html("</div>"),
        table(
            ["series", "metric", "last value"],
            final,
            f"data/train/live/metrics.json (step {live.get('step', '?')})",
        ),
    )


def models(metrics: dict, ctx: dict) -> list[tuple[str, dict]]:
    """Tuned, base and every cheap alternative, with their display names."""
    found = [("tuned", metrics["tuned"]), ("base", metrics["base"])]
    return found + [
        (ctx["alternatives"].get(n, n), v) for n, v in sorted(metrics.get("baselines", {}).items())
    ]


def shaded(n: int, total: int) -> str:
    """A count cell shaded by its share of the row (white text on the darkest)."""
    alpha = n / total
    ink = ";color:#fff" if alpha > 0.55 else ""
    return f'<td class="n" style="background:rgba(0,114,178,{alpha:.2f}){ink}">{num(n)}</td>'


def confusion_table(pairs: list[tuple[str, str, int]], order: list[str]) -> Html:
    """Counts of (actual, predicted); each cell shaded by its share of the row, the count written in
    it."""
    if not pairs:
        return Html("")
    seen = {a for a, _, _ in pairs} | {p for _, p, _ in pairs}
    names = [x for x in order if x in seen] + sorted(seen - set(order))
    count = {(a, p): n for a, p, n in pairs}
    head = "".join(f'<th scope="col" class="n">{esc(n)}</th>' for n in names)
    body = []
    for a in names:
        total = sum(count.get((a, p), 0) for p in names) or 1
        cells = "".join(shaded(count.get((a, p), 0), total) for p in names)
        body.append(f'<tr><th scope="row">{esc(a)}</th>{cells}</tr>')
    return Html(
        "<table><caption class='muted'>Confusion matrix (test split; rows: actual, columns: "
        "predicted)</caption><thead><tr><th>actual \\ predicted</th>"
        f"{head}</tr></thead><tbody>{''.join(body)}"
        "</tbody></table>"
    )


def samples_table(df: pl.DataFrame) -> Html:
    if df.is_empty():
        return Html("")
    cols = [c for c in df.columns if c != "record_id"]
    rows = [
        [Html(f"<span class='id'>{esc(r['record_id'])}</span>"), *(r[c] for c in cols)]
        for r in df.iter_rows(named=True)
    ]
    return table(
        ["record", *cols],
        rows,
        f"Samples from the test split (data/evaluate/predictions.parquet, "
        f"first {EXAMPLES} by record id)",
    )


def evaluation_section(facts: dict, extra: dict, ctx: dict) -> tuple:
    m, pc = facts["metrics"], facts["per_class"]
    ci = [k for k in HEADLINE if f"{k}_ci_lo" in m["tuned"]]
    charts = [
        figure(
            f"{k}: tuned, base and cheap alternatives (95% interval)",
            intervals(
                k,
                [
                    (name, s[k], s[f"{k}_ci_lo"], s[f"{k}_ci_hi"])
                    for name, s in models(m, ctx)
                    if f"{k}_ci_lo" in s
                ],
            ),
        )
        for k in ci
    ]
    compare = table(
        ["model", *(f"{k} [95% CI]" for k in ci)],
        [
            [name, *(interval(s, k) if f"{k}_ci_lo" in s else "" for k in ci)]
            for name, s in models(m, ctx)
        ],
    )
    plain = [k for k in m["gain"] if k not in ci]
    bars = [
        figure(f"{k}: base and tuned", hbars(k, [("base", m["base"][k]), ("tuned", m["tuned"][k])]))
        for k in plain
        if max(m["base"][k], m["tuned"][k]) >= 0 and min(m["base"][k], m["tuned"][k]) >= 0
    ]
    gains = table(
        ["metric", "base", "tuned", "gain"],
        [[k, m["base"][k], m["tuned"][k], m["gain"][k]] for k in m["gain"]],
    )
    per_class = per_class_table(pc)
    issues = m.get("label_issues")
    issue_rows = [
        [
            Html(f"<span class='id'>{esc(r['record_id'])}</span>"),
            r["source"],
            r["label"],
            r["suggested"],
            r["confidence"],
            r["text"],
        ]
        for r in extra["label_issues"].iter_rows(named=True)
    ]
    return section(
        "evaluation",
        "Evaluation (test split)",
        Html(f"<p><b>{esc(ctx['worth_it'])}</b></p>"),
        Html("<div class='grid'>"),
        *charts,
        *bars,
        Html("</div>"),
        compare if ci else Html(""),
        gains,
        confusion_table(extra["confusion"], ctx["labels"]),
        per_class,
        Html(
            f"<h3>Likely label errors ({num(issues['flagged'])} of {num(issues['checked'])} train "
            f"records)</h3>"
        )
        if issues
        else Html(""),
        table(
            ["record", "source", "label", "suggested", "confidence", "text"],
            issue_rows,
            f"data/evaluate/label_issues.parquet, most confident first (first {EXAMPLES})",
        )
        if issues
        else Html(""),
        samples_table(extra["samples"]) if not ctx["labels"] else Html(""),
    )


def per_class_table(pc: dict) -> Html:
    tuned, base = pc.get("tuned", {}), pc.get("base", {})
    if tuned and all(isinstance(v, dict) for v in tuned.values()):
        keys = list(next(iter(tuned.values())))
        return table(
            ["label", *(f"tuned {k}" for k in keys), "base f1"],
            [
                [lab, *(v[k] for k in keys), base.get(lab, {}).get("f1", "")]
                for lab, v in tuned.items()
            ],
            "data/evaluate/per_class.json",
        )
    return table(
        ["field", "base", "tuned"],
        [[f, base.get(f, ""), v] for f, v in tuned.items()],
        "Accuracy per JSON field (data/evaluate/per_class.json)",
    )


def lineage_section(facts: dict, ctx: dict) -> tuple:
    splits = [
        [
            n,
            code(f"data/split/{n}.parquet"),
            facts["split"][n]["rows"],
            code(facts["split_sha256"][n]),
        ]
        for n in SPLITS
    ]
    files = [
        [code(f"data/train/model/{name}"), code(sha)]
        for name, sha in sorted(facts["model_files"].items())
    ]
    return section(
        "lineage",
        "Lineage",
        para(
            f"{ctx['mode']} fine-tune of {ctx['base_model']}, trained on train, monitored on "
            "validation. Record ids per split: data/report/lineage.json."
        ),
        table(["split", "file", "rows", "sha256"], splits),
        table(["model file", "sha256"], files),
    )


def render(facts: dict, extra: dict, ctx: dict) -> str:
    """The page: facts = the report stage's gather(), extra = load(), ctx = what the params say."""
    sections = [
        summary(facts, extra, ctx),
        data_flow(facts, extra),
        per_source(facts, ctx),
        labels_section(facts, ctx),
        lengths_section(facts, extra),
        duplicates_section(facts, extra),
        training_section(extra),
        evaluation_section(facts, extra, ctx),
        lineage_section(facts, ctx),
    ]
    return page(
        f"{ctx['title']}: report",
        f"tunebuild report of {ctx['data']} ({ctx['task']}): every number "
        "below comes from the pipeline's outputs under data/.",
        sections,
    )

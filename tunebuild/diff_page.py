"""`tunebuild diff --format html`: a dataset diff (tunebuild/diff.py's plain dict) as one offline
page.

Pure: the diff dict in, the HTML string out; every number is the diff's own. Sections: the row
counts (added, removed, changed, moved), the stages that would rerun, label/source/split shifts,
where the changes concentrate, curate's effect, lengths and tokens, schema, examples.
"""

from __future__ import annotations

from tunebuild.charts import COLORS, columns, flow, grouped_hbars, hbars
from tunebuild.htmlpage import Html, code, figure, findings, num, page, para, section, table, tiles

CHANGES = ("added", "removed", "changed", "moved", "unchanged")


def side(s: dict) -> str:
    return "workspace" if s["rev"] is None else f"{s['rev']} ({s['commit'][:7]})"


def signed(n: int) -> str:
    return f"{n:+,}"


def notes(r: dict) -> list[dict]:
    """What the change does, as findings a reviewer scans first (all info or warning: a diff fails
    nothing)."""
    found = []
    cur = r["curate"]
    if cur["newly_rejected"]:
        found.append(
            {
                "severity": "warning",
                "kind": "curate",
                "message": f"{num(cur['newly_rejected'])} records curated before are rejected now",
            }
        )
    if cur["newly_admitted"]:
        found.append(
            {
                "severity": "info",
                "kind": "curate",
                "message": f"{num(cur['newly_admitted'])} records rejected before are curated now",
            }
        )
    if any(r["schema"].values()):
        found.append(
            {
                "severity": "warning",
                "kind": "schema",
                "message": "columns were added, removed or retyped",
            }
        )
    if r["rerun"]["stages"]:
        found.append(
            {
                "severity": "info",
                "kind": "rerun",
                "message": "stages that would rerun: " + ", ".join(r["rerun"]["stages"]),
            }
        )
    return found


def summary(r: dict) -> tuple:
    rows = r["rows"]
    fields = [[c, n] for c, n in sorted(r["fields"].items(), key=lambda x: (-x[1], x[0]))]
    cur = r["curate"]["records"]
    return section(
        "summary",
        "Summary",
        para(
            f"Stage {r['stage']}: {num(r['base']['rows'])} rows at {side(r['base'])} → "
            f"{num(r['head']['rows'])} rows at {side(r['head'])} "
            f"({signed(r['head']['rows'] - r['base']['rows'])}); raw records (curated + rejected) "
            f"{num(cur['base'])} → {num(cur['head'])}."
        ),
        tiles([(k, rows[k]) for k in CHANGES]),
        findings(notes(r)),
        Html("<div class='grid'>"),
        figure(
            "Rows by change",
            hbars("Rows by change (matched on record_id)", [(k, rows[k]) for k in CHANGES[:-1]]),
        ),
        table(["column", "changed rows"], fields, "Columns that differ among changed rows"),
        Html("</div>"),
        para(
            "Moved: same content, another file or line. Stages that would rerun: "
            + (
                "; ".join(
                    f"{s} ({', '.join(r['rerun']['reasons'][s])})" for s in r["rerun"]["stages"]
                )
                or "none"
            )
            + "."
        ),
    )


def shifts(r: dict) -> tuple:
    parts = []
    for name, rows in r["counts"].items():
        cats = [x["value"] for x in rows]
        series = {"base": [x["base"] for x in rows], "head": [x["head"] for x in rows]}
        parts.append(
            figure(
                f"{name} counts, base and head",
                grouped_hbars(f"{name}: base and head", cats, series),
            )
        )
        parts.append(
            table(
                [name, "base", "head", "Δ", "share base", "share head"],
                [
                    [
                        x["value"],
                        x["base"],
                        x["head"],
                        signed(x["delta"]),
                        f"{100 * x['share_base']:.1f}%",
                        f"{100 * x['share_head']:.1f}%",
                    ]
                    for x in rows
                ],
            )
        )
    return section(
        "shifts",
        "Label, source and split shifts",
        Html("<div class='grid'>"),
        *parts,
        Html("</div>"),
    )


def concentration(r: dict) -> tuple:
    rows = [
        [seg, x["value"], x["affected"], x["expected"], f"{x['lift']}×", x["rows"]]
        for seg, found in r["concentration"].items()
        for x in found
    ]
    bars = [
        (f"{seg} = {x['value']}", x["affected"])
        for seg, found in r["concentration"].items()
        for x in found
    ]
    return section(
        "concentration",
        "Where the changes concentrate",
        para(
            "Segments with more added, removed or changed rows than their share of all rows "
            "predicts "
            "(expected = their rows × the overall rate; lift = affected / expected)."
        ),
        Html("<div class='grid'>"),
        figure(
            "Affected rows in over-represented segments",
            hbars("Affected rows per over-represented segment", bars),
        )
        if bars
        else Html(""),
        table(["by", "value", "affected", "expected", "lift", "rows"], rows),
        Html("</div>"),
    )


def curate(r: dict) -> tuple:
    cur = r["curate"]
    moves = cur["transitions"]
    left = sorted({t["from"] for t in moves})
    right = sorted({t["to"] for t in moves})
    total = lambda key, v: sum(t["rows"] for t in moves if t[key] == v)  # noqa: E731
    colors = {
        f"head: {v}": COLORS[2] if v == "curated" else COLORS[6] if v == "absent" else COLORS[5]
        for v in right
    }
    chart = flow(
        "Raw records whose curate outcome changed, base → head",
        [
            [(f"base: {v}", total("from", v)) for v in left],
            [(f"head: {v}", total("to", v)) for v in right],
        ],
        [(f"base: {t['from']}", f"head: {t['to']}", t["rows"]) for t in moves],
        colors,
        width=640,
        scale_h=160,
    )
    rows = [
        [t["from"], t["to"], t["rows"], t["raw_changed"], t["rows"] - t["raw_changed"]]
        for t in moves
    ]
    rej = [[x["rule"], x["base"], x["head"], signed(x["delta"])] for x in r["rejections"]]
    return section(
        "curate",
        "Curate effect",
        para(
            f"{num(cur['newly_rejected'])} newly rejected, "
            f"{num(cur['newly_admitted'])} newly admitted. "
            "Outcome: absent (not in the raw data), curated, or the rule that rejected the record."
        ),
        figure("Curate outcome, base → head", chart) if moves else Html(""),
        Html("<div class='grid'>"),
        table(
            ["base", "head", "rows", "raw row changed", "raw row same (rules moved it)"],
            rows,
            "Transitions",
        ),
        table(["rule", "base", "head", "Δ"], rej, "Rejections per rule that moved"),
        Html("</div>"),
    )


def lengths(r: dict) -> tuple:
    ln, toks = r["lengths"], r["tokens"]
    parts = []
    if ln:
        b = ln["buckets"]
        series = {"base": [x["base"] for x in b], "head": [x["head"] for x in b]}
        parts.append(
            figure(
                f"Length in {ln['unit']}, base and head",
                columns(
                    f"Length in {ln['unit']}",
                    [x["bucket"] for x in b],
                    series,
                    unit=ln["unit"],
                    of="side",
                ),
            )
        )
        keys = ["rows", "mean", "p50", "p90", "p99", "max"]
        parts.append(
            table(
                [f"length ({ln['unit']})", *keys],
                [[s, *(ln[s][k] for k in keys)] for s in ("base", "head")],
            )
        )
    if toks:
        parts.append(
            table(
                ["split", "tokens base", "tokens head", "Δ", "truncated base", "truncated head"],
                [
                    [
                        s,
                        v["tokens"]["base"],
                        v["tokens"]["head"],
                        signed(v["tokens"]["delta"]),
                        v["truncated"]["base"],
                        v["truncated"]["head"],
                    ]
                    for s, v in toks.items()
                ],
                "data/tokenize/stats.json",
            )
        )
    return section(
        "lengths", "Lengths and tokens", Html("<div class='grid'>"), *parts, Html("</div>")
    )


def schema(r: dict) -> tuple:
    s = r["schema"]
    rows = (
        [["added", x["column"], "", x["dtype"]] for x in s["added"]]
        + [["removed", x["column"], x["dtype"], ""] for x in s["removed"]]
        + [["retyped", x["column"], x["base"], x["head"]] for x in s["retyped"]]
    )
    return section(
        "schema", "Schema", table(["change", "column", "base", "head"], rows, "Schema changes")
    )


def example_rows(rows: list[dict]) -> tuple[list[str], list[list]]:
    cols = list(rows[0]) if rows else []
    return cols, [[code(x[c]) if c == "record_id" else x.get(c) for c in cols] for x in rows]


def examples(r: dict) -> tuple:
    ex, cur = r["examples"], r["curate"]["examples"]
    parts = []
    for kind in ("added", "removed"):
        cols, rows = example_rows(ex[kind])
        parts.append(Html(f"<h3>{kind}</h3>") + table(cols or ["record_id"], rows))
    changed = [
        [code(x["record_id"]), c, v[0], v[1]]
        for x in ex["changed"]
        for c, v in x["changes"].items()
    ]
    parts.append(Html("<h3>changed</h3>") + table(["record_id", "column", "base", "head"], changed))
    for kind in ("newly_rejected", "newly_admitted"):
        rows = [
            [code(x["record_id"]), x["text"], x["label"], x["from"], x["to"], x["reason"]]
            for x in cur[kind]
        ]
        parts.append(
            Html(f"<h3>{kind.replace('_', ' ')}</h3>")
            + table(["record_id", "text", "label", "base", "head", "reason"], rows)
        )
    return section("examples", "Examples", *parts)


def render(r: dict) -> str:
    sections = [
        summary(r),
        shifts(r),
        concentration(r),
        curate(r),
        lengths(r),
        schema(r),
        examples(r),
    ]
    return page(
        f"Dataset diff: {r['stage']}",
        f"{side(r['base'])} → {side(r['head'])}: rows matched on record_id; "
        "every number comes from `tunebuild diff`.",
        sections,
    )

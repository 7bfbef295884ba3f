"""Every Markdown table escapes its cells: text with `|`, backticks, newlines and HTML from the data
goes through the audit, the dataset diff and the cards without breaking a table or becoming
markup."""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from tunebuild import audit
from tunebuild import diff as d
from tunebuild import markdown as md
from tunebuild.params import (
    DataParams,
    ForgetParams,
    ModelParams,
    ReportParams,
    SourceParams,
    TaskParams,
    TrainParams,
)

EVIL = "a | b `code` <script>alert(1)</script> & \\| c\nsecond line"
UNESCAPED_PIPE = re.compile(r"(?<!\\)(?:\\\\)*\|")


def tables(text: str) -> list[list[str]]:
    """Each Markdown table's lines."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def assert_safe(text: str) -> None:
    """Every row of every table has its header's cell count; EVIL is in a table, escaped, on one
    line."""
    assert tables(text), "no table rendered"
    for table in tables(text):
        widths = {len(UNESCAPED_PIPE.findall(line)) for line in table}
        assert len(widths) == 1, table
    rows = "\n".join(line for table in tables(text) for line in table)
    lines = text.splitlines()
    broken = [
        b for a, b in zip(lines, lines[1:]) if a.startswith("|") and b.startswith("second line")
    ]
    assert "<script>" not in rows and not broken
    assert "a \\| b \\`code\\` &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\\\\\| c" in rows


def test_cell_escapes_what_breaks_a_table():
    assert (
        md.cell(EVIL)
        == "a \\| b \\`code\\` &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\\\\\| c<br>second line"
    )
    assert md.cell(None) == "" and md.cell(md.cell("a|b")) == "a\\|b"  # escaped once only
    assert md.code("x`y|z") == "``x`y\\|z``" and md.code("`") == "`` ` ``"
    assert md.bold("no|") == "**no\\|**"
    assert md.table(["h|1", "h2"], [[EVIL, 1]]).splitlines()[0] == "| h\\|1 | h2 |"


def test_diff_markdown_escapes_data():
    from tests.lib.test_diff import curated_rejected, lock

    def frame(rows):
        return pl.DataFrame(
            rows,
            schema={
                "record_id": pl.String,
                "text": pl.String,
                "label": pl.String,
                "source": pl.String,
                "file": pl.String,
                "line": pl.Int64,
            },
            orient="row",
        )

    base = frame(
        [("a", "plain", "billing", "mail", "f", 1), ("b", EVIL, "billing", "mail", "f", 2)]
    )
    head = frame([("a", "plain", EVIL, "mail", "f", 1), ("c", EVIL, "refund", EVIL, "f", 3)])
    base_cr = curated_rejected([("a", "plain", "billing", "mail")], [])
    head_cr = curated_rejected(
        [("a", "plain", "billing", "mail")], [("z", EVIL, EVIL, "s", "too_short", EVIL)]
    )
    report = d.diff_frames(base, head) | {
        "version": d.VERSION,
        "stage": "curate",
        "base": {"rev": "main", "commit": "0123456789abcdef", "rows": 2},
        "head": {"rev": None, "commit": None, "rows": 2},
        "curate": d.curate_effect(*base_cr, *head_cr),
        "rejections": d.rejections(base_cr[1], head_cr[1]),
        "tokens": None,
        "rerun": d.reruns(lock(), lock()),
    }
    assert_safe(d.to_markdown(report))


def audit_report() -> dict:
    splits = {n: {"rows": 1, "sha256": "ab" * 32, "md5": "cd" * 16} for n in audit.SPLITS}
    return {
        "revision": {"rev": "workspace", "commit": "0" * 40, "uncommitted_changes": False},
        "findings": [],
        "license_allowlist": ["CC0-1.0"],
        "sources": [
            {
                "source": EVIL,
                "license": "CC0-1.0",
                "expression": "CC0-1.0",
                "allowed": True,
                "why": "CC0-1.0 is in the allowlist",
                "train": 1,
                "validation": 0,
                "test": 0,
            }
        ],
        "quarantine": {
            "total": 1,
            "by_source_and_error": [{"source": "s", "error": EVIL, "rows": 1}],
        },
        "rejected": {
            "total": 1,
            "by_rule_and_source": [{"rule": "too_short", "source": EVIL, "rows": 1}],
        },
        "pii": {
            "email": {"action": "redact", "found": 1, "redacted": 1, "rejected": 0, "in_splits": 0}
        },
        "duplicates": {"duplicate": 0},
        "splits": splits,
        "leakage": {"near_duplicates": 0, "threshold": 0.8, "overlaps": {"record_id": []}},
        "built_by": {
            "curate": {
                "recorded_in": None,
                "code": {"stages/curate.py": "e" * 32},
                "params": {},
                "outs": {EVIL: "f" * 32},
            }
        },
        "model": {"mode": "lora", "base_model": "m", "files": {}},
        "metrics": {},
        "forget": {
            "record_ids": [],
            "patterns": [],
            "forgotten": [],
            "downstream": {},
            "upstream": [],
            "model": {"without_forgotten": True, "trained_on": "x", "trained_on_md5": "y"},
        },
        "status": {"checked": False, "stale": {}, "lock": []},
    }


def test_audit_markdown_escapes_data():
    text = audit.markdown(audit_report())
    assert_safe(text)
    assert "`" + "cd" * 16 + "`" in text  # hashes are code on purpose


def report_params():
    from stages.report import Params

    src = SourceParams(
        name=EVIL,
        format="text",
        files="x|`y`/*.jsonl",
        license="CC0-1.0",
        text_field="t",
        label_field="l",
        rejected_field=None,
        group_field=None,
        encoding="utf-8",
        delimiter=",",
        pii_regions=None,
    )
    data = DataParams(
        name="d",
        purpose=None,
        raw_dir="data/raw",
        labels=[EVIL, "b"],
        sources=[src],
        forget=ForgetParams(record_ids=[], patterns=[]),
    )
    train = TrainParams(
        mode="full",
        lr=1e-4,
        epochs=1,
        max_steps=-1,
        batch_size=8,
        weight_decay=0.0,
        warmup_ratio=0.0,
        seed=0,
        lora=None,
        chat=None,
        preference=None,
    )
    return Params(
        report=ReportParams(
            title="t",
            owner=None,
            motivation=None,
            collection=None,
            intended_use=None,
            out_of_scope_use=None,
            maintenance=None,
        ),
        model=ModelParams(name="m", path="m", license="mit"),
        data=data,
        train=train,
        task=TaskParams(name="classify", chat=None),
    )


def card_facts() -> dict:
    from tunebuild.metrics import scores

    split = {n: {"rows": 2, "by_label": {EVIL: 1, "b": 1}} for n in audit.SPLITS} | {"leakage": 0}
    scored, per_class = scores(np.array([0, 0]), np.array([0, 1]), [EVIL, "b"])
    m = {"base": scored, "tuned": scored, "gain": {k: 0.0 for k in scored}}
    return {
        "ingest": {"sources": {EVIL: {"files": 1, "units": 2, "quarantined": 0}}},
        "curate": {
            "by_source": {EVIL: {"rejected": 0, "curated": 2}},
            "rejected_by_rule": {EVIL: 1},
            "pii": {"email": {"found": 0, "redacted": 0, "rejected": 0}},
        },
        "split": split,
        "tokenize": {n: {"tokens": 5, "truncated": 0} for n in audit.SPLITS},
        "metrics": m,
        "per_class": {"base": per_class, "tuned": per_class},
        "split_sha256": {n: "ab" * 32 for n in audit.SPLITS},
        "model_files": {},
        "licenses": [(EVIL, "CC0-1.0", 2, 2, 2)],
    }


def test_cards_escape_data_and_name_macro_f1():
    from stages.report import data_card, model_card

    p, facts = report_params(), card_facts()
    assert_safe(data_card(facts, p))
    card = model_card(facts, p)
    assert_safe(card)
    assert "scikit-learn's convention" in card and "over all 2 labels of the taxonomy" in card
    assert "macro-F1 (scikit-learn, over all 2 taxonomy labels)" in card
    assert "| b | 0.0 | 0.0 | 0.0 | 0 | no test rows" in card

"""The HTML pages in a real browser (headless Chromium, network blocked, JavaScript off): the
classify demo's report page and its audit page; the sft, preference and diff pages are checked
beside their own repos (test_sft_pipeline, test_preference_pipeline, test_diff)."""

from __future__ import annotations

import json
import resource
import shutil
import time

import polars as pl
import pytest

from tests.browser import AUDIT_SECTIONS, REPORT_SECTIONS, assert_clean, look, shot_path
from tests.conftest import sh
from tunebuild import report_page
from tunebuild.htmlpage import table

pytestmark = pytest.mark.pipeline
TIMES = 10_000


def test_classify_report_page_in_a_browser(built_repo, tmp_path):
    found = look(built_repo / "data/report/index.html", shot_path(tmp_path, "report-classify"))
    assert_clean(found, REPORT_SECTIONS)
    metrics = json.loads((built_repo / "data/evaluate/metrics.json").read_text())
    key = metrics["gain_over_best_baseline"]["metric"]
    tuned = metrics["tuned"]
    # the headline number is metrics.json's own, exact in <data value>, rounded as the model card
    # rounds it
    assert [float(v) for v in found["headline_values"]] == [
        tuned[key],
        tuned[f"{key}_ci_lo"],
        tuned[f"{key}_ci_hi"],
    ]
    assert (
        f"{tuned[key]:.4f} [{tuned[f'{key}_ci_lo']:.4f}, {tuned[f'{key}_ci_hi']:.4f}]"
        in found["headline"]
    )
    stats = json.loads((built_repo / "data/curate/stats.json").read_text())
    assert f"curated {stats['curated']}" in found["text"]  # the flow chart's node label (SVG text)
    issues = pl.read_parquet(built_repo / "data/evaluate/label_issues.parquet")
    top = issues.sort(["confidence", "record_id"], descending=[True, False]).row(0, named=True)
    assert top["record_id"] in found["text"]


def test_audit_page_in_a_browser(built_repo, tmp_path):
    out = tmp_path / "audit.html"
    sh(built_repo, "tunebuild", "audit", "--format", "html", "--out", str(out))
    found = look(out, shot_path(tmp_path, "audit-classify"))
    assert_clean(found, AUDIT_SECTIONS)
    report = json.loads(sh(built_repo, "tunebuild", "audit", "--format", "json").stdout)
    assert f"{report['records']['curated']}\ncurated" in found["text"]


def test_report_page_bytes_are_deterministic(repo_copy):
    """A forced rerun of the report stage (another process, another hash seed) writes the same
    bytes."""
    page = repo_copy / "data/report/index.html"
    before = page.read_bytes()
    sh(repo_copy, "dvc", "repro", "--force", "--single-item", "report")
    assert page.read_bytes() == before
    assert b"<script" not in before and b"http://" not in before.replace(
        b"http://www.w3.org/2000/svg", b""
    )


def test_text_from_data_is_escaped():
    html = table(["text"], [["<script>alert(1)</script> & <b>"]])
    assert (
        "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in html
    )


def test_page_of_a_large_run_is_small_and_quick(built_repo, tmp_path):
    """The page's own reads and rendering on the tiny run's outputs repeated 10,000 times (about 1M
    split and tokenize rows, 260k rejected rows, 350k label issues) and 30,000 curve steps: under
    2 MB and 2 s of CPU (all threads; CPU, not wall time, so that a busy test machine does not
    fail it). bench/bench_page.py measures a synthetic 1M-row curate run the same way, with wall
    time."""
    root = tmp_path / "data"
    shutil.copytree(built_repo / "data", root, ignore=shutil.ignore_patterns("raw*"))
    for path in [
        *root.glob("split/*.parquet"),
        *root.glob("tokenize/*.parquet"),
        root / "curate/rejected.parquet",
        root / "evaluate/label_issues.parquet",
        root / "evaluate/predictions.parquet",
    ]:
        df = pl.read_parquet(path)
        pl.concat([df] * TIMES).write_parquet(path)
    for tsv in root.glob("train/live/plots/metrics/*/*.tsv"):
        df = pl.read_csv(tsv, separator="\t")
        pl.DataFrame(
            {"step": range(30_000), df.columns[1]: [float(df[df.columns[1]][0])] * 30_000}
        ).write_csv(tsv, separator="\t")
    from stages.report import Params, gather, page_context
    from tunebuild.params import load_params

    facts = gather(root)
    ctx = page_context(facts, load_params(Params, built_repo / "params.yaml"))
    assert sum(df.height for df in facts["splits"].values()) == TIMES * sum(
        facts["split"][n]["rows"] for n in ("train", "validation", "test")
    )
    start, cpu_start = time.perf_counter(), cpu()
    page = report_page.render(facts, report_page.load(facts["splits"], root), ctx)
    seconds, cpu_seconds = time.perf_counter() - start, cpu() - cpu_start
    assert len(page.encode()) < 2_000_000
    assert cpu_seconds < 2.0, (cpu_seconds, seconds)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

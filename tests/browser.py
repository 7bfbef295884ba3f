"""Open a generated page in a real browser: Debian's headless Chromium, driven by playwright (no
browser download: playwright only speaks to /usr/bin/chromium), with the network blocked and
JavaScript off.

`look(page_file, shot)` starts Chromium (one per call: playwright's sync API stays out of the way
of the asyncio loops DVC runs in other tests), loads the page, saves a full-page screenshot and
returns what a test asserts on: requests that left the file (none expected), failed requests,
console errors, the section ids, the charts without a title, and whether the screenshot is blank.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 768}  # a laptop screen
NOT_FILE = re.compile(r"^(?!file:)")
SHOTS = os.environ.get(
    "TUNEBUILD_SCREENSHOTS"
)  # keep the screenshots there (docs/), else in tmp_path


def require() -> None:
    """Skip where Chromium is not installed, except in CI (.ci/run installs it), where that is a
    failure."""
    if Path(CHROMIUM).exists():
        return
    message = f"no Chromium at {CHROMIUM}: apt-get install -y chromium"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def blank(shot: Path) -> bool:
    """A screenshot is blank when (nearly) every pixel is one colour."""
    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    inked = sum(img.histogram()[:200]) / (img.width * img.height)
    return hi - lo < 50 or inked < 0.01


def shot_path(tmp_path: Path, name: str) -> Path:
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


def look(page_file: Path, shot: Path) -> dict:
    """Load `page_file` offline without JavaScript; everything a test checks about it."""
    require()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS
        )  # a fresh profile
        found = inspect(browser, page_file, shot)
        browser.close()
    return found


def inspect(browser, page_file: Path, shot: Path) -> dict:
    context = browser.new_context(offline=True, java_script_enabled=False, viewport=VIEWPORT)
    seen = {"outside": [], "failed": [], "console": []}
    context.route(
        NOT_FILE, lambda route: (seen["outside"].append(route.request.url), route.abort())
    )
    page = context.new_page()
    page.on("requestfailed", lambda r: seen["failed"].append(f"{r.url}: {r.failure}"))
    page.on(
        "console",
        lambda m: (
            seen["console"].append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: seen["console"].append(f"pageerror: {e}"))
    page.goto(page_file.resolve().as_uri(), wait_until="load")
    page.screenshot(path=str(shot), full_page=True)
    found = {
        **seen,
        "sections": page.eval_on_selector_all("main > section", "s => s.map(x => x.id)"),
        "untitled_charts": page.eval_on_selector_all(
            "svg", "s => s.filter(x => !(x.querySelector(':scope > title')?.textContent)).length"
        ),
        "charts": page.locator("svg").count(),
        "headline": page.locator("#headline").inner_text()
        if page.locator("#headline").count()
        else None,
        "headline_values": page.eval_on_selector_all(
            "#headline data", "d => d.map(x => x.getAttribute('value'))"
        ),
        "text": page.locator("main").inner_text(),
        "width": page.evaluate("document.documentElement.scrollWidth"),
        "blank": blank(shot),
    }
    context.close()
    return found


def assert_clean(found: dict, sections: list[str]) -> None:
    """No request left the page, none failed, no console error, every section there, charts titled,
    the screenshot not blank and no wider than the laptop screen."""
    assert found["outside"] == [], found["outside"]
    assert found["failed"] == [], found["failed"]
    assert found["console"] == [], found["console"]
    assert found["sections"] == sections
    assert found["charts"] and found["untitled_charts"] == 0
    assert not found["blank"]
    assert found["width"] <= VIEWPORT["width"]


REPORT_SECTIONS = [
    "summary",
    "flow",
    "sources",
    "labels",
    "lengths",
    "duplicates",
    "training",
    "evaluation",
    "lineage",
]
AUDIT_SECTIONS = ["summary", "flow", "sources", "splits", "model", "built", "forget", "status"]
DIFF_SECTIONS = ["summary", "shifts", "concentration", "curate", "lengths", "schema", "examples"]

"""`tunebuild promote`: the best experiment (by one metric) becomes a git branch that carries its cards.

The experiments are those `dvc exp show --json` lists (run, queued and finished, not failed). The
branch is made by `dvc exp branch`, so it holds the experiment's params.yaml and dvc.lock: every
output, cards included, is addressed by its hash there (`dvc pull` / `dvc checkout` on the branch).
So that a reviewer can read the cards on the git host without DVC, one more commit on the branch
adds copies of data/report/*.md under cards/, each headed by where it came from.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tunebuild import revs
from tunebuild.errors import UserError

CARDS = ("data/report/model_card.md", "data/report/data_card.md")
COPIES = Path("cards")


def dvc(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"dvc {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1]}")
    return proc.stdout


def flatten(metrics: dict) -> dict[str, float]:
    """{"<file>:<dotted.key>": number} from the metrics of one revision in `dvc exp show --json`."""
    out: dict[str, float] = {}

    def walk(node, file: str, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, file, f"{prefix}.{k}" if prefix else k)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            out[f"{file}:{prefix}"] = float(node)

    for file, entry in (metrics or {}).items():
        walk((entry or {}).get("data", {}), file, "")
    return out


def experiments(show: list[dict]) -> list[dict]:
    """{name, rev, metrics} of every experiment that finished without error."""
    found = []
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            head = exp["revs"][0]
            if head.get("error") is None and head["data"].get("metrics"):
                found.append({"name": exp["name"], "rev": head["rev"], "metrics": flatten(head["data"]["metrics"])})
    return found


def pick(exps: list[dict], metric: str, lower: bool) -> tuple[dict, str]:
    """The best experiment by `metric` (`<file>:<key>` or a key found in exactly one metrics file)."""
    if not exps:
        raise UserError("no finished experiment to promote; run some first (`dvc exp run --queue -S ...`, "
                        "`dvc queue start`), see `dvc exp show`")
    keys = sorted({k for e in exps for k in e["metrics"]})
    matches = [k for k in keys if k == metric or k.split(":", 1)[1] == metric]
    if len(matches) != 1:
        varying = [k for k in keys if len({e["metrics"].get(k) for e in exps}) > 1]  # the keys that tell them apart
        hint = (f"it is in several files: {', '.join(matches)}" if matches else
                f"metrics that differ between the experiments: {', '.join(varying[:12]) or 'none'} (see `dvc exp show`)")
        raise UserError(f"--metric {metric}: {'ambiguous' if matches else 'no such metric'}; {hint}")
    key = matches[0]
    scored = [e for e in exps if key in e["metrics"]]
    best = sorted(scored, key=lambda e: (e["metrics"][key] if lower else -e["metrics"][key], e["name"]))[0]
    return best, key


def copy_cards(rev: str, name: str, branch: str) -> list[str]:
    """Commit copies of the experiment's cards (read from the DVC cache) under cards/ on `branch`."""
    written = []
    with tempfile.TemporaryDirectory(prefix="tunebuild-promote-") as tmp:
        work = Path(tmp) / "branch"
        revs.git(".", "worktree", "add", "-q", str(work), branch)
        try:
            for card in CARDS:
                if not revs.exists(card, rev):
                    continue
                header = (f"<!-- A copy of {card} from experiment {name} ({rev[:7]}), made by `tunebuild promote`. "
                          f"The pipeline's own output is {card} (a DVC output: `dvc pull`). -->\n\n")
                (work / COPIES).mkdir(exist_ok=True)
                (work / COPIES / Path(card).name).write_text(header + revs.read_text(card, rev), encoding="utf-8")
                written.append(str(COPIES / Path(card).name))
            if written:
                revs.git(work, "add", *written)
                revs.git(work, "commit", "-q", "-m", f"promote: cards of experiment {name}")
        finally:
            revs.git(".", "worktree", "remove", "--force", str(work))
    return written


def promote(metric: str, lower: bool, branch: str) -> str:
    if revs.git(".", "branch", "--list", branch).strip():
        raise UserError(f"branch '{branch}' exists already; pick another --branch or delete it (git branch -D {branch})")
    best, key = pick(experiments(json.loads(dvc("exp", "show", "--json"))), metric, lower)
    dvc("exp", "branch", best["name"], branch)
    cards = copy_cards(best["rev"], best["name"], branch)
    return (f"promoted experiment {best['name']} ({key} = {best['metrics'][key]:g}, "
            f"{'lowest' if lower else 'highest'}) to branch '{branch}': its params.yaml and dvc.lock, and "
            f"{', '.join(cards) or 'no cards (the experiment has no data/report/*.md)'}; "
            "`dvc push` shares its outputs")

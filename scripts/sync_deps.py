"""Rewrite the code deps of every stage in dvc.yaml to its import closure (tests/test_contract.py checks
them), keeping data deps, order of the rest of the file and its comments.

    python scripts/sync_deps.py
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_contract import PACKAGES, closure  # noqa: E402

STAGE = re.compile(r"^  (\w+):\s*$")
DEP = re.compile(r"^      - (\S+)\s*(#.*)?$")


def sync(text: str) -> str:
    out, verb, in_deps, written = [], None, False, False
    for line in text.splitlines():
        if m := STAGE.match(line):
            verb = m.group(1)
        if line.strip() == "deps:":
            in_deps, written = True, False
            out.append(line)
            continue
        if in_deps and (m := DEP.match(line)):
            if m.group(1).endswith(".py") or m.group(1) in PACKAGES:
                if not written:
                    out.extend(f"      - {f}" for f in sorted(closure(ROOT / "stages" / f"{verb}.py")))
                    written = True
                continue
        else:
            in_deps = False
        out.append(line)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    path = ROOT / "dvc.yaml"
    path.write_text(sync(path.read_text()))

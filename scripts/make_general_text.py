"""Write data/general/python_docs.jsonl: general English text (documentation prose) that the chat demo never
sees, for evaluate's "what did tuning cost elsewhere" loss (evaluate.general_text).

Source: docstrings of Python's standard library (PSF-2.0, like the rest of CPython's documentation), taken
from the interpreter that runs this script; the file in the repo was made with CPython 3.11.7. Deterministic
for a given Python: MODULES in this order, each module's own docstring and then its public functions and
classes by name, each docstring cleaned with inspect.cleandoc, its first paragraphs kept up to MAX_CHARS;
passages shorter than MIN_CHARS, or holding doctest prompts or text tables (">>>", "+--", "==", "|"), are skipped;
at most PER_MODULE per module.

    python scripts/make_general_text.py     # rewrites data/general/python_docs.jsonl
"""
from __future__ import annotations

import importlib
import inspect
import json
import platform
from pathlib import Path

MODULES = ["json", "csv", "collections", "itertools", "functools", "pathlib", "textwrap", "string", "datetime",
           "statistics", "fractions", "decimal", "heapq", "bisect", "shutil", "tempfile", "argparse", "logging",
           "calendar", "random", "sched", "queue", "threading", "contextlib", "difflib", "zipfile", "email.message",
           "http.client", "urllib.parse", "sqlite3"]
PER_MODULE = 3
MIN_CHARS, MAX_CHARS = 200, 700
OUT = Path("data/general/python_docs.jsonl")


def passage(doc: str | None) -> str | None:
    if not doc or any(mark in doc for mark in (">>>", "+--", "==", "|")):
        return None
    text = ""
    for para in inspect.cleandoc(doc).split("\n\n"):
        para = " ".join(para.split())
        if len(text) + len(para) + 2 > MAX_CHARS:
            break
        text = f"{text}\n\n{para}" if text else para
    return text if len(text) >= MIN_CHARS else None


def main() -> None:
    rows = []
    for name in MODULES:
        module = importlib.import_module(name)
        candidates = [(name, module.__doc__)] + [
            (f"{name}.{attr}", getattr(getattr(module, attr), "__doc__", None)) for attr in sorted(dir(module))
            if not attr.startswith("_") and (inspect.isfunction(getattr(module, attr))
                                            or inspect.isclass(getattr(module, attr)))
            and getattr(getattr(module, attr), "__module__", "").split(".")[0] == name.split(".")[0]]
        kept = [(where, text) for where, text in ((w, passage(d)) for w, d in candidates) if text][:PER_MODULE]
        rows += [{"source": f"cpython-{platform.python_version()}:{where}", "text": text} for where, text in kept]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{OUT}: {len(rows)} passages, {sum(len(r['text']) for r in rows)} characters")


if __name__ == "__main__":
    main()

"""`tunebuild`: commands around the pipeline (the pipeline itself is `dvc repro`).

  tunebuild compose [OVERRIDE ...] [--check]   conf/ -> params.yaml (Hydra)
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from stages.lib.errors import run

PARAMS = Path("params.yaml")
CONF = Path("conf")


def cmd_compose(args: argparse.Namespace) -> int:
    from stages.lib.compose import compose, validate
    from stages.lib.files import write_text

    text = compose(CONF, args.overrides, args.config)
    validate(text, f"{CONF}/ (composed)")
    current = PARAMS.read_text(encoding="utf-8") if PARAMS.exists() else ""
    if args.check:
        if current == text:
            print(f"{PARAMS} is up to date with {CONF}/")
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(PARAMS), f"{CONF}/ composed", lineterm="")
        print("\n".join(list(diff)[:40]), file=sys.stderr)
        print(f"error: {PARAMS} is stale: it differs from what {CONF}/ composes to; "
              f"run `tunebuild compose` and commit {PARAMS}", file=sys.stderr)
        return 1
    if current != text:
        write_text(PARAMS, text)
        print(f"wrote {PARAMS}")
    else:
        print(f"{PARAMS} unchanged")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tunebuild", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compose", help="compose conf/ into params.yaml (Hydra)")
    c.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train=full train.lr=1e-4")
    c.add_argument("--config", default="config", help="primary config in conf/ (default: config)")
    c.add_argument("--check", action="store_true", help="exit 1 if params.yaml differs from the composition")
    c.set_defaults(func=cmd_compose)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)

    def go() -> None:
        code = args.func(args)
        if code:
            raise SystemExit(code)

    run(go)


if __name__ == "__main__":
    main()

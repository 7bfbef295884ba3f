"""`tunebuild`: commands around the pipeline (the pipeline itself is `dvc repro`).

  tunebuild compose [OVERRIDE ...] [--check]   conf/ -> params.yaml (Hydra)
  tunebuild diff --base REV [--head REV] [--stage curate|split|tokenize] [--format md|json]
                                               dataset diff between two revisions (by record_id)
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


def cmd_diff(args: argparse.Namespace) -> int:
    from stages.lib.diff import diff, to_json, to_markdown

    report = diff(args.base, args.head, args.stage, ".", args.examples)
    sys.stdout.write(to_json(report) if args.format == "json" else to_markdown(report))
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tunebuild", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compose", help="compose conf/ into params.yaml (Hydra)")
    c.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train=full train.lr=1e-4")
    c.add_argument("--config", default="config", help="primary config in conf/ (default: config)")
    c.add_argument("--check", action="store_true", help="exit 1 if params.yaml differs from the composition")
    c.set_defaults(func=cmd_compose)
    d = sub.add_parser("diff", help="dataset diff between two revisions (read through DVC, never checked out)")
    d.add_argument("--base", required=True, help="git revision to compare against (branch, tag, commit)")
    d.add_argument("--head", default=None, help="git revision to compare (default: the workspace)")
    d.add_argument("--stage", default="curate", help="dataset to compare: curate, split or tokenize (default: curate)")
    d.add_argument("--format", default="md", choices=["md", "json"], help="md: a pull-request comment; json: for tools")
    d.add_argument("--examples", type=int, default=3, help="example rows per category (default: 3)")
    d.set_defaults(func=cmd_diff)
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

"""`tunebuild`: commands around the pipeline (the pipeline itself is `dvc repro`).

  tunebuild compose [OVERRIDE ...] [--check]   conf/ -> params.yaml (Hydra)
  tunebuild audit [--rev REV] [--format md|json|html] [--out FILE] [--strict]
                                               governance facts and findings from the outputs
  tunebuild trace RECORD_ID | --text TEXT [--rev REV | --all-revs]
                                               where a record came from and what happened to it
  tunebuild forget RECORD_ID ... | --text TEXT | --pattern REGEX
                                               add to data.forget in conf/, recompose params.yaml
  tunebuild diff --base REV [--head REV] [--stage curate|split|tokenize] [--format md|json|html]
                                               dataset diff between two revisions (by record_id)
  tunebuild promote --metric KEY [--min] --branch NAME
                                               the best experiment (dvc exp show) to a branch, with its cards
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from tunebuild.errors import run

PARAMS = Path("params.yaml")
CONF = Path("conf")


def cmd_compose(args: argparse.Namespace) -> int:
    from tunebuild.compose import compose, config_name, validate
    from tunebuild.files import write_text

    text = compose(CONF, args.overrides, args.config or config_name(CONF))
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


def cmd_audit(args: argparse.Namespace) -> int:
    import json

    from tunebuild.audit import audit, markdown
    from tunebuild.files import write_text

    report = audit(args.rev)
    text = json.dumps(report, indent=2, sort_keys=True) + "\n" if args.format == "json" else markdown(report)
    if args.format == "html":
        from tunebuild.audit_page import render

        text = render(report)
    if args.out:
        write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    for f in report["findings"]:
        print(f"finding [{f['kind']}]: {f['message']}", file=sys.stderr)
    return 1 if args.strict and report["findings"] else 0


def cmd_trace(args: argparse.Namespace) -> int:
    from tunebuild.trace import render, trace

    print(render(trace(args.record_id, args.text, args.rev, args.all_revs)))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from tunebuild.forget import forget

    print(forget(args.record_ids, args.text, args.pattern, CONF, PARAMS, args.config))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from tunebuild.diff import diff, to_json, to_markdown

    report = diff(args.base, args.head, args.stage, ".", args.examples)
    if args.format == "html":
        from tunebuild.diff_page import render

        sys.stdout.write(render(report))
        return 0
    sys.stdout.write(to_json(report) if args.format == "json" else to_markdown(report))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from tunebuild.promote import promote

    print(promote(args.metric, args.min, args.branch))
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tunebuild", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compose", help="compose conf/ into params.yaml (Hydra)")
    c.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train=full train.lr=1e-4")
    c.add_argument("--config", help="primary config in conf/ (default: hydra.config_name in .dvc/config, else config)")
    c.add_argument("--check", action="store_true", help="exit 1 if params.yaml differs from the composition")
    c.set_defaults(func=cmd_compose)
    a = sub.add_parser("audit", help="sources, licenses, rejections, PII, splits, leakage, lineage, forget list")
    a.add_argument("--rev", help="git revision to audit (default: the workspace)")
    a.add_argument("--format", choices=["md", "json", "html"], default="md", help="html: one offline page")
    a.add_argument("--out", help="write the report to this file instead of stdout")
    a.add_argument("--strict", action="store_true", help="exit 1 when there is any finding")
    a.set_defaults(func=cmd_audit)
    t = sub.add_parser("trace", help="where a record came from, what happened to it, which models trained on it")
    t.add_argument("record_id", nargs="?", help="16 hex digits (see data/ingest/records.parquet)")
    t.add_argument("--text", help="the record's text instead of its id")
    t.add_argument("--rev", help="git revision (default: the workspace)")
    t.add_argument("--all-revs", action="store_true", help="every commit that changed dvc.lock, and the workspace")
    t.set_defaults(func=cmd_trace)
    f = sub.add_parser("forget", help="add records to data.forget in conf/ and recompose params.yaml")
    f.add_argument("record_ids", nargs="*", help="record ids to forget")
    f.add_argument("--text", action="append", default=[], help="forget the record with this text (repeatable)")
    f.add_argument("--pattern", action="append", default=[], help="forget every text matching this regex (repeatable)")
    f.add_argument("--config", help="primary config in conf/ (default: hydra.config_name in .dvc/config, else config)")
    f.set_defaults(func=cmd_forget)
    d = sub.add_parser("diff", help="dataset diff between two revisions (read through DVC, never checked out)")
    d.add_argument("--base", required=True, help="git revision to compare against (branch, tag, commit)")
    d.add_argument("--head", default=None, help="git revision to compare (default: the workspace)")
    d.add_argument("--stage", default="curate", help="dataset to compare: curate, split or tokenize (default: curate)")
    d.add_argument("--format", default="md", choices=["md", "json", "html"],
                   help="md: a pull-request comment; json: for tools; html: one offline page")
    d.add_argument("--examples", type=int, default=3, help="example rows per category (default: 3)")
    d.set_defaults(func=cmd_diff)
    m = sub.add_parser("promote", help="make the best experiment (by one metric) a git branch, with its cards")
    m.add_argument("--metric", required=True, help="a metric key (e.g. tuned.macro_f1) or FILE:KEY, as in dvc exp show")
    direction = m.add_mutually_exclusive_group()
    direction.add_argument("--max", dest="min", action="store_false", help="higher is better (the default)")
    direction.add_argument("--min", dest="min", action="store_true", help="lower is better (a loss)")
    m.add_argument("--branch", required=True, help="name of the new git branch")
    m.set_defaults(func=cmd_promote)
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

"""kpyctl's entry: parses the command line and runs one verb."""

from __future__ import annotations

import argparse
import sys

from kpy.cli import apply, delete, describe, edit, get, rollout


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpyctl", description="kpyctl controls the kpy cluster manager."
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    apply.add_parser(sub)
    get.add_parser(sub)
    describe.add_parser(sub)
    rollout.add_parser(sub)
    rollout.add_scale_parser(sub)
    delete.add_parser(sub)
    edit.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 1
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code

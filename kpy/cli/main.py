"""kpyctl's entry: parses the command line and runs one verb."""

from __future__ import annotations

import argparse
import sys

from kpy.cli import api_resources, apply, delete, describe, drain, edit, get, logs, rollout, top


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpyctl", description="kpyctl controls the kpy cluster manager."
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    apply.add_parser(sub)
    get.add_parser(sub)
    api_resources.add_parser(sub)
    describe.add_parser(sub)
    rollout.add_parser(sub)
    rollout.add_scale_parser(sub)
    delete.add_parser(sub)
    edit.add_parsers(sub)
    logs.add_parsers(sub)
    top.add_parser(sub)
    drain.add_parser(sub)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The command line parsed; for `exec`, the words after `--` are the
    command (kept whole, its flags its own) and flags may follow the pod."""
    command: list[str] = []
    if argv[:1] == ["exec"] and "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    if args.verb == "exec":
        args.command = command
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, sys.argv[1:] if argv is None else list(argv))
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 1
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code

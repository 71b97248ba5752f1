"""kpyctl's entry: parses the command line and runs one verb.

Each verb is the module of its name in this package (`exec` in exec.py,
`set image` in set.py; `cordon` and `uncordon` share cordon.py); helpers
shared by several verbs are the private `_*.py` modules. `build_parser`
below is the one place that lists them, in the order `--help` shows.
"""

from __future__ import annotations

import argparse
import sys
from typing import Protocol

from kpy.cli import (
    annotate,
    api_resources,
    apply,
    auth,
    autoscale,
    cordon,
    create,
    delete,
    describe,
    diff,
    drain,
    edit,
    explain,
    expose,
    get,
    kustomize,
    label,
    logs,
    patch,
    port_forward,
    rollout,
    run,
    scale,
    taint,
    top,
    wait,
)
from kpy.cli import exec as exec_verb
from kpy.cli import set as set_verb


class _Verb(Protocol):
    """What a verb's module offers: its subcommand(s) added to kpyctl's."""

    def add_parser(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


_VERBS: tuple[_Verb, ...] = (
    apply,
    get,
    api_resources,
    explain,
    describe,
    rollout,
    scale,
    autoscale,
    expose,
    delete,
    label,
    annotate,
    cordon,  # and uncordon
    taint,
    set_verb,
    edit,
    logs,
    exec_verb,
    port_forward,
    top,
    drain,
    create,
    patch,
    run,
    diff,
    kustomize,
    wait,
    auth,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpyctl", description="kpyctl controls the kpy cluster manager."
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for verb in _VERBS:
        verb.add_parser(sub)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The command line parsed; for `exec`, `run` and `create job`, the words
    after `--` are the command (kept whole, its flags its own) and flags may
    follow."""
    command: list[str] = []
    if argv[:1] in (["exec"], ["run"], ["create"]) and "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    if args.verb == "exec":
        args.command = command
    elif args.verb in ("run", "create"):
        if command and not hasattr(args, "command_words"):
            # Only `create job` takes a command: words after `--` elsewhere
            # are refused, never dropped.
            parser.error(f"unexpected arguments after --: {' '.join(command)}")
        args.command_words = command
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

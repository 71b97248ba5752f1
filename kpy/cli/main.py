"""kpyctl's entry: parses the command line and runs one verb.

Each verb is the module of its name in this package (`exec` in exec.py,
`set image` in set.py; `cordon` and `uncordon` share cordon.py); helpers
shared by several verbs are the private `_*.py` modules. `_VERBS` below
is the one place that lists them, in the order `--help` shows.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Final, Protocol, cast

# Each verb word and the module of `kpy.cli` that adds it, in the order
# `--help` lists them. A command line naming one verb imports only that
# module (kpyctl starts in half the time); `--help` and a mistyped verb
# import them all, so argparse can list every choice.
_VERBS: Final[dict[str, str]] = {
    "apply": "apply",
    "get": "get",
    "api-resources": "api_resources",
    "explain": "explain",
    "describe": "describe",
    "rollout": "rollout",
    "scale": "scale",
    "autoscale": "autoscale",
    "expose": "expose",
    "delete": "delete",
    "label": "label",
    "annotate": "annotate",
    "cordon": "cordon",
    "uncordon": "cordon",
    "taint": "taint",
    "set": "set",
    "edit": "edit",
    "logs": "logs",
    "exec": "exec",
    "port-forward": "port_forward",
    "top": "top",
    "drain": "drain",
    "create": "create",
    "patch": "patch",
    "run": "run",
    "diff": "diff",
    "kustomize": "kustomize",
    "wait": "wait",
    "auth": "auth",
}


class _Verb(Protocol):
    """What a verb's module offers: its subcommand(s) added to kpyctl's."""

    def add_parser(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """kpyctl's parser: with every verb, or with only `verb`'s module when
    `verb` is one of them."""
    parser = argparse.ArgumentParser(
        prog="kpyctl", description="kpyctl controls the kpy cluster manager."
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    wanted = [_VERBS[verb]] if verb in _VERBS else list(dict.fromkeys(_VERBS.values()))
    for name in wanted:
        module = cast("_Verb", importlib.import_module(f"kpy.cli.{name}"))
        module.add_parser(sub)
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
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words[0] if words else None)
    args = parse(parser, words)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 1
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code

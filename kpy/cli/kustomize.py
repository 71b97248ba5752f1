"""`kpyctl kustomize [DIR]`: prints what the kustomization in DIR (default
the current directory) builds, as kustomize prints it; `apply -k DIR` and
`diff -k DIR` use the same build (_kustomize.py, which says what is
supported). A field kpy does not support is refused by name: `error: ...`,
exit 1.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from kpy.cli._kustomize import build_source
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("kustomize", help="build a kustomization target from a directory")
    p.add_argument("directory", nargs="?", default=".", metavar="DIR")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        out.write(build_source(args.directory).text)
    except UsageError as e:
        err.write(f"error: {e}\n")
        return 1
    return 0

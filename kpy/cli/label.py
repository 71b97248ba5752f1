"""`kpyctl label TYPE/NAME KEY=VALUE... KEY-... [--overwrite]`: kubectl's
label (`pod/web labeled`); the change itself is _metadata.py's, shared with
`annotate`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.cli._metadata import add_metadata_parser

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_metadata_parser(sub, "label", "labels", "labeled")

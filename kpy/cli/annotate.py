"""`kpyctl annotate TYPE/NAME KEY=VALUE... KEY-... [--overwrite]`: kubectl's
annotate (`pod/web annotated`); the change itself is _metadata.py's, shared
with `label`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.cli._metadata import add_metadata_parser

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_metadata_parser(sub, "annotate", "annotations", "annotated")

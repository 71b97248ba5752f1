"""Reading the manifests named by `-f`: files, directories and stdin."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class UsageError(Exception):
    """A command-line problem; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class Source:
    """The text of one manifest file and the name to show in messages."""

    name: str
    text: str


def read_sources(paths: list[str], *, recursive: bool = False) -> list[Source]:
    """The manifests behind each `-f` argument, in order: a file as is, a
    directory's .yaml/.yml/.json files sorted by name (its subdirectories
    too with `recursive`), `-` for standard input."""
    if not paths:
        raise UsageError("must specify -f FILENAME (a file, a directory, or - for stdin)")
    sources: list[Source] = []
    for arg in paths:
        if arg == "-":
            sources.append(Source("<stdin>", sys.stdin.read()))
            continue
        path = Path(arg)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                p for p in path.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES
            )
            if not files:
                raise UsageError(f'no .yaml, .yml or .json files in directory "{arg}"')
            sources.extend(_read(p) for p in files)
        elif path.exists():
            sources.append(_read(path))
        else:
            raise UsageError(f'the path "{arg}" does not exist')
    return sources


def _read(path: Path) -> Source:
    try:
        return Source(str(path), path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f'cannot read "{path}": {exc}') from None

"""Atomic JSON files: how runtimes keep state that outlives the agent.

`write_json` writes a temporary file beside the target and renames it over
the target, so a reader (or the next agent) sees the old content or the
new, never a torn one. The write is not fsynced: it survives an agent
restart, not a power cut. The temporary name carries the writer's pid, so
two processes writing different files of one directory never collide; one
file has one writer.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

Json = dict[str, Any]


def write_json(path: Path, value: Json, *, compact: bool = False) -> None:
    """Replaces `path` with `value` as JSON, atomically (see the module
    docstring); `compact` drops the spaces, for large files."""
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    separators = (",", ":") if compact else None
    tmp.write_text(json.dumps(value, separators=separators))
    os.replace(tmp, path)


def read_json(path: Path) -> Json | None:
    """The object in `path`, or None if there is no such file. ValueError if
    it holds something else than a JSON object."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds {type(value).__name__}, not a JSON object")
    return value

"""The edit loop behind `kpyctl edit`, as kubectl edit runs it.

The object is written, under kubectl's header comment, to a temporary
`.yaml` file and the user's editor is run on it (`KPY_EDITOR`, else
`KUBE_EDITOR`, else `EDITOR`, else `vi`; the value may carry arguments,
`code --wait`). When the editor exits, lines starting with `#` are dropped,
then:

- an empty file cancels: `Edit cancelled, saved file was empty.` (exit 0);
- a file equal to the object (as YAML values: reformatting is no change)
  cancels: `Edit cancelled, no changes made.` (exit 0);
- otherwise the edit is saved; when saving fails with problems the user can
  fix (malformed YAML, an unknown field, a value the server refuses), the
  file is opened again with the problems as a comment header above the
  user's text, as kubectl does. Saving the same rejected text again gives
  up: `error: Edit cancelled, no valid changes were saved.` (exit 1), and
  the file is kept, its path printed, so the user's work is not lost.

`edit_loop` holds this logic with the editor and the save passed in, so it
is tested without a terminal or a server.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import yaml

from kpy.cli._manifests import Source, UsageError, check_bounds

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

__all__ = [
    "HEADER",
    "EditRejected",
    "Outcome",
    "edit_loop",
    "editor_command",
    "merge_diff",
    "run_editor",
    "strip_comments",
    "temporary_file",
]

HEADER = (
    "# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
    "# and an empty file will abort the edit. If an error occurs while saving this file "
    "will be\n"
    "# reopened with the relevant failures.\n"
    "#\n"
)


class EditRejected(Exception):
    """Saving failed for reasons the user can fix in the editor: `title`
    (`deployments.apps "web" was not valid:`) and one line per problem."""

    def __init__(self, title: str, problems: list[str]) -> None:
        self.title = title
        self.problems = problems
        super().__init__(title + " " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an edit ended: `saved`, the message for the user (stderr for
    cancellations and failures), and the exit code."""

    saved: bool
    message: str
    code: int


def editor_command(env: Mapping[str, str] | None = None) -> list[str]:
    """The editor to run, with its arguments."""
    env = os.environ if env is None else env
    for name in ("KPY_EDITOR", "KUBE_EDITOR", "EDITOR"):
        if env.get(name, "").strip():
            return shlex.split(env[name])
    return ["vi"]


def strip_comments(text: str) -> str:
    """`text` without the lines whose first non-blank character is `#`."""
    return "".join(
        line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#")
    )


def merge_diff(before: Any, after: Any) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) taking mapping `before` to `after`:
    changed members set, removed ones null, lists replaced whole."""
    patch: dict[str, Any] = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        old = before.get(key)
        if key in before and old == value:
            continue
        if isinstance(value, dict) and isinstance(old, dict):
            patch[key] = merge_diff(old, value)
        else:
            patch[key] = value
    return patch


def _comment(title: str, problems: list[str]) -> str:
    lines = [f"# {title}\n"] + [f"# * {p}\n" for p in problems] + ["#\n"]
    return "".join(lines)


def _parse(text: str, name: str) -> Any:
    try:
        check_bounds(Source(name, text))
        return yaml.safe_load(text)
    except UsageError as e:
        raise EditRejected("The edited file is too large to read:", [str(e)]) from None
    except yaml.YAMLError as e:
        raise EditRejected(
            "The edited file had a syntax error:", [" ".join(str(e).split())]
        ) from None


async def edit_loop(
    original: dict[str, Any],
    *,
    edit: Callable[[str], Awaitable[str]],
    save: Callable[[dict[str, Any], str], Awaitable[None]],
    name: str = "the edited file",
) -> Outcome:
    """Runs the loop of the module docstring. `edit(text)` shows `text` to
    the user and returns what they saved; `save(value, text)` stores the
    edited object or raises EditRejected."""
    body = yaml.safe_dump(original, sort_keys=False, default_flow_style=False, allow_unicode=True)
    text = HEADER + body
    rejected: str | None = None
    while True:
        edited = strip_comments(await edit(text))
        if not edited.strip():
            return Outcome(False, "Edit cancelled, saved file was empty.", 0)
        if rejected is not None and edited == rejected:
            return Outcome(False, "error: Edit cancelled, no valid changes were saved.", 1)
        try:
            value = _parse(edited, name)
            if value == original:
                return Outcome(False, "Edit cancelled, no changes made.", 0)
            if not isinstance(value, dict):
                raise EditRejected("The edited file is not an object:", ["write one YAML mapping"])
            await save(value, edited)
        except EditRejected as e:
            rejected = edited
            text = HEADER + _comment(e.title, e.problems) + edited
            continue
        return Outcome(True, "", 0)


async def run_editor(text: str, path: Path, command: list[str]) -> str:
    """Writes `text` to `path`, runs the editor on it and returns what was
    saved (in a thread: the editor owns the terminal until it exits)."""
    return await anyio.to_thread.run_sync(lambda: _edit_file(text, path, command))


def _edit_file(text: str, path: Path, command: list[str]) -> str:
    path.write_text(text, encoding="utf-8")
    try:
        done = subprocess.run([*command, str(path)], check=False)
    except OSError as e:
        raise UsageError(
            f'there was a problem with the editor "{command[0]}": {e.strerror}; '
            "set KPY_EDITOR (or KUBE_EDITOR, EDITOR) to an editor that is installed"
        ) from None
    if done.returncode != 0:
        raise UsageError(
            f'there was a problem with the editor "{command[0]}": it exited with code '
            f"{done.returncode}; nothing was changed"
        )
    return path.read_text(encoding="utf-8")


def temporary_file() -> Path:
    """A new empty `.yaml` file for the edit, kubectl's way named."""
    fd, name = tempfile.mkstemp(prefix="kpyctl-edit-", suffix=".yaml")
    os.close(fd)
    return Path(name)

"""The `kpyctl edit` loop, with the editor and the save played by the test."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.cli._editor import (
    HEADER,
    EditRejected,
    Outcome,
    edit_loop,
    editor_command,
    merge_diff,
    strip_comments,
)

ORIGINAL = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}
EDITED = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: w\n"


async def _session(
    answers: list[Any], reject: list[str | None]
) -> tuple[Outcome, list[str], list[dict[str, Any]]]:
    """Runs the loop: the user saves `answers` in turn (a callable gets the
    text shown); each save is rejected with the next of `reject` (None: saved)."""
    shown: list[str] = []
    saved: list[dict[str, Any]] = []

    async def edit(text: str) -> str:
        shown.append(text)
        answer = answers.pop(0)
        return str(answer(text) if callable(answer) else answer)

    async def save(value: dict[str, Any], text: str) -> None:
        problem = reject.pop(0) if reject else None
        if problem:
            raise EditRejected('configmaps "x" was not valid:', [problem])
        saved.append(value)

    outcome = await edit_loop(ORIGINAL, edit=edit, save=save)
    return outcome, shown, saved


LOOPS = [
    ("saved", [EDITED], [], Outcome(True, "", 0), 1),
    ("unchanged", [lambda t: t], [], Outcome(False, "Edit cancelled, no changes made.", 0), 1),
    (
        "reformatted is unchanged",
        ["{apiVersion: v1, kind: ConfigMap, metadata: {name: x}, data: {k: v}}"],
        [],
        Outcome(False, "Edit cancelled, no changes made.", 0),
        1,
    ),
    (
        "emptied",
        ["# only a comment\n"],
        [],
        Outcome(False, "Edit cancelled, saved file was empty.", 0),
        1,
    ),
    (
        "rejected, then fixed",
        [EDITED, lambda t: t.replace("k: w", "k: fixed")],
        ["data.k: bad value"],
        Outcome(True, "", 0),
        2,
    ),
    (
        "rejected twice the same",
        [EDITED, lambda t: t],
        ["data.k: bad value"],
        Outcome(False, "error: Edit cancelled, no valid changes were saved.", 1),
        2,
    ),
    (
        "malformed YAML is shown, then fixed",
        ["data: [\n", EDITED],
        [],
        Outcome(True, "", 0),
        2,
    ),
]


@pytest.mark.parametrize(
    ("name", "answers", "reject", "want", "opened"), LOOPS, ids=[c[0] for c in LOOPS]
)
async def test_edit_loop(
    name: str, answers: list[Any], reject: list[str], want: Outcome, opened: int
) -> None:
    outcome, shown, saved = await _session(list(answers), list(reject))
    assert outcome == want, name
    assert len(shown) == opened, name
    assert shown[0].startswith(HEADER), name
    if want.saved:
        assert saved[-1]["data"]["k"] in ("w", "fixed"), name


async def test_a_rejection_is_shown_above_the_users_text() -> None:
    _, shown, _ = await _session(
        [EDITED, lambda t: t.replace("k: w", "k: ok")], ["data.k: Invalid value"]
    )
    assert shown[1] == (
        HEADER + '# configmaps "x" was not valid:\n# * data.k: Invalid value\n#\n' + EDITED
    )


async def test_a_syntax_error_is_shown_with_its_line() -> None:
    _, shown, _ = await _session(["data: [\n", EDITED], [])
    assert shown[1].startswith(HEADER + "# The edited file had a syntax error:\n# * ")
    assert "line 2" in shown[1]


EDITORS = [
    ("kpy first", {"KPY_EDITOR": "nano -w", "KUBE_EDITOR": "vim", "EDITOR": "ed"}, ["nano", "-w"]),
    ("then kubectl's", {"KUBE_EDITOR": "code --wait", "EDITOR": "ed"}, ["code", "--wait"]),
    ("then EDITOR", {"EDITOR": "ed"}, ["ed"]),
    ("blank is unset", {"KPY_EDITOR": " ", "EDITOR": "ed"}, ["ed"]),
    ("else vi", {}, ["vi"]),
]


@pytest.mark.parametrize(("name", "env", "want"), EDITORS, ids=[e[0] for e in EDITORS])
def test_editor_command(name: str, env: dict[str, str], want: list[str]) -> None:
    assert editor_command(env) == want, name


DIFFS = [
    ("same", {"a": 1}, {"a": 1}, {}),
    ("changed", {"a": 1}, {"a": 2}, {"a": 2}),
    ("removed", {"a": 1, "b": 2}, {"a": 1}, {"b": None}),
    ("nested", {"m": {"x": 1, "y": 2}}, {"m": {"x": 1, "y": 3}}, {"m": {"y": 3}}),
    ("list replaced", {"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
    ("added", {}, {"n": {"k": "v"}}, {"n": {"k": "v"}}),
]


@pytest.mark.parametrize(("name", "before", "after", "want"), DIFFS, ids=[d[0] for d in DIFFS])
def test_merge_diff(
    name: str, before: dict[str, Any], after: dict[str, Any], want: dict[str, Any]
) -> None:
    assert merge_diff(before, after) == want, name


def test_strip_comments() -> None:
    assert strip_comments("# a\nk: v\n  # b\nx: y # kept\n") == "k: v\nx: y # kept\n"

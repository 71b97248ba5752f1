"""`kpyctl diff`'s output shape and `kpyctl patch`'s reading of -p."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.cli._manifests import UsageError
from kpy.cli.diff import object_diff
from kpy.cli.patch import parse_patch

LIVE = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}
NAME = "v1.ConfigMap.default.x"
DIFFS: list[tuple[str, Any, Any, str]] = [
    ("same", LIVE, LIVE, ""),
    (
        "changed",
        LIVE,
        {**LIVE, "data": {"k": "w"}},
        f"diff -u -N /tmp/LIVE-7/{NAME} /tmp/MERGED-7/{NAME}\n"
        f"--- /tmp/LIVE-7/{NAME}\n+++ /tmp/MERGED-7/{NAME}\n"
        "@@ -1,6 +1,6 @@\n apiVersion: v1\n data:\n-  k: v\n+  k: w\n kind: ConfigMap\n"
        " metadata:\n   name: x\n",
    ),
    (
        "new",
        None,
        LIVE,
        f"diff -u -N /tmp/LIVE-7/{NAME} /tmp/MERGED-7/{NAME}\n"
        f"--- /tmp/LIVE-7/{NAME}\n+++ /tmp/MERGED-7/{NAME}\n"
        "@@ -0,0 +1,6 @@\n+apiVersion: v1\n+data:\n+  k: v\n+kind: ConfigMap\n+metadata:\n"
        "+  name: x\n",
    ),
]


@pytest.mark.parametrize(("name", "live", "merged", "want"), DIFFS, ids=[d[0] for d in DIFFS])
def test_object_diff(name: str, live: Any, merged: Any, want: str) -> None:
    assert object_diff(live, merged, name=NAME, tag=7) == want, name


PATCHES: list[tuple[str, str, Any]] = [
    ("json", '{"spec":{"replicas":3}}', {"spec": {"replicas": 3}}),
    ("yaml", "spec:\n  replicas: 3\n", {"spec": {"replicas": 3}}),
    ("json patch", '[{"op":"remove","path":"/a"}]', [{"op": "remove", "path": "/a"}]),
]


@pytest.mark.parametrize(("name", "text", "want"), PATCHES, ids=[p[0] for p in PATCHES])
def test_parse_patch(name: str, text: str, want: Any) -> None:
    assert parse_patch(text) == want, name


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{", 'unable to parse "{": while parsing a flow node'),
        ("3", "the patch must be a JSON object (or, for --type json, a list of operations)"),
        ("a: " + "[" * 500 + "]" * 500, "the patch (line 1): nesting depth exceeds 100"),
    ],
)
def test_bad_patch(text: str, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_patch(text)
    assert str(caught.value).startswith(error)

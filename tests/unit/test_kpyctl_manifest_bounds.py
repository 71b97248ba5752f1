"""kpyctl's manifest reading is bounded (issue 14 item 8): alias bombs,
deep nesting, huge and recursive documents are refused at once with the
file and line; empty input is kubectl's `no objects passed to apply`."""

from __future__ import annotations

import io
import sys
import time
from typing import TYPE_CHECKING

import pytest

from kpy.cli._manifests import Limits, Source, UsageError, check_bounds
from kpy.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path


def _bomb(levels: int = 10) -> str:
    """The billion laughs: each level is nine aliases of the one before."""
    lines = ["a0: &a0 [" + ",".join(['"lol"'] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n"
SMALL = Limits(document_bytes=200, depth=5, nodes=50, file_bytes=1000)

# (name, text, limits, the refusal's text or None when accepted)
CASES: list[tuple[str, str, Limits, str | None]] = [
    ("plain manifest", CONFIGMAP, Limits(), None),
    ("malformed YAML is the codec's to report", "a: [\n", Limits(), None),
    ("aliases within the limit", "a: &x [1, 2]\nb: *x\nc: *x\n", SMALL, None),
    (
        "alias bomb",
        _bomb(),
        Limits(),
        "b.yaml (line 6): the document expands to more than 250000 YAML nodes through its "
        "aliases (*name); kpyctl refuses it",
    ),
    (
        "5000-deep nesting",
        "a: " + "[" * 5000 + "]" * 5000,
        Limits(),
        "b.yaml (line 1): nesting depth exceeds 100; no Kubernetes object nests that deep",
    ),
    (
        "deep block nesting",
        "".join(f"{'  ' * i}k{i}:\n" for i in range(7)),
        SMALL,
        "b.yaml (line 6): nesting depth exceeds 5;",
    ),
    (
        "recursive alias",
        "a: &x\n  b: *x\n",
        Limits(),
        "b.yaml (line 2): the alias *x refers to a collection that contains it",
    ),
    (
        "document too long",
        "---\nk: " + "x" * 300 + "\n",
        SMALL,
        "b.yaml (line 2): the document is longer than 200 bytes",
    ),
    (
        "each document has its own budget",
        "---\nk: " + "x" * 150 + "\n---\nk: " + "y" * 150 + "\n",
        SMALL,
        None,
    ),
    ("file too large", "k: " + "x" * 2000, SMALL, "b.yaml: the file is larger than 1000 bytes"),
    ("too many plain nodes", "a: [" + ",".join("1" * 60) + "]", SMALL, "more than 50 YAML nodes"),
]


@pytest.mark.parametrize(("name", "text", "limits", "refusal"), CASES, ids=[c[0] for c in CASES])
def test_bounds(name: str, text: str, limits: Limits, refusal: str | None) -> None:
    if refusal is None:
        check_bounds(Source("b.yaml", text), limits)
        return
    with pytest.raises(UsageError) as caught:
        check_bounds(Source("b.yaml", text), limits)
    assert refusal in str(caught.value), name


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> tuple[int, str]:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", err)
    return main(argv), err.getvalue()


def test_the_bomb_is_refused_by_apply_in_well_under_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    started = time.monotonic()
    code, err = _run(["apply", "-f", str(path), "--server", "127.0.0.1:1"], monkeypatch)
    assert time.monotonic() - started < 1.0
    assert code == 1
    assert err.startswith(f"error: {path} (line 6): the document expands to more than")


def test_deep_nesting_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\ndata: " + "[" * 5000 + "]" * 5000 + "\n")
    code, err = _run(["apply", "--dry-run=client", "-f", str(path)], monkeypatch)
    assert (code, err) == (
        1,
        f"error: {path} (line 3): nesting depth exceeds 100; no Kubernetes object nests that "
        "deep, so flatten the data (or check the generator that wrote it)\n",
    )


EMPTY = [
    ("empty file", ""),
    ("only a separator", "---\n"),
    ("only comments", "# nothing here\n---\n# nor here\n"),
]


@pytest.mark.parametrize(("name", "text"), EMPTY, ids=[e[0] for e in EMPTY])
@pytest.mark.parametrize("verb", ["apply", "create", "delete"])
def test_no_objects_is_kubectls_error(
    verb: str, name: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    # No server answers at 127.0.0.1:1: the refusal comes before any connection.
    code, err = _run([verb, "-f", str(path), "--server", "127.0.0.1:1"], monkeypatch)
    assert (code, err) == (1, f"error: no objects passed to {verb}\n"), name


@pytest.mark.parametrize("verb", ["create", "delete"])
def test_malformed_yaml_is_the_files_error_not_the_servers(
    verb: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [\n")
    code, err = _run([verb, "-f", str(path), "--server", "127.0.0.1:1"], monkeypatch)
    assert (code, err) == (
        1,
        f"error: {path} (line 2): expected the node content, but found '<stream end>' "
        "(the YAML is malformed here)\n",
    )


def test_apply_needs_f_or_k(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(["apply"], monkeypatch) == (1, "error: must specify one of -f and -k\n")

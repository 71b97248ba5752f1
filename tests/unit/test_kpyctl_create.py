"""`kpyctl create namespace|configmap|secret generic`, checked offline."""

from __future__ import annotations

import base64
import io
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from kpy.cli._manifests import UsageError
from kpy.cli.create import data_from_sources
from kpy.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path


def _files(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.txt").write_text("alpha\n")
    (tmp_path / "conf" / "b.txt").write_text("beta\n")
    (tmp_path / "blob").write_bytes(b"\xff\x00")
    (tmp_path / "app.env").write_text("# comment\nX=1\n\nY=two\n")
    return tmp_path


SOURCES = [
    ("literals", ["a=1", "b=x=y"], [], [], {"a": "1", "b": "x=y"}, {}),
    ("a file by name", [], ["conf/a.txt"], [], {"a.txt": "alpha\n"}, {}),
    ("a file with a key", [], ["k=conf/a.txt"], [], {"k": "alpha\n"}, {}),
    ("a directory", [], ["conf"], [], {"a.txt": "alpha\n", "b.txt": "beta\n"}, {}),
    ("binary", [], ["blob"], [], {}, {"blob": b"\xff\x00"}),
    ("env file", [], [], ["app.env"], {"X": "1", "Y": "two"}, {}),
]


@pytest.mark.parametrize(
    ("name", "literals", "files", "envs", "text", "binary"), SOURCES, ids=[s[0] for s in SOURCES]
)
def test_data_from_sources(
    name: str,
    literals: list[str],
    files: list[str],
    envs: list[str],
    text: dict[str, str],
    binary: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(_files(tmp_path))
    assert data_from_sources("ConfigMap", "c", literals, files, envs) == (text, binary), name


REFUSED = [
    ("bad literal", ["novalue"], [], "invalid literal source novalue, expected key=value"),
    (
        "duplicate key",
        ["a.txt=1"],
        ["conf/a.txt"],
        "cannot add key a.txt, another key by that name already exists in data for ConfigMap 'c'",
    ),
    ("missing file", [], ["nope"], "error reading nope: no such file or directory"),
]


@pytest.mark.parametrize(
    ("name", "literals", "files", "error"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_refused_sources(
    name: str,
    literals: list[str],
    files: list[str],
    error: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(_files(tmp_path))
    with pytest.raises(UsageError) as caught:
        data_from_sources("ConfigMap", "c", literals, files, [])
    assert str(caught.value) == error, name


def _yaml(monkeypatch: pytest.MonkeyPatch, *argv: str) -> Any:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["create", *argv, "--dry-run=client", "-o", "yaml"]) == 0
    return yaml.safe_load(out.getvalue())


def test_dry_run_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(_files(tmp_path))
    ns = _yaml(monkeypatch, "namespace", "team")
    assert (ns["kind"], ns["metadata"]["name"]) == ("Namespace", "team")
    cm = _yaml(monkeypatch, "configmap", "c", "--from-literal=a=1", "--from-file=blob")
    assert (cm["data"], cm["binaryData"]) == ({"a": "1"}, {"blob": "/wA="})
    secret = _yaml(
        monkeypatch, "secret", "generic", "s", "--from-literal=pw=s3cret", "--from-file=conf/a.txt"
    )
    assert secret["kind"] == "Secret"
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == {
        "pw": b"s3cret",
        "a.txt": b"alpha\n",
    }


def test_create_without_what_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["create", "--server", "127.0.0.1:1"]) == 1
    assert err.getvalue().startswith("error: must specify -f FILE, or what to create")


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("before the kind", ["create", "-n", "team", "configmap", "c"]),
        ("after the name", ["create", "configmap", "c", "-n", "team"]),
    ],
)
def test_namespace_flag_anywhere(
    name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main([*argv, "--dry-run=client", "-o", "yaml"]) == 0
    assert yaml.safe_load(out.getvalue())["metadata"]["namespace"] == "team", name

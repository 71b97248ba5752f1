"""`kpyctl run`: the Pod kubectl run makes, checked offline with --dry-run=client."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
import yaml

from kpy.cli.main import main


def _pod(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, Any, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = main(["run", *argv])
    return code, yaml.safe_load(out.getvalue()) if out.getvalue() else None, err.getvalue()


DRY = ("--dry-run=client", "-o", "yaml")
CASES: list[tuple[str, list[str], dict[str, Any], dict[str, Any]]] = [
    (
        "image only",
        ["web", "--image=nginx"],
        {"name": "web", "labels": {"run": "web"}},
        {"containers": [{"name": "web", "image": "nginx"}], "restartPolicy": "Always"},
    ),
    (
        "args after --",
        ["job", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo hi"],
        {"name": "job", "labels": {"run": "job"}},
        {
            "containers": [{"name": "job", "image": "busybox", "args": ["sh", "-c", "echo hi"]}],
            "restartPolicy": "Never",
        },
    ),
    (
        "command, port, env, labels",
        [
            "api",
            "--image=busybox",
            "--port=8080",
            "--env=A=1",
            "--env=B=x=y",
            "--labels=app=api,tier=back",
            "--command",
            "--",
            "sleep",
            "5",
        ],
        {"name": "api", "labels": {"app": "api", "tier": "back"}},
        {
            "containers": [
                {
                    "name": "api",
                    "image": "busybox",
                    "command": ["sleep", "5"],
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"}],
                }
            ],
            "restartPolicy": "Always",
        },
    ),
]


@pytest.mark.parametrize(("name", "argv", "meta", "spec"), CASES, ids=[c[0] for c in CASES])
def test_run_builds_kubectls_pod(
    name: str,
    argv: list[str],
    meta: dict[str, Any],
    spec: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cut = argv.index("--") if "--" in argv else len(argv)
    code, pod, err = _pod(monkeypatch, *argv[:cut], *DRY, *argv[cut:])
    assert (code, err) == (0, ""), name
    assert pod["kind"] == "Pod"
    assert {k: pod["metadata"][k] for k in meta} == meta, name
    for i, container in enumerate(spec["containers"]):
        got = pod["spec"]["containers"][i]
        assert {k: got[k] for k in container} == container, name
    assert pod["spec"]["restartPolicy"] == spec["restartPolicy"], name


def test_dry_run_prints_kubectls_line(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["run", "web", "--image=nginx", "--dry-run=client"]) == 0
    assert out.getvalue() == "pod/web created (dry run)\n"


REFUSED = [
    ("bad env", ["web", "--image=x", "--env=NOVALUE"], "error: invalid env: NOVALUE"),
    ("bad labels", ["web", "--image=x", "--labels=a"], "error: invalid label spec: a"),
    ("--command without one", ["web", "--image=x", "--command"], "error: --command needs"),
]


@pytest.mark.parametrize(("name", "argv", "error"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals(name: str, argv: list[str], error: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _pod(monkeypatch, *argv, "--dry-run=client")
    assert code == 1, name
    assert err.startswith(error), name


def test_image_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with pytest.raises(SystemExit) as exited:
        main(["run", "web"])
    assert exited.value.code == 2

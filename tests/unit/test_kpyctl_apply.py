"""`kpyctl apply --dry-run=client`, run as a user runs it: exit status,
stdout and stderr, on the manifests users wrote."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kpy.cli.main import main

SEEDS = Path(__file__).resolve().parents[1] / "data" / "seed-manifests"


def _run(*argv: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


ACCEPTED = [
    ("pod-myapp.yaml", ["pod/myapp-pod"]),
    ("replicaset-frontend.yaml", ["replicaset.apps/frontend"]),
    ("daemonset-fluentd.yaml", ["daemonset.apps/fluentd-elasticsearch"]),
    ("job-pi.yaml", ["job.batch/pi"]),
    ("cronjob-hello.yaml", ["cronjob.batch/hello"]),
    ("statefulset-web-with-service.yaml", ["service/nginx", "statefulset.apps/web"]),
]


@pytest.mark.parametrize(("name", "refs"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_seed_manifests_are_accepted(
    name: str, refs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _run(
        "apply", "--dry-run=client", "-f", str(SEEDS / name), "-o", "name", monkeypatch=monkeypatch
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == refs


def test_yaml_output_is_the_defaulted_object(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _run(
        "apply",
        "--dry-run=client",
        "-f",
        str(SEEDS / "pod-myapp.yaml"),
        "-o",
        "yaml",
        monkeypatch=monkeypatch,
    )
    assert code == 0
    (pod,) = yaml.safe_load_all(out)
    assert pod["metadata"] == {
        "name": "myapp-pod",
        "namespace": "default",
        "labels": {"app": "myapp"},
    }
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"  # untagged busybox


def test_wrong_api_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run(
        "apply",
        "--dry-run=client",
        "-f",
        str(SEEDS / "deployment-apiversion-v1.yaml"),
        monkeypatch=monkeypatch,
    )
    assert code == 1
    assert out == ""
    assert 'no matches for kind "Deployment" in version "v1"' in err
    assert "set apiVersion to apps/v1" in err
    assert "nothing was applied" in err


def test_bad_indentation_is_refused_with_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(
        "apply",
        "--dry-run=client",
        "-f",
        str(SEEDS / "pod-bad-indent.yaml"),
        monkeypatch=monkeypatch,
    )
    assert code == 1
    assert "pod-bad-indent.yaml (line 3): mapping values are not allowed here" in err


def test_a_directory_with_one_bad_file_applies_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run(
        "apply", "--dry-run=client", "-f", str(SEEDS), "-o", "name", monkeypatch=monkeypatch
    )
    assert code == 1
    assert out == ""
    assert err.count("error: ") == 2  # the wrong apiVersion and the bad indentation


def test_stdin_and_validation_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 0}]}]
"""
    code, _, err = _run(
        "apply", "--dry-run=client", "-f", "-", stdin=manifest, monkeypatch=monkeypatch
    )
    assert code == 1
    assert "spec.template.metadata.labels: Invalid value" in err
    assert "spec.template.spec.containers[0].ports[0].containerPort" in err


def test_namespace_flag_and_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: prod}\n"
    code, _, err = _run(
        "apply", "--dry-run=client", "-n", "dev", "-f", "-", stdin=text, monkeypatch=monkeypatch
    )
    assert code == 1
    assert 'does not match the namespace "dev"' in err


def test_missing_file_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(
        "apply", "--dry-run=client", "-f", "/nonexistent.yaml", monkeypatch=monkeypatch
    )
    assert code == 1
    assert 'the path "/nonexistent.yaml" does not exist' in err


def test_installed_kpyctl_runs() -> None:
    kpyctl = Path(sys.executable).with_name("kpyctl")
    result = subprocess.run(
        [str(kpyctl), "apply", "--dry-run=client", "-f", str(SEEDS / "job-pi.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "job.batch/pi created (dry run)\n"

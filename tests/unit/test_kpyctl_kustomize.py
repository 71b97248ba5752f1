"""`kpyctl kustomize DIR`: kustomize's build for the fields kpy supports."""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from kpy.cli._kustomize import build, content_hash, set_image
from kpy.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path

# Kubernetes' documentation shows these names for these generators.
HASHES = [
    (
        "configmap from a file",
        {
            "kind": "ConfigMap",
            "metadata": {"name": "example-configmap-1"},
            "data": {"application.properties": "FOO=Bar\n"},
        },
        "8mbdf7882g",
    ),
    (
        "configmap from a literal",
        {"kind": "ConfigMap", "metadata": {"name": "example-configmap-2"}, "data": {"FOO": "Bar"}},
        "g2hdhfc6tk",
    ),
]


@pytest.mark.parametrize(("name", "obj", "want"), HASHES, ids=[h[0] for h in HASHES])
def test_content_hash_is_kustomizes(name: str, obj: dict[str, Any], want: str) -> None:
    assert content_hash(obj) == want, name


IMAGES = [
    ("new tag", "nginx:1.7", {"new_tag": "1.25"}, "nginx:1.25"),
    ("new name keeps the tag", "nginx:1.7", {"new_name": "reg/nginx"}, "reg/nginx:1.7"),
    ("digest replaces the tag", "nginx:1.7", {"digest": "sha256:ab"}, "nginx@sha256:ab"),
    ("untagged", "nginx", {"new_tag": "2"}, "nginx:2"),
    ("other image untouched", "nginxx:1", {"new_tag": "2"}, "nginxx:1"),
    (
        "registry port is not a tag",
        "localhost:5000/nginx",
        {"new_tag": "2"},
        "localhost:5000/nginx",
    ),
]


@pytest.mark.parametrize(("name", "image", "change", "want"), IMAGES, ids=[i[0] for i in IMAGES])
def test_set_image(name: str, image: str, change: dict[str, str], want: str) -> None:
    args = {"new_name": "", "new_tag": "", "digest": ""} | change
    assert set_image(image, "nginx", **args) == want, name


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.7
        envFrom: [{configMapRef: {name: conf}}]
        env:
        - {name: PW, valueFrom: {secretKeyRef: {name: creds, key: pw}}}
      volumes:
      - {name: c, configMap: {name: conf}}
"""
SERVICE = (
    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
    "spec: {selector: {app: web}, ports: [{port: 80}]}\n"
)


def _tree(tmp_path: Path) -> Path:
    base, overlay = tmp_path / "base", tmp_path / "overlay"
    base.mkdir()
    overlay.mkdir()
    (base / "deploy.yaml").write_text(DEPLOYMENT)
    (base / "svc.yaml").write_text(SERVICE)
    (base / "app.properties").write_text("FOO=Bar\n")
    (base / "kustomization.yaml").write_text(
        "resources: [deploy.yaml, svc.yaml]\n"
        "configMapGenerator:\n- name: conf\n  files: [app.properties]\n"
        "secretGenerator:\n- name: creds\n  literals: [pw=s3cret]\n"
        "images:\n- {name: nginx, newName: kpy.local/nginx, newTag: '2'}\n"
    )
    (overlay / "kustomization.yaml").write_text(
        "resources: [../base]\nnamePrefix: prod-\nnameSuffix: -v1\nnamespace: prod\n"
        "commonLabels: {env: prod}\ncommonAnnotations: {owner: team-a}\n"
    )
    return overlay


def test_overlay_build(tmp_path: Path) -> None:
    objs = build(_tree(tmp_path))
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ConfigMap", f"prod-conf-{content_hash(objs[0] | {'metadata': {'name': 'conf'}})}-v1"),
        ("Secret", objs[1]["metadata"]["name"]),
        ("Service", "prod-web-v1"),
        ("Deployment", "prod-web-v1"),
    ]
    cm, secret, svc, deploy = objs
    assert secret["data"] == {"pw": "czNjcmV0"}
    assert secret["type"] == "Opaque"
    for obj in objs:
        assert obj["metadata"]["namespace"] == "prod"
        assert obj["metadata"]["labels"]["env"] == "prod"
        assert obj["metadata"]["annotations"] == {"owner": "team-a"}
    assert svc["spec"]["selector"] == {"app": "web", "env": "prod"}
    spec = deploy["spec"]
    assert spec["selector"]["matchLabels"] == {"app": "web", "env": "prod"}
    assert spec["template"]["metadata"] == {
        "labels": {"app": "web", "env": "prod"},
        "annotations": {"owner": "team-a"},
    }
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "kpy.local/nginx:2"
    # References follow the generated, prefixed and hashed names.
    assert container["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert pod["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]


def test_references_follow_a_prefix_then_a_hash(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(DEPLOYMENT)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [deploy.yaml]\nnamePrefix: dev-\n"
        "configMapGenerator:\n- name: conf\n  literals: [a=1]\n"
    )
    cm, deploy = build(tmp_path)
    assert cm["metadata"]["name"].startswith("dev-conf-")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]


def test_generator_options(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "generatorOptions: {disableNameSuffixHash: true, labels: {gen: 'yes'}}\n"
        "configMapGenerator:\n- name: plain\n  literals: [a=1, 'b=\"quoted\"']\n"
    )
    (cm,) = build(tmp_path)
    assert cm["metadata"] == {"name": "plain", "labels": {"gen": "yes"}}
    assert cm["data"] == {"a": "1", "b": "quoted"}


REFUSED = [
    ("no kustomization", None, "unable to find one of 'kustomization.yaml'"),
    ("unsupported field", "patches: []\n", "kpyctl's kustomize does not support patches"),
    ("missing resource", "resources: [nope.yaml]\n", "resource 'nope.yaml'"),
    ("remote resource", "resources: ['https://x/y']\n", "only local files and directories"),
    ("a cycle", "resources: [.]\n", "cycles back"),
]


@pytest.mark.parametrize(("name", "text", "error"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals_exit_1_with_the_reason(
    name: str, text: str | None, error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if text is not None:
        (tmp_path / "kustomization.yaml").write_text(text)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["kustomize", str(tmp_path)]) == 1, name
    assert err.getvalue().startswith("error: "), name
    assert error in err.getvalue(), name


def test_kustomize_prints_and_apply_k_dry_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlay = _tree(tmp_path)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["kustomize", str(overlay)]) == 0
    docs = list(yaml.safe_load_all(out.getvalue()))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Secret", "Service", "Deployment"]
    out.truncate(0)
    out.seek(0)
    assert main(["apply", "-k", str(overlay), "--dry-run=client", "-o", "name"]) == 0
    assert out.getvalue().splitlines()[2:] == ["service/prod-web-v1", "deployment.apps/prod-web-v1"]

"""`kpyctl create role|clusterrole|rolebinding|clusterrolebinding|serviceaccount`,
checked offline with --dry-run=client: the manifests kubectl builds, and
its errors."""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING, Any

import yaml

from kpy.cli.main import main

if TYPE_CHECKING:
    import pytest

GROUP = "rbac.authorization.k8s.io"


def _yaml(monkeypatch: pytest.MonkeyPatch, *argv: str) -> Any:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["create", *argv, "--dry-run=client", "-o", "yaml"]) == 0
    return yaml.safe_load(out.getvalue())


BUILT: list[tuple[str, list[str], dict[str, Any]]] = [
    (
        "role: one rule per API group, resources resolved by the scheme",
        ["role", "r", "--verb=get,list", "--verb=watch", "--resource=po,deployments.apps,pods/log"],
        {
            "kind": "Role",
            "rules": [
                {
                    "verbs": ["get", "list", "watch"],
                    "apiGroups": [""],
                    "resources": ["pods", "pods/log"],
                },
                {
                    "verbs": ["get", "list", "watch"],
                    "apiGroups": ["apps"],
                    "resources": ["deployments"],
                },
            ],
        },
    ),
    (
        "role: resource names",
        [
            "role",
            "r",
            "--verb=get",
            "--resource=configmaps",
            "--resource-name=a",
            "--resource-name=b",
        ],
        {
            "kind": "Role",
            "rules": [
                {
                    "verbs": ["get"],
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["a", "b"],
                }
            ],
        },
    ),
    (
        "clusterrole: resources and a non-resource URL",
        ["clusterrole", "c", "--verb=get", "--resource=nodes", "--non-resource-url=/healthz"],
        {
            "kind": "ClusterRole",
            "rules": [
                {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]},
                {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
            ],
        },
    ),
    (
        "clusterrole: aggregation rule",
        ["clusterrole", "c", "--aggregation-rule=team=a,tier=b"],
        {
            "kind": "ClusterRole",
            "aggregationRule": {
                "clusterRoleSelectors": [{"matchLabels": {"team": "a", "tier": "b"}}]
            },
        },
    ),
    (
        "rolebinding: a Role to users, groups and service accounts",
        [
            "rolebinding",
            "rb",
            "--role=r",
            "--user=alice,bob",
            "--group=devs",
            "--serviceaccount=ci:builder",
        ],
        {
            "kind": "RoleBinding",
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [
                {"kind": "User", "apiGroup": GROUP, "name": "alice"},
                {"kind": "User", "apiGroup": GROUP, "name": "bob"},
                {"kind": "Group", "apiGroup": GROUP, "name": "devs"},
                {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"},
            ],
        },
    ),
    (
        "rolebinding: a ClusterRole",
        ["rolebinding", "rb", "--clusterrole=view", "--user=alice"],
        {
            "kind": "RoleBinding",
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "apiGroup": GROUP, "name": "alice"}],
        },
    ),
    (
        "clusterrolebinding",
        ["clusterrolebinding", "crb", "--clusterrole=cluster-admin", "--group=ops"],
        {
            "kind": "ClusterRoleBinding",
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "apiGroup": GROUP, "name": "ops"}],
        },
    ),
    (
        "serviceaccount",
        ["serviceaccount", "builder"],
        {"apiVersion": "v1", "kind": "ServiceAccount"},
    ),
    ("sa alias", ["sa", "builder"], {"apiVersion": "v1", "kind": "ServiceAccount"}),
]


def test_built_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    for case, argv, want in BUILT:
        got = _yaml(monkeypatch, *argv)
        assert got["metadata"]["name"] == argv[1], case
        if want["kind"] != "ServiceAccount":
            assert got["apiVersion"] == f"{GROUP}/v1", case
        for key, value in want.items():
            assert got[key] == value, f"{case}: {key}"


REFUSED = [
    (
        "role without verbs",
        ["role", "r", "--resource=pods"],
        "error: at least one verb must be specified",
    ),
    (
        "role without resources",
        ["role", "r", "--verb=get"],
        "error: at least one resource must be specified",
    ),
    (
        "clusterrole without resources or URLs",
        ["clusterrole", "c", "--verb=get"],
        "error: one of resource or nonResourceURL must be specified",
    ),
    ("unknown verb", ["role", "r", "--verb=fly", "--resource=pods"], "error: invalid verb: 'fly'"),
    (
        "unknown resource",
        ["role", "r", "--verb=get", "--resource=gizmos"],
        'error: the server doesn\'t have a resource type "gizmos"',
    ),
    (
        "rolebinding with both role and clusterrole",
        ["rolebinding", "rb", "--role=r", "--clusterrole=c"],
        "error: exactly one of clusterrole or role must be specified",
    ),
    (
        "rolebinding with neither",
        ["rolebinding", "rb", "--user=alice"],
        "error: exactly one of clusterrole or role must be specified",
    ),
    (
        "clusterrolebinding without a clusterrole",
        ["clusterrolebinding", "crb", "--user=alice"],
        'error: required flag(s) "clusterrole" not set',
    ),
    (
        "service account without a namespace",
        ["rolebinding", "rb", "--role=r", "--serviceaccount=builder"],
        "error: serviceaccount must be <namespace>:<name>, not 'builder'",
    ),
]


def test_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for case, argv, message in REFUSED:
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        assert main(["create", *argv, "--dry-run=client"]) == 1, case
        assert err.getvalue().strip() == message, case

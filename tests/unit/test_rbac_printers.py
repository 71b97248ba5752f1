"""`kpyctl get` columns of Roles, ClusterRoles, their bindings and
ServiceAccounts, as kubectl prints them."""

from __future__ import annotations

from typing import Any

from kpy.api import codec
from kpy.cli._printers import table

NOW = 1_700_000_100.0
CREATED = "2023-11-14T22:13:20Z"  # NOW - 100 s
RBAC = "rbac.authorization.k8s.io/v1"


def obj(kind: str, **fields: Any) -> Any:
    api = "v1" if kind == "ServiceAccount" else RBAC
    meta = {"name": "x", "namespace": "ns", "creationTimestamp": CREATED}
    return codec.decode_object({"apiVersion": api, "kind": kind, "metadata": meta, **fields})


SUBJECTS = [
    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"},
    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
    {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"},
]
REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}

CASES = [
    ("role", obj("Role"), False, [["NAME", "CREATED AT"], ["x", CREATED]]),
    ("clusterrole", obj("ClusterRole"), False, [["NAME", "CREATED AT"], ["x", CREATED]]),
    (
        "rolebinding",
        obj("RoleBinding", roleRef=REF, subjects=SUBJECTS),
        False,
        [["NAME", "ROLE", "AGE"], ["x", "ClusterRole/view", "100s"]],
    ),
    (
        "rolebinding -o wide",
        obj("RoleBinding", roleRef={**REF, "kind": "Role", "name": "r"}, subjects=SUBJECTS),
        True,
        [
            ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
            ["x", "Role/r", "100s", "alice, bob", "devs", "ci/builder"],
        ],
    ),
    (
        "clusterrolebinding -o wide without subjects",
        obj("ClusterRoleBinding", roleRef=REF),
        True,
        [
            ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
            ["x", "ClusterRole/view", "100s", "", "", ""],
        ],
    ),
    (
        "serviceaccount",
        obj("ServiceAccount", secrets=[{"name": "a"}, {"name": "b"}]),
        False,
        [["NAME", "SECRETS", "AGE"], ["x", "2", "100s"]],
    ),
]


def test_columns_table() -> None:
    for case, o, wide, want in CASES:
        assert table(type(o).__name__, [o], NOW, wide=wide) == want, case

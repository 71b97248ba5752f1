"""Validation and defaulting of the RBAC kinds and ServiceAccount, as
Kubernetes' pkg/apis/rbac/validation words them: one table per check."""

from __future__ import annotations

from typing import Any

from kpy.api import codec, names
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate, validate_update

RBAC = "rbac.authorization.k8s.io/v1"
#: The text of Kubernetes' NotSupported error naming the RBAC group.
ONLY_RBAC = 'supported values: "rbac.authorization.k8s.io"'
#: names.is_dns1123_subdomain's message (its own tests check the wording).
SUBDOMAIN = names.is_dns1123_subdomain("A")[0]
REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}


def obj(kind: str, name: str = "x", namespace: str = "", **fields: Any) -> Any:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    api = "v1" if kind == "ServiceAccount" else RBAC
    return set_defaults(
        codec.decode_object({"apiVersion": api, "kind": kind, "metadata": meta, **fields})
    )


def messages(o: Any) -> list[str]:
    return [f"{e.path}: {e.detail}" for e in validate(o)]


CREATE = [
    # (case, object, expected errors in order; [] = valid)
    (
        "role: a resource rule",
        obj(
            "Role",
            namespace="d",
            rules=[{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
        ),
        [],
    ),
    ("role: a colon in the name is fine", obj("Role", "system:x", "d"), []),
    (
        "role: a slash in the name",
        obj("Role", "a/b", "d"),
        ["metadata.name: Invalid value: \"a/b\": may not contain '/'"],
    ),
    (
        "role: a percent in the name",
        obj("Role", "a%b", "d"),
        ["metadata.name: Invalid value: \"a%b\": may not contain '%'"],
    ),
    (
        "clusterrole: the name '..'",
        obj("ClusterRole", ".."),
        ["metadata.name: Invalid value: \"..\": may not be '..'"],
    ),
    (
        "role: no verbs",
        obj("Role", namespace="d", rules=[{"apiGroups": [""], "resources": ["pods"]}]),
        ["rules[0].verbs: Required value: verbs must contain at least one value"],
    ),
    (
        "role: no resources",
        obj("Role", namespace="d", rules=[{"verbs": ["get"], "apiGroups": [""]}]),
        ["rules[0].resources: Required value: resource rules must supply at least one resource"],
    ),
    (
        "role: no apiGroups",
        obj("Role", namespace="d", rules=[{"verbs": ["get"], "resources": ["pods"]}]),
        ["rules[0].apiGroups: Required value: resource rules must supply at least one api group"],
    ),
    (
        "role: nonResourceURLs",
        obj("Role", namespace="d", rules=[{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]),
        [
            'rules[0].nonResourceURLs: Invalid value: ["/healthz"]: '
            "namespaced rules cannot apply to non-resource URLs"
        ],
    ),
    (
        "clusterrole: nonResourceURLs",
        obj("ClusterRole", rules=[{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]),
        [],
    ),
    (
        "clusterrole: nonResourceURLs beside resources",
        obj(
            "ClusterRole",
            rules=[{"verbs": ["get"], "resources": ["pods"], "nonResourceURLs": ["/x"]}],
        ),
        [
            'rules[0].nonResourceURLs: Invalid value: ["/x"]: '
            "rules cannot apply to both regular resources and non-resource URLs"
        ],
    ),
    (
        "clusterrole: aggregation",
        obj("ClusterRole", aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}),
        [],
    ),
    (
        "clusterrole: aggregation without selectors",
        obj("ClusterRole", aggregationRule={}),
        [
            "aggregationRule.clusterRoleSelectors: Required value: "
            "at least one clusterRoleSelector required if aggregationRule is non-nil"
        ],
    ),
    (
        "clusterrole: aggregation with a bad selector",
        obj(
            "ClusterRole",
            aggregationRule={
                "clusterRoleSelectors": [{"matchExpressions": [{"key": "a", "operator": "Is"}]}]
            },
        ),
        [
            "aggregationRule.clusterRoleSelectors[0].matchExpressions[0].operator: "
            'Unsupported value: "Is": supported values: "In", "NotIn", "Exists", "DoesNotExist"'
        ],
    ),
    (
        "rolebinding: to a Role",
        obj(
            "RoleBinding",
            namespace="d",
            roleRef={"kind": "Role", "name": "r"},
            subjects=[{"kind": "User", "name": "alice"}],
        ),
        [],
    ),
    (
        "rolebinding: to a ClusterRole",
        obj(
            "RoleBinding",
            namespace="d",
            roleRef=REF,
            subjects=[{"kind": "ServiceAccount", "name": "sa"}],
        ),
        [],
    ),
    (
        "rolebinding: to something else",
        obj("RoleBinding", namespace="d", roleRef={"kind": "Pod", "name": "r"}),
        ['roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"'],
    ),
    (
        "rolebinding: roleRef in another group",
        obj("RoleBinding", namespace="d", roleRef={**REF, "apiGroup": "x.io"}),
        [f'roleRef.apiGroup: Unsupported value: "x.io": {ONLY_RBAC}'],
    ),
    (
        "rolebinding: roleRef without a name",
        obj("RoleBinding", namespace="d", roleRef={"kind": "Role"}),
        ["roleRef.name: Required value"],
    ),
    (
        "rolebinding: roleRef name not a path segment",
        obj("RoleBinding", namespace="d", roleRef={"kind": "Role", "name": "a/b"}),
        ["roleRef.name: Invalid value: \"a/b\": may not contain '/'"],
    ),
    (
        "clusterrolebinding: to a Role",
        obj("ClusterRoleBinding", roleRef={"kind": "Role", "name": "r"}),
        ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'],
    ),
    (
        "clusterrolebinding: a service account needs a namespace",
        obj("ClusterRoleBinding", roleRef=REF, subjects=[{"kind": "ServiceAccount", "name": "sa"}]),
        ["subjects[0].namespace: Required value"],
    ),
    (
        "subject: unknown kind",
        obj("ClusterRoleBinding", roleRef=REF, subjects=[{"kind": "Robot", "name": "r"}]),
        [
            'subjects[0].kind: Unsupported value: "Robot": '
            'supported values: "ServiceAccount", "User", "Group"'
        ],
    ),
    (
        "subject: no name",
        obj("ClusterRoleBinding", roleRef=REF, subjects=[{"kind": "Group"}]),
        ["subjects[0].name: Required value"],
    ),
    (
        "subject: user in another group",
        obj(
            "ClusterRoleBinding",
            roleRef=REF,
            subjects=[{"kind": "User", "name": "u", "apiGroup": "x.io"}],
        ),
        [f'subjects[0].apiGroup: Unsupported value: "x.io": {ONLY_RBAC}'],
    ),
    (
        "subject: service account with an apiGroup",
        obj(
            "RoleBinding",
            namespace="d",
            roleRef=REF,
            subjects=[
                {"kind": "ServiceAccount", "name": "sa", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        ),
        [
            'subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": '
            'supported values: ""'
        ],
    ),
    (
        "subject: service account name not a DNS subdomain",
        obj(
            "RoleBinding",
            namespace="d",
            roleRef=REF,
            subjects=[{"kind": "ServiceAccount", "name": "Bad_SA"}],
        ),
        [f'subjects[0].name: Invalid value: "Bad_SA": {SUBDOMAIN}'],
    ),
    (
        "serviceaccount",
        obj(
            "ServiceAccount",
            "builder",
            "d",
            secrets=[{"name": "s"}],
            automountServiceAccountToken=False,
        ),
        [],
    ),
    (
        "serviceaccount: name not a DNS subdomain",
        obj("ServiceAccount", "system:x", "d"),
        [f'metadata.name: Invalid value: "system:x": {SUBDOMAIN}'],
    ),
]


def test_validate_table() -> None:
    for case, o, want in CREATE:
        assert messages(o) == want, case


DEFAULTS = [
    (
        "roleRef apiGroup",
        obj("RoleBinding", namespace="d", roleRef={"kind": "Role", "name": "r"}),
        "roleRef",
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
    ),
    (
        "clusterrolebinding roleRef apiGroup",
        obj("ClusterRoleBinding", roleRef={"kind": "ClusterRole", "name": "r"}),
        "roleRef",
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
    ),
    (
        "User and Group subjects get the RBAC group; ServiceAccount none",
        obj(
            "RoleBinding",
            namespace="d",
            roleRef=REF,
            subjects=[
                {"kind": "User", "name": "u"},
                {"kind": "Group", "name": "g"},
                {"kind": "ServiceAccount", "name": "s"},
            ],
        ),
        "subjects",
        [
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u"},
            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "g"},
            {"kind": "ServiceAccount", "name": "s"},
        ],
    ),
]


def test_defaults_table() -> None:
    for case, o, key, want in DEFAULTS:
        assert codec.encode_object(o)[key] == want, case


def test_role_ref_is_immutable() -> None:
    cases = [
        ("RoleBinding", "d", {"kind": "Role", "name": "r"}),
        ("ClusterRoleBinding", "", REF),
    ]
    for kind, ns, ref in cases:
        old = obj(kind, namespace=ns, roleRef=ref)
        old.metadata.resource_version = "1"
        same = obj(kind, namespace=ns, roleRef=ref, subjects=[{"kind": "User", "name": "u"}])
        same.metadata.resource_version = "1"
        assert validate_update(same, old) == [], kind
        changed = obj(kind, namespace=ns, roleRef={**ref, "name": "other"})
        changed.metadata.resource_version = "1"
        got = [f"{e.path}: {e.detail}" for e in validate_update(changed, old)]
        shown = f'{{"apiGroup":"rbac.authorization.k8s.io","kind":"{ref["kind"]}","name":"other"}}'
        assert got == [f"roleRef: Invalid value: {shown}: cannot change roleRef"], kind

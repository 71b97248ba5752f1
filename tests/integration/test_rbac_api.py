"""rbac.authorization.k8s.io/v1 and ServiceAccount served by a real API
server: each kind stored and read back, an invalid one refused with its
field named, roleRef immutable, the bootstrap policy present at start,
and kpyctl's create and get of them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import codec, errors
from kpy.api.core.v1 import ServiceAccount
from kpy.api.rbac.v1 import ClusterRole, ClusterRoleBinding, Role, RoleBinding
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

RBAC = "rbac.authorization.k8s.io/v1"
GROUP = "rbac.authorization.k8s.io"


def manifest(kind: str, name: str, **fields: Any) -> Any:
    api = "v1" if kind == "ServiceAccount" else RBAC
    return codec.decode_object(
        {"apiVersion": api, "kind": kind, "metadata": {"name": name}, **fields}
    )


async def test_each_kind_is_stored_and_read_back(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    cluster_name = f"{ns}:reader"  # cluster-scoped: the namespace keeps it unique
    rule = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
    subject = {"kind": "User", "name": "alice"}  # apiGroup defaulted by the server
    objects = [
        manifest("Role", "reader", rules=[rule]),
        manifest(
            "ClusterRole",
            cluster_name,
            rules=[rule, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
        ),
        manifest(
            "RoleBinding", "read", roleRef={"kind": "Role", "name": "reader"}, subjects=[subject]
        ),
        manifest(
            "ClusterRoleBinding",
            cluster_name,
            roleRef={"kind": "ClusterRole", "name": cluster_name},
            subjects=[{"kind": "ServiceAccount", "name": "builder", "namespace": ns}],
        ),
        manifest("ServiceAccount", "builder", automountServiceAccountToken=False),
    ]
    try:
        for obj in objects:
            await client.create(obj)
        role = await client.get(Role, "reader")
        assert list(role.rules[0].verbs) == ["get", "list"]
        cluster_role = await client.get(ClusterRole, cluster_name)
        assert list(cluster_role.rules[1].non_resource_urls) == ["/healthz"]
        binding = await client.get(RoleBinding, "read")
        assert (binding.role_ref.api_group, binding.subjects[0].api_group) == (GROUP, GROUP)
        crb = await client.get(ClusterRoleBinding, cluster_name)
        assert crb.subjects[0].namespace == ns
        sa = await client.get(ServiceAccount, "builder")
        assert sa.HasField("automount_service_account_token")
        assert not sa.automount_service_account_token

        crb.role_ref.name = "view"
        with pytest.raises(errors.Invalid) as caught:
            await client.update(crb)
        assert [c.path for c in caught.value.causes] == ["roleRef"]
        assert "cannot change roleRef" in caught.value.message
    finally:
        with contextlib.suppress(errors.NotFound):
            await client.delete(ClusterRoleBinding, cluster_name)
        with contextlib.suppress(errors.NotFound):
            await client.delete(ClusterRole, cluster_name)


INVALID = [
    (
        "a ClusterRoleBinding to a Role",
        manifest("ClusterRoleBinding", "bad", roleRef={"kind": "Role", "name": "r"}),
        "roleRef.kind",
    ),
    (
        "a Role with a non-resource URL",
        manifest("Role", "bad", rules=[{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]),
        "rules[0].nonResourceURLs",
    ),
    ("a Role named with a slash", manifest("Role", "a%2Fb"), "metadata.name"),
    (
        "a RoleBinding subject of an unknown kind",
        manifest(
            "RoleBinding",
            "bad",
            roleRef={"kind": "ClusterRole", "name": "view"},
            subjects=[{"kind": "Robot", "name": "r"}],
        ),
        "subjects[0].kind",
    ),
]


async def test_invalid_objects_are_refused_with_the_field(
    client: Client, api_namespace: str
) -> None:
    for case, obj, path in INVALID:
        with pytest.raises(errors.Invalid) as caught:
            await client.create(obj)
        assert path in [c.path for c in caught.value.causes], f"{case}: {caught.value.message}"
        assert path in caught.value.message, case


async def test_bootstrap_policy_is_there_at_start(client: Client) -> None:
    admin = await client.get(ClusterRole, "cluster-admin")
    assert list(admin.rules[0].verbs) == ["*"]
    edit = await client.get(ClusterRole, "edit")
    assert edit.metadata.labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    nodes = await client.get(ClusterRoleBinding, "system:node")
    assert (nodes.subjects[0].kind, nodes.subjects[0].name) == ("Group", "system:nodes")
    masters = await client.get(ClusterRoleBinding, "cluster-admin")
    assert masters.subjects[0].name == "system:masters"


async def test_kpyctl_create_and_get(apiserver: APIServerProcess, api_namespace: str) -> None:
    ns = api_namespace
    cluster_name = f"{ns}-viewer"
    created = [
        (
            ["create", "role", "pod-reader", "--verb=get,list", "--resource=pods"],
            "role.rbac.authorization.k8s.io/pod-reader created",
        ),
        (
            [
                "create",
                "rolebinding",
                "read",
                "--role=pod-reader",
                "--user=alice",
                f"--serviceaccount={ns}:builder",
            ],
            "rolebinding.rbac.authorization.k8s.io/read created",
        ),
        (["create", "serviceaccount", "builder"], "serviceaccount/builder created"),
        (
            [
                "create",
                "clusterrole",
                cluster_name,
                "--verb=get",
                "--resource=nodes",
                "--non-resource-url=/healthz",
            ],
            f"clusterrole.rbac.authorization.k8s.io/{cluster_name} created",
        ),
        (
            [
                "create",
                "clusterrolebinding",
                cluster_name,
                f"--clusterrole={cluster_name}",
                "--group=ops",
            ],
            f"clusterrolebinding.rbac.authorization.k8s.io/{cluster_name} created",
        ),
    ]
    try:
        for words, line in created:
            code, out, err = await kpyctl(apiserver, ns, *words)
            assert (code, out.strip()) == (0, line), err

        code, out, err = await kpyctl(apiserver, ns, "get", "rolebindings", "-o", "wide")
        assert code == 0, err
        header, row = (line.split() for line in out.strip().splitlines())
        assert header == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
        assert [row[0], row[1], row[3], row[4]] == [
            "read",
            "Role/pod-reader",
            "alice",
            f"{ns}/builder",
        ]

        code, out, err = await kpyctl(apiserver, ns, "get", "roles,sa")
        assert code == 0, err
        assert "role.rbac.authorization.k8s.io/pod-reader" in out
        assert any(
            line.split()[:2] == ["serviceaccount/builder", "0"] for line in out.splitlines()
        ), out

        code, out, err = await kpyctl(apiserver, ns, "get", "clusterrole", cluster_name)
        assert code == 0, err
        assert out.splitlines()[0].split() == ["NAME", "CREATED", "AT"]

        code, out, err = await kpyctl(apiserver, ns, "api-resources")
        assert code == 0, err
        listed = [" ".join(line.split()) for line in out.splitlines()]
        for expected in (
            f"roles {RBAC} true Role",
            f"clusterroles {RBAC} false ClusterRole",
            f"rolebindings {RBAC} true RoleBinding",
            f"clusterrolebindings {RBAC} false ClusterRoleBinding",
            "serviceaccounts sa v1 true ServiceAccount",
        ):
            assert expected in listed, expected

        code, _, err = await kpyctl(
            apiserver,
            ns,
            "create",
            "clusterrolebinding",
            "x",
            "--clusterrole=view",
            "--serviceaccount=builder",
        )
        assert code == 1
        assert "serviceaccount must be <namespace>:<name>" in err
    finally:
        for kind in ("clusterrolebinding", "clusterrole"):
            await kpyctl(apiserver, ns, "delete", kind, cluster_name)

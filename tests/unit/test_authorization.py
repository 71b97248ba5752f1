"""The API server's authorization glue (kpy.apiserver.authorization): the
request attributes of every gRPC method, Kubernetes' Forbidden messages,
and the reviews behind `kpyctl auth can-i` (impersonation included)."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api import errors
from kpy.apiserver.authorization import (
    attributes_for,
    default_mode,
    forbidden,
    review_subject,
)
from kpy.auth.attributes import Attributes, UserInfo
from kpy.rpc.apiserver import v1 as api

CLUSTER_SCOPED = {("", "nodes"), ("", "namespaces"), ("rbac.authorization.k8s.io", "clusterroles")}


def namespaced(group: str, resource: str) -> bool:
    return (group, resource) not in CLUSTER_SCOPED


def ref(resource: str, namespace: str = "", name: str = "", group: str = "", sub: str = "") -> Any:
    return api.ResourceRef(
        group=group,
        version="v1",
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=sub,
    )


def A(
    verb: str, resource: str, sub: str = "", ns: str = "", name: str = "", group: str = ""
) -> Attributes:
    return Attributes(verb, group, resource, sub, ns, name)


# (case, method, request, attributes, field selector)
CASES: list[tuple[str, str, Any, Attributes | None, str]] = [
    (
        "get",
        "Get",
        api.GetRequest(ref=ref("pods", "dev", "web")),
        A("get", "pods", ns="dev", name="web"),
        "",
    ),
    (
        "get defaults to default",
        "Get",
        api.GetRequest(ref=ref("pods", "", "web")),
        A("get", "pods", ns="default", name="web"),
        "",
    ),
    (
        "get cluster-scoped",
        "Get",
        api.GetRequest(ref=ref("nodes", "", "n1")),
        A("get", "nodes", name="n1"),
        "",
    ),
    (
        "get status",
        "Get",
        api.GetRequest(ref=ref("deployments", "dev", "d", "apps", "status")),
        A("get", "deployments", "status", "dev", "d", "apps"),
        "",
    ),
    (
        "list in a namespace",
        "List",
        api.ListRequest(ref=ref("pods", "dev")),
        A("list", "pods", ns="dev"),
        "",
    ),
    ("list all namespaces", "List", api.ListRequest(ref=ref("pods")), A("list", "pods"), ""),
    (
        "list by name",
        "List",
        api.ListRequest(ref=ref("secrets", "dev"), field_selector="metadata.name=s"),
        A("list", "secrets", ns="dev", name="s"),
        "metadata.name=s",
    ),
    (
        "watch by node",
        "Watch",
        api.WatchRequest(ref=ref("pods"), field_selector="spec.nodeName=n1"),
        A("watch", "pods"),
        "spec.nodeName=n1",
    ),
    (
        "create",
        "Create",
        api.CreateRequest(ref=ref("pods", "dev")),
        A("create", "pods", ns="dev"),
        "",
    ),
    (
        "create binding",
        "Create",
        api.CreateRequest(ref=ref("pods", "dev", "web", sub="binding")),
        A("create", "pods", "binding", "dev", "web"),
        "",
    ),
    (
        "create eviction",
        "Create",
        api.CreateRequest(ref=ref("pods", "dev", "web", sub="eviction")),
        A("create", "pods", "eviction", "dev", "web"),
        "",
    ),
    (
        "update",
        "Update",
        api.UpdateRequest(ref=ref("pods", "dev", "web")),
        A("update", "pods", ns="dev", name="web"),
        "",
    ),
    (
        "update scale",
        "Update",
        api.UpdateRequest(ref=ref("deployments", "dev", "d", "apps", "scale")),
        A("update", "deployments", "scale", "dev", "d", "apps"),
        "",
    ),
    (
        "patch status",
        "Patch",
        api.PatchRequest(ref=ref("pods", "dev", "web", sub="status")),
        A("patch", "pods", "status", "dev", "web"),
        "",
    ),
    (
        "delete",
        "Delete",
        api.DeleteRequest(ref=ref("pods", "dev", "web")),
        A("delete", "pods", ns="dev", name="web"),
        "",
    ),
    (
        "deletecollection",
        "DeleteCollection",
        api.DeleteCollectionRequest(ref=ref("pods", "dev"), field_selector="metadata.name=x"),
        A("deletecollection", "pods", ns="dev"),
        "metadata.name=x",
    ),
    (
        "logs",
        "Logs",
        api.LogRequest(ref=ref("pods", "dev", "web")),
        A("get", "pods", "log", "dev", "web"),
        "",
    ),
    (
        "logs default ns",
        "Logs",
        api.LogRequest(ref=ref("pods", "", "web")),
        A("get", "pods", "log", "default", "web"),
        "",
    ),
    (
        "exec",
        "Exec",
        api.ExecRequest(ref=ref("pods", "dev", "web")),
        A("create", "pods", "exec", "dev", "web"),
        "",
    ),
    (
        "port-forward",
        "PortForward",
        api.PortForwardRequest(ref=ref("pods", "dev", "web")),
        A("create", "pods", "portforward", "dev", "web"),
        "",
    ),
    (
        "stats of a node",
        "Stats",
        api.StatsRequest(node="n1"),
        A("get", "nodes", "stats", name="n1"),
        "",
    ),
    ("stats of all", "Stats", api.StatsRequest(), A("get", "nodes", "stats"), ""),
    (
        "a batch of events (each item is authorised by the handler)",
        "CreateEvents",
        api.CreateEventsRequest(),
        A("create", "events"),
        "",
    ),
    ("discovery", "Resources", api.ResourcesRequest(), None, ""),
    ("whoami", "SelfSubjectReview", api.SelfSubjectReviewRequest(), None, ""),
    ("can-i", "SelfSubjectAccessReview", api.AccessReviewRequest(), None, ""),
    ("can-i --list", "SelfSubjectRulesReview", api.RulesReviewRequest(), None, ""),
]


def test_attributes_of_every_method() -> None:
    served = set(api.DESCRIPTOR.services_by_name["API"].methods_by_name)
    assert served == {method for _, method, _, _, _ in CASES}, "a method without a case"
    for case, method, request, want, selector in CASES:
        got = attributes_for(method, request, namespaced)
        if want is None:
            assert got is None, case
            continue
        assert got is not None, case
        assert got.attributes == want, f"{case}: {got.attributes}"
        assert got.field_selector == selector, case


JANE = UserInfo("jane", ("system:authenticated",))

MESSAGES = [
    (
        "list in a namespace",
        A("list", "pods", ns="dev"),
        'pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the '
        'namespace "dev"',
    ),
    (
        "get by name",
        A("get", "secrets", ns="dev", name="db"),
        'secrets "db" is forbidden: User "jane" cannot get resource "secrets" in API group "" '
        'in the namespace "dev"',
    ),
    (
        "cluster scope, group",
        A("create", "clusterroles", group="rbac.authorization.k8s.io"),
        'clusterroles.rbac.authorization.k8s.io is forbidden: User "jane" cannot create resource '
        '"clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope',
    ),
    (
        "subresource",
        A("create", "pods", "exec", "dev", "web"),
        'pods "web" is forbidden: User "jane" cannot create resource "pods/exec" in API group "" '
        'in the namespace "dev"',
    ),
]


def test_forbidden_messages() -> None:
    for case, attributes, want in MESSAGES:
        error = forbidden(attributes, attributes.describe(JANE))
        assert isinstance(error, errors.Forbidden), case
        assert error.message == want, case


def test_default_mode() -> None:
    assert default_mode(True) == "Node,RBAC"
    assert default_mode(False) == "AlwaysAllow"


class _Chain:
    """Stands in for `Authorization`: allows what `allowed` lists."""

    def __init__(self, allowed: set[tuple[str, str, str]]) -> None:
        self.allowed = allowed

    def decide(self, user: UserInfo, a: Attributes, field_selector: str = "") -> Any:
        from kpy.auth.attributes import Decision

        ok = (a.verb, a.resource, a.name) in self.allowed
        return Decision(ok, "ok" if ok else a.describe(user))


def test_impersonation() -> None:
    may = _Chain({("impersonate", "users", "bob"), ("impersonate", "groups", "dev")})
    no_groups = _Chain({("impersonate", "users", "bob")})
    cases: list[tuple[str, Any, api.Impersonation, UserInfo | str]] = [
        ("no impersonation", may, api.Impersonation(), JANE),
        (
            "user",
            may,
            api.Impersonation(user="bob"),
            UserInfo("bob", ("system:authenticated",)),
        ),
        (
            "user and group",
            may,
            api.Impersonation(user="bob", groups=["dev"]),
            UserInfo("bob", ("dev", "system:authenticated")),
        ),
        (
            "a group it may not impersonate",
            no_groups,
            api.Impersonation(user="bob", groups=["dev"]),
            'groups "dev" is forbidden: User "jane" cannot impersonate resource "groups"',
        ),
        (
            "a user it may not impersonate",
            _Chain(set()),
            api.Impersonation(user="bob"),
            'users "bob" is forbidden: User "jane" cannot impersonate resource "users"',
        ),
        ("groups without a user", may, api.Impersonation(groups=["dev"]), "needs a user"),
    ]
    for case, authorizer, impersonate, want in cases:
        if isinstance(want, UserInfo):
            assert review_subject(authorizer, JANE, impersonate) == want, case
            continue
        with pytest.raises(errors.StatusError) as raised:
            review_subject(authorizer, JANE, impersonate)
        assert want in raised.value.message, f"{case}: {raised.value.message}"


def test_authorization_mode_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from kpy.apiserver import main as apiserver_main

    parser = apiserver_main._parser()
    for mode in ("AlwaysAllow", "Node,RBAC", "RBAC"):
        assert parser.parse_args(["--authorization-mode", mode]).authorization_mode == mode
    assert parser.parse_args([]).authorization_mode is None  # default_mode decides
    with pytest.raises(SystemExit):
        parser.parse_args(["--authorization-mode", "Webhook"])
    assert "invalid choice: 'Webhook'" in capsys.readouterr().err

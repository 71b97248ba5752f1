"""The RBAC evaluator (kpy.auth.rbac), as Kubernetes' RBAC authorizer
decides: one table of (policy, user, request) cases, each with its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kpy.api import codec
from kpy.auth.attributes import Attributes, UserInfo, service_account_user
from kpy.auth.policy import StaticPolicy, effective_rules
from kpy.auth.rbac import RBACAuthorizer

if TYPE_CHECKING:
    from google.protobuf.message import Message

RBAC = "rbac.authorization.k8s.io/v1"


def rule(verbs: str, resources: str = "", groups: str = "", names: str = "", urls: str = "") -> Any:
    """A PolicyRule from comma-separated lists ("" as groups is the core group)."""
    out: dict[str, Any] = {"verbs": verbs.split(",")}
    if urls:
        out["nonResourceURLs"] = urls.split(",")
    else:
        out["apiGroups"] = groups.split(",")
        out["resources"] = resources.split(",")
    if names:
        out["resourceNames"] = names.split(",")
    return out


def role(name: str, *rules: Any, namespace: str = "") -> Message:
    kind = "Role" if namespace else "ClusterRole"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return codec.decode_object(
        {"apiVersion": RBAC, "kind": kind, "metadata": meta, "rules": list(rules)}
    )


def aggregated(
    name: str, selector: dict[str, str], labels: dict[str, str] | None = None
) -> Message:
    return codec.decode_object(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels or {}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": selector}]},
        }
    )


def labelled(name: str, labels: dict[str, str], *rules: Any) -> Message:
    return codec.decode_object(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": list(rules),
        }
    )


def subject(text: str) -> dict[str, str]:
    """`User:alice`, `Group:devs`, `ServiceAccount:ns/name` or `ServiceAccount:name`."""
    kind, _, name = text.partition(":")
    if kind == "ServiceAccount":
        ns, _, sa = name.rpartition("/")
        return {"kind": kind, "name": sa, **({"namespace": ns} if ns else {})}
    return {"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name}


def binding(name: str, ref: str, *subjects: str, namespace: str = "") -> Message:
    """`ref` is `Role/NAME` or `ClusterRole/NAME`; a namespace makes a RoleBinding."""
    kind, _, ref_name = ref.partition("/")
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return codec.decode_object(
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": ref_name},
            "subjects": [subject(s) for s in subjects],
        }
    )


ALICE = UserInfo("alice", ("devs", "system:authenticated"))
BOB = UserInfo("bob")
BUILDER = service_account_user("ci", "builder")


def get(
    resource: str, namespace: str = "", name: str = "", group: str = "", verb: str = "get"
) -> Attributes:
    res, _, sub = resource.partition("/")
    return Attributes(
        verb=verb, api_group=group, resource=res, subresource=sub, namespace=namespace, name=name
    )


@dataclass
class Case:
    name: str
    policy: list[Message]
    user: UserInfo
    request: Attributes
    allowed: bool
    reason: str = ""  # a part of the decision's reason, when the case checks it


READ_PODS = role("pod-reader", rule("get,list,watch", "pods"))
READ_PODS_NS = role("pod-reader", rule("get,list,watch", "pods"), namespace="dev")

CASES = [
    Case(
        "no bindings: denied",
        [READ_PODS],
        ALICE,
        get("pods", "dev", "web"),
        False,
        'User "alice" cannot get resource "pods" in API group "" in the namespace "dev"',
    ),
    Case(
        "cluster role binding applies in any namespace",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "User:alice")],
        ALICE,
        get("pods", "prod", "web"),
        True,
        'RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "pod-reader" to User "alice"',
    ),
    Case(
        "cluster role binding applies at the cluster scope",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "User:alice")],
        ALICE,
        get("pods", verb="list"),
        True,
    ),
    Case(
        "binding to another user: denied",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "User:bob")],
        ALICE,
        get("pods", "dev"),
        False,
    ),
    Case(
        "group subject",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "Group:devs")],
        ALICE,
        get("pods", "dev", "web"),
        True,
        'to Group "devs"',
    ),
    Case(
        "group the user is not in: denied",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "Group:devs")],
        BOB,
        get("pods", "dev", "web"),
        False,
    ),
    Case(
        "role binding applies in its namespace",
        [READ_PODS_NS, binding("b", "Role/pod-reader", "User:alice", namespace="dev")],
        ALICE,
        get("pods", "dev", "web"),
        True,
        'RBAC: allowed by RoleBinding "b/dev" of Role "pod-reader" to User "alice"',
    ),
    Case(
        "role binding does not apply in another namespace",
        [READ_PODS_NS, binding("b", "Role/pod-reader", "User:alice", namespace="dev")],
        ALICE,
        get("pods", "prod", "web"),
        False,
    ),
    Case(
        "role binding does not apply at the cluster scope",
        [READ_PODS_NS, binding("b", "Role/pod-reader", "User:alice", namespace="dev")],
        ALICE,
        get("pods", verb="list"),
        False,
    ),
    Case(
        "role binding to a cluster role grants it in the namespace only",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "User:alice", namespace="dev")],
        ALICE,
        get("pods", "dev", "web"),
        True,
    ),
    Case(
        "role binding to a cluster role: not in another namespace",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "User:alice", namespace="dev")],
        ALICE,
        get("pods", "prod", "web"),
        False,
    ),
    Case(
        "role binding reads the Role of its own namespace",
        [
            role("pod-reader", rule("get", "pods"), namespace="prod"),
            binding("b", "Role/pod-reader", "User:alice", namespace="dev"),
        ],
        ALICE,
        get("pods", "dev", "web"),
        False,
        'role.rbac.authorization.k8s.io "pod-reader" not found',
    ),
    Case(
        "binding to a missing cluster role: denied, named",
        [binding("b", "ClusterRole/gone", "User:alice")],
        ALICE,
        get("pods", "dev"),
        False,
        'clusterrole.rbac.authorization.k8s.io "gone" not found',
    ),
    Case(
        "verb not in the rule: denied",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "User:alice")],
        ALICE,
        get("pods", "dev", "web", verb="delete"),
        False,
    ),
    Case(
        "wrong API group: denied",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "User:alice")],
        ALICE,
        get("pods", "dev", "web", group="apps"),
        False,
    ),
    Case(
        "wildcard verb",
        [role("r", rule("*", "pods")), binding("b", "ClusterRole/r", "User:alice")],
        ALICE,
        get("pods", "dev", "web", verb="deletecollection"),
        True,
    ),
    Case(
        "wildcard resource covers subresources",
        [role("r", rule("create", "*")), binding("b", "ClusterRole/r", "User:alice")],
        ALICE,
        get("pods/exec", "dev", "web", verb="create"),
        True,
    ),
    Case(
        "wildcard API group",
        [role("r", rule("get", "deployments", "*")), binding("b", "ClusterRole/r", "User:alice")],
        ALICE,
        get("deployments", "dev", "web", group="apps"),
        True,
    ),
    Case(
        "resource in another group: denied",
        [
            role("r", rule("get", "deployments", "apps")),
            binding("b", "ClusterRole/r", "User:alice"),
        ],
        ALICE,
        get("deployments", "dev", "web", group="extensions"),
        False,
    ),
    Case(
        "pods does not grant pods/exec",
        [role("r", rule("*", "pods")), binding("b", "ClusterRole/r", "User:alice")],
        ALICE,
        get("pods/exec", "dev", "web", verb="create"),
        False,
    ),
    Case(
        "pods/exec grants exec",
        [role("r", rule("create", "pods/exec")), binding("b", "ClusterRole/r", "User:alice")],
        ALICE,
        get("pods/exec", "dev", "web", verb="create"),
        True,
    ),
    Case(
        "pods/exec does not grant pods",
        [role("r", rule("get", "pods/exec")), binding("b", "ClusterRole/r", "User:alice")],
        ALICE,
        get("pods", "dev", "web"),
        False,
    ),
    Case(
        "*/scale grants every scale subresource",
        [role("r", rule("get", "*/scale", "*")), binding("b", "ClusterRole/r", "User:alice")],
        ALICE,
        get("deployments/scale", "dev", "web", group="apps"),
        True,
    ),
    Case(
        "*/scale does not grant the resource itself",
        [role("r", rule("get", "*/scale", "*")), binding("b", "ClusterRole/r", "User:alice")],
        ALICE,
        get("deployments", "dev", "web", group="apps"),
        False,
    ),
    Case(
        "resourceNames: the named object",
        [
            role("r", rule("get,update", "configmaps", names="app")),
            binding("b", "ClusterRole/r", "User:alice"),
        ],
        ALICE,
        get("configmaps", "dev", "app"),
        True,
    ),
    Case(
        "resourceNames: another object: denied",
        [
            role("r", rule("get,update", "configmaps", names="app")),
            binding("b", "ClusterRole/r", "User:alice"),
        ],
        ALICE,
        get("configmaps", "dev", "other"),
        False,
    ),
    Case(
        "resourceNames: list has no name: denied",
        [
            role("r", rule("list", "configmaps", names="app")),
            binding("b", "ClusterRole/r", "User:alice"),
        ],
        ALICE,
        get("configmaps", "dev", verb="list"),
        False,
    ),
    Case(
        "resourceNames: watch has no name: denied",
        [
            role("r", rule("watch", "configmaps", names="app")),
            binding("b", "ClusterRole/r", "User:alice"),
        ],
        ALICE,
        get("configmaps", "dev", verb="watch"),
        False,
    ),
    Case(
        "resourceNames: create without a name: denied",
        [
            role("r", rule("create", "configmaps", names="app")),
            binding("b", "ClusterRole/r", "User:alice"),
        ],
        ALICE,
        get("configmaps", "dev", verb="create"),
        False,
    ),
    Case(
        "service account subject: its user",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "ServiceAccount:ci/builder")],
        BUILDER,
        get("pods", "dev", "web"),
        True,
        'to ServiceAccount "builder/ci"',
    ),
    Case(
        "service account subject: same name, other namespace: denied",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "ServiceAccount:prod/builder")],
        BUILDER,
        get("pods", "dev", "web"),
        False,
    ),
    Case(
        "service account subject takes the role binding's namespace",
        [
            READ_PODS,
            binding("b", "ClusterRole/pod-reader", "ServiceAccount:builder", namespace="ci"),
        ],
        BUILDER,
        get("pods", "ci", "web"),
        True,
        'to ServiceAccount "builder/ci"',
    ),
    Case(
        "service account subject without a namespace in a cluster binding: matches nothing",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "ServiceAccount:builder")],
        BUILDER,
        get("pods", "ci", "web"),
        False,
    ),
    Case(
        "service account is not matched by a User subject of its short name",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "User:builder")],
        BUILDER,
        get("pods", "ci", "web"),
        False,
    ),
    Case(
        "group of every service account",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "Group:system:serviceaccounts")],
        BUILDER,
        get("pods", "dev", "web"),
        True,
    ),
    Case(
        "group of one namespace's service accounts",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "Group:system:serviceaccounts:ci")],
        BUILDER,
        get("pods", "dev", "web"),
        True,
    ),
    Case(
        "group of another namespace's service accounts: denied",
        [READ_PODS, binding("b", "ClusterRole/pod-reader", "Group:system:serviceaccounts:prod")],
        BUILDER,
        get("pods", "dev", "web"),
        False,
    ),
    Case(
        "non-resource URL: exact",
        [role("r", rule("get", urls="/healthz")), binding("b", "ClusterRole/r", "Group:devs")],
        ALICE,
        Attributes.non_resource("get", "/healthz"),
        True,
    ),
    Case(
        "non-resource URL: prefix with *",
        [role("r", rule("get", urls="/apis/*")), binding("b", "ClusterRole/r", "Group:devs")],
        ALICE,
        Attributes.non_resource("get", "/apis/apps/v1"),
        True,
    ),
    Case(
        "non-resource URL: other path: denied",
        [role("r", rule("get", urls="/healthz")), binding("b", "ClusterRole/r", "Group:devs")],
        ALICE,
        Attributes.non_resource("get", "/metrics"),
        False,
        'User "alice" cannot get path "/metrics"',
    ),
    Case(
        "non-resource URL: other verb: denied",
        [role("r", rule("get", urls="*")), binding("b", "ClusterRole/r", "Group:devs")],
        ALICE,
        Attributes.non_resource("post", "/healthz"),
        False,
    ),
    Case(
        "resource rule does not grant a URL",
        [role("r", rule("*", "*", "*")), binding("b", "ClusterRole/r", "Group:devs")],
        ALICE,
        Attributes.non_resource("get", "/healthz"),
        False,
    ),
    Case(
        "aggregated role has the selected roles' rules",
        [
            aggregated("agg", {"x/agg": "true"}),
            labelled("part", {"x/agg": "true"}, rule("get", "secrets")),
            binding("b", "ClusterRole/agg", "User:alice"),
        ],
        ALICE,
        get("secrets", "dev", "s"),
        True,
    ),
    Case(
        "aggregated role: unselected role's rules: denied",
        [
            aggregated("agg", {"x/agg": "true"}),
            labelled("part", {"x/other": "true"}, rule("get", "secrets")),
            binding("b", "ClusterRole/agg", "User:alice"),
        ],
        ALICE,
        get("secrets", "dev", "s"),
        False,
    ),
    Case(
        "aggregation is transitive",
        [
            aggregated("top", {"x/top": "true"}),
            aggregated("mid", {"x/mid": "true"}, {"x/top": "true"}),
            labelled("leaf", {"x/mid": "true"}, rule("delete", "pods")),
            binding("b", "ClusterRole/top", "User:alice"),
        ],
        ALICE,
        get("pods", "dev", "p", verb="delete"),
        True,
    ),
    Case(
        "aggregation cycle ends",
        [
            aggregated("a", {"x/a": "true"}, {"x/b": "true"}),
            aggregated("b", {"x/b": "true"}, {"x/a": "true"}),
            binding("bind", "ClusterRole/a", "User:alice"),
        ],
        ALICE,
        get("pods", "dev", "p"),
        False,
    ),
]


def test_authorize_table() -> None:
    for case in CASES:
        decision = RBACAuthorizer(StaticPolicy(case.policy)).authorize(case.user, case.request)
        assert decision.allowed is case.allowed, f"{case.name}: {decision}"
        assert case.reason in decision.reason, f"{case.name}: {decision.reason!r}"


def _rule_texts(rules: Any) -> list[str]:
    return sorted(
        f"{','.join(r.verbs)} {','.join(r.resources or r.non_resource_urls)}" for r in rules
    )


RULES_FOR = [
    (
        "cluster binding and role binding in the namespace",
        "dev",
        ["get,list,watch pods", "update configmaps"],
        (),
    ),
    ("only cluster bindings at the cluster scope", "", ["get,list,watch pods"], ()),
    ("another namespace's role bindings do not count", "prod", ["get,list,watch pods"], ()),
]


def test_rules_for_table() -> None:
    policy = StaticPolicy(
        [
            READ_PODS,
            role("cm-writer", rule("update", "configmaps"), namespace="dev"),
            binding("a", "ClusterRole/pod-reader", "User:alice"),
            binding("b", "Role/cm-writer", "Group:devs", namespace="dev"),
            binding("c", "Role/missing", "User:bob", namespace="dev"),
        ]
    )
    authorizer = RBACAuthorizer(policy)
    for name, namespace, want, errors in RULES_FOR:
        got = authorizer.rules_for(ALICE, namespace)
        assert _rule_texts(got.rules) == want, name
        assert got.errors == errors, name
    missing = authorizer.rules_for(BOB, "dev")
    assert missing.rules == ()
    assert missing.errors == ('role.rbac.authorization.k8s.io "missing" not found',)


def test_effective_rules_keeps_each_rule_once() -> None:
    same = rule("get", "pods")
    policy = StaticPolicy(
        [
            aggregated("agg", {"x/agg": "true"}),
            labelled("one", {"x/agg": "true"}, same),
            labelled("two", {"x/agg": "true"}, same, rule("list", "pods")),
        ]
    )
    agg = policy.cluster_role("agg")
    assert agg is not None
    assert _rule_texts(effective_rules(agg, policy)) == ["get pods", "list pods"]

"""The roles and bindings every cluster starts with (Kubernetes'
plugin/pkg/auth/authorizer/rbac/bootstrappolicy), and `ensure_policy`,
which stores those that are missing when the API server starts.

- `cluster-admin` may do anything; `system:masters` is bound to it.
- `admin`, `edit` and `view` are aggregated, as in Kubernetes: `view`
  gathers the ClusterRoles labelled `aggregate-to-view`, `edit` those
  labelled `aggregate-to-edit` (view is one), `admin` those labelled
  `aggregate-to-admin` (edit is one). `system:aggregate-to-*` hold the
  rules for kpy's built-in kinds; a CRD's author adds their own by label.
  Only `edit` and above read Secrets.
- `system:basic-user` and `system:discovery` are granted to every
  authenticated user.
- kpy's own components each get exactly what their code calls (read in
  kpy/controllers, kpy/scheduler, kpy/agent, kpy/proxy, kpy/dns; the table
  in tests/unit/test_rbac_bootstrap_policy.py lists those calls):
  `system:kube-controller-manager`, `system:kube-scheduler`, `system:node`
  (the `system:nodes` group; only services and events: the node
  authorizer grants the rest, per node), `system:node-proxier` (`system:kube-proxy`)
  and `system:kube-dns` (the ServiceAccount kube-system/kube-dns);
  `system:kpy-ingress` (kpy-ingress) and `system:kpy-simulated-nodes` (the
  one agent of many simulated nodes, see its role for why it is not a node).

Every object carries the label `kubernetes.io/bootstrapping:
rbac-defaults`. `ensure_policy` only creates: a role an operator changed
is left as they left it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

from kpy.api import errors
from kpy.api.rbac import GROUP_KIND, GROUP_NAME, SERVICE_ACCOUNT_KIND, USER_KIND
from kpy.api.rbac.v1 import ClusterRole, ClusterRoleBinding, PolicyRule, Subject

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from google.protobuf.message import Message

__all__ = [
    "AGGREGATE_TO_ADMIN",
    "AGGREGATE_TO_EDIT",
    "AGGREGATE_TO_VIEW",
    "BOOTSTRAPPING_LABEL",
    "cluster_role_bindings",
    "cluster_roles",
    "ensure_policy",
    "policy",
]

BOOTSTRAPPING_LABEL: Final = ("kubernetes.io/bootstrapping", "rbac-defaults")
AGGREGATE_TO_ADMIN: Final = "rbac.authorization.k8s.io/aggregate-to-admin"
AGGREGATE_TO_EDIT: Final = "rbac.authorization.k8s.io/aggregate-to-edit"
AGGREGATE_TO_VIEW: Final = "rbac.authorization.k8s.io/aggregate-to-view"

_READ: Final = ("get", "list", "watch")
_WRITE: Final = ("create", "delete", "deletecollection", "patch", "update")
_CONTROLLER_MANAGER_LEASE: Final = "kpy-controller-manager"
_SCHEDULER_LEASE: Final = "kpy-scheduler"


def _rule(
    verbs: tuple[str, ...],
    groups: tuple[str, ...],
    resources: tuple[str, ...],
    names: tuple[str, ...] = (),
) -> PolicyRule:
    return PolicyRule(verbs=verbs, api_groups=groups, resources=resources, resource_names=names)


def _urls(verbs: tuple[str, ...], urls: tuple[str, ...]) -> PolicyRule:
    return PolicyRule(verbs=verbs, non_resource_urls=urls)


def _role(
    name: str,
    rules: list[PolicyRule],
    *,
    labels: dict[str, str] | None = None,
    aggregate_from: str = "",
) -> ClusterRole:
    role = ClusterRole(rules=rules)
    role.metadata.name = name
    role.metadata.labels[BOOTSTRAPPING_LABEL[0]] = BOOTSTRAPPING_LABEL[1]
    role.metadata.labels.update(labels or {})
    role.metadata.annotations["rbac.authorization.kubernetes.io/autoupdate"] = "true"
    if aggregate_from:
        role.aggregation_rule.cluster_role_selectors.add().match_labels[aggregate_from] = "true"
    return role


def _leader_election(lease: str) -> list[PolicyRule]:
    """A leader's Lease in kube-system (kpy.component): created once, then
    read and renewed by name."""
    return [
        _rule(("create",), ("coordination.k8s.io",), ("leases",)),
        _rule(("get", "update"), ("coordination.k8s.io",), ("leases",), (lease,)),
    ]


def _view_rules() -> list[PolicyRule]:
    """Reading the workloads of a namespace, never its Secrets (a
    ServiceAccount token would let a viewer act as that account)."""
    return [
        _rule(
            _READ,
            ("",),
            (
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "events",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "namespaces",
                "namespaces/status",
            ),
        ),
        _rule(_READ, ("discovery.k8s.io",), ("endpointslices",)),
        _rule(
            _READ,
            ("apps",),
            (
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ),
        ),
        _rule(
            _READ, ("autoscaling",), ("horizontalpodautoscalers", "horizontalpodautoscalers/status")
        ),
        _rule(_READ, ("batch",), ("cronjobs", "cronjobs/status", "jobs", "jobs/status")),
        _rule(_READ, ("policy",), ("poddisruptionbudgets", "poddisruptionbudgets/status")),
        _rule(_READ, ("networking.k8s.io",), ("ingresses", "ingresses/status")),
    ]


def _edit_rules() -> list[PolicyRule]:
    """Writing the workloads of a namespace, Secrets, and exec and
    port-forward into its pods; not its roles and bindings."""
    return [
        _rule(_READ, ("",), ("pods/attach", "pods/exec", "pods/portforward", "secrets")),
        _rule(
            _WRITE,
            ("",),
            ("pods", "pods/attach", "pods/exec", "pods/portforward"),
        ),
        _rule(("create",), ("",), ("pods/eviction", "serviceaccounts/token")),
        _rule(
            _WRITE,
            ("",),
            (
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
            ),
        ),
        _rule(
            _WRITE,
            ("apps",),
            (
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ),
        ),
        _rule(_WRITE, ("autoscaling",), ("horizontalpodautoscalers",)),
        _rule(_WRITE, ("batch",), ("cronjobs", "jobs")),
        _rule(_WRITE, ("policy",), ("poddisruptionbudgets",)),
        _rule(_WRITE, ("networking.k8s.io",), ("ingresses",)),
    ]


def _admin_rules() -> list[PolicyRule]:
    """Granting access within a namespace: its Roles and RoleBindings."""
    return [
        _rule(("create",), ("authorization.k8s.io",), ("localsubjectaccessreviews",)),
        _rule((*_WRITE, *_READ), (GROUP_NAME,), ("rolebindings", "roles")),
    ]


def _user_facing() -> list[ClusterRole]:
    return [
        _role("cluster-admin", [_rule(("*",), ("*",), ("*",)), _urls(("*",), ("*",))]),
        _role("admin", [], aggregate_from=AGGREGATE_TO_ADMIN),
        _role("edit", [], labels={AGGREGATE_TO_ADMIN: "true"}, aggregate_from=AGGREGATE_TO_EDIT),
        _role("view", [], labels={AGGREGATE_TO_EDIT: "true"}, aggregate_from=AGGREGATE_TO_VIEW),
        _role("system:aggregate-to-admin", _admin_rules(), labels={AGGREGATE_TO_ADMIN: "true"}),
        _role("system:aggregate-to-edit", _edit_rules(), labels={AGGREGATE_TO_EDIT: "true"}),
        _role("system:aggregate-to-view", _view_rules(), labels={AGGREGATE_TO_VIEW: "true"}),
        _role(
            "system:basic-user",
            [
                _rule(
                    ("create",),
                    ("authorization.k8s.io",),
                    ("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
                )
            ],
        ),
        _role(
            "system:discovery",
            [
                _urls(
                    ("get",),
                    (
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ),
                )
            ],
        ),
    ]


def _components() -> list[ClusterRole]:
    return [
        # One process runs every controller; the garbage collector and the
        # namespace controller walk every kind (custom ones too), reading,
        # patching away ownerReferences and deleting, so those verbs are
        # granted on "*". It creates only the kinds its controllers make.
        _role(
            "system:kube-controller-manager",
            [
                _rule((*_READ, "delete", "deletecollection", "patch", "update"), ("*",), ("*",)),
                _rule(
                    ("create",),
                    ("",),
                    ("pods", "persistentvolumeclaims", "persistentvolumes", "endpoints"),
                ),
                # Each namespace's `default` ServiceAccount and kube-root-ca.crt ConfigMap.
                _rule(("create",), ("",), ("serviceaccounts", "configmaps")),
                _rule(("create",), ("apps",), ("replicasets", "controllerrevisions")),
                _rule(("create",), ("batch",), ("jobs",)),
                _rule(("create",), ("discovery.k8s.io",), ("endpointslices",)),
                _rule(("create",), ("",), ("events",)),  # kpy.events (update, patch: above)
                *_leader_election(_CONTROLLER_MANAGER_LEASE),
            ],
        ),
        _role(
            "system:kube-scheduler",
            [
                _rule(
                    _READ,
                    ("",),
                    (
                        "namespaces",
                        "nodes",
                        "persistentvolumeclaims",
                        "persistentvolumes",
                        "pods",
                        "replicationcontrollers",
                        "services",
                    ),
                ),
                _rule(_READ, ("apps",), ("replicasets", "statefulsets")),
                _rule(_READ, ("storage.k8s.io",), ("storageclasses",)),
                _rule(("create",), ("",), ("pods/binding",)),
                _rule(("delete",), ("",), ("pods",)),  # preemption
                _rule(("patch", "update"), ("",), ("pods/status",)),
                _rule(("patch",), ("",), ("persistentvolumeclaims",)),  # the selected node
                _rule(("update",), ("",), ("persistentvolumes",)),  # binding a volume
                _rule(("create", "update", "patch"), ("",), ("events",)),  # kpy.events
                *_leader_election(_SCHEDULER_LEASE),
            ],
        ),
        # Only what no node's graph governs: the node authorizer
        # (kpy.auth.node) alone grants a node its pods, their Secrets,
        # ConfigMaps, claims and volumes, its own Node and its own Lease,
        # so that no node reads or writes another's. (Under
        # --authorization-mode=RBAC, without the node authorizer, an agent
        # needs a binding of its own, as in Kubernetes.)
        _role(
            "system:node",
            [
                _rule(_READ, ("",), ("services",)),  # service environment variables
                _rule(("create", "update", "patch"), ("",), ("events",)),
            ],
        ),
        _role(
            "system:node-proxier",
            [
                _rule(("list", "watch"), ("",), ("services",)),
                _rule(("list", "watch"), ("discovery.k8s.io",), ("endpointslices",)),
                _rule(("get",), ("",), ("nodes",)),
            ],
        ),
        _role(
            "system:kube-dns",
            [
                _rule(("list", "watch"), ("",), ("services", "pods")),
                _rule(("list", "watch"), ("discovery.k8s.io",), ("endpointslices",)),
            ],
        ),
        # kpy-ingress (as ingress-nginx's ClusterRole): the Ingresses of its
        # class, the Services and endpoints they route to, the TLS Secrets
        # they name, and the Ingresses' status (their address).
        _role(
            "system:kpy-ingress",
            [
                _rule(("list", "watch"), ("",), ("services", "secrets")),
                _rule(("list", "watch"), ("discovery.k8s.io",), ("endpointslices",)),
                _rule(("list", "watch"), ("networking.k8s.io",), ("ingresses", "ingressclasses")),
                _rule(("update",), ("networking.k8s.io",), ("ingresses/status",)),
                _rule(("create", "update", "patch"), ("",), ("events",)),
            ],
        ),
        # The agent of many simulated nodes (`kpy-agent --simulated-nodes`,
        # what `kpy up` starts for more than a few simulated nodes): one
        # process calls the API for all its nodes over one connection with
        # one client certificate. The node authorizer reads a single node
        # from the user name (`system:node:<name>`), so no node identity fits
        # it; it gets, cluster-wide, what each node gets for itself. Its pods
        # run nothing (no container reads a Secret it is given), and the
        # certificate never leaves the cluster directory.
        _role(
            "system:kpy-simulated-nodes",
            [
                _rule((*_READ, "create", "update", "patch"), ("",), ("nodes",)),
                _rule(("get", "update", "patch"), ("",), ("nodes/status",)),
                _rule((*_READ, "create", "delete"), ("",), ("pods",)),
                _rule(("update", "patch"), ("",), ("pods/status",)),
                _rule(_READ, ("",), ("secrets", "configmaps", "persistentvolumeclaims")),
                _rule(("get",), ("",), ("persistentvolumes",)),
                _rule(_READ, ("",), ("services",)),
                _rule(("create", "update", "patch"), ("",), ("events",)),
                _rule(("create",), ("",), ("serviceaccounts/token",)),
                _rule(("get", "create", "update", "patch"), ("coordination.k8s.io",), ("leases",)),
            ],
        ),
    ]


def cluster_roles() -> list[ClusterRole]:
    """The default ClusterRoles, new objects on every call."""
    return [*_user_facing(), *_components()]


def _binding(
    name: str, role: str, kind: str, subject: str, namespace: str = ""
) -> ClusterRoleBinding:
    binding = ClusterRoleBinding()
    binding.metadata.name = name
    binding.metadata.labels[BOOTSTRAPPING_LABEL[0]] = BOOTSTRAPPING_LABEL[1]
    binding.metadata.annotations["rbac.authorization.kubernetes.io/autoupdate"] = "true"
    binding.role_ref.api_group = GROUP_NAME
    binding.role_ref.kind = "ClusterRole"
    binding.role_ref.name = role
    api_group = "" if kind == SERVICE_ACCOUNT_KIND else GROUP_NAME
    binding.subjects.append(
        Subject(kind=kind, api_group=api_group, name=subject, namespace=namespace)
    )
    return binding


def cluster_role_bindings() -> list[ClusterRoleBinding]:
    """The default ClusterRoleBindings, new objects on every call."""
    return [
        _binding("cluster-admin", "cluster-admin", GROUP_KIND, "system:masters"),
        _binding("system:basic-user", "system:basic-user", GROUP_KIND, "system:authenticated"),
        _binding("system:discovery", "system:discovery", GROUP_KIND, "system:authenticated"),
        _binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            USER_KIND,
            "system:kube-controller-manager",
        ),
        _binding(
            "system:kube-scheduler", "system:kube-scheduler", USER_KIND, "system:kube-scheduler"
        ),
        _binding("system:node", "system:node", GROUP_KIND, "system:nodes"),
        _binding("system:node-proxier", "system:node-proxier", USER_KIND, "system:kube-proxy"),
        _binding(
            "system:kube-dns", "system:kube-dns", SERVICE_ACCOUNT_KIND, "kube-dns", "kube-system"
        ),
        _binding("system:kpy-ingress", "system:kpy-ingress", USER_KIND, "system:kpy-ingress"),
        _binding(
            "system:kpy-simulated-nodes",
            "system:kpy-simulated-nodes",
            USER_KIND,
            "system:kpy-simulated-nodes",
        ),
    ]


def policy() -> list[Message]:
    """Every default role, then every default binding."""
    return [*cluster_roles(), *cluster_role_bindings()]


async def ensure_policy(create: Callable[[Message], Awaitable[object]]) -> None:
    """Store each default role and binding unless one of its name exists
    (the API server's start, as kube-apiserver's rbac/bootstrap-roles
    post-start hook does, without its reconciliation); `create(obj)`
    stores a cluster-scoped object and raises `errors.AlreadyExists`."""
    for obj in policy():
        with contextlib.suppress(errors.AlreadyExists):
            await create(obj)

"""The bootstrap policy (kpy.auth.bootstrap): each of kpy's components is
allowed exactly the calls its code makes (the tables below, read from
kpy/controllers, kpy/scheduler, kpy/agent, kpy/proxy, kpy/dns) and not
more than it needs; the user-facing roles aggregate as Kubernetes'."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api import errors
from kpy.api.rbac.v1 import RoleBinding, Subject
from kpy.api.validation import validate
from kpy.auth import bootstrap
from kpy.auth.attributes import Attributes, UserInfo, service_account_user
from kpy.auth.policy import StaticPolicy
from kpy.auth.rbac import RBACAuthorizer

if TYPE_CHECKING:
    from google.protobuf.message import Message

CONTROLLER_MANAGER = UserInfo("system:kube-controller-manager", ("system:authenticated",))
SCHEDULER = UserInfo("system:kube-scheduler", ("system:authenticated",))
NODE = UserInfo("system:node:kpy-node-1", ("system:nodes", "system:authenticated"))
PROXY = UserInfo("system:kube-proxy", ("system:authenticated",))
DNS = service_account_user("kube-system", "kube-dns")
INGRESS = UserInfo("system:kpy-ingress", ("system:authenticated",))
SIMULATED_NODES = UserInfo("system:kpy-simulated-nodes", ("system:authenticated",))
ADMIN = UserInfo("root", ("system:masters", "system:authenticated"))
NOBODY = UserInfo("alice", ("system:authenticated",))


def call(text: str, namespace: str = "ns", name: str = "") -> Attributes:
    """`VERB GROUP/RESOURCE[/SUB]` ("core" is the core group)."""
    verb, _, resource = text.partition(" ")
    group, _, rest = resource.partition("/")
    res, _, sub = rest.partition("/")
    return Attributes(
        verb=verb,
        api_group="" if group == "core" else group,
        resource=res,
        subresource=sub,
        namespace=namespace,
        name=name,
    )


# (component, user, the calls its code makes): informers list and watch
# across namespaces (namespace ""), writes name their object.
NEEDED: list[tuple[str, UserInfo, list[Attributes]]] = [
    (
        "controller manager",
        CONTROLLER_MANAGER,
        [
            *(
                call(f"{v} {r}", "")
                for v in ("list", "watch")
                for r in (
                    "core/pods",
                    "core/nodes",
                    "core/namespaces",
                    "core/services",
                    "core/endpoints",
                    "core/persistentvolumes",
                    "core/persistentvolumeclaims",
                    "core/replicationcontrollers",
                    "core/serviceaccounts",
                    "core/configmaps",
                    "apps/deployments",
                    "apps/replicasets",
                    "apps/statefulsets",
                    "apps/daemonsets",
                    "apps/controllerrevisions",
                    "batch/jobs",
                    "batch/cronjobs",
                    "autoscaling/horizontalpodautoscalers",
                    "policy/poddisruptionbudgets",
                    "discovery.k8s.io/endpointslices",
                    "coordination.k8s.io/leases",
                    "storage.k8s.io/storageclasses",
                    "apiextensions.k8s.io/customresourcedefinitions",
                    "example.com/widgets",  # the garbage collector watches custom kinds too
                )
            ),
            call("create core/pods"),
            call("create apps/replicasets"),
            call("create apps/controllerrevisions"),
            call("create batch/jobs"),
            call("create core/endpoints"),
            call("create discovery.k8s.io/endpointslices"),
            call("create core/persistentvolumeclaims"),
            call("create core/persistentvolumes", ""),
            call("create core/serviceaccounts"),  # the default ServiceAccount
            call("create core/configmaps"),  # kube-root-ca.crt
            call("update core/configmaps", name="kube-root-ca.crt"),
            call("update apps/deployments/status", name="d"),
            call("update apps/replicasets", name="r"),
            call("update core/nodes", "", "n"),
            call("update core/nodes/status", "", "n"),
            call("delete core/pods", name="p"),
            call("patch core/pods", name="p"),  # ownerReferences
            call("deletecollection core/configmaps"),  # namespace controller
            call("delete core/namespaces", "", "ns"),
            call("update core/namespaces/finalize", "", "ns"),
            call("get apps/deployments/scale", name="d"),
            call("update apps/deployments/scale", name="d"),
            call("patch apiextensions.k8s.io/customresourcedefinitions/status", "", "c"),
            call("create coordination.k8s.io/leases", "kube-system"),
            call("get coordination.k8s.io/leases", "kube-system", "kpy-controller-manager"),
            call("update coordination.k8s.io/leases", "kube-system", "kpy-controller-manager"),
            call("create core/events"),  # kpy.events: SuccessfulCreate, ScalingReplicaSet, ...
            call("patch core/events", name="e"),
        ],
    ),
    (
        "scheduler",
        SCHEDULER,
        [
            *(
                call(f"{v} {r}", "")
                for v in ("list", "watch")
                for r in (
                    "core/pods",
                    "core/nodes",
                    "core/namespaces",
                    "core/services",
                    "core/persistentvolumes",
                    "core/persistentvolumeclaims",
                    "core/replicationcontrollers",
                    "apps/replicasets",
                    "apps/statefulsets",
                    "storage.k8s.io/storageclasses",
                )
            ),
            call("create core/pods/binding", name="p"),
            call("patch core/pods/status", name="p"),
            call("delete core/pods", name="victim"),
            call("patch core/persistentvolumeclaims", name="c"),
            call("update core/persistentvolumes", "", "v"),
            call("create coordination.k8s.io/leases", "kube-system"),
            call("get coordination.k8s.io/leases", "kube-system", "kpy-scheduler"),
            call("update coordination.k8s.io/leases", "kube-system", "kpy-scheduler"),
            call("create core/events"),  # Scheduled, FailedScheduling
            call("patch core/events", name="e"),
        ],
    ),
    (
        # What RBAC alone grants a node: its pods, their Secrets, its Node and
        # Lease come from the node authorizer (tests/unit/test_node_authorizer.py).
        "node agent",
        NODE,
        [
            call("list core/services", ""),
            call("watch core/services", ""),
            call("create core/events"),
            call("patch core/events", name="e"),
        ],
    ),
    (
        "proxy",
        PROXY,
        [
            call("list core/services", ""),
            call("watch core/services", ""),
            call("list discovery.k8s.io/endpointslices", ""),
            call("watch discovery.k8s.io/endpointslices", ""),
            call("get core/nodes", "", "kpy-node-1"),
        ],
    ),
    (
        "dns",
        DNS,
        [
            call(f"{v} {r}", "")
            for v in ("list", "watch")
            for r in ("core/services", "core/pods", "discovery.k8s.io/endpointslices")
        ],
    ),
    (
        "ingress",
        INGRESS,
        [
            *(
                call(f"{v} {r}", "")
                for v in ("list", "watch")
                for r in (
                    "core/services",
                    "core/secrets",  # TLS certificates the Ingresses name
                    "discovery.k8s.io/endpointslices",
                    "networking.k8s.io/ingresses",
                    "networking.k8s.io/ingressclasses",
                )
            ),
            call("update networking.k8s.io/ingresses/status", name="i"),
        ],
    ),
    (
        # kpy/agent for many nodes at once (kpy.agent.simulated_nodes)
        "simulated nodes agent",
        SIMULATED_NODES,
        [
            call("create core/nodes", ""),
            call("get core/nodes", "", "kpy-node-7"),
            call("update core/nodes", "", "kpy-node-7"),
            call("update core/nodes/status", "", "kpy-node-7"),
            call("list core/pods", ""),
            call("watch core/pods", ""),
            call("delete core/pods", name="p"),
            call("patch core/pods/status", name="p"),
            call("list core/secrets", name="s"),
            call("watch core/configmaps", name="c"),
            call("list core/persistentvolumeclaims", name="c"),
            call("get core/persistentvolumes", "", "v"),
            call("list core/services", ""),
            call("create coordination.k8s.io/leases", "kube-node-lease"),
            call("get coordination.k8s.io/leases", "kube-node-lease", "kpy-node-7"),
            call("update coordination.k8s.io/leases", "kube-node-lease", "kpy-node-7"),
            call("create core/events"),
        ],
    ),
]

# (case, user, a call it must not be allowed)
REFUSED = [
    ("scheduler reads no secrets", SCHEDULER, call("get core/secrets", name="s")),
    ("scheduler creates no pods", SCHEDULER, call("create core/pods")),
    (
        "scheduler renews only its own lease",
        SCHEDULER,
        call("update coordination.k8s.io/leases", "kube-system", "kpy-controller-manager"),
    ),
    ("controller manager creates no secrets", CONTROLLER_MANAGER, call("create core/secrets")),
    (
        "controller manager creates no roles",
        CONTROLLER_MANAGER,
        call("create rbac.authorization.k8s.io/clusterrolebindings", ""),
    ),
    ("node agent deletes no nodes", NODE, call("delete core/nodes", "", "kpy-node-2")),
    ("node agent creates no secrets", NODE, call("create core/secrets")),
    ("node agent writes no pod specs", NODE, call("update core/pods", name="p")),
    ("RBAC gives a node no secrets", NODE, call("get core/secrets", name="s")),
    ("RBAC gives a node no pods", NODE, call("list core/pods", "")),
    ("RBAC gives a node no nodes", NODE, call("update core/nodes", "", "kpy-node-1")),
    ("proxy writes nothing", PROXY, call("update core/services", name="s")),
    ("proxy reads no secrets", PROXY, call("list core/secrets", "")),
    ("dns reads no secrets", DNS, call("list core/secrets", "")),
    (
        "another service account is not dns",
        service_account_user("default", "kube-dns"),
        call("list core/services", ""),
    ),
    ("an authenticated user reads nothing", NOBODY, call("list core/pods")),
    ("ingress writes no services", INGRESS, call("update core/services", name="s")),
    ("ingress reads no pods", INGRESS, call("list core/pods", "")),
    ("simulated nodes create no secrets", SIMULATED_NODES, call("create core/secrets")),
    ("simulated nodes write no pod specs", SIMULATED_NODES, call("update core/pods", name="p")),
    ("simulated nodes delete no nodes", SIMULATED_NODES, call("delete core/nodes", "", "n")),
    (
        "simulated nodes bind no roles",
        SIMULATED_NODES,
        call("create rbac.authorization.k8s.io/rolebindings"),
    ),
]


def _authorizer() -> RBACAuthorizer:
    return RBACAuthorizer(StaticPolicy(bootstrap.policy()))


def test_components_are_allowed_their_calls() -> None:
    authorizer = _authorizer()
    for component, user, calls in NEEDED:
        for request in calls:
            decision = authorizer.authorize(user, request)
            assert decision.allowed, f"{component}: {decision.reason}"


def test_components_are_refused_what_they_do_not_use() -> None:
    authorizer = _authorizer()
    for case, user, request in REFUSED:
        assert not authorizer.authorize(user, request).allowed, case


def test_masters_may_do_anything() -> None:
    authorizer = _authorizer()
    assert authorizer.authorize(ADMIN, call("delete core/nodes", "", "n")).allowed
    assert authorizer.authorize(ADMIN, Attributes.non_resource("post", "/anything")).allowed


def test_every_authenticated_user_gets_discovery() -> None:
    decision = _authorizer().authorize(NOBODY, Attributes.non_resource("get", "/apis/apps"))
    assert decision.allowed, decision.reason


USER_ROLES = [
    # (case, cluster role bound in namespace "ns", call, allowed)
    ("view lists pods", "view", call("list core/pods"), True),
    ("view reads deployments", "view", call("get apps/deployments", name="d"), True),
    ("view reads no secrets", "view", call("get core/secrets", name="s"), False),
    ("view writes nothing", "view", call("delete core/pods", name="p"), False),
    ("view reads no roles", "view", call("list rbac.authorization.k8s.io/roles"), False),
    ("edit has view's reads", "edit", call("list core/pods"), True),
    ("edit reads secrets", "edit", call("get core/secrets", name="s"), True),
    ("edit execs into pods", "edit", call("create core/pods/exec", name="p"), True),
    ("edit scales deployments", "edit", call("update apps/deployments/scale", name="d"), True),
    (
        "edit writes no role bindings",
        "edit",
        call("create rbac.authorization.k8s.io/rolebindings"),
        False,
    ),
    ("admin has edit's and view's", "admin", call("get core/secrets", name="s"), True),
    (
        "admin writes role bindings",
        "admin",
        call("create rbac.authorization.k8s.io/rolebindings"),
        True,
    ),
    ("admin in ns: not in another namespace", "admin", call("list core/pods", "other"), False),
    ("admin in ns: no nodes", "admin", call("list core/nodes", ""), False),
]


def test_user_facing_roles_aggregate() -> None:
    policy = bootstrap.policy()
    for case, cluster_role, request, allowed in USER_ROLES:
        rb = _role_binding(cluster_role)
        decision = RBACAuthorizer(StaticPolicy([*policy, rb])).authorize(NOBODY, request)
        assert decision.allowed is allowed, f"{case}: {decision.reason}"


def _role_binding(cluster_role: str) -> Message:
    rb = RoleBinding(
        subjects=[Subject(kind="User", api_group="rbac.authorization.k8s.io", name="alice")]
    )
    rb.metadata.name = f"alice-{cluster_role}"
    rb.metadata.namespace = "ns"
    rb.role_ref.api_group = "rbac.authorization.k8s.io"
    rb.role_ref.kind = "ClusterRole"
    rb.role_ref.name = cluster_role
    return rb


def test_bootstrap_objects_are_valid_and_labelled() -> None:
    for obj in bootstrap.policy():
        name = obj.metadata.name  # type: ignore[attr-defined]
        assert validate(obj) == [], name
        assert obj.metadata.labels["kubernetes.io/bootstrapping"] == "rbac-defaults", name  # type: ignore[attr-defined]


async def test_ensure_policy_creates_only_what_is_missing() -> None:
    stored: dict[tuple[str, str], Message] = {}
    existing = bootstrap.cluster_roles()[1]  # "admin", say an operator changed it
    existing.metadata.annotations["changed"] = "by hand"
    stored[type(existing).__name__, existing.metadata.name] = existing

    async def create(obj: Message) -> object:
        key = (type(obj).__name__, obj.metadata.name)  # type: ignore[attr-defined]
        if key in stored:
            raise errors.AlreadyExists(f"{key} already exists")
        stored[key] = obj
        return obj

    await bootstrap.ensure_policy(create)
    assert len(stored) == len(bootstrap.policy())
    assert stored["ClusterRole", "admin"].metadata.annotations["changed"] == "by hand"  # type: ignore[attr-defined]
    await bootstrap.ensure_policy(create)  # a second start: nothing to do, no error
    assert len(stored) == len(bootstrap.policy())

"""The node authorizer and NodeRestriction (kpy.auth.node), alone and in
the API server's chain (kpy.apiserver.authorization) with the bootstrap
policy: a node reads only its own pods and what they use, and writes only
its own Node, Lease and pods' status; every call the node agent makes
(kpy/agent) is allowed for its own node and refused for another's."""

from __future__ import annotations

from dataclasses import dataclass

from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Node, PersistentVolumeClaim, Pod
from kpy.api.scheme import scheme
from kpy.apiserver.authorization import Authorization, CacheGraph
from kpy.auth import bootstrap
from kpy.auth.attributes import Attributes, UserInfo
from kpy.auth.node import (
    NodeAuthorizer,
    References,
    admit_create,
    node_name_of,
    pod_references,
    references_of,
)
from kpy.auth.policy import StaticPolicy

NODE_A = UserInfo("system:node:node-a", ("system:nodes", "system:authenticated"))
NODE_B = UserInfo("system:node:node-b", ("system:nodes", "system:authenticated"))
NOT_A_NODE = UserInfo("system:node:node-a", ("system:authenticated",))  # not in system:nodes


def _pod(namespace: str, name: str, node: str, **refs: str) -> Pod:
    pod = Pod()
    pod.metadata.namespace, pod.metadata.name = namespace, name
    pod.spec.node_name = node
    if "secret" in refs:
        v = pod.spec.volumes.add(name="s")
        v.secret.secret_name = refs["secret"]
    if "config_map" in refs:
        c = pod.spec.containers.add(name="c")
        e = c.env.add(name="X")
        e.value_from.config_map_key_ref.name = refs["config_map"]
    if "claim" in refs:
        v = pod.spec.volumes.add(name="data")
        v.persistent_volume_claim.claim_name = refs["claim"]
    if "env_secret" in refs:
        c = pod.spec.containers.add(name="d")
        c.env_from.add().secret_ref.name = refs["env_secret"]
    if "pull" in refs:
        pod.spec.image_pull_secrets.add(name=refs["pull"])
    if "projected" in refs:
        v = pod.spec.volumes.add(name="p")
        v.projected.sources.add().config_map.name = refs["projected"]
    return pod


def _claim(namespace: str, name: str, volume: str) -> PersistentVolumeClaim:
    claim = PersistentVolumeClaim()
    claim.metadata.namespace, claim.metadata.name = namespace, name
    claim.spec.volume_name = volume
    return claim


@dataclass
class Graph:
    pods: list[Pod]
    claims: list[PersistentVolumeClaim]

    def pod(self, namespace: str, name: str) -> Pod | None:
        for p in self.pods:
            if (p.metadata.namespace, p.metadata.name) == (namespace, name):
                return p
        return None

    def references_on(self, node: str) -> References:
        return references_of(p for p in self.pods if p.spec.node_name == node)

    def claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        for c in self.claims:
            if (c.metadata.namespace, c.metadata.name) == (namespace, name):
                return c
        return None


GRAPH = Graph(
    pods=[
        _pod("dev", "web-a", "node-a", secret="a-secret", config_map="a-config", claim="a-data"),
        _pod("dev", "web-b", "node-b", secret="b-secret", config_map="b-config", claim="b-data"),
        _pod("dev", "more-a", "node-a", env_secret="env-secret", pull="registry", projected="proj"),
        _pod("dev", "pending", "", secret="pending-secret"),
    ],
    claims=[_claim("dev", "a-data", "pv-a"), _claim("dev", "b-data", "pv-b")],
)


def call(text: str, namespace: str = "dev", name: str = "") -> Attributes:
    """`VERB GROUP/RESOURCE[/SUB]` ("core" is the core group)."""
    verb, _, resource = text.partition(" ")
    group, _, rest = resource.partition("/")
    res, _, sub = rest.partition("/")
    return Attributes(verb, "" if group == "core" else group, res, sub, namespace, name)


OWN_PODS = "spec.nodeName=node-a"

# (case, user, attributes, field selector, expected: True/False/None = no opinion)
NODE_CASES: list[tuple[str, UserInfo, Attributes, str, bool | None]] = [
    ("own pod's secret", NODE_A, call("get core/secrets", name="a-secret"), "", True),
    ("other node's pod's secret", NODE_A, call("get core/secrets", name="b-secret"), "", False),
    (
        "secret of a pod on no node",
        NODE_A,
        call("get core/secrets", name="pending-secret"),
        "",
        False,
    ),
    ("secret in envFrom", NODE_A, call("get core/secrets", name="env-secret"), "", True),
    ("image pull secret", NODE_A, call("get core/secrets", name="registry"), "", True),
    (
        "own secret, another namespace",
        NODE_A,
        call("get core/secrets", "prod", "a-secret"),
        "",
        False,
    ),
    ("watch one own secret by name", NODE_A, call("watch core/secrets", name="a-secret"), "", True),
    ("list every secret", NODE_A, call("list core/secrets", ""), "", False),
    ("write own pod's secret", NODE_A, call("update core/secrets", name="a-secret"), "", False),
    ("own pod's configmap (env)", NODE_A, call("get core/configmaps", name="a-config"), "", True),
    ("projected configmap", NODE_A, call("get core/configmaps", name="proj"), "", True),
    ("other's configmap", NODE_A, call("get core/configmaps", name="b-config"), "", False),
    ("own claim", NODE_A, call("get core/persistentvolumeclaims", name="a-data"), "", True),
    ("other's claim", NODE_A, call("get core/persistentvolumeclaims", name="b-data"), "", False),
    ("own claim's volume", NODE_A, call("get core/persistentvolumes", "", "pv-a"), "", True),
    ("other's volume", NODE_A, call("get core/persistentvolumes", "", "pv-b"), "", False),
    ("list pods with own node selector", NODE_A, call("list core/pods", ""), OWN_PODS, True),
    ("watch pods with own node selector", NODE_A, call("watch core/pods", ""), OWN_PODS, True),
    ("list pods without a selector", NODE_A, call("list core/pods", ""), "", False),
    (
        "list pods of another node",
        NODE_A,
        call("list core/pods", ""),
        "spec.nodeName=node-b",
        False,
    ),
    (
        "list pods not on own node",
        NODE_A,
        call("list core/pods", ""),
        "spec.nodeName!=node-a",
        False,
    ),
    ("get own pod", NODE_A, call("get core/pods", name="web-a"), "", True),
    ("get other's pod", NODE_A, call("get core/pods", name="web-b"), "", False),
    ("patch own pod's status", NODE_A, call("patch core/pods/status", name="web-a"), "", True),
    ("patch other's pod's status", NODE_A, call("patch core/pods/status", name="web-b"), "", False),
    ("update own pod's spec", NODE_A, call("update core/pods", name="web-a"), "", False),
    ("delete own pod", NODE_A, call("delete core/pods", name="web-a"), "", True),
    ("delete other's pod", NODE_A, call("delete core/pods", name="web-b"), "", False),
    ("exec in own pod", NODE_A, call("create core/pods/exec", name="web-a"), "", False),
    ("create a (mirror) pod", NODE_A, call("create core/pods"), "", True),
    ("get own Node", NODE_A, call("get core/nodes", "", "node-a"), "", True),
    ("update own Node status", NODE_A, call("update core/nodes/status", "", "node-a"), "", True),
    ("patch own Node", NODE_A, call("patch core/nodes", "", "node-a"), "", True),
    ("get other Node", NODE_A, call("get core/nodes", "", "node-b"), "", False),
    ("update other Node status", NODE_A, call("update core/nodes/status", "", "node-b"), "", False),
    ("delete own Node", NODE_A, call("delete core/nodes", "", "node-a"), "", False),
    ("list every Node", NODE_A, call("list core/nodes", ""), "", False),
    (
        "own Lease",
        NODE_A,
        call("update coordination.k8s.io/leases", "kube-node-lease", "node-a"),
        "",
        True,
    ),
    (
        "other Lease",
        NODE_A,
        call("update coordination.k8s.io/leases", "kube-node-lease", "node-b"),
        "",
        False,
    ),
    (
        "a Lease elsewhere: RBAC decides",
        NODE_A,
        call("get coordination.k8s.io/leases", "kube-system", "x"),
        "",
        None,
    ),
    ("services: RBAC decides", NODE_A, call("list core/services", ""), "", None),
    ("events: RBAC decides", NODE_A, call("create core/events"), "", None),
    ("not a node: no opinion", NOT_A_NODE, call("get core/secrets", name="a-secret"), "", None),
    (
        "a user: no opinion",
        UserInfo("jane", ("system:authenticated",)),
        call("get core/secrets", name="a-secret"),
        "",
        None,
    ),
]


def test_node_authorizer() -> None:
    authorizer = NodeAuthorizer(GRAPH)
    for case, user, attributes, selector, want in NODE_CASES:
        decision = authorizer.authorize(user, attributes, selector)
        got = None if decision is None else decision.allowed
        assert got is want, f"{case}: got {decision}"


def test_node_denial_names_the_relationship() -> None:
    decision = NodeAuthorizer(GRAPH).authorize(NODE_A, call("get core/secrets", name="b-secret"))
    assert decision is not None
    assert decision.reason == (
        'User "system:node:node-a" cannot get resource "secrets" in API group "" in the '
        'namespace "dev": no relationship found between node "node-a" and this object '
        "(secret dev/b-secret)"
    )


def test_node_name_of() -> None:
    cases = [
        ("node", NODE_A, "node-a"),
        ("not in system:nodes", NOT_A_NODE, ""),
        ("in system:nodes, another name", UserInfo("kubelet", ("system:nodes",)), ""),
    ]
    for case, user, want in cases:
        assert node_name_of(user) == want, case


def test_pod_references() -> None:
    refs = sorted(pod_references(GRAPH.pods[0]))
    assert refs == [
        ("configmaps", "a-config"),
        ("persistentvolumeclaims", "a-data"),
        ("secrets", "a-secret"),
    ]


def _mirror(node: str, annotated: bool = True, secret: str = "") -> Pod:
    pod = _pod("kube-system", "etcd-node-a", node, **({"secret": secret} if secret else {}))
    if annotated:
        pod.metadata.annotations["kubernetes.io/config.mirror"] = "abc"
    return pod


def _named(kind: type[Node] | type[Lease], name: str) -> Node | Lease:
    obj = kind()
    obj.metadata.name = name
    return obj


ADMIT_CASES = [
    ("own Node", NODE_A, "nodes", "", _named(Node, "node-a"), ""),
    ("another Node", NODE_A, "nodes", "", _named(Node, "node-b"), 'a Node named "node-b"'),
    ("own Lease", NODE_A, "leases", "coordination.k8s.io", _named(Lease, "node-a"), ""),
    (
        "another Lease",
        NODE_A,
        "leases",
        "coordination.k8s.io",
        _named(Lease, "node-b"),
        'a Lease named "node-b"',
    ),
    ("mirror pod on itself", NODE_A, "pods", "", _mirror("node-a"), ""),
    ("mirror pod on another", NODE_A, "pods", "", _mirror("node-b"), "spec.nodeName set"),
    ("a plain pod", NODE_A, "pods", "", _mirror("node-a", annotated=False), "only create mirror"),
    (
        "mirror pod using a secret",
        NODE_A,
        "pods",
        "",
        _mirror("node-a", secret="s"),
        "reference secrets (s)",
    ),
    ("not a node", UserInfo("jane"), "nodes", "", _named(Node, "x"), ""),
]


def test_admit_create() -> None:
    for case, user, resource, group, obj, want in ADMIT_CASES:
        got = admit_create(user, resource, group, obj)
        if want:
            assert want in got, f"{case}: {got!r}"
        else:
            assert got == "", f"{case}: {got!r}"


# -- the whole chain, as the API server runs it -------------------------------------


@dataclass
class FakeRegistry:
    """What `Authorization` reads of a registry: its info and decode."""

    info: object

    def decode(self, data: bytes) -> object:
        return self.info.message.FromString(data)  # type: ignore[attr-defined]


REGISTRIES = {(i.group, i.version, i.plural): FakeRegistry(i) for i in scheme.all()}


def chain(mode: str = "Node,RBAC") -> Authorization:
    return Authorization(
        mode,
        StaticPolicy(bootstrap.policy()),
        GRAPH,
        REGISTRIES,  # type: ignore[arg-type]
    )


# Every call kpy/agent makes, as node-a makes it (the object names of the
# graph stand in for its pods): (case, attributes, field selector).
AGENT_CALLS: list[tuple[str, Attributes, str]] = [
    ("pods informer: list (agent.py)", call("list core/pods", ""), OWN_PODS),
    ("pods informer: watch", call("watch core/pods", ""), OWN_PODS),
    ("services informer (env vars)", call("watch core/services", ""), ""),
    ("register: create Node (node.py)", call("create core/nodes", ""), ""),
    ("register: get Node", call("get core/nodes", "", "node-a"), ""),
    ("register: update Node", call("update core/nodes", "", "node-a"), ""),
    ("status: update Node status", call("update core/nodes/status", "", "node-a"), ""),
    (
        "heartbeat: get Lease",
        call("get coordination.k8s.io/leases", "kube-node-lease", "node-a"),
        "",
    ),
    ("heartbeat: create Lease", call("create coordination.k8s.io/leases", "kube-node-lease"), ""),
    (
        "heartbeat: update Lease",
        call("update coordination.k8s.io/leases", "kube-node-lease", "node-a"),
        "",
    ),
    ("pod status: patch (pods.py)", call("patch core/pods/status", name="web-a"), ""),
    ("final delete of a pod (pods.py)", call("delete core/pods", name="web-a"), ""),
    ("mirror pod: create (agent.py)", call("create core/pods"), ""),
    ("events: create (cache/events.py)", call("create core/events"), ""),
    ("events: patch", call("patch core/events", name="e"), ""),
    ("volume: get a pod's secret", call("get core/secrets", name="a-secret"), ""),
    ("env: get a pod's configmap", call("get core/configmaps", name="a-config"), ""),
    ("volume: get a pod's claim", call("get core/persistentvolumeclaims", name="a-data"), ""),
    ("volume: get the claim's volume", call("get core/persistentvolumes", "", "pv-a"), ""),
]

# The same calls by node-b about node-a's objects: refused, but for those
# every node may make (services, events, creates checked by NodeRestriction).
SHARED = {
    "services informer (env vars)",
    "register: create Node (node.py)",
    "heartbeat: create Lease",
    "mirror pod: create (agent.py)",
    "events: create (cache/events.py)",
    "events: patch",
}


def test_every_agent_call_allowed_for_its_own_node_only() -> None:
    authorizer = chain()
    for case, attributes, selector in AGENT_CALLS:
        assert authorizer.decide(NODE_A, attributes, selector).allowed, f"{case}: own node"
        other = authorizer.decide(NODE_B, attributes, selector)
        assert other.allowed is (case in SHARED), f"{case}: node-b got {other}"


def test_agent_object_watches_are_allowed_by_name_only() -> None:
    """kpy/agent/objects.py lists and watches each ConfigMap, Secret and
    claim of its pods alone (`metadata.name=<name>`, the name in the
    attributes) and gets their volumes: allowed for its own pods' objects,
    refused for another node's; a cluster-wide list or watch, which would
    hand a node every Secret, is refused to every node."""
    authorizer = chain()
    own = {"secrets": "a-secret", "configmaps": "a-config", "persistentvolumeclaims": "a-data"}
    for resource, name in own.items():
        for verb in ("list", "watch"):
            by_name = call(f"{verb} core/{resource}", name=name)
            selector = f"metadata.name={name}"
            assert authorizer.decide(NODE_A, by_name, selector).allowed, f"{verb} {name}"
            assert not authorizer.decide(NODE_B, by_name, selector).allowed, f"B: {verb} {name}"
    for resource in ("secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes"):
        for verb in ("list", "watch"):
            decision = authorizer.decide(NODE_A, call(f"{verb} core/{resource}", ""))
            assert not decision.allowed, f"{verb} {resource}"


def test_chain() -> None:
    jane = UserInfo("jane", ("system:authenticated",))
    root = UserInfo("root", ("system:masters", "system:authenticated"))
    cases = [
        ("superuser", "Node,RBAC", root, call("delete core/nodes", "", "node-a"), True),
        ("no binding", "Node,RBAC", jane, call("list core/pods"), False),
        (
            "RBAC mode: no node authorizer",
            "RBAC",
            NODE_A,
            call("get core/secrets", name="a-secret"),
            False,
        ),
        ("RBAC mode: services", "RBAC", NODE_A, call("list core/services", ""), True),
        ("node falls through to RBAC", "Node,RBAC", NODE_A, call("list core/services", ""), True),
    ]
    for case, mode, user, attributes, want in cases:
        assert chain(mode).decide(user, attributes).allowed is want, case


class FakeCache:
    """What `CacheGraph` reads of a watch cache; counts its lists."""

    def __init__(self, objects: list[Pod]) -> None:
        self.objects = objects
        self.resource_version = 1
        self.lists = 0

    def list(self, namespace: str | None = None) -> tuple[list[Pod], int]:
        self.lists += 1
        return self.objects, self.resource_version

    def get(self, namespace: str, name: str) -> Pod | None:
        return None


def test_cache_graph_scans_once_per_version() -> None:
    pods = FakeCache(GRAPH.pods)
    graph = CacheGraph(pods, FakeCache([]))  # type: ignore[arg-type]
    own = ("dev", "a-secret")
    assert own in graph.references_on("node-a").secrets
    assert own in graph.references_on("node-a").secrets
    assert pods.lists == 1, "a second question at the same version scans again"
    pods.objects = [p for p in GRAPH.pods if p.metadata.name != "web-a"]
    pods.resource_version = 2
    assert own not in graph.references_on("node-a").secrets, "a deleted pod still counts"
    assert pods.lists == 2

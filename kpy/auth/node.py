"""The node authorizer and NodeRestriction admission: a node agent may touch
only what belongs to its node (Kubernetes'
plugin/pkg/auth/authorizer/node and plugin/pkg/admission/noderestriction;
<https://kubernetes.io/docs/reference/access-authn-authz/node/>).

Contract of `NodeAuthorizer.authorize(user, attributes, field_selector)`:
- A user is a node when its name is `system:node:<name>` and it is in the
  group `system:nodes`; for anyone else the answer is None (no opinion: the
  next authorizer decides).
- For a node, the answer is a `Decision` for the kinds the graph governs,
  and None for every other request (RBAC's `system:node` role decides):
  - pods: `get` and `delete` of a pod bound to the node; `list`/`watch`
    only with the field selector `spec.nodeName=<name>` (the agent's
    informer); `create` (a mirror pod: `admit_create` checks the body);
    `update`/`patch` of `pods/status` of a pod bound to the node;
  - secrets, configmaps, persistentvolumeclaims: `get` (or a `list`/`watch`
    of that one name, `metadata.name=<name>`) of one a pod bound to the
    node references; persistentvolumes: `get` of one bound to such a claim;
  - nodes: `get`, `list`/`watch` of its own Node by name, `create`
    (`admit_create` checks the name), `update`/`patch` of it and its
    `status`;
  - leases (coordination.k8s.io) in `kube-node-lease`: every verb on the
    Lease named after the node, `create` (`admit_create` checks the name);
  - serviceaccounts: only `create` of `serviceaccounts/token` for a
    ServiceAccount a pod bound to the node runs as
    (`admit_token_request` then requires the token bound to such a pod).
  Anything else on these kinds is denied with Kubernetes' Forbidden wording
  and the node authorizer's reason.
- `NodeGraph` is read afresh on every call: a pod bound a moment ago, or a
  reference added to one, counts as soon as the graph has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from kpy.auth.attributes import Attributes, Decision, UserInfo

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from kpy.api.core.v1 import PersistentVolumeClaim, Pod

__all__ = [
    "LEASE_NAMESPACE",
    "MIRROR_ANNOTATION",
    "NODES_GROUP",
    "NODE_USER_PREFIX",
    "NodeAuthorizer",
    "NodeGraph",
    "References",
    "admit_create",
    "admit_token_request",
    "node_name_of",
    "pod_references",
    "references_of",
]

NODE_USER_PREFIX: Final = "system:node:"
NODES_GROUP: Final = "system:nodes"
LEASE_NAMESPACE: Final = "kube-node-lease"
MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"
_COORDINATION: Final = "coordination.k8s.io"
_READS: Final = frozenset({"get", "list", "watch"})
_WRITES: Final = frozenset({"update", "patch"})


def node_name_of(user: UserInfo) -> str:
    """The node `user` is (its name after `system:node:`, when it is in
    `system:nodes`), or "" for any other user."""
    if NODES_GROUP not in user.groups or not user.name.startswith(NODE_USER_PREFIX):
        return ""
    return user.name[len(NODE_USER_PREFIX) :]


@dataclass(frozen=True, slots=True)
class References:
    """The objects the pods of one node use, as (namespace, name) pairs."""

    secrets: frozenset[tuple[str, str]] = frozenset()
    config_maps: frozenset[tuple[str, str]] = frozenset()
    claims: frozenset[tuple[str, str]] = frozenset()
    #: the ServiceAccounts the pods run as (spec.serviceAccountName)
    service_accounts: frozenset[tuple[str, str]] = frozenset()


class NodeGraph(Protocol):
    """What the node authorizer reads: a pod, what the pods bound to a node
    use (`references_of` their pods), and a claim by namespace and name
    (for the volume it is bound to)."""

    def pod(self, namespace: str, name: str) -> Pod | None: ...

    def references_on(self, node: str) -> References: ...

    def claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None: ...


def pod_references(pod: Pod) -> Iterator[tuple[str, str]]:
    """("secrets" | "configmaps" | "persistentvolumeclaims", name) for every
    object `pod` uses: volumes (projected ones and generic ephemeral claims
    included), env and envFrom of every container, and image pull secrets."""
    spec = pod.spec
    for volume in spec.volumes:
        if volume.HasField("secret") and volume.secret.secret_name:
            yield "secrets", volume.secret.secret_name
        if volume.HasField("config_map") and volume.config_map.name:
            yield "configmaps", volume.config_map.name
        if volume.HasField("persistent_volume_claim"):
            yield "persistentvolumeclaims", volume.persistent_volume_claim.claim_name
        if volume.HasField("ephemeral"):
            yield "persistentvolumeclaims", f"{pod.metadata.name}-{volume.name}"
        if volume.HasField("projected"):
            for source in volume.projected.sources:
                if source.HasField("secret"):
                    yield "secrets", source.secret.name
                if source.HasField("config_map"):
                    yield "configmaps", source.config_map.name
    containers: list[Any] = [*spec.init_containers, *spec.containers, *spec.ephemeral_containers]
    for container in containers:
        for env_from in container.env_from:
            if env_from.HasField("secret_ref"):
                yield "secrets", env_from.secret_ref.name
            if env_from.HasField("config_map_ref"):
                yield "configmaps", env_from.config_map_ref.name
        for env in container.env:
            if not env.HasField("value_from"):
                continue
            if env.value_from.HasField("secret_key_ref"):
                yield "secrets", env.value_from.secret_key_ref.name
            if env.value_from.HasField("config_map_key_ref"):
                yield "configmaps", env.value_from.config_map_key_ref.name
    for pull_secret in spec.image_pull_secrets:
        yield "secrets", pull_secret.name


def references_of(pods: Iterable[Pod]) -> References:
    """Everything `pods` use, by kind."""
    found: dict[str, set[tuple[str, str]]] = {
        "secrets": set(),
        "configmaps": set(),
        "persistentvolumeclaims": set(),
    }
    accounts: set[tuple[str, str]] = set()
    for pod in pods:
        for kind, name in pod_references(pod):
            if name:
                found[kind].add((pod.metadata.namespace, name))
        if pod.spec.service_account_name:
            accounts.add((pod.metadata.namespace, pod.spec.service_account_name))
    return References(
        frozenset(found["secrets"]),
        frozenset(found["configmaps"]),
        frozenset(found["persistentvolumeclaims"]),
        frozenset(accounts),
    )


class NodeAuthorizer:
    """The node authorizer over a `NodeGraph` (see the module contract)."""

    def __init__(self, graph: NodeGraph) -> None:
        self._graph = graph

    def authorize(
        self, user: UserInfo, attributes: Attributes, field_selector: str = ""
    ) -> Decision | None:
        node = node_name_of(user)
        if not node or not attributes.resource_request:
            return None
        group, resource = attributes.api_group, attributes.resource
        if group == "" and resource == "pods":
            return self._pods(node, user, attributes, field_selector)
        if group == "" and resource in ("secrets", "configmaps", "persistentvolumeclaims"):
            return self._referenced(node, user, attributes)
        if group == "" and resource == "persistentvolumes":
            return self._volume(node, user, attributes)
        if group == "" and resource == "nodes":
            return self._node(node, user, attributes)
        if group == _COORDINATION and resource == "leases":
            return self._lease(node, user, attributes)
        if group == "" and resource == "serviceaccounts":
            return self._token(node, user, attributes)
        return None

    # -- pods --------------------------------------------------------------------

    def _pods(
        self, node: str, user: UserInfo, a: Attributes, field_selector: str
    ) -> Decision | None:
        verb, sub = a.verb, a.subresource
        if sub == "" and verb in ("list", "watch"):
            if _selects(field_selector, "spec.nodeName") == node:
                return _allow(f"{verb} of the pods bound to node {node!r}")
            return _deny(
                user,
                a,
                f"a node may {verb} pods only with the field selector spec.nodeName={node}",
            )
        if sub == "" and verb == "create":
            return _allow("a mirror pod (NodeRestriction checks the pod)")
        if (sub == "" and verb in ("get", "delete")) or (sub == "status" and verb in _WRITES):
            pod = self._graph.pod(a.namespace, a.name)
            if pod is not None and pod.spec.node_name == node:
                return _allow(f"pod {a.namespace}/{a.name} is bound to node {node!r}")
            return _deny(user, a, f'no relationship found between node "{node}" and this pod')
        if sub == "eviction":
            return None  # RBAC decides, as in Kubernetes
        return _deny(user, a, f"a node may not {verb} pods/{sub}" if sub else "")

    # -- what pods reference -------------------------------------------------------------

    def _referenced(self, node: str, user: UserInfo, a: Attributes) -> Decision:
        if a.verb not in _READS or a.subresource:
            return _deny(user, a, f"a node may only read {a.resource}")
        if not a.name:
            return _deny(user, a, f"a node may read {a.resource} only one at a time, by name")
        refs = self._graph.references_on(node)
        held = {
            "secrets": refs.secrets,
            "configmaps": refs.config_maps,
            "persistentvolumeclaims": refs.claims,
        }[a.resource]
        if (a.namespace, a.name) in held:
            return _allow(f"{a.resource} {a.namespace}/{a.name} is used by a pod on {node!r}")
        return _deny(user, a, _no_relationship(node, a))

    def _volume(self, node: str, user: UserInfo, a: Attributes) -> Decision:
        if a.verb != "get" or a.subresource or not a.name:
            return _deny(user, a, "a node may only get persistentvolumes, by name")
        for namespace, claim_name in self._graph.references_on(node).claims:
            claim = self._graph.claim(namespace, claim_name)
            if claim is not None and claim.spec.volume_name == a.name:
                return _allow(
                    f"persistentvolume {a.name} is bound to a claim a pod on {node!r} uses"
                )
        return _deny(user, a, _no_relationship(node, a))

    # -- its own Node and Lease ------------------------------------------------------------

    def _node(self, node: str, user: UserInfo, a: Attributes) -> Decision:
        if a.verb == "create" and not a.subresource:
            return _allow("a Node (NodeRestriction checks its name)")
        if a.name == node and (
            (not a.subresource and a.verb in (*_READS, *_WRITES))
            or (a.subresource == "status" and a.verb in (*_WRITES, "get"))
        ):
            return _allow(f"node {node!r} is the caller")
        return _deny(user, a, f'node "{node}" may only read and write its own Node')

    def _lease(self, node: str, user: UserInfo, a: Attributes) -> Decision | None:
        if a.namespace != LEASE_NAMESPACE:
            return None
        if a.verb == "create" or a.name == node:
            return _allow(f"the Lease of node {node!r}")
        return _deny(user, a, f'node "{node}" may only use its own Lease')

    # -- tokens of its pods' service accounts --------------------------------------------

    def _token(self, node: str, user: UserInfo, a: Attributes) -> Decision:
        if a.verb != "create" or not a.name:
            return _deny(user, a, "can only create tokens for individual service accounts")
        if a.subresource != "token":
            return _deny(user, a, "can only create token subresource of serviceaccount")
        if (a.namespace, a.name) in self._graph.references_on(node).service_accounts:
            return _allow(f"serviceaccount {a.namespace}/{a.name} is used by a pod on {node!r}")
        return _deny(user, a, _no_relationship(node, a))


def admit_token_request(user: UserInfo, namespace: str, request: Any, graph: NodeGraph) -> str:
    """NodeRestriction for a node's `create serviceaccounts/token` in
    `namespace`: "" to admit the TokenRequest `request`, else why it is
    refused (Kubernetes' words). A node's token must be bound to a pod (by
    name and uid) that is bound to that node."""
    node = node_name_of(user)
    if not node:
        return ""
    spec = request.spec
    ref = spec.bound_object_ref
    if (
        not spec.HasField("bound_object_ref")
        or ref.api_version not in ("", "v1")
        or ref.kind != "Pod"
        or not ref.name
    ):
        return "node requested token not bound to a pod"
    if not ref.uid:
        return "node requested token with a pod binding without a uid"
    pod = graph.pod(namespace, ref.name)
    if pod is None:
        return f'pod "{ref.name}" not found'
    if pod.metadata.uid != ref.uid:
        return (
            f"the UID in the bound object reference ({ref.uid}) does not match the UID in "
            "record. The object might have been deleted and then recreated"
        )
    if pod.spec.node_name != node:
        return "node requested token bound to a pod scheduled on a different node"
    return ""


def admit_create(user: UserInfo, resource: str, api_group: str, obj: Any) -> str:
    """NodeRestriction for a create by a node: "" to admit `obj`, else why
    it is refused. A node may create only its own Node and Lease, and a pod
    only as the mirror of one of its static pods: annotated
    `kubernetes.io/config.mirror`, bound to itself, and using no Secret,
    ConfigMap or claim (as Kubernetes)."""
    node = node_name_of(user)
    if not node:
        return ""
    name = obj.metadata.name
    if api_group == "" and resource == "nodes" and name != node:
        return f'node "{node}" is not allowed to create a Node named "{name}"'
    if api_group == _COORDINATION and resource == "leases" and name != node:
        return f'node "{node}" is not allowed to create a Lease named "{name}"'
    if api_group == "" and resource == "pods":
        if MIRROR_ANNOTATION not in obj.metadata.annotations:
            return (
                f'pod does not have "{MIRROR_ANNOTATION}" annotation, '
                f'node "{node}" can only create mirror pods'
            )
        if obj.spec.node_name != node:
            return f'node "{node}" can only create pods with spec.nodeName set to itself'
        for kind, ref in pod_references(obj):
            return f'node "{node}" can not create pods that reference {kind} ({ref})'
    return ""


def _selects(field_selector: str, field: str) -> str:
    """The value `field_selector` requires of `field` (`f=v` or `f==v`), or ""."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==")
        if not sep:
            key, sep, value = term.partition("=")
        if sep and not key.endswith("!") and key.strip() == field:
            return value.strip()
    return ""


def _no_relationship(node: str, a: Attributes) -> str:
    kind = a.resource.removesuffix("s")
    where = f"{a.namespace}/{a.name}" if a.namespace else a.name
    return f'no relationship found between node "{node}" and this object ({kind} {where})'


def _allow(why: str) -> Decision:
    return Decision(True, f"Node: {why}")


def _deny(user: UserInfo, a: Attributes, why: str) -> Decision:
    text = a.describe(user)
    return Decision(False, f"{text}: {why}" if why else text)

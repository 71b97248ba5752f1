"""Authorization in the API server: every call's request attributes, the
authorizer chain, and the sources it reads (the server's own watch caches).

Kubernetes' model (<https://kubernetes.io/docs/reference/access-authn-authz/authorization/>):

- `attributes_for(method, request, namespaced)` turns a gRPC call into the
  verb, API group, resource, subresource, namespace and name an authorizer
  judges (table in the function's docstring). A list or watch selecting one
  name (`metadata.name=<name>`) carries that name, as kube-apiserver's
  request info does, so a rule limited by resourceNames, or the node
  authorizer, can allow it.
- `--authorization-mode`: `AlwaysAllow` (every call; the default of a
  server without authenticators, which is how every caller was let in
  before), `Node,RBAC` (the default with authenticators) or `RBAC`. With
  an authorizer, members of `system:masters` are always allowed (the
  superuser group, as Kubernetes); then the node authorizer
  (`kpy.auth.node`) for node users, then RBAC (`kpy.auth.rbac`). The first
  "allowed" wins; a node authorizer's refusal lets RBAC decide (Kubernetes'
  NoOpinion) but its reason is the one the caller reads.
- A refused call is Forbidden (gRPC PERMISSION_DENIED, 403) with
  Kubernetes' message: `pods is forbidden: User "jane" cannot list resource
  "pods" in API group "" in the namespace "dev"`. It never reached its
  handler.
- Creates by a node pass NodeRestriction (`kpy.auth.node.admit_create`)
  before their handler: a node creates only its own Node and Lease, and
  mirror pods bound to itself; its `serviceaccounts/token` requests must be
  bound to a pod bound to itself (`kpy.auth.node.admit_token_request`).
- The RBAC policy and the node graph are read from the watch caches, never
  from etcd: a new binding, or a pod bound to a node, counts once the
  cache has it (its fan-out delay, milliseconds).
- A batched create (`CreateEvents`) is not judged as a whole: its handler
  asks `check_creates` about every item (`create` of the item's resource
  in the item's namespace, then NodeRestriction), one decision per
  namespace, and a refused item is refused alone. Its attributes, for the
  audit log, are `create events` in no namespace.
- Discovery (`Resources`) and the caller's own reviews (`SelfSubjectReview`,
  `SelfSubjectAccessReview`, `SelfSubjectRulesReview`) need no permission,
  as Kubernetes' `system:basic-user` and `system:discovery` grant every
  authenticated user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from kpy.api import errors
from kpy.api.authentication.v1 import TokenRequest
from kpy.api.rbac.v1 import ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding
from kpy.apiserver.registry import decode_body
from kpy.auth.attributes import Attributes, Decision, UserInfo
from kpy.auth.node import (
    NodeAuthorizer,
    References,
    admit_create,
    admit_token_request,
    node_name_of,
    references_of,
)
from kpy.auth.rbac import RBACAuthorizer, RuleSet
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kpy.api.core.v1 import PersistentVolumeClaim, Pod
    from kpy.apiserver.registry import Registry
    from kpy.apiserver.watch_cache import WatchCache
    from kpy.auth.node import NodeGraph
    from kpy.auth.policy import PolicySource

__all__ = [
    "ALWAYS_ALLOW",
    "MODES",
    "NODE_RBAC",
    "RBAC",
    "SUPERUSER_GROUP",
    "Authorization",
    "CacheGraph",
    "CachePolicy",
    "RequestAttributes",
    "attributes_for",
    "default_mode",
    "forbidden",
]

ALWAYS_ALLOW: Final = "AlwaysAllow"
NODE_RBAC: Final = "Node,RBAC"
RBAC: Final = "RBAC"
MODES: Final = (ALWAYS_ALLOW, NODE_RBAC, RBAC)
#: Kubernetes' superuser group: allowed everything, whatever RBAC says.
SUPERUSER_GROUP: Final = "system:masters"

_RBAC_GROUP: Final = "rbac.authorization.k8s.io"
# Calls every authenticated user may make (see the module docstring).
_OPEN: Final = frozenset(
    {"Resources", "SelfSubjectReview", "SelfSubjectAccessReview", "SelfSubjectRulesReview"}
)
_VERBS: Final = {
    "Create": "create",
    "Get": "get",
    "List": "list",
    "Watch": "watch",
    "Update": "update",
    "Patch": "patch",
    "Delete": "delete",
    "DeleteCollection": "deletecollection",
}
# pods/log, pods/exec, pods/portforward: their verbs, as kubectl's requests have them.
_POD_STREAMS: Final = {"Logs": ("get", "log"), "Exec": ("create", "exec")}
_POD_STREAMS_PF: Final = ("create", "portforward")
#: RBAC answers `Authorization` keeps at most (then it starts afresh): far
#: more than the distinct questions of a cluster's components.
_RBAC_ANSWERS: Final = 4096
#: Batched creates: the resource they create; each item is authorised by the
#: handler (`Authorization.check_creates`), the call as a whole is not.
BATCHES: Final = {"CreateEvents": ("", "events")}


def default_mode(authenticated: bool) -> str:
    """`--authorization-mode` when not given: Node,RBAC once callers are
    authenticated, AlwaysAllow otherwise (everyone is anonymous then)."""
    return NODE_RBAC if authenticated else ALWAYS_ALLOW


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What an authorizer judges of one call: its `attributes`, and for a
    list, watch or deletecollection its field selector (the node
    authorizer allows a node's pod list only with `spec.nodeName=<node>`)."""

    attributes: Attributes
    field_selector: str = ""


def attributes_for(
    method: str, request: Any, namespaced: Callable[[str, str], bool]
) -> RequestAttributes | None:
    """The request attributes of a call of `method` (None: a call that needs
    no permission, see the module docstring). `namespaced(group, resource)`
    says whether a resource lives in namespaces (unknown ones: True).

    | method                  | verb             | resource / subresource            |
    |-------------------------|------------------|-----------------------------------|
    | Get, Update, Patch      | get, update, patch | ref's resource / ref's subresource |
    | Create                  | create           | ref's (pods/binding, pods/eviction) |
    | Delete                  | delete           | ref's                             |
    | List, Watch             | list, watch      | ref's; name from `metadata.name=` |
    | DeleteCollection        | deletecollection | ref's                             |
    | Logs                    | get              | pods / log                        |
    | Exec                    | create           | pods / exec                       |
    | PortForward             | create           | pods / portforward                |
    | Stats                   | get              | nodes / stats (name: the node)    |

    A single-object call on a namespaced resource without a namespace is in
    `default`, as the handler takes it; a list or watch without one is
    across all namespaces (namespace "")."""
    if method in _OPEN:
        return None
    if method == "Stats":
        return RequestAttributes(Attributes("get", "", "nodes", "stats", "", request.node))
    if method in BATCHES:
        group, resource = BATCHES[method]
        return RequestAttributes(Attributes("create", group, resource, "", "", ""))
    ref = request.ref
    if method in _POD_STREAMS or method == "PortForward":
        verb, sub = _POD_STREAMS.get(method, _POD_STREAMS_PF)
        attributes = Attributes(verb, "", "pods", sub, ref.namespace or "default", ref.name)
        return RequestAttributes(attributes)
    found = _VERBS.get(method)
    if found is None:
        raise errors.Internal(f"{method}: no request attributes are known for this method")
    verb = found
    in_namespaces = namespaced(ref.group, ref.resource)
    if verb in ("list", "watch", "deletecollection"):
        selector = request.field_selector
        name = _named(selector) if verb != "deletecollection" else ""
        namespace = ref.namespace if in_namespaces else ""
        attributes = Attributes(verb, ref.group, ref.resource, "", namespace, name)
        return RequestAttributes(attributes, selector)
    namespace = (ref.namespace or "default") if in_namespaces else ""
    attributes = Attributes(verb, ref.group, ref.resource, ref.subresource, namespace, ref.name)
    return RequestAttributes(attributes)


def _named(field_selector: str) -> str:
    """The one name `metadata.name=<name>` selects, or ""."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==")
        if not sep:
            key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name":
            return value.strip()
    return ""


def _token_request(attributes: Attributes) -> bool:
    return (attributes.api_group, attributes.resource, attributes.subresource) == (
        "",
        "serviceaccounts",
        "token",
    )


def forbidden(attributes: Attributes, reason: str) -> errors.Forbidden:
    """Kubernetes' Forbidden error: `<resource>[.<group>] ["<name>"] is
    forbidden: <reason>`."""
    if not attributes.resource_request:
        return errors.Forbidden(f"forbidden: {reason}")
    resource = attributes.resource
    if attributes.api_group:
        resource += f".{attributes.api_group}"
    subject = f'{resource} "{attributes.name}"' if attributes.name else resource
    return errors.Forbidden(
        f"{subject} is forbidden: {reason}", kind=resource, name=attributes.name
    )


# -- the sources ----------------------------------------------------------------


class CachePolicy:
    """A `kpy.auth.policy.PolicySource` over the API server's watch caches
    of roles, clusterroles, rolebindings and clusterrolebindings: reads in
    memory, as current as the caches."""

    def __init__(
        self,
        roles: WatchCache,
        cluster_roles: WatchCache,
        role_bindings: WatchCache,
        cluster_role_bindings: WatchCache,
    ) -> None:
        self._roles = roles
        self._cluster_roles = cluster_roles
        self._role_bindings = role_bindings
        self._cluster_role_bindings = cluster_role_bindings

    def version(self) -> tuple[int, int, int, int]:
        """Changes whenever any role or binding does (each cache's resource
        version moves with every event of its resource): what an answer
        computed from this policy stays valid for."""
        return (
            self._roles.resource_version,
            self._cluster_roles.resource_version,
            self._role_bindings.resource_version,
            self._cluster_role_bindings.resource_version,
        )

    def role(self, namespace: str, name: str) -> Role | None:
        return cast("Role | None", self._roles.get(namespace, name))

    def cluster_role(self, name: str) -> ClusterRole | None:
        return cast("ClusterRole | None", self._cluster_roles.get("", name))

    def cluster_roles(self) -> Sequence[ClusterRole]:
        return cast("list[ClusterRole]", self._cluster_roles.list()[0])

    def role_bindings(self, namespace: str) -> Sequence[RoleBinding]:
        return cast("list[RoleBinding]", self._role_bindings.list(namespace)[0])

    def cluster_role_bindings(self) -> Sequence[ClusterRoleBinding]:
        return cast("list[ClusterRoleBinding]", self._cluster_role_bindings.list()[0])


class CacheGraph:
    """The node authorizer's `NodeGraph` over the pods and claims caches.

    What a node's pods use is computed from the pods cache on the first
    question about that node and kept until the cache moves on (its
    resource version changes). Measured with 10,000 pods on 100 nodes
    (docs/security.md):
    a question answered from the memo costs microseconds; after a change
    one scan of the cache's pods, about 3.5 ms. Kubernetes keeps an
    incremental graph fed by its informers instead; that is the next step
    if agents' reads under pod churn ever show in the API server's profile."""

    def __init__(self, pods: WatchCache, claims: WatchCache) -> None:
        self._pods = pods
        self._claims = claims
        self._version = -1
        self._references: dict[str, References] = {}

    def pod(self, namespace: str, name: str) -> Pod | None:
        return cast("Pod | None", self._pods.get(namespace, name))

    def references_on(self, node: str) -> References:
        version = self._pods.resource_version
        if version != self._version:
            self._references, self._version = {}, version
        found = self._references.get(node)
        if found is None:
            pods = cast("list[Pod]", self._pods.list()[0])
            found = references_of(p for p in pods if p.spec.node_name == node)
            self._references[node] = found
        return found

    def claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        return cast("PersistentVolumeClaim | None", self._claims.get(namespace, name))


# -- the chain --------------------------------------------------------------------


class Authorization:
    """The authorizer chain of one API server (see the module docstring):
    `mode` is `Node,RBAC` or `RBAC` (AlwaysAllow needs no object: the
    server skips authorization altogether); RBAC reads `policy`, the node
    authorizer `graph`; `registries` say which resources are namespaced
    and decode the objects NodeRestriction checks. `over_caches` builds
    one over an API server's registries and their watch caches."""

    def __init__(
        self,
        mode: str,
        policy: PolicySource,
        graph: NodeGraph,
        registries: Mapping[tuple[str, str, str], Registry],
    ) -> None:
        if mode not in (NODE_RBAC, RBAC):
            raise ValueError(f"authorization mode {mode!r}: expected {NODE_RBAC} or {RBAC}")
        self.mode = mode
        self._registries = registries
        self._rbac = RBACAuthorizer(policy)
        # RBAC's answers by (user, attributes), kept while the policy's
        # version stays the same (sources without a version: none kept).
        # One answer walks every binding, 45-65 µs with the bootstrap
        # policy; a component asks the same few questions all day.
        self._policy_version: Callable[[], object] | None = getattr(policy, "version", None)
        self._rbac_answers: dict[tuple[UserInfo, Attributes], Decision] = {}
        self._rbac_answers_version: object = None
        self._node = NodeAuthorizer(graph) if mode == NODE_RBAC else None
        self._graph = graph
        self._namespaced: dict[tuple[str, str], bool] = {
            (group, resource): registry.info.namespaced
            for (group, _, resource), registry in registries.items()
        }

    @classmethod
    def over_caches(
        cls, mode: str, registries: Mapping[tuple[str, str, str], Registry]
    ) -> Authorization:
        """The chain over an API server's `registries`: RBAC objects, pods
        and claims read from their watch caches."""

        def cache(group: str, resource: str) -> WatchCache:
            return registries[(group, "v1", resource)].cache

        policy = CachePolicy(
            cache(_RBAC_GROUP, "roles"),
            cache(_RBAC_GROUP, "clusterroles"),
            cache(_RBAC_GROUP, "rolebindings"),
            cache(_RBAC_GROUP, "clusterrolebindings"),
        )
        graph = CacheGraph(cache("", "pods"), cache("", "persistentvolumeclaims"))
        return cls(mode, policy, graph, registries)

    def namespaced(self, group: str, resource: str) -> bool:
        known = self._namespaced.get((group, resource))
        if known is None:  # a custom resource registered since start
            for (g, _, r), registry in list(self._registries.items()):
                if (g, r) == (group, resource):
                    known = registry.info.namespaced
                    self._namespaced[(group, resource)] = known
                    break
        return True if known is None else known

    def decide(self, user: UserInfo, attributes: Attributes, field_selector: str = "") -> Decision:
        """The chain's answer for `user` doing `attributes`."""
        if SUPERUSER_GROUP in user.groups:
            return Decision(True, f"allowed: the caller is in {SUPERUSER_GROUP}")
        refused: Decision | None = None
        if self._node is not None:
            decision = self._node.authorize(user, attributes, field_selector)
            if decision is not None and decision.allowed:
                return decision
            refused = decision
        decision = self._rbac_decision(user, attributes)
        if decision.allowed or refused is None:
            return decision
        return refused

    def _rbac_decision(self, user: UserInfo, attributes: Attributes) -> Decision:
        """RBAC's answer, from `_rbac_answers` when the policy has not
        changed since it was computed."""
        if self._policy_version is None:
            return self._rbac.authorize(user, attributes)
        version = self._policy_version()
        if version != self._rbac_answers_version or len(self._rbac_answers) >= _RBAC_ANSWERS:
            self._rbac_answers = {}
            self._rbac_answers_version = version
        key = (user, attributes)
        decision = self._rbac_answers.get(key)
        if decision is None:
            decision = self._rbac_answers[key] = self._rbac.authorize(user, attributes)
        return decision

    def check(self, method: str, request: Any, user: UserInfo) -> None:
        """Raises Forbidden unless `user` may make this call (and, for a
        node's create, NodeRestriction admits the object)."""
        if method in BATCHES:
            return  # each item is authorised by the handler: `check_creates`
        if SUPERUSER_GROUP in user.groups and not node_name_of(user):
            return  # allowed whatever the call (`decide`), and no node to restrict
        found = attributes_for(method, request, self.namespaced)
        if found is None:
            return
        attributes = found.attributes
        decision = self.decide(user, attributes, found.field_selector)
        if not decision.allowed:
            raise forbidden(attributes, decision.reason)
        if method == "Create" and not attributes.subresource and node_name_of(user):
            self._admit_node_create(user, attributes, request)
        if method == "Create" and _token_request(attributes) and node_name_of(user):
            body = decode_body(
                TokenRequest, request.object, "authentication.k8s.io/v1 TokenRequest"
            )
            refusal = admit_token_request(user, attributes.namespace, body, self._graph)
            if refusal:
                raise forbidden(attributes, refusal)

    def check_creates(
        self, user: UserInfo, registry: Registry, objs: Sequence[Any]
    ) -> list[errors.Forbidden | None]:
        """For each object of a batched create of `registry`'s kind, in
        order: None when `user` may create it in its namespace (metadata,
        "default" when none), else the Forbidden error a single create of
        it would get (RBAC and the node authorizer, then NodeRestriction).
        The chain is asked once per namespace."""
        info = registry.info
        decided: dict[str, errors.Forbidden | None] = {}
        node = bool(node_name_of(user))
        out: list[errors.Forbidden | None] = []
        for obj in objs:
            namespace = (obj.metadata.namespace or "default") if info.namespaced else ""
            attributes = Attributes("create", info.group, info.plural, "", namespace, "")
            if namespace not in decided:
                decision = self.decide(user, attributes)
                decided[namespace] = (
                    None if decision.allowed else forbidden(attributes, decision.reason)
                )
            refused = decided[namespace]
            if refused is None and node:
                try:
                    self._admit(user, attributes, registry, obj)
                except errors.Forbidden as e:
                    refused = e
            out.append(refused)
        return out

    def _admit_node_create(self, user: UserInfo, attributes: Attributes, request: Any) -> None:
        ref = request.ref
        registry = self._registries.get((ref.group, ref.version, ref.resource))
        if registry is None:
            return  # the handler answers NotFound
        self._admit(user, attributes, registry, registry.decode(request.object))

    def _admit(self, user: UserInfo, attributes: Attributes, registry: Registry, obj: Any) -> None:
        """NodeRestriction: Forbidden unless the node `user` may create `obj`."""
        refusal = admit_create(user, attributes.resource, attributes.api_group, obj)
        if refusal:
            name = obj.metadata.name
            raise errors.Forbidden(
                f'{registry.info.group_resource} "{name}" is forbidden: {refusal}',
                kind=registry.info.group_resource,
                name=name,
            )

    def rules(self, user: UserInfo, namespace: str) -> RuleSet:
        """What RBAC grants `user` in `namespace` (the node authorizer's
        grants depend on its graph and are not listed, as in Kubernetes)."""
        if SUPERUSER_GROUP in user.groups:
            return RuleSet(
                (
                    PolicyRule(verbs=["*"], api_groups=["*"], resources=["*"]),
                    PolicyRule(verbs=["*"], non_resource_urls=["*"]),
                )
            )
        return self._rbac.rules_for(user, namespace)


# -- the reviews (kpyctl auth can-i) ----------------------------------------------------


def review_subject(
    authorization: Authorization | None, caller: UserInfo, impersonate: api.Impersonation
) -> UserInfo:
    """The user a review is about: the caller, or whom it impersonates
    (kubectl's --as and --as-group, checked as kube-apiserver checks
    Impersonate-User and Impersonate-Group: the `impersonate` verb on
    `users/<name>` and on `groups/<name>`). Forbidden otherwise."""
    if not impersonate.user:
        if impersonate.groups:
            raise errors.BadRequest(
                "impersonating groups needs a user: give --as too (kubectl's rule)"
            )
        return caller
    for resource, name in (
        ("users", impersonate.user),
        *(("groups", g) for g in impersonate.groups),
    ):
        attributes = Attributes("impersonate", "", resource, "", "", name)
        if authorization is not None:
            decision = authorization.decide(caller, attributes)
            if not decision.allowed:
                raise forbidden(attributes, decision.reason)
    groups = [*impersonate.groups]
    if "system:authenticated" not in groups and impersonate.user != "system:anonymous":
        groups.append("system:authenticated")
    return UserInfo(impersonate.user, tuple(groups))


def access_review(
    authorization: Authorization | None, caller: UserInfo, request: api.AccessReviewRequest
) -> api.AccessReviewResponse:
    """A SelfSubjectAccessReview: may the caller (or whom it impersonates) do this?"""
    user = review_subject(authorization, caller, request.impersonate)
    if request.non_resource_path:
        attributes = Attributes.non_resource(request.verb, request.non_resource_path)
    else:
        attributes = Attributes(
            request.verb,
            request.group,
            request.resource,
            request.subresource,
            request.namespace,
            request.name,
        )
    if authorization is None:
        return api.AccessReviewResponse(allowed=True, reason="AlwaysAllow")
    decision = authorization.decide(user, attributes)
    return api.AccessReviewResponse(
        allowed=decision.allowed, denied=not decision.allowed, reason=decision.reason
    )


def rules_review(
    authorization: Authorization | None, caller: UserInfo, request: api.RulesReviewRequest
) -> api.RulesReviewResponse:
    """A SelfSubjectRulesReview: what RBAC grants in a namespace."""
    user = review_subject(authorization, caller, request.impersonate)
    if authorization is None:
        return api.RulesReviewResponse(
            resource_rules=[api.ResourceRule(verbs=["*"], api_groups=["*"], resources=["*"])],
            non_resource_rules=[api.NonResourceRule(verbs=["*"], non_resource_urls=["*"])],
        )
    found = authorization.rules(user, request.namespace)
    response = api.RulesReviewResponse(
        incomplete=bool(found.errors), evaluation_error="; ".join(found.errors)
    )
    for rule in found.rules:
        if rule.non_resource_urls:
            response.non_resource_rules.append(
                api.NonResourceRule(verbs=rule.verbs, non_resource_urls=rule.non_resource_urls)
            )
        if rule.resources:
            response.resource_rules.append(
                api.ResourceRule(
                    verbs=rule.verbs,
                    api_groups=rule.api_groups,
                    resources=rule.resources,
                    resource_names=rule.resource_names,
                )
            )
    return response

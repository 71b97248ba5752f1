"""Where the RBAC evaluator reads roles and bindings, and what a
ClusterRole's rules are once aggregation is applied.

`PolicySource` is shaped by its one consumer, `rbac.RBACAuthorizer`: four
synchronous reads, as an informer's indexed store answers them. The
evaluator never modifies what a source returns, and a source's answers may
be shared (a cache's objects): callers must not mutate them either.

`StaticPolicy` answers from plain lists of objects (tests, and the
bootstrap policy before anything is stored).

`effective_rules(role, source)` is a ClusterRole's rules: its own, or for a
role with an aggregationRule the union of the rules of every other
ClusterRole one of its selectors matches, applied transitively (admin
aggregates edit, which aggregates the roles labelled for it), as
Kubernetes' clusterrole-aggregation controller leaves them. A cycle of
aggregating roles ends where it would repeat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kpy.api.labels import selector_from_label_selector
from kpy.api.rbac.v1 import ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from google.protobuf.message import Message

__all__ = ["PolicySource", "StaticPolicy", "effective_rules"]


class PolicySource(Protocol):
    """Roles and bindings, read synchronously (an informer's store)."""

    def role(self, namespace: str, name: str) -> Role | None: ...

    def cluster_role(self, name: str) -> ClusterRole | None: ...

    def cluster_roles(self) -> Sequence[ClusterRole]: ...

    def role_bindings(self, namespace: str) -> Sequence[RoleBinding]: ...

    def cluster_role_bindings(self) -> Sequence[ClusterRoleBinding]: ...


class StaticPolicy:
    """A `PolicySource` over a fixed collection of RBAC objects; objects of
    other kinds are ignored. The objects are kept, not copied."""

    def __init__(self, objects: Iterable[Message]) -> None:
        self._roles: dict[tuple[str, str], Role] = {}
        self._cluster_roles: dict[str, ClusterRole] = {}
        self._role_bindings: dict[str, list[RoleBinding]] = {}
        self._cluster_role_bindings: list[ClusterRoleBinding] = []
        for obj in objects:
            meta = obj.metadata  # type: ignore[attr-defined]
            if isinstance(obj, Role):
                self._roles[meta.namespace, meta.name] = obj
            elif isinstance(obj, ClusterRole):
                self._cluster_roles[meta.name] = obj
            elif isinstance(obj, RoleBinding):
                self._role_bindings.setdefault(meta.namespace, []).append(obj)
            elif isinstance(obj, ClusterRoleBinding):
                self._cluster_role_bindings.append(obj)

    def role(self, namespace: str, name: str) -> Role | None:
        return self._roles.get((namespace, name))

    def cluster_role(self, name: str) -> ClusterRole | None:
        return self._cluster_roles.get(name)

    def cluster_roles(self) -> Sequence[ClusterRole]:
        return list(self._cluster_roles.values())

    def role_bindings(self, namespace: str) -> Sequence[RoleBinding]:
        return self._role_bindings.get(namespace, [])

    def cluster_role_bindings(self) -> Sequence[ClusterRoleBinding]:
        return self._cluster_role_bindings


def effective_rules(role: ClusterRole, source: PolicySource) -> list[PolicyRule]:
    """`role`'s rules after aggregation (see the module docstring); each
    distinct rule once, in the order first met."""
    return _aggregate(role, source, seen={role.metadata.name})


def _aggregate(role: ClusterRole, source: PolicySource, seen: set[str]) -> list[PolicyRule]:
    if not role.HasField("aggregation_rule"):
        return list(role.rules)
    selectors = []
    for selector in role.aggregation_rule.cluster_role_selectors:
        try:
            selectors.append(selector_from_label_selector(selector))
        except ValueError:  # validation refuses these; a stored one selects nothing
            continue
    rules: list[PolicyRule] = []
    for other in sorted(source.cluster_roles(), key=lambda r: r.metadata.name):
        name = other.metadata.name
        if name in seen or not any(s.matches(other.metadata.labels) for s in selectors):
            continue
        seen.add(name)
        for rule in _aggregate(other, source, seen):
            if rule not in rules:
                rules.append(rule)
    return rules

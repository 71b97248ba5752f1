"""The RBAC evaluator: may this user do this? (Kubernetes'
plugin/pkg/auth/authorizer/rbac.)

Contract:
- A ClusterRoleBinding grants its ClusterRole's rules in every namespace
  and at the cluster scope; a RoleBinding grants its Role's, or a
  ClusterRole's, rules in its own namespace only.
- A subject applies to a user by kind: User by name, Group by one of the
  user's groups, ServiceAccount by the user name
  `system:serviceaccount:<namespace>:<name>` (its namespace defaults to
  the RoleBinding's). The groups `system:serviceaccounts` and
  `system:serviceaccounts:<namespace>` are ordinary Group subjects, which
  the authenticator gives every ServiceAccount user.
- A rule allows a resource request when its verbs, apiGroups and
  resources each contain the request's or `*`, and its resourceNames are
  empty or contain the request's name. A subresource is matched as
  `resource/subresource` (`pods/exec`), or by `*/subresource`; `pods`
  alone does not grant `pods/exec`. A request without a name (list,
  watch, deletecollection, a create) never matches a rule limited by
  resourceNames.
- A rule allows a non-resource request when its verbs match and one of its
  nonResourceURLs equals the path, is `*`, or ends in `*` and prefixes it.
- A ClusterRole with an aggregationRule has the rules of the roles it
  selects (`policy.effective_rules`).
- A binding naming a role that does not exist grants nothing; the missing
  role is named in the reason of a denial, so an operator can fix it.
- The evaluator never writes and never mutates what its source returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kpy.api.rbac import ALL, GROUP_KIND, SERVICE_ACCOUNT_KIND, USER_KIND
from kpy.auth.attributes import Attributes, Decision, UserInfo, service_account_username
from kpy.auth.policy import effective_rules

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from kpy.api.rbac.v1 import ClusterRoleBinding, PolicyRule, RoleBinding, Subject
    from kpy.auth.policy import PolicySource

__all__ = ["RBACAuthorizer", "RuleSet", "rule_allows"]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule granted to a user in a namespace (`rules_for`), and the
    problems met while gathering them (a binding to a missing role): with
    errors the list may be incomplete, as `kubectl auth can-i --list` warns."""

    rules: tuple[PolicyRule, ...]
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Grant:
    """The rules one binding gives, and how to name it in a reason."""

    rules: Sequence[PolicyRule]
    describe: str


class RBACAuthorizer:
    """Answers `authorize(user, attributes)` from the roles and bindings of
    a `PolicySource`, read afresh on every call."""

    def __init__(self, source: PolicySource) -> None:
        self._source = source

    def authorize(self, user: UserInfo, attributes: Attributes) -> Decision:
        """Allowed when any rule granted to `user` in the request's
        namespace allows it; otherwise denied, with the reason Kubernetes'
        Forbidden error gives."""
        errors: list[str] = []
        for grant in self._grants(user, attributes.namespace, errors):
            if any(rule_allows(attributes, rule) for rule in grant.rules):
                return Decision(True, f"RBAC: allowed by {grant.describe}")
        reason = attributes.describe(user)
        if errors:
            reason += "; RBAC: " + "; ".join(errors)
        return Decision(False, reason)

    def rules_for(self, user: UserInfo, namespace: str) -> RuleSet:
        """Every rule granted to `user` in `namespace` ("": at the cluster
        scope only), each distinct rule once."""
        errors: list[str] = []
        rules: list[PolicyRule] = []
        for grant in self._grants(user, namespace, errors):
            rules.extend(rule for rule in grant.rules if rule not in rules)
        return RuleSet(tuple(rules), tuple(errors))

    def _grants(self, user: UserInfo, namespace: str, errors: list[str]) -> Iterator[_Grant]:
        """The grants that apply to `user` in `namespace`, cluster-wide ones
        first, lazily: `authorize` stops at the first that allows."""
        for crb in self._source.cluster_role_bindings():
            subject = _applying_subject(user, crb.subjects, "")
            if subject is None:
                continue
            rules = self._cluster_role_rules(crb.role_ref.name, errors)
            if rules is not None:
                yield _Grant(rules, _describe_cluster_binding(crb, subject))
        if not namespace:
            return
        for rb in self._source.role_bindings(namespace):
            subject = _applying_subject(user, rb.subjects, namespace)
            if subject is None:
                continue
            if rb.role_ref.kind == "ClusterRole":
                rules = self._cluster_role_rules(rb.role_ref.name, errors)
            else:
                rules = self._role_rules(namespace, rb.role_ref.name, errors)
            if rules is not None:
                yield _Grant(rules, _describe_binding(rb, subject))

    def _cluster_role_rules(self, name: str, errors: list[str]) -> Sequence[PolicyRule] | None:
        role = self._source.cluster_role(name)
        if role is None:
            errors.append(f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
            return None
        return effective_rules(role, self._source)

    def _role_rules(
        self, namespace: str, name: str, errors: list[str]
    ) -> Sequence[PolicyRule] | None:
        role = self._source.role(namespace, name)
        if role is None:
            errors.append(f'role.rbac.authorization.k8s.io "{name}" not found')
            return None
        return role.rules


# -- subjects -----------------------------------------------------------------


def _applying_subject(
    user: UserInfo, subjects: Sequence[Subject], namespace: str
) -> Subject | None:
    """The first of a binding's subjects that is `user`; `namespace` is a
    RoleBinding's ("" for a ClusterRoleBinding)."""
    for subject in subjects:
        if _applies(user, subject, namespace):
            return subject
    return None


def _applies(user: UserInfo, subject: Subject, namespace: str) -> bool:
    if subject.kind == USER_KIND:
        return user.name == subject.name
    if subject.kind == GROUP_KIND:
        return subject.name in user.groups
    if subject.kind == SERVICE_ACCOUNT_KIND:
        sa_namespace = subject.namespace or namespace
        if not sa_namespace:
            return False
        return user.name == service_account_username(sa_namespace, subject.name)
    return False


def _describe_subject(subject: Subject, namespace: str) -> str:
    if subject.kind == SERVICE_ACCOUNT_KIND:
        return f'{subject.kind} "{subject.name}/{subject.namespace or namespace}"'
    return f'{subject.kind} "{subject.name}"'


def _describe_cluster_binding(binding: ClusterRoleBinding, subject: Subject) -> str:
    ref = binding.role_ref
    return (
        f'ClusterRoleBinding "{binding.metadata.name}" of {ref.kind} "{ref.name}" '
        f"to {_describe_subject(subject, '')}"
    )


def _describe_binding(binding: RoleBinding, subject: Subject) -> str:
    ref, meta = binding.role_ref, binding.metadata
    return (
        f'RoleBinding "{meta.name}/{meta.namespace}" of {ref.kind} "{ref.name}" '
        f"to {_describe_subject(subject, meta.namespace)}"
    )


# -- rules --------------------------------------------------------------------


def rule_allows(attributes: Attributes, rule: PolicyRule) -> bool:
    """Whether `rule` alone allows the request (see the module contract)."""
    if not _matches(rule.verbs, attributes.verb):
        return False
    if not attributes.resource_request:
        return _url_matches(rule.non_resource_urls, attributes.path)
    return (
        _matches(rule.api_groups, attributes.api_group)
        and _resource_matches(rule.resources, attributes.resource, attributes.subresource)
        and (not rule.resource_names or attributes.name in rule.resource_names)
    )


def _matches(allowed: Sequence[str], value: str) -> bool:
    return ALL in allowed or value in allowed


def _resource_matches(allowed: Sequence[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for rule_resource in allowed:
        if rule_resource in (ALL, combined):
            return True
        if subresource and rule_resource == f"*/{subresource}":
            return True
    return False


def _url_matches(allowed: Sequence[str], path: str) -> bool:
    for url in allowed:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False

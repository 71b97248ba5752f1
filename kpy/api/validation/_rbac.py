"""Validation of Role, ClusterRole, RoleBinding and ClusterRoleBinding
(rbac.authorization.k8s.io/v1), as Kubernetes' pkg/apis/rbac/validation:

- names are path segments (not `.` or `..`, no `/` or `%`), since roles
  are named after users and components (`system:kube-scheduler`);
- a rule has verbs; a resource rule has apiGroups and resources; a
  non-resource rule (nonResourceURLs) only in a ClusterRole and never
  beside resources;
- an aggregationRule has at least one valid selector;
- a RoleBinding's roleRef is a Role or ClusterRole, a ClusterRoleBinding's
  a ClusterRole, in rbac.authorization.k8s.io, and it never changes;
- a subject is a User or Group (apiGroup rbac.authorization.k8s.io) or a
  ServiceAccount (apiGroup "", a DNS subdomain name, and in a
  ClusterRoleBinding a namespace).
"""

from __future__ import annotations

import json
from typing import Any

from kpy.api import names
from kpy.api.codec import to_dict
from kpy.api.rbac import GROUP_KIND, GROUP_NAME, SERVICE_ACCOUNT_KIND, USER_KIND
from kpy.api.validation._field import Errors, each, invalid_raw, not_supported, required
from kpy.api.validation._meta import validate_label_selector
from kpy.api.validation._registry import NAME_CHECKS, update_validators, validators

__all__ = ["is_valid_path_segment_name"]

_NAME_MAY_NOT_BE = (".", "..")
_NAME_MAY_NOT_CONTAIN = ("/", "%")
_SUBJECT_KINDS = (SERVICE_ACCOUNT_KIND, USER_KIND, GROUP_KIND)


def is_valid_path_segment_name(name: str) -> list[str]:
    """Kubernetes' path.IsValidPathSegmentName: the name can be one segment
    of a URL path."""
    if name in _NAME_MAY_NOT_BE:
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in _NAME_MAY_NOT_CONTAIN if bad in name]


for _kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
    NAME_CHECKS[_kind] = is_valid_path_segment_name


def _policy_rule(rule: Any, path: str, *, namespaced: bool) -> Errors:
    errs: Errors = []
    if not rule.verbs:
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    if rule.non_resource_urls:
        shown = json.dumps(list(rule.non_resource_urls))
        if namespaced:
            errs.append(
                invalid_raw(
                    f"{path}.nonResourceURLs",
                    f"{shown}: namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.api_groups or rule.resources or rule.resource_names:
            errs.append(
                invalid_raw(
                    f"{path}.nonResourceURLs",
                    f"{shown}: rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return errs
    if not rule.api_groups:
        errs.append(
            required(f"{path}.apiGroups", "resource rules must supply at least one api group")
        )
    if not rule.resources:
        errs.append(
            required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    return errs


def _rules(role: Any, *, namespaced: bool) -> Errors:
    errs: Errors = []
    for i, rule in enumerate(role.rules):
        errs += _policy_rule(rule, f"rules[{i}]", namespaced=namespaced)
    return errs


@validators("Role")
def _validate_role(role: Any) -> Errors:
    return _rules(role, namespaced=True)


@validators("ClusterRole")
def _validate_cluster_role(role: Any) -> Errors:
    errs = _rules(role, namespaced=False)
    if role.HasField("aggregation_rule"):
        selectors = role.aggregation_rule.cluster_role_selectors
        if not selectors:
            errs.append(
                required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                )
            )
        for i, selector in enumerate(selectors):
            errs += validate_label_selector(selector, f"aggregationRule.clusterRoleSelectors[{i}]")
    return errs


def _subject(subject: Any, path: str, *, namespaced: bool) -> Errors:
    errs: Errors = []
    if not subject.name:
        errs.append(required(f"{path}.name"))
    if subject.kind == SERVICE_ACCOUNT_KIND:
        if subject.name:
            errs += each(f"{path}.name", subject.name, names.is_dns1123_subdomain(subject.name))
        if subject.api_group:
            errs.append(not_supported(f"{path}.apiGroup", subject.api_group, ("",)))
        if not namespaced and not subject.namespace:
            errs.append(required(f"{path}.namespace"))
    elif subject.kind in (USER_KIND, GROUP_KIND):
        if subject.api_group != GROUP_NAME:
            errs.append(not_supported(f"{path}.apiGroup", subject.api_group, (GROUP_NAME,)))
    else:
        errs.append(not_supported(f"{path}.kind", subject.kind, _SUBJECT_KINDS))
    return errs


def _binding(binding: Any, *, namespaced: bool) -> Errors:
    errs: Errors = []
    ref = binding.role_ref
    if ref.api_group != GROUP_NAME:
        errs.append(not_supported("roleRef.apiGroup", ref.api_group, (GROUP_NAME,)))
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.kind not in kinds:
        errs.append(not_supported("roleRef.kind", ref.kind, kinds))
    if not ref.name:
        errs.append(required("roleRef.name"))
    else:
        errs += each("roleRef.name", ref.name, is_valid_path_segment_name(ref.name))
    for i, subject in enumerate(binding.subjects):
        errs += _subject(subject, f"subjects[{i}]", namespaced=namespaced)
    return errs


@validators("RoleBinding")
def _validate_role_binding(binding: Any) -> Errors:
    return _binding(binding, namespaced=True)


@validators("ClusterRoleBinding")
def _validate_cluster_role_binding(binding: Any) -> Errors:
    return _binding(binding, namespaced=False)


def _role_ref_unchanged(new: Any, old: Any) -> Errors:
    """A binding's grant is its roleRef: changing it would re-point existing
    grants, so Kubernetes asks for a new binding instead."""
    if new.role_ref == old.role_ref:
        return []
    shown = json.dumps(to_dict(new.role_ref), separators=(",", ":"))
    return [invalid_raw("roleRef", f"{shown}: cannot change roleRef")]


update_validators("RoleBinding")(_role_ref_unchanged)
update_validators("ClusterRoleBinding")(_role_ref_unchanged)

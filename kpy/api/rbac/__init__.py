"""rbac.authorization.k8s.io: the names RBAC's types, validation, defaulting
and evaluator share (Kubernetes' pkg/apis/rbac/types.go)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALL",
    "GROUP_KIND",
    "GROUP_NAME",
    "SERVICE_ACCOUNT_KIND",
    "USER_KIND",
]

GROUP_NAME: Final = "rbac.authorization.k8s.io"
USER_KIND: Final = "User"
GROUP_KIND: Final = "Group"
SERVICE_ACCOUNT_KIND: Final = "ServiceAccount"
#: "*" in verbs, apiGroups, resources or nonResourceURLs: every one.
ALL: Final = "*"

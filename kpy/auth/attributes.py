"""The three values of an authorization question: who asks (`UserInfo`),
what they ask to do (`Attributes`), and the answer (`Decision`).

All are frozen: an authorizer may keep and share them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "SERVICE_ACCOUNTS_GROUP",
    "SERVICE_ACCOUNT_USER_PREFIX",
    "Attributes",
    "Decision",
    "UserInfo",
    "service_account_groups",
    "service_account_user",
    "service_account_username",
]

SERVICE_ACCOUNT_USER_PREFIX: Final = "system:serviceaccount:"
#: Every ServiceAccount is in this group, and in `system:serviceaccounts:<namespace>`.
SERVICE_ACCOUNTS_GROUP: Final = "system:serviceaccounts"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated caller: a user name, the groups it belongs to, and
    the uid its authenticator gave it ("" when it gives none)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


@dataclass(frozen=True, slots=True)
class Attributes:
    """One request, as an authorizer sees it.

    A resource request names a verb (get, list, watch, create, update,
    patch, delete, deletecollection, or a subresource verb such as the
    `create` of `pods/exec`), an API group ("" for core), a resource plural,
    optionally a subresource, the namespace ("" for cluster-scoped kinds
    and for requests across all namespaces) and the object's name ("" for
    list, watch, deletecollection and a create without a name). A
    non-resource request (`resource_request=False`) names a verb and a URL
    `path`."""

    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    resource_request: bool = True
    path: str = ""

    @classmethod
    def non_resource(cls, verb: str, path: str) -> Attributes:
        """A request for a URL that is not a resource (`get /healthz`)."""
        return cls(verb=verb, resource_request=False, path=path)

    def describe(self, user: UserInfo) -> str:
        """The request as Kubernetes' Forbidden error words it."""
        who = f'User "{user.name}"'
        if not self.resource_request:
            return f'{who} cannot {self.verb} path "{self.path}"'
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        text = f'{who} cannot {self.verb} resource "{resource}" in API group "{self.api_group}"'
        if self.namespace:
            return f'{text} in the namespace "{self.namespace}"'
        return f"{text} at the cluster scope"


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why: the binding and role that allowed it, or
    what was denied (plus any role a binding named but that is missing)."""

    allowed: bool
    reason: str


def service_account_username(namespace: str, name: str) -> str:
    """The user name a ServiceAccount authenticates as."""
    return f"{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """The groups every ServiceAccount of `namespace` is in."""
    return (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}")


def service_account_user(namespace: str, name: str) -> UserInfo:
    """The user a ServiceAccount's token authenticates as (Kubernetes'
    serviceaccount.UserInfo), with the `system:authenticated` group every
    authenticated user has."""
    groups = (*service_account_groups(namespace), "system:authenticated")
    return UserInfo(service_account_username(namespace, name), groups)

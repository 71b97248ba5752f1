"""Custom kinds from discovery: what a client process registers so that the
kinds CRDs add work with the typed API.

The API server lists every resource it serves (`Client.resources()`, the
`Resources` rpc), custom ones included. `register_served` registers each
one that is not a kind kpy is built with as a custom kind
(`kpy.api.unstructured.custom_kind`) in the process's scheme, so that
`scheme.resolve("webapps")`, the codec and the typed client calls all
work on it; `custom_kinds(client)` does that and returns them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kpy.api.scheme import scheme
from kpy.api.unstructured import custom_kind, is_custom

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.api.scheme import ResourceInfo, Scheme
    from kpy.client.protocol import ClientProtocol
    from kpy.rpc.apiserver import v1 as api

__all__ = ["custom_kinds", "register_served", "version_priority"]

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """A sort key putting versions in Kubernetes' priority order: GA before
    beta before alpha, higher numbers first, then other strings by name."""
    m = _VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    major, stage, minor = int(m[1]), m[2], int(m[3] or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, "")


def _built_in(api_version: str, kind: str, using: Scheme) -> bool:
    info = using.lookup(api_version, kind)
    return info is not None and not is_custom(info.message)


def register_served(
    resources: Iterable[api.APIResource], *, using: Scheme | None = None
) -> list[ResourceInfo]:
    """Registers each served resource that is not a built-in kind as a
    custom kind, and returns them. A kind served in several versions is
    registered with its preferred version first, so its names resolve to
    that version, as kubectl's do."""
    registry = using or scheme
    custom = [
        r
        for r in resources
        if "/" not in r.resource  # subresources are not kinds
        and r.group
        and not _built_in(f"{r.group}/{r.version}", r.kind, registry)
    ]
    custom.sort(key=lambda r: (r.group, r.kind, version_priority(r.version)))
    infos = []
    for r in custom:
        cls = custom_kind(
            f"{r.group}/{r.version}",
            r.kind,
            plural=r.resource,
            namespaced=r.namespaced,
            short_names=tuple(r.short_names),
            singular=r.singular_name,
            categories=tuple(r.categories),
            status_subresource="status" in r.subresources,
            using=registry,
        )
        infos.append(registry.for_message(cls))
    return infos


async def custom_kinds(
    client: ClientProtocol, *, using: Scheme | None = None
) -> list[ResourceInfo]:
    """The custom kinds `client`'s server serves now, registered (see
    `register_served`)."""
    return register_served(await client.resources(), using=using)

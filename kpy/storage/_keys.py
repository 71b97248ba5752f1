"""Where objects live in etcd, and the opaque continue tokens of paged lists.

Keys are `<prefix>/<storage_group>/<version>/<plural>/<namespace>/<name>`, or
without the namespace segment for cluster-scoped kinds. A list or watch of a
resource reads the range under `<prefix>/<group>/<version>/<plural>/` (or that
plus `<namespace>/`); the trailing slash keeps namespace `a` from matching
`ab`. Names and namespaces are refused here when they would change the shape
of a key (empty, containing `/`, `.` or `..`), whatever validation ran before.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kpy.api.errors import BadRequest

if TYPE_CHECKING:
    from kpy.api.scheme import ResourceInfo

_TOKEN_VERSION = 1


def _check_segment(what: str, value: str) -> None:
    if not value:
        raise BadRequest(f"{what} is required")
    if "/" in value or value in (".", ".."):
        raise BadRequest(f'{what} "{value}" may not contain "/" nor be "." or ".."')


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with `prefix`."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # every byte was 0xff: the range runs to the end of the keyspace


@dataclass(frozen=True, slots=True)
class Keyspace:
    """Builds the etcd keys of one store. `root` is the store prefix without a
    trailing slash (`/registry`)."""

    root: str

    def resource_prefix(self, info: ResourceInfo, namespace: str | None) -> bytes:
        """The range prefix of a list or watch: every object of the resource,
        or only those of `namespace` (namespaced kinds only)."""
        base = f"{self.root}/{info.storage_group}/{info.stored_version}/{info.plural}/"
        if not namespace:
            return base.encode()
        if not info.namespaced:
            raise BadRequest(f"{info.group_resource} is cluster-scoped: no namespace is allowed")
        _check_segment("namespace", namespace)
        return f"{base}{namespace}/".encode()

    def object_key(self, info: ResourceInfo, namespace: str, name: str) -> bytes:
        """The key of one object; raises BadRequest when namespace and scope disagree."""
        _check_segment("name", name)
        if info.namespaced:
            if not namespace:
                raise BadRequest(f"{info.group_resource} is namespaced: a namespace is required")
            return self.resource_prefix(info, namespace) + name.encode()
        if namespace:
            raise BadRequest(
                f'{info.group_resource} is cluster-scoped: namespace "{namespace}" is not allowed'
            )
        return self.resource_prefix(info, None) + name.encode()


@dataclass(frozen=True, slots=True)
class ContinueToken:
    """Where the next page of a list starts: the revision every page is read
    at, and the next key relative to the list's range prefix (so a token can
    never reach outside the range it was issued for)."""

    revision: int
    start: bytes

    def encode(self) -> str:
        body = {"v": _TOKEN_VERSION, "rv": self.revision, "start": self.start.decode()}
        return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()

    @classmethod
    def decode(cls, token: str) -> ContinueToken:
        """Parses a token made by `encode`; anything else is BadRequest."""
        try:
            body = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (binascii.Error, ValueError, UnicodeError) as e:
            raise BadRequest(f"continue token is not valid: {e}") from None
        if not isinstance(body, dict) or body.get("v") != _TOKEN_VERSION:
            raise BadRequest("continue token is not valid: unknown format")
        revision, start = body.get("rv"), body.get("start")
        if type(revision) is not int or revision <= 0 or not isinstance(start, str):
            raise BadRequest("continue token is not valid: missing revision or start key")
        return cls(revision=revision, start=start.encode())

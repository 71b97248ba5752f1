"""The scheme: which kinds exist, and how each is named and stored.

A `ResourceInfo` ties a kind (`Deployment`) to its group and version
(`apps/v1`), its resource plural (`deployments`), its short names (`deploy`),
whether it lives in a namespace, and the protobuf message that holds it. The
codec, storage keys, the API server and kpyctl all read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.protobuf.message import Message


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """How one kind is served and stored. Instances are shared; never mutate."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    message: type[Message]
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """apiVersion as written in manifests: `v1` for core, else `group/version`."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def storage_group(self) -> str:
        """The group as spelled in etcd keys: the core group is `core`."""
        return self.group or "core"

    @property
    def group_resource(self) -> str:
        """`deployments.apps`, or just `pods` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

"""What the VolumeBinding plugin reads and writes, over the scheduler's
informers and client (its `VolumeSource`).

Reads come from the informer caches, never the API; the two writes are
the ones kube-scheduler's volume binder makes: a PersistentVolume's
claimRef (an update at the resourceVersion the cache holds, so a volume
changed meanwhile gives Conflict and the pod is retried) and a claim's
`volume.kubernetes.io/selected-node` annotation (a merge patch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.core.v1 import PersistentVolume, PersistentVolumeClaim
from kpy.api.storage.v1 import StorageClass
from kpy.scheduler.plugins.volume_binding import ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.cache.informer import SharedInformerFactory
    from kpy.client import Client

__all__ = ["InformerVolumes"]


class InformerVolumes:
    """The VolumeBinding plugin's VolumeSource for a running scheduler."""

    def __init__(self, informers: SharedInformerFactory, client: Client) -> None:
        self._claims = informers.informer(PersistentVolumeClaim).lister()
        self._volumes = informers.informer(PersistentVolume).lister()
        self._classes = informers.informer(StorageClass).lister()
        self._client = client

    def claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        return self._claims.get(namespace, name)

    def volume(self, name: str) -> PersistentVolume | None:
        return self._volumes.get("", name)

    def volumes(self) -> Sequence[PersistentVolume]:
        return self._volumes.list()

    def storage_class(self, name: str) -> StorageClass | None:
        return self._classes.get("", name)

    async def bind_volume(self, volume: PersistentVolume, claim: PersistentVolumeClaim) -> None:
        pv = PersistentVolume()
        pv.CopyFrom(volume)
        c = claim.metadata
        ref = pv.spec.claim_ref
        ref.kind, ref.api_version = "PersistentVolumeClaim", "v1"
        ref.namespace, ref.name, ref.uid = c.namespace, c.name, c.uid
        ref.resource_version = c.resource_version
        pv.metadata.annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
        await self._client.update(pv)

    async def select_node(self, claim: PersistentVolumeClaim, node_name: str) -> None:
        patch = {"metadata": {"annotations": {ANN_SELECTED_NODE: node_name}}}
        await self._client.patch(
            PersistentVolumeClaim,
            claim.metadata.name,
            patch,
            namespace=claim.metadata.namespace,
            patch_type="merge",
        )

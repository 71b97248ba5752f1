"""Storage object in use protection (Kubernetes' pkg/controller/volume/
pvcprotection and pvprotection): a claim in use, or a volume bound, is not
removed from under its user.

The API server's admission puts `kubernetes.io/pvc-protection` on every new
claim and `kubernetes.io/pv-protection` on every new volume; these
controllers add them to objects made before that, and remove them once a
deleted object is no longer used, so that the deletion completes:

- `PVCProtectionController` (`pvc-protection`): a deleted claim keeps its
  finalizer while any pod of its namespace that is not terminated
  (phase Succeeded or Failed) names it in a `persistentVolumeClaim`
  volume (or owns it as a generic ephemeral volume,
  `<pod>-<volume>`). The pod lister answers first; only when it finds no
  user is the API asked, so that a pod created a moment ago counts. Pod
  events requeue the claims they name.
- `PVProtectionController` (`pv-protection`): a deleted volume keeps its
  finalizer while its phase is Bound.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kpy.api.core.v1 import PersistentVolume, PersistentVolumeClaim, Pod
from kpy.cache.informer import EventHandler, deleted_object
from kpy.cache.store import split_key
from kpy.controllers.base import Controller
from kpy.controllers.volume import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.volume.protection")

__all__ = [
    "PVCProtectionController",
    "PVProtectionController",
    "claims_of",
    "new_pv_protection_controller",
    "new_pvc_protection_controller",
]


def claims_of(pod: Pod) -> list[str]:
    """The names of the claims `pod` uses, in its namespace."""
    names = []
    for volume in pod.spec.volumes:
        if volume.HasField("persistent_volume_claim"):
            names.append(volume.persistent_volume_claim.claim_name)
        elif volume.HasField("ephemeral"):
            names.append(f"{pod.metadata.name}-{volume.name}")
    return names


def _terminated(pod: Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def _uses(pods: Iterable[Pod], claim: str) -> bool:
    return any(not _terminated(p) and claim in claims_of(p) for p in pods)


def _without(obj: Any, finalizer: str) -> Any:
    fresh = type(obj)()
    fresh.CopyFrom(obj)
    kept = [f for f in obj.metadata.finalizers if f != finalizer]
    del fresh.metadata.finalizers[:]
    fresh.metadata.finalizers.extend(kept)
    return fresh


def _with(obj: Any, finalizer: str) -> Any:
    fresh = type(obj)()
    fresh.CopyFrom(obj)
    fresh.metadata.finalizers.append(finalizer)
    return fresh


class PVCProtectionController(Controller):
    """See the module docstring."""

    name = "pvc-protection"

    def __init__(
        self,
        client: ClientProtocol,
        claims: SharedInformer[PersistentVolumeClaim],
        pods: SharedInformer[Pod],
        *,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._claims: Lister[PersistentVolumeClaim] = claims.lister()
        self._pods: Lister[Pod] = pods.lister()
        claims.add_event_handler(
            EventHandler(
                on_add=lambda claim, _initial: self.enqueue(claim),
                on_update=lambda _old, claim: self.enqueue(claim),
            )
        )
        pods.add_event_handler(
            EventHandler(
                on_add=lambda pod, _initial: self._pod_changed(pod),
                on_update=lambda _old, pod: self._pod_changed(pod),
                on_delete=self._pod_changed,
            )
        )

    def _pod_changed(self, obj: Any) -> None:
        pod = deleted_object(obj)
        if isinstance(pod, Pod):
            for claim in claims_of(pod):
                self.enqueue_key(f"{pod.metadata.namespace}/{claim}")

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        claim = self._claims.get(namespace, name)
        if claim is None:
            return
        held = PVC_PROTECTION_FINALIZER in claim.metadata.finalizers
        if not claim.metadata.HasField("deletion_timestamp"):
            if not held:
                await self._client.update(_with(claim, PVC_PROTECTION_FINALIZER))
            return
        if not held or await self._in_use(namespace, name):
            return
        log.info("removing the pvc-protection finalizer", extra={"claim": key})
        await self._client.update(_without(claim, PVC_PROTECTION_FINALIZER))

    async def _in_use(self, namespace: str, name: str) -> bool:
        if _uses(self._pods.list(namespace), name):
            return True
        live = await self._client.list(Pod, namespace=namespace)
        return _uses(live.items, name)


class PVProtectionController(Controller):
    """See the module docstring."""

    name = "pv-protection"

    def __init__(
        self,
        client: ClientProtocol,
        volumes: SharedInformer[PersistentVolume],
        *,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._volumes: Lister[PersistentVolume] = volumes.lister()
        volumes.add_event_handler(
            EventHandler(
                on_add=lambda pv, _initial: self.enqueue(pv),
                on_update=lambda _old, pv: self.enqueue(pv),
            )
        )

    async def sync(self, key: str) -> None:
        _, name = split_key(key)
        pv = self._volumes.get("", name)
        if pv is None:
            return
        held = PV_PROTECTION_FINALIZER in pv.metadata.finalizers
        if not pv.metadata.HasField("deletion_timestamp"):
            if not held:
                await self._client.update(_with(pv, PV_PROTECTION_FINALIZER))
            return
        if held and pv.status.phase != "Bound":
            log.info("removing the pv-protection finalizer", extra={"volume": name})
            await self._client.update(_without(pv, PV_PROTECTION_FINALIZER))


def new_pvc_protection_controller(ctx: ControllerContext) -> PVCProtectionController:
    return PVCProtectionController(
        ctx.client,
        ctx.informers.informer(PersistentVolumeClaim),
        ctx.informers.informer(Pod),
        metrics=ctx.metrics,
    )


def new_pv_protection_controller(ctx: ControllerContext) -> PVProtectionController:
    return PVProtectionController(
        ctx.client, ctx.cluster_informers.informer(PersistentVolume), metrics=ctx.metrics
    )

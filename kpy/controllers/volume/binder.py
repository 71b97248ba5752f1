"""The PV controller (Kubernetes' pkg/controller/volume/persistentvolume,
`persistentvolume-binder`): binds claims to volumes and reclaims volumes
whose claim is gone.

One work queue holds both kinds of key: a claim's `namespace/name` and a
volume's `name` (volumes are cluster-scoped, so their keys have no `/`).
`sync` reads only listers (one live read excepted, below) and writes
through the client; every step is idempotent, so a sync interrupted
between two writes is finished by the next.

A claim (`_sync_claim`):

- without `storageClassName` at all gets the default class (the
  StorageClass annotated `storageclass.kubernetes.io/is-default-class`),
  as Kubernetes' retroactive default class assignment does; an empty
  `storageClassName: ""` asks for no class and keeps it;
- unbound, it is bound to a volume pre-bound to it by `claimRef`, else to
  the smallest Available volume that fits: capacity >= request, access
  modes a superset of the claim's, the same class and volumeMode, labels
  matching the claim's selector, and, for a WaitForFirstConsumer class,
  node affinity admitting the node the scheduler chose (annotation
  `volume.kubernetes.io/selected-node`; until it is set only pre-bound
  volumes are bound, and a `WaitForFirstConsumer` event says why);
- with nothing to bind it stays Pending with Kubernetes' event: the class
  does not exist (`ProvisioningFailed`), no class is set (`FailedBinding`),
  or a provisioner must make the volume (`ExternalProvisioning`; the claim
  gets `volume.kubernetes.io/storage-provisioner`);
- binding writes the volume's claimRef, its phase Bound, then the claim's
  volumeName with `pv.kubernetes.io/bind-completed` (each side
  `pv.kubernetes.io/bound-by-controller` where this controller chose), and
  the claim's phase Bound with its capacity and access modes;
- bound, whose volume is gone or bound elsewhere: phase Lost.

A bound claim that asks for more storage than its volume holds (which
admission allows only for a class with `allowVolumeExpansion`) has the
volume's capacity raised to its request, then its own status capacity:
a directory has no size to grow.

A volume (`_sync_volume`): without claimRef it is Available; bound to a
claim that exists it is Bound; its claim deleted (or replaced by one of
another uid) it is Released and reclaimed by its policy: Retain keeps it
Released for an administrator; Delete deletes it, unless a provisioner
made it (annotation `pv.kubernetes.io/provisioned-by`), which then deletes
its storage and the volume (see `local_path`). Before a volume is
released its claim is read from the API, not the cache: a claim created a
moment ago must not cost its volume.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kpy.api import errors, labels
from kpy.api.core.v1 import Node, ObjectReference, PersistentVolume, PersistentVolumeClaim
from kpy.api.meta.v1 import Preconditions
from kpy.api.nodeaffinity import any_term_matches, parse_terms
from kpy.api.quantity import Quantity
from kpy.api.storage.v1 import StorageClass
from kpy.cache.informer import EventHandler, deleted_object
from kpy.cache.store import split_key
from kpy.controllers.base import Controller
from kpy.controllers.volume import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    HOSTNAME_LABEL,
    LOCAL_PATH_PROVISIONERS,
    is_default_class,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.volume.binder")

__all__ = [
    "PersistentVolumeController",
    "default_class",
    "mismatch",
    "new_persistent_volume_controller",
    "storage_of",
]

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def storage_of(quantities: Any) -> Quantity | None:
    """The `storage` entry of a capacity or requests map; None if absent or bad."""
    if "storage" not in quantities:
        return None
    try:
        return Quantity.parse(quantities["storage"].string)
    except ValueError:
        return None


def default_class(classes: list[StorageClass]) -> StorageClass | None:
    """The default StorageClass; of several, the newest (then by name), as Kubernetes."""
    defaults = [c for c in classes if is_default_class(c.metadata.annotations)]
    newest = sorted(
        defaults,
        key=lambda c: (c.metadata.creation_timestamp.ToNanoseconds(), c.metadata.name),
    )
    return newest[-1] if newest else None


def mismatch(pv: PersistentVolume, claim: PersistentVolumeClaim) -> str:
    """Why `pv` cannot serve `claim` ("" when it can); node affinity aside."""
    if pv.spec.storage_class_name != claim.spec.storage_class_name:
        return "storageClassName does not match"
    if (pv.spec.volume_mode or "Filesystem") != (claim.spec.volume_mode or "Filesystem"):
        return "incompatible volumeMode"
    if not set(claim.spec.access_modes) <= set(pv.spec.access_modes):
        return "incompatible accessMode"
    wanted, offered = storage_of(claim.spec.resources.requests), storage_of(pv.spec.capacity)
    if wanted is None or offered is None or offered < wanted:
        return "requested PV is too small"
    if claim.spec.HasField("selector"):
        try:
            selector = labels.selector_from_label_selector(claim.spec.selector)
        except ValueError:
            return "the claim's selector does not parse"
        if not selector.matches(pv.metadata.labels):
            return "the volume's labels do not match the claim's selector"
    return ""


def _claim_key(ref: ObjectReference) -> str:
    return f"{ref.namespace}/{ref.name}"


def _points_at(pv: PersistentVolume, claim: PersistentVolumeClaim) -> bool:
    """Whether `pv`'s claimRef names `claim` (a uid, if set, must match)."""
    ref = pv.spec.claim_ref
    if not pv.spec.HasField("claim_ref"):
        return False
    if (ref.namespace, ref.name) != (claim.metadata.namespace, claim.metadata.name):
        return False
    return not ref.uid or ref.uid == claim.metadata.uid


class PersistentVolumeController(Controller):
    """See the module docstring."""

    name = "persistentvolume-binder"

    def __init__(
        self,
        client: ClientProtocol,
        volumes: SharedInformer[PersistentVolume],
        claims: SharedInformer[PersistentVolumeClaim],
        classes: SharedInformer[StorageClass],
        nodes: SharedInformer[Node],
        *,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._volumes: Lister[PersistentVolume] = volumes.lister()
        self._claims: Lister[PersistentVolumeClaim] = claims.lister()
        self._classes: Lister[StorageClass] = classes.lister()
        self._nodes: Lister[Node] = nodes.lister()
        self._now = now
        volumes.add_event_handler(
            EventHandler(
                on_add=lambda pv, _initial: self._volume_changed(pv),
                on_update=lambda _old, pv: self._volume_changed(pv),
                on_delete=self._volume_changed,
            )
        )
        claims.add_event_handler(
            EventHandler(
                on_add=lambda claim, _initial: self.enqueue(claim),
                on_update=lambda _old, claim: self.enqueue(claim),
                on_delete=self._claim_deleted,
            )
        )
        # A class created (or made default) may be what a Pending claim waits for.
        classes.add_event_handler(
            EventHandler(
                on_add=lambda _sc, _initial: self._enqueue_pending_claims(),
                on_update=lambda _old, _new: self._enqueue_pending_claims(),
            )
        )

    # -- handlers ---------------------------------------------------------------------

    def _volume_changed(self, obj: Any) -> None:
        pv = deleted_object(obj)
        self.enqueue(obj)
        if isinstance(pv, PersistentVolume) and pv.spec.HasField("claim_ref"):
            self.enqueue_key(_claim_key(pv.spec.claim_ref))
        else:
            # A volume that became Available may be what a Pending claim waits for.
            self._enqueue_pending_claims()

    def _claim_deleted(self, obj: Any) -> None:
        claim = deleted_object(obj)
        self.enqueue(obj)
        if not isinstance(claim, PersistentVolumeClaim):
            return
        for pv in self._volumes.list():
            ref = pv.spec.claim_ref
            if (ref.namespace, ref.name) == (claim.metadata.namespace, claim.metadata.name):
                self.enqueue(pv)

    def _enqueue_pending_claims(self) -> None:
        for claim in self._claims.list():
            if not claim.spec.volume_name:
                self.enqueue(claim)

    # -- sync -------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        if namespace:
            claim = self._claims.get(namespace, name)
            if claim is not None:
                await self._sync_claim(claim)
            return
        pv = self._volumes.get("", name)
        if pv is not None:
            await self._sync_volume(pv)

    # -- claims -----------------------------------------------------------------------

    async def _sync_claim(self, claim: PersistentVolumeClaim) -> None:
        if not claim.spec.HasField("storage_class_name"):
            found = default_class(self._classes.list())
            if found is not None:
                fresh = _copy(claim)
                fresh.spec.storage_class_name = found.metadata.name
                await self._client.update(fresh)  # the update brings the claim back
                return
        if claim.spec.volume_name:
            await self._sync_bound_claim(claim)
        elif not claim.metadata.HasField("deletion_timestamp"):
            await self._sync_unbound_claim(claim)

    async def _sync_unbound_claim(self, claim: PersistentVolumeClaim) -> None:
        sc = self._class_of(claim)
        delayed = sc is not None and sc.volume_binding_mode == WAIT_FOR_FIRST_CONSUMER
        node = claim.metadata.annotations.get(ANN_SELECTED_NODE, "")
        pv = self._find_volume(claim, delayed=delayed, node=node)
        if pv is not None:
            await self._bind(pv, claim)
            return
        await self._set_claim_phase(claim, "Pending")
        class_name = claim.spec.storage_class_name
        if not class_name:
            self.record(
                claim,
                "Normal",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            )
        elif sc is None:
            self.record(
                claim,
                "Warning",
                "ProvisioningFailed",
                f'storageclass.storage.k8s.io "{class_name}" not found',
            )
        elif delayed and not node:
            self.record(
                claim,
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            )
        else:
            await self._wait_for_provisioner(claim, sc)

    async def _wait_for_provisioner(self, claim: PersistentVolumeClaim, sc: StorageClass) -> None:
        provisioner = sc.provisioner
        annotations = claim.metadata.annotations
        if annotations.get(ANN_STORAGE_PROVISIONER) != provisioner:
            fresh = _copy(claim)
            fresh.metadata.annotations[ANN_STORAGE_PROVISIONER] = provisioner
            fresh.metadata.annotations[ANN_BETA_STORAGE_PROVISIONER] = provisioner
            await self._client.update(fresh)
        self.record(
            claim,
            "Normal",
            "ExternalProvisioning",
            "Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation "
            "is delayed, please verify that the provisioner is running and correctly "
            "registered.",
        )

    def _class_of(self, claim: PersistentVolumeClaim) -> StorageClass | None:
        name = claim.spec.storage_class_name
        return self._classes.get("", name) if name else None

    def _find_volume(
        self, claim: PersistentVolumeClaim, *, delayed: bool, node: str
    ) -> PersistentVolume | None:
        """A volume pre-bound to `claim`, else the smallest that fits (see
        the module docstring); None when there is none."""
        volumes = sorted(self._volumes.list(), key=lambda pv: pv.metadata.name)
        for pv in volumes:
            if _points_at(pv, claim) and not mismatch(pv, claim):
                return pv
        if delayed and not node:
            return None  # the scheduler decides, with the pod, where the volume must be
        fitting = [
            pv
            for pv in volumes
            if not pv.spec.HasField("claim_ref")
            and not pv.metadata.HasField("deletion_timestamp")
            and pv.status.phase in ("", "Pending", "Available")
            and not mismatch(pv, claim)
            and (not delayed or self._admits(pv, node))
        ]
        return min(fitting, key=lambda pv: storage_of(pv.spec.capacity) or 0, default=None)

    def _admits(self, pv: PersistentVolume, node_name: str) -> bool:
        """Whether `pv`'s node affinity admits the node `node_name`."""
        if not pv.spec.node_affinity.HasField("required"):
            return True
        node = self._nodes.get("", node_name)
        node_labels = dict(node.metadata.labels) if node is not None else {}
        node_labels.setdefault(HOSTNAME_LABEL, node_name)
        terms = parse_terms(pv.spec.node_affinity.required.node_selector_terms)
        return any_term_matches(terms, node_labels, node_name)

    async def _sync_bound_claim(self, claim: PersistentVolumeClaim) -> None:
        pv = self._volumes.get("", claim.spec.volume_name)
        was_bound = claim.status.phase in ("Bound", "Lost")
        if pv is None:
            if was_bound:
                await self._lose(
                    claim,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
            else:
                await self._set_claim_phase(claim, "Pending")
            return
        if not pv.spec.HasField("claim_ref") or _points_at(pv, claim):
            reason = mismatch(pv, claim)
            if reason and not pv.spec.HasField("claim_ref"):
                self.record(
                    claim,
                    "Warning",
                    "FailedBinding",
                    f'Cannot bind to requested volume "{pv.metadata.name}": {reason}',
                )
                await self._set_claim_phase(claim, "Pending")
                return
            if pv.spec.HasField("claim_ref"):
                pv = await self._expand(pv, claim)
            await self._bind(pv, claim)
        elif was_bound:
            await self._lose(
                claim,
                "ClaimMisbound",
                "Two claims are bound to the same volume, this one is bound incorrectly",
            )
        else:
            self.record(
                claim,
                "Warning",
                "FailedBinding",
                f'volume "{pv.metadata.name}" already bound to a different claim.',
            )
            await self._set_claim_phase(claim, "Pending")

    async def _expand(self, pv: PersistentVolume, claim: PersistentVolumeClaim) -> PersistentVolume:
        """A bound claim that asks for more than its volume holds: the
        volume grows (a directory has no size to change; admission let the
        request through only for a class that allows expansion)."""
        wanted, offered = storage_of(claim.spec.resources.requests), storage_of(pv.spec.capacity)
        if wanted is None or offered is None or wanted <= offered:
            return pv
        sc = self._class_of(claim)
        if sc is None or not sc.allow_volume_expansion:
            return pv
        fresh = _copy(pv)
        fresh.spec.capacity["storage"].CopyFrom(claim.spec.resources.requests["storage"])
        stored: PersistentVolume = await self._client.update(fresh)
        self.record(claim, "Normal", "VolumeResizeSuccessful", "Resize volume succeeded")
        return stored

    async def _lose(self, claim: PersistentVolumeClaim, reason: str, message: str) -> None:
        if claim.status.phase != "Lost":
            self.record(claim, "Warning", reason, message)
        await self._set_claim_phase(claim, "Lost")

    async def _bind(self, pv: PersistentVolume, claim: PersistentVolumeClaim) -> None:
        """Both sides of the binding, volume first (see the module docstring)."""
        if not (pv.spec.HasField("claim_ref") and pv.spec.claim_ref.uid == claim.metadata.uid):
            fresh = _copy(pv)
            fresh.spec.claim_ref.CopyFrom(
                ObjectReference(
                    kind="PersistentVolumeClaim",
                    api_version="v1",
                    namespace=claim.metadata.namespace,
                    name=claim.metadata.name,
                    uid=claim.metadata.uid,
                    resource_version=claim.metadata.resource_version,
                )
            )
            fresh.metadata.annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
            pv = await self._client.update(fresh)
            log.info(
                "bound volume to claim",
                extra={"volume": pv.metadata.name, "claim": _claim_key(pv.spec.claim_ref)},
            )
        pv = await self._set_volume_phase(pv, "Bound")
        annotations = claim.metadata.annotations
        if claim.spec.volume_name != pv.metadata.name or ANN_BIND_COMPLETED not in annotations:
            fresh_claim = _copy(claim)
            if claim.spec.volume_name != pv.metadata.name:
                fresh_claim.spec.volume_name = pv.metadata.name
                fresh_claim.metadata.annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
            fresh_claim.metadata.annotations[ANN_BIND_COMPLETED] = "yes"
            claim = await self._client.update(fresh_claim)
        status = claim.status
        if (
            status.phase != "Bound"
            or list(status.access_modes) != list(pv.spec.access_modes)
            or dict(status.capacity) != dict(pv.spec.capacity)
        ):
            fresh_claim = _copy(claim)
            fresh_claim.status.phase = "Bound"
            del fresh_claim.status.access_modes[:]
            fresh_claim.status.access_modes.extend(pv.spec.access_modes)
            fresh_claim.status.capacity.clear()
            for resource, quantity in pv.spec.capacity.items():
                fresh_claim.status.capacity[resource].CopyFrom(quantity)
            await self._client.update_status(fresh_claim)

    # -- volumes ----------------------------------------------------------------------

    async def _sync_volume(self, pv: PersistentVolume) -> None:
        if not pv.spec.HasField("claim_ref"):
            await self._set_volume_phase(pv, "Available")
            return
        ref = pv.spec.claim_ref
        claim = self._claims.get(ref.namespace, ref.name)
        if not ref.uid:
            # Pre-bound by its author to a claim that may not exist yet.
            await self._set_volume_phase(pv, "Available")
            if claim is not None:
                self.enqueue(claim)
            return
        if claim is None or claim.metadata.uid != ref.uid:
            claim = await self._live_claim(ref)
        if claim is None or claim.metadata.uid != ref.uid:
            await self._release(pv)
            return
        if claim.spec.volume_name == pv.metadata.name:
            await self._set_volume_phase(pv, "Bound")
        elif not claim.spec.volume_name:
            self.enqueue(claim)  # half-way through a binding: the claim's sync ends it
        elif pv.metadata.annotations.get(ANN_BOUND_BY_CONTROLLER) == "yes":
            await self._unbind(pv)  # the claim went to another volume: this one is free

    async def _live_claim(self, ref: ObjectReference) -> PersistentVolumeClaim | None:
        try:
            return await self._client.get(PersistentVolumeClaim, ref.name, namespace=ref.namespace)
        except errors.NotFound:
            return None

    async def _unbind(self, pv: PersistentVolume) -> None:
        fresh = _copy(pv)
        fresh.spec.ClearField("claim_ref")
        fresh.metadata.annotations.pop(ANN_BOUND_BY_CONTROLLER, None)
        stored = await self._client.update(fresh)
        await self._set_volume_phase(stored, "Available")

    async def _release(self, pv: PersistentVolume) -> None:
        if pv.status.phase not in ("Released", "Failed"):
            pv = await self._set_volume_phase(pv, "Released")
        policy = pv.spec.persistent_volume_reclaim_policy
        if policy == "Delete" and pv.status.phase == "Released":
            await self._delete(pv)
        elif policy == "Recycle" and pv.status.phase != "Failed":
            self.record(pv, "Warning", "VolumeFailedRecycle", "Recycle is not supported by kpy")
            await self._set_volume_phase(pv, "Failed", message="Recycle is not supported by kpy")

    async def _delete(self, pv: PersistentVolume) -> None:
        if pv.metadata.HasField("deletion_timestamp"):
            return
        if pv.metadata.annotations.get(ANN_PROVISIONED_BY) in LOCAL_PATH_PROVISIONERS:
            return  # its provisioner removes the directory, then the volume
        log.info("deleting released volume", extra={"volume": pv.metadata.name})
        try:
            await self._client.delete(
                PersistentVolume,
                pv.metadata.name,
                preconditions=Preconditions(uid=pv.metadata.uid),
            )
        except errors.NotFound:
            return

    # -- status -----------------------------------------------------------------------

    async def _set_volume_phase(
        self, pv: PersistentVolume, phase: str, *, message: str = ""
    ) -> PersistentVolume:
        if pv.status.phase == phase and pv.status.message == message:
            return pv
        fresh = _copy(pv)
        fresh.status.phase = phase
        fresh.status.message = message
        fresh.status.last_phase_transition_time.FromDatetime(self._now())
        stored: PersistentVolume = await self._client.update_status(fresh)
        return stored

    async def _set_claim_phase(self, claim: PersistentVolumeClaim, phase: str) -> None:
        if claim.status.phase == phase:
            return
        fresh = _copy(claim)
        fresh.status.phase = phase
        await self._client.update_status(fresh)


def _copy(obj: Any) -> Any:
    fresh = type(obj)()
    fresh.CopyFrom(obj)
    return fresh


def new_persistent_volume_controller(ctx: ControllerContext) -> PersistentVolumeController:
    cluster = ctx.cluster_informers
    return PersistentVolumeController(
        ctx.client,
        cluster.informer(PersistentVolume),
        ctx.informers.informer(PersistentVolumeClaim),
        cluster.informer(StorageClass),
        cluster.informer(Node),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("persistentvolume-controller"),
    )

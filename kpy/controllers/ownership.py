"""What every workload controller needs to know about owners, dependents and
pods (Kubernetes' pkg/controller controller_utils.go and
controller_ref_manager.go).

- Owner references: `get_controller_of`, `new_controller_ref`.
- Pod state: `is_pod_active`, `is_pod_ready`, `is_pod_available`
  (ready for at least minReadySeconds).
- `pod_from_template`: the pod a controller creates from its template.
- `deletion_order`: which pods a scaling-down controller deletes first.
- `ControllerRefManager.claim`: adoption and release. An object whose
  controller is this owner but no longer matches the selector is released;
  an orphan that matches is adopted (unless either side is being deleted);
  an object controlled by someone else is never touched. Adoption re-reads
  the owner from the API first (never from a cache), so an owner being
  deleted does not adopt. Both writes are patches that carry the object's
  uid, so a recreated object of the same name is never claimed by mistake.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import Message

from kpy.api import errors
from kpy.api.core.v1 import Pod
from kpy.api.meta.v1 import OwnerReference

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from google.protobuf.timestamp_pb2 import Timestamp

    from kpy.api.core.v1 import PodTemplateSpec
    from kpy.api.labels import Selector
    from kpy.client import ClientProtocol

log = logging.getLogger("kpy.controllers")

M = TypeVar("M", bound=Message)

__all__ = [
    "ControllerRefManager",
    "deletion_order",
    "get_controller_of",
    "is_pod_active",
    "is_pod_available",
    "is_pod_ready",
    "new_controller_ref",
    "pod_from_template",
    "pod_ready_since",
    "seconds",
]


# -- owner references --------------------------------------------------------------------


def get_controller_of(obj: Any) -> OwnerReference | None:
    for ref in obj.metadata.owner_references:
        if ref.controller:
            ref_: OwnerReference = ref
            return ref_
    return None


def new_controller_ref(owner: Any, api_version: str, kind: str) -> OwnerReference:
    return OwnerReference(
        api_version=api_version,
        kind=kind,
        name=owner.metadata.name,
        uid=owner.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )


# -- pod state ---------------------------------------------------------------------------


def seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def is_pod_active(pod: Pod) -> bool:
    """Counts toward replicas: not finished and not being deleted."""
    return pod.status.phase not in ("Succeeded", "Failed") and not pod.metadata.HasField(
        "deletion_timestamp"
    )


def is_pod_ready(pod: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def pod_ready_since(pod: Pod) -> float | None:
    """When the pod's Ready condition last became True (epoch seconds); None if not ready."""
    for c in pod.status.conditions:
        if c.type == "Ready" and c.status == "True":
            return seconds(c.last_transition_time) if c.HasField("last_transition_time") else 0.0
    return None


def is_pod_available(pod: Pod, min_ready_seconds: int, now: float | None = None) -> bool:
    """Ready, and for at least `min_ready_seconds` (Kubernetes' IsPodAvailable)."""
    since = pod_ready_since(pod)
    if since is None:
        return False
    if min_ready_seconds == 0:
        return True
    now = time.time() if now is None else now
    return since > 0 and since + min_ready_seconds <= now


def pod_from_template(template: PodTemplateSpec, owner: Any, controller_ref: OwnerReference) -> Pod:
    """A new pod for `owner`: the template's labels, annotations, finalizers
    and spec, named `<owner>-<random>` by the server."""
    pod = Pod()
    meta = pod.metadata
    meta.generate_name = f"{owner.metadata.name}-"
    meta.namespace = owner.metadata.namespace
    meta.labels.update(template.metadata.labels)
    meta.annotations.update(template.metadata.annotations)
    meta.finalizers.extend(template.metadata.finalizers)
    meta.owner_references.append(controller_ref)
    pod.spec.CopyFrom(template.spec)
    return pod


def deletion_order(pods: Sequence[Pod]) -> list[Pod]:
    """`pods` ordered least useful first (Kubernetes' ActivePodsWithRanks):
    unscheduled before scheduled; Pending before Unknown before Running; not
    ready before ready; on a node crowded with its siblings before alone;
    ready more recently before longer; more restarts before fewer; newer
    before older."""
    per_node: dict[str, int] = {}
    for pod in pods:
        if pod.spec.node_name:
            per_node[pod.spec.node_name] = per_node.get(pod.spec.node_name, 0) + 1

    def rank(pod: Pod) -> tuple[Any, ...]:
        ready_since = pod_ready_since(pod)
        restarts = sum(s.restart_count for s in pod.status.container_statuses)
        return (
            bool(pod.spec.node_name),
            _PHASE_ORDER.get(pod.status.phase, 0),
            ready_since is not None,
            -per_node.get(pod.spec.node_name, 0),
            -(ready_since or 0.0),
            -restarts,
            -seconds(pod.metadata.creation_timestamp),
        )

    return sorted(pods, key=rank)


_PHASE_ORDER = {"Pending": 0, "": 0, "Unknown": 1, "Running": 2}


# -- adoption and release ----------------------------------------------------------------


class ControllerRefManager:
    """Claims the objects of one owner; see the module docstring."""

    def __init__(
        self,
        client: ClientProtocol,
        owner: Any,
        selector: Selector,
        controller_ref: OwnerReference,
        recheck: Callable[[], Awaitable[Any]],
    ) -> None:
        """`recheck` reads the owner fresh from the API (raising NotFound if
        it is gone); adoption happens only if that copy has the same uid and
        is not being deleted."""
        self._client = client
        self._owner = owner
        self._selector = selector
        self._ref = controller_ref
        self._recheck = recheck
        self._can_adopt: bool | None = None

    async def claim(self, objects: Sequence[M]) -> list[M]:
        """The objects this owner controls after adopting and releasing."""
        owner_deleting = self._owner.metadata.HasField("deletion_timestamp")
        claimed: list[M] = []
        for obj in objects:
            meta = obj.metadata  # type: ignore[attr-defined]
            ref = get_controller_of(obj)
            matches = self._selector.matches(meta.labels)
            if ref is not None:
                if ref.uid != self._ref.uid:
                    continue
                if matches:
                    claimed.append(obj)
                elif not owner_deleting:
                    await self._release(obj)
                continue
            if owner_deleting or not matches or meta.HasField("deletion_timestamp"):
                continue
            if meta.namespace != self._owner.metadata.namespace:
                continue
            adopted = await self._adopt(obj)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _adopt(self, obj: M) -> M | None:
        if self._can_adopt is None:
            self._can_adopt = await self._owner_still_adoptable()
        if not self._can_adopt:
            return None
        return await self._patch_references(obj, [_ref_json(self._ref)], "adopted")

    async def _release(self, obj: Any) -> None:
        await self._patch_references(obj, [{"$patch": "delete", "uid": self._ref.uid}], "released")

    async def _patch_references(self, obj: M, refs: list[dict[str, Any]], done: str) -> M | None:
        """Patches the object's ownerReferences (merged by uid), guarded by its
        uid; None when it is gone or a new object holds its name."""
        meta = obj.metadata  # type: ignore[attr-defined]
        patch = {"metadata": {"ownerReferences": refs, "uid": meta.uid}}
        try:
            patched = await self._client.patch(
                type(obj), meta.name, patch, namespace=meta.namespace
            )
        except (errors.NotFound, errors.Invalid):
            return None
        log.info(
            done,
            extra={
                "owner": self._owner.metadata.name,
                "object": meta.name,
                "kind": type(obj).__name__,
            },
        )
        return patched

    async def _owner_still_adoptable(self) -> bool:
        try:
            fresh = await self._recheck()
        except errors.NotFound:
            return False
        return bool(
            fresh.metadata.uid == self._owner.metadata.uid
            and not fresh.metadata.HasField("deletion_timestamp")
        )


def _ref_json(ref: OwnerReference) -> dict[str, Any]:
    return {
        "apiVersion": ref.api_version,
        "kind": ref.kind,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }

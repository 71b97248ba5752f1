"""The ReplicaSet controller, which also runs ReplicationControllers
(Kubernetes' pkg/controller/replicaset).

Keeps `spec.replicas` active pods for every ReplicaSet:

- Handlers: a ReplicaSet change enqueues it; a pod change enqueues its
  controller (old and new, when its labels or controller changed), and an
  orphan pod enqueues every ReplicaSet whose selector matches it, which may
  adopt it. Pod creations and deletions are counted against the owner's
  expectations.
- `sync(key)`: claims the pods (adopts matching orphans, releases owned pods
  that stopped matching), then, only if its earlier creations and deletions
  have all come back through the watch (`ControllerExpectations`), creates
  the missing pods in slow-start batches (1, 2, 4, ...; a failing batch stops
  the rest) or deletes the surplus least useful first (`deletion_order`),
  and finally writes status: replicas, fullyLabeledReplicas, readyReplicas,
  availableReplicas (ready for minReadySeconds), observedGeneration and the
  ReplicaFailure condition.
- A ReplicaSet being deleted creates nothing and deletes nothing: its pods
  are the garbage collector's business.
- A ReplicationController is the same with an equality-only selector.

At most `burst_replicas` (500) pods are created or deleted per sync, as
Kubernetes does, so one huge scale does not starve the others.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from kpy.api import errors
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.core.v1 import Pod, ReplicationController
from kpy.api.labels import Selector, selector_from_label_selector, selector_from_set
from kpy.cache.events import NORMAL, WARNING
from kpy.cache.expectations import ControllerExpectations
from kpy.cache.informer import EventHandler
from kpy.cache.store import meta_namespace_key, split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.ownership import (
    ControllerRefManager,
    deletion_order,
    get_controller_of,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    new_controller_ref,
    pod_from_template,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.replicaset")

__all__ = [
    "BURST_REPLICAS",
    "POD_OWNER_INDEX",
    "ReplicaSetController",
    "new_replicaset_controller",
    "new_replication_controller",
    "pod_owner_index",
]

BURST_REPLICAS: Final = 500
POD_OWNER_INDEX: Final = "controller-uid"


def pod_owner_index(pod: Pod) -> list[str]:
    """Pods by their controller's uid; orphans by "orphan/<namespace>"."""
    ref = get_controller_of(pod)
    return [ref.uid] if ref is not None else [f"orphan/{pod.metadata.namespace}"]


def pods_informer_with_owner_index(ctx: ControllerContext) -> SharedInformer[Pod]:
    pods = ctx.informers.informer(Pod)
    if POD_OWNER_INDEX not in pods.indexer.get_indexers():
        pods.add_indexers({POD_OWNER_INDEX: pod_owner_index})
    return pods


@dataclass(frozen=True, slots=True)
class _Kind:
    """What differs between ReplicaSets and ReplicationControllers."""

    message: type[Any]
    api_version: str
    kind: str
    selector: Callable[[Any], Selector]


_REPLICA_SET = _Kind(
    ReplicaSet, "apps/v1", "ReplicaSet", lambda rs: selector_from_label_selector(rs.spec.selector)
)
_REPLICATION_CONTROLLER = _Kind(
    ReplicationController,
    "v1",
    "ReplicationController",
    lambda rc: selector_from_set(rc.spec.selector),
)


class ReplicaSetController(Controller):
    name = "replicaset"

    def __init__(
        self,
        client: ClientProtocol,
        owners: SharedInformer[Any],
        pods: SharedInformer[Pod],
        *,
        kind: _Kind = _REPLICA_SET,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        burst_replicas: int = BURST_REPLICAS,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`now`: wall-clock seconds, for availability (minReadySeconds)."""
        if kind is _REPLICATION_CONTROLLER:
            self.name = "replicationcontroller"
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._kind = kind
        self._owners: Lister[Any] = owners.lister()
        self._pods = pods
        self._burst = burst_replicas
        self._now = now
        self.expectations = ControllerExpectations()
        owners.add_event_handler(
            EventHandler(
                on_add=lambda rs, _initial: self.enqueue(rs),
                on_update=lambda _old, new: self.enqueue(new),
                on_delete=self._delete_owner,
            )
        )
        pods.add_event_handler(
            EventHandler(
                on_add=self._add_pod, on_update=self._update_pod, on_delete=self._delete_pod
            )
        )

    # -- handlers -------------------------------------------------------------------------

    def _delete_owner(self, obj: Any) -> None:
        key = self._key_of_deleted(obj)
        self.expectations.delete(key)
        self.enqueue_key(key)

    def _add_pod(self, pod: Pod, _initial: bool) -> None:
        if pod.metadata.HasField("deletion_timestamp"):
            self._delete_pod(pod)  # a restart found it mid-deletion
            return
        owner = self._resolve(pod)
        if owner is not None:
            key = meta_namespace_key(owner)
            self.expectations.creation_observed(key)
            self.enqueue_key(key)
            return
        if get_controller_of(pod) is None:
            for rs in self._matching_owners(pod):
                self.enqueue(rs)

    def _update_pod(self, old: Pod, new: Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return  # a resync: nothing changed for a pod
        if new.metadata.HasField("deletion_timestamp"):
            # A graceful delete: count it now so the replacement starts at once.
            self._delete_pod(new)
            if old.metadata.labels != new.metadata.labels:
                self._delete_pod(old)
            return
        old_ref, new_ref = get_controller_of(old), get_controller_of(new)
        if old_ref is not None and (new_ref is None or old_ref.uid != new_ref.uid):
            previous = self._resolve(old)
            if previous is not None:
                self.enqueue(previous)
        owner = self._resolve(new)
        if owner is not None:
            self.enqueue(owner)
            if owner.spec.min_ready_seconds > 0 and not is_pod_ready(old) and is_pod_ready(new):
                # Re-check once the pod has been ready long enough to be available.
                self.enqueue_after(owner, owner.spec.min_ready_seconds + 1)
            return
        if new_ref is None and (old.metadata.labels != new.metadata.labels or old_ref is not None):
            for rs in self._matching_owners(new):
                self.enqueue(rs)

    def _delete_pod(self, obj: Any) -> None:
        pod = deleted_object(obj)
        if pod is None:
            return
        owner = self._resolve(pod)
        if owner is None:
            return
        key = meta_namespace_key(owner)
        self.expectations.deletion_observed(key, meta_namespace_key(pod))
        self.enqueue_key(key)

    def _resolve(self, pod: Pod) -> Any | None:
        """The pod's controller if it is one of ours (same kind and uid)."""
        ref = get_controller_of(pod)
        if ref is None or ref.kind != self._kind.kind:
            return None
        owner = self._owners.get(pod.metadata.namespace, ref.name)
        if owner is None or owner.metadata.uid != ref.uid:
            return None
        return owner

    def _matching_owners(self, pod: Pod) -> list[Any]:
        if not pod.metadata.labels:
            return []
        return [
            rs
            for rs in self._owners.list(pod.metadata.namespace)
            if (sel := self._kind.selector(rs)) is not None
            and not sel.empty()
            and sel.matches(pod.metadata.labels)
        ]

    def _key_of_deleted(self, obj: Any) -> str:
        found = deleted_object(obj)
        return meta_namespace_key(found) if found is not None else str(obj.key)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        rs = self._owners.get(namespace, name)
        if rs is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key) and not rs.metadata.HasField(
            "deletion_timestamp"
        )
        pods = await self._claim(rs)
        failure: Exception | None = None
        if needs_sync:
            try:
                await self._manage_replicas(key, rs, pods)
            except errors.StatusError as e:
                failure = e
        await self._update_status(rs, pods, failure)
        if failure is not None:
            raise failure

    async def _claim(self, rs: Any) -> list[Pod]:
        selector = self._kind.selector(rs)
        index = self._pods.indexer
        candidates = index.by_index(POD_OWNER_INDEX, rs.metadata.uid) + index.by_index(
            POD_OWNER_INDEX, f"orphan/{rs.metadata.namespace}"
        )
        ref = new_controller_ref(rs, self._kind.api_version, self._kind.kind)

        async def recheck() -> Any:
            return await self._client.get(
                self._kind.message, rs.metadata.name, namespace=rs.metadata.namespace
            )

        manager = ControllerRefManager(self._client, rs, selector, ref, recheck)
        # Finished pods are claimed too (adopted, released), but only active ones count.
        return [p for p in await manager.claim(candidates) if is_pod_active(p)]

    async def _manage_replicas(self, key: str, rs: Any, pods: list[Pod]) -> None:
        diff = len(pods) - rs.spec.replicas
        if diff < 0:
            await self._create_pods(key, rs, min(-diff, self._burst))
        elif diff > 0:
            victims = deletion_order(pods)[: min(diff, self._burst)]
            await self._delete_pods(key, rs, victims)

    async def _create_pods(self, key: str, rs: Any, count: int) -> None:
        self.expectations.expect_creations(key, count)
        ref = new_controller_ref(rs, self._kind.api_version, self._kind.kind)
        template = pod_from_template(rs.spec.template, rs, ref)
        created, failure = 0, None
        batch = 1
        while created < count and failure is None:
            size = min(batch, count - created)
            failure = await _in_parallel(size, lambda: self._create_pod(rs, template))
            created += size
            batch *= 2
        if failure is not None:
            # Pods never attempted will never be observed; nor will failed ones
            # (counted by _in_parallel's callers through the expectation below).
            self.expectations.lower_creations(key, count - created + failure.failed)
            log.warning(
                "creating pods failed",
                extra={"controller": self.name, "key": key, "error": str(failure.error)},
            )
            raise failure.error
        log.info("created pods", extra={"controller": self.name, "key": key, "count": count})

    async def _create_pod(self, rs: Any, template: Pod) -> None:
        try:
            pod = await self._client.create(template)
        except errors.StatusError as e:
            self.record(rs, WARNING, "FailedCreate", f"Error creating: {e}")
            raise
        self.record(rs, NORMAL, "SuccessfulCreate", f"Created pod: {pod.metadata.name}")

    async def _delete_pods(self, key: str, rs: Any, victims: Sequence[Pod]) -> None:
        pod_keys = [meta_namespace_key(p) for p in victims]
        self.expectations.expect_deletions(key, pod_keys)
        first_error: list[errors.StatusError] = []

        async def delete(pod: Pod) -> None:
            try:
                await self._client.delete(Pod, pod.metadata.name, namespace=pod.metadata.namespace)
            except errors.NotFound:
                self.expectations.deletion_observed(key, meta_namespace_key(pod))
            except errors.StatusError as e:
                self.expectations.deletion_observed(key, meta_namespace_key(pod))
                self.record(rs, WARNING, "FailedDelete", f"Error deleting: {e}")
                first_error.append(e)
            else:
                self.record(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

        async with anyio.create_task_group() as tg:
            for pod in victims:
                tg.start_soon(delete, pod)
        log.info("deleted pods", extra={"controller": self.name, "key": key, "count": len(victims)})
        if first_error:
            raise first_error[0]

    async def _update_status(self, rs: Any, pods: list[Pod], failure: Exception | None) -> None:
        status = _status(rs, pods, failure, self._now())
        if status == rs.status:
            return
        fresh = type(rs)()
        fresh.CopyFrom(rs)
        fresh.status.CopyFrom(status)
        try:
            await self._client.update_status(fresh)
        except errors.Conflict:
            # Our copy is stale; the update event that made it so re-enqueues us.
            self.enqueue(rs)
        except errors.NotFound:
            return


@dataclass(frozen=True, slots=True)
class _Failure:
    error: errors.StatusError
    failed: int


async def _in_parallel(count: int, create: Callable[[], Any]) -> _Failure | None:
    """Runs `count` creations at once; the first error and how many failed."""
    failures: list[errors.StatusError] = []

    async def one() -> None:
        try:
            await create()
        except errors.StatusError as e:
            failures.append(e)

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return _Failure(failures[0], len(failures)) if failures else None


def _status(rs: Any, pods: list[Pod], failure: Exception | None, now: float) -> Any:
    """The status `rs` should have for its active pods (Kubernetes'
    calculateStatus)."""
    status = type(rs.status)()
    template_labels = rs.spec.template.metadata.labels
    status.replicas = len(pods)
    status.fully_labeled_replicas = sum(
        1 for p in pods if all(p.metadata.labels.get(k) == v for k, v in template_labels.items())
    )
    status.ready_replicas = sum(1 for p in pods if is_pod_ready(p))
    status.available_replicas = sum(
        1 for p in pods if is_pod_available(p, rs.spec.min_ready_seconds, now)
    )
    status.observed_generation = rs.metadata.generation
    previous = next((c for c in rs.status.conditions if c.type == "ReplicaFailure"), None)
    if failure is not None:
        condition = status.conditions.add(
            type="ReplicaFailure",
            status="True",
            reason="FailedCreate" if len(pods) < rs.spec.replicas else "FailedDelete",
            message=str(failure),
        )
        if previous is not None and previous.status == "True":
            condition.last_transition_time.CopyFrom(previous.last_transition_time)
        else:
            condition.last_transition_time.FromNanoseconds(int(now * 1e9))
    return status


def new_replicaset_controller(ctx: ControllerContext) -> ReplicaSetController:
    return ReplicaSetController(
        ctx.client,
        ctx.informers.informer(ReplicaSet),
        pods_informer_with_owner_index(ctx),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("replicaset-controller"),
    )


def new_replication_controller(ctx: ControllerContext) -> ReplicaSetController:
    return ReplicaSetController(
        ctx.client,
        ctx.informers.informer(ReplicationController),
        pods_informer_with_owner_index(ctx),
        kind=_REPLICATION_CONTROLLER,
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("replication-controller"),
    )

"""The disruption controller (Kubernetes' pkg/controller/disruption).

Computes the status of every PodDisruptionBudget, which the eviction
subresource (`kpy.apiserver.eviction`) then spends:

- Handlers: a budget change enqueues it; a pod added, changed or deleted
  enqueues every budget of its namespace whose selector matches it (before or
  after a label change). A missing selector matches nothing, an empty one
  every pod of the namespace (policy/v1).
- `sync(key)` reads only listers. Of the matching pods, those that are Ready,
  not terminating and not recently evicted are `currentHealthy`.
  `expectedPods` and `desiredHealthy` follow Kubernetes'
  getExpectedPodCount: an integer `minAvailable` is the desired count and
  the pods found are the expected ones; a percentage `minAvailable`, or any
  `maxUnavailable`, is resolved against the sum of the scales (`replicas`)
  of the pods' controllers (Deployment through its ReplicaSet, ReplicaSet,
  ReplicationController, StatefulSet), rounding up; `desiredHealthy` is then
  `expected - maxUnavailable` (never below 0). Pods without a controller
  count for no scale (an `UnmanagedPods` event says so); a controller that
  cannot be found fails the sync safe: no disruption allowed, condition
  DisruptionAllowed=False (SyncFailed).
- `disruptionsAllowed = currentHealthy - desiredHealthy`, never below 0,
  and 0 when no pod is expected. Condition DisruptionAllowed is True
  (SufficientPods) when one is allowed, else False (InsufficientPods).
- `disruptedPods`: the evictions the API server recorded, kept for pods
  still there and not yet terminating, for `DELETION_TIMEOUT` (2 minutes)
  after the eviction; such a pod counts as not healthy meanwhile, so a
  second eviction cannot spend the same pod's health again. The budget is
  synced again when the oldest entry expires (a `NotDeleted` event if the
  pod is still there then).
- Nothing is written when the status already says the same.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import intstr
from kpy.api.apps.v1 import Deployment, ReplicaSet, StatefulSet
from kpy.api.core.v1 import Pod, ReplicationController
from kpy.api.labels import selector_from_label_selector
from kpy.api.policy.v1 import PodDisruptionBudget
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.ownership import get_controller_of, is_pod_ready, seconds

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.api.labels import Selector
    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.disruption")

__all__ = [
    "DELETION_TIMEOUT",
    "DisruptionController",
    "ExpectedCountError",
    "new_disruption_controller",
]

DELETION_TIMEOUT: Final = 120.0  # seconds an evicted pod may take to start terminating
CONDITION: Final = "DisruptionAllowed"


class ExpectedCountError(Exception):
    """The expected pod count cannot be computed (a controller is missing)."""


class DisruptionController(Controller):
    name = "disruption"

    def __init__(
        self,
        client: ClientProtocol,
        budgets: SharedInformer[PodDisruptionBudget],
        pods: SharedInformer[Pod],
        *,
        replica_sets: SharedInformer[ReplicaSet],
        deployments: SharedInformer[Deployment],
        stateful_sets: SharedInformer[StatefulSet],
        replication_controllers: SharedInformer[ReplicationController],
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._now = now
        self._budgets: Lister[PodDisruptionBudget] = budgets.lister()
        self._pods: Lister[Pod] = pods.lister()
        self._replica_sets: Lister[ReplicaSet] = replica_sets.lister()
        self._deployments: Lister[Deployment] = deployments.lister()
        self._stateful_sets: Lister[StatefulSet] = stateful_sets.lister()
        self._rcs: Lister[ReplicationController] = replication_controllers.lister()
        budgets.add_event_handler(self.enqueue_handler())
        pods.add_event_handler(
            EventHandler(
                on_add=lambda pod, _initial: self._enqueue_budgets_of(pod),
                on_update=self._update_pod,
                on_delete=lambda obj: self._enqueue_budgets_of(deleted_object(obj)),
            )
        )

    # -- handlers ---------------------------------------------------------------------------

    def budgets_of(self, pod: Pod) -> list[PodDisruptionBudget]:
        """The budgets of the pod's namespace whose selector matches it."""
        return [
            pdb
            for pdb in self._budgets.list(pod.metadata.namespace)
            if (selector := _selector(pdb)) is not None and selector.matches(pod.metadata.labels)
        ]

    def _enqueue_budgets_of(self, pod: Pod) -> None:
        for pdb in self.budgets_of(pod):
            self.enqueue(pdb)

    def _update_pod(self, old: Pod, new: Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        self._enqueue_budgets_of(new)
        if old.metadata.labels != new.metadata.labels:
            self._enqueue_budgets_of(old)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        pdb = self._budgets.get(namespace, name)
        if pdb is None:
            return
        selector = _selector(pdb)
        pods = [] if selector is None else self._pods.list(namespace, selector)
        if not pods:
            self.record(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired = self._expected_count(pdb, pods)
        except ExpectedCountError as e:
            self.record(pdb, "Warning", "CalculateExpectedPodCountFailed", str(e))
            await self._fail_safe(pdb, str(e))
            return
        now = self._now()
        disrupted, recheck = self._disrupted_pods(pdb, pods, now)
        healthy = sum(
            1
            for pod in pods
            if not pod.metadata.HasField("deletion_timestamp")
            and pod.metadata.name not in disrupted
            and is_pod_ready(pod)
        )
        await self._write_status(pdb, healthy, desired, expected, disrupted)
        if recheck is not None:
            self.enqueue_after(key, max(0.0, recheck - now))

    def _expected_count(self, pdb: PodDisruptionBudget, pods: list[Pod]) -> tuple[int, int]:
        """(expectedPods, desiredHealthy), as Kubernetes' getExpectedPodCount."""
        spec = pdb.spec
        if spec.HasField("max_unavailable"):
            expected = self._expected_scale(pdb, pods)
            unavailable = intstr.get_scaled_value_from_int_or_percent(
                spec.max_unavailable, expected, True
            )
            return expected, max(0, expected - unavailable)
        if spec.HasField("min_available"):
            if spec.min_available.WhichOneof("value") == "str_val":
                expected = self._expected_scale(pdb, pods)
                return expected, intstr.get_scaled_value_from_int_or_percent(
                    spec.min_available, expected, True
                )
            return len(pods), spec.min_available.int_val
        return 0, 0

    def _expected_scale(self, pdb: PodDisruptionBudget, pods: list[Pod]) -> int:
        """The summed replicas of the pods' controllers, each counted once."""
        counted: set[str] = set()
        unmanaged: list[str] = []
        total = 0
        for pod in pods:
            ref = get_controller_of(pod)
            if ref is None:
                unmanaged.append(pod.metadata.name)
                continue
            if ref.uid in counted:
                continue
            found = self._scale_of(pod.metadata.namespace, ref)
            if found is None:
                raise ExpectedCountError(
                    f'found no controller for pod "{pod.metadata.name}" ({ref.kind} '
                    f"\"{ref.name}\"); the budget's percentages need the scale of the pods' "
                    "Deployment, ReplicaSet, ReplicationController or StatefulSet"
                )
            uid, replicas = found
            if uid in counted:
                continue
            counted.update({uid, ref.uid})
            total += replicas
        if unmanaged:
            self.record(
                pdb,
                "Warning",
                "UnmanagedPods",
                f"Pods selected by this PodDisruptionBudget were found to be unmanaged: "
                f"{', '.join(sorted(unmanaged))}. They count for no scale; to account for them "
                'set ".spec.minAvailable" to an integer.',
            )
        return total

    def _scale_of(self, namespace: str, ref: Any) -> tuple[str, int] | None:
        """(uid, replicas) of the workload that scales the pods `ref` controls:
        a Deployment for a ReplicaSet it owns, else the controller itself."""
        if ref.kind == "ReplicaSet":
            rs = self._replica_sets.get(namespace, ref.name)
            if rs is None or rs.metadata.uid != ref.uid:
                return None
            owner = get_controller_of(rs)
            if owner is not None and owner.kind == "Deployment":
                deploy = self._deployments.get(namespace, owner.name)
                if deploy is None or deploy.metadata.uid != owner.uid:
                    return None
                return deploy.metadata.uid, deploy.spec.replicas
            return rs.metadata.uid, rs.spec.replicas
        listers: dict[str, Lister[Any]] = {
            "StatefulSet": self._stateful_sets,
            "ReplicationController": self._rcs,
        }
        lister = listers.get(ref.kind)
        obj = None if lister is None else lister.get(namespace, ref.name)
        if obj is None or obj.metadata.uid != ref.uid:
            return None
        return obj.metadata.uid, obj.spec.replicas

    def _disrupted_pods(
        self, pdb: PodDisruptionBudget, pods: list[Pod], now: float
    ) -> tuple[dict[str, Timestamp], float | None]:
        """The recorded evictions still pending, and when the oldest expires."""
        recorded = pdb.status.disrupted_pods
        kept: dict[str, Timestamp] = {}
        recheck: float | None = None
        for pod in pods:
            name = pod.metadata.name
            if pod.metadata.HasField("deletion_timestamp") or name not in recorded:
                continue
            expires = seconds(recorded[name]) + DELETION_TIMEOUT
            if expires < now:
                self.record(
                    pdb,
                    "Warning",
                    "NotDeleted",
                    f'Pod "{name}" was expected to be deleted after its eviction but was not',
                )
                continue
            kept[name] = recorded[name]
            recheck = expires if recheck is None else min(recheck, expires)
        return kept, recheck

    async def _write_status(
        self,
        pdb: PodDisruptionBudget,
        healthy: int,
        desired: int,
        expected: int,
        disrupted: dict[str, Timestamp],
    ) -> None:
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        new = PodDisruptionBudget()
        new.CopyFrom(pdb)
        status = new.status
        status.current_healthy = healthy
        status.desired_healthy = desired
        status.expected_pods = expected
        status.disruptions_allowed = allowed
        status.observed_generation = pdb.metadata.generation
        status.disrupted_pods.clear()
        for name, when in disrupted.items():
            status.disrupted_pods[name].CopyFrom(when)
        reason = "SufficientPods" if allowed > 0 else "InsufficientPods"
        _set_condition(new, "True" if allowed > 0 else "False", reason, "", self._now())
        if new != pdb:
            await self._client.update_status(new)

    async def _fail_safe(self, pdb: PodDisruptionBudget, why: str) -> None:
        """No disruption while the status cannot be computed (Kubernetes' failSafe)."""
        new = PodDisruptionBudget()
        new.CopyFrom(pdb)
        new.status.disruptions_allowed = 0
        _set_condition(new, "False", "SyncFailed", why, self._now())
        if new != pdb:
            await self._client.update_status(new)


def _selector(pdb: PodDisruptionBudget) -> Selector | None:
    """The budget's selector; None (nothing) when it has none or a bad one."""
    if not pdb.spec.HasField("selector"):
        return None
    try:
        return selector_from_label_selector(pdb.spec.selector)
    except ValueError:
        return None


def _set_condition(
    pdb: PodDisruptionBudget, status: str, reason: str, message: str, now: float
) -> None:
    """Sets DisruptionAllowed, keeping its transition time unless the status flips."""
    found = next((c for c in pdb.status.conditions if c.type == CONDITION), None)
    if found is None:
        found = pdb.status.conditions.add(type=CONDITION)
    if found.status != status or not found.HasField("last_transition_time"):
        found.last_transition_time.CopyFrom(Timestamp(seconds=int(now)))
    found.status = status
    found.reason = reason
    found.message = message
    found.observed_generation = pdb.status.observed_generation


def new_disruption_controller(ctx: ControllerContext) -> DisruptionController:
    return DisruptionController(
        ctx.client,
        ctx.informers.informer(PodDisruptionBudget),
        ctx.informers.informer(Pod),
        replica_sets=ctx.informers.informer(ReplicaSet),
        deployments=ctx.informers.informer(Deployment),
        stateful_sets=ctx.informers.informer(StatefulSet),
        replication_controllers=ctx.informers.informer(ReplicationController),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("disruption-controller"),
    )

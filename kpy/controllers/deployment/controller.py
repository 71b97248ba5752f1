"""The Deployment controller: handlers and the sync entry point (Kubernetes'
pkg/controller/deployment/deployment_controller.go).

Handlers (all of them only enqueue a Deployment's key):
- a Deployment added, updated or deleted: that Deployment;
- a ReplicaSet added, updated or deleted: the Deployment its controllerRef
  names (on a controllerRef change, the previous one too); an orphan
  ReplicaSet added, or updated with new labels, enqueues every Deployment
  of its namespace whose selector matches it, which may adopt it;
- a pod deleted: its Deployment (through its ReplicaSet) when the strategy
  is Recreate and no pod of the Deployment is left.

`sync(key)` (Kubernetes' syncDeployment) works on a copy of the Deployment:
claim ReplicaSets (adopt matching orphans, release owned ones that stopped
matching); a Deployment being deleted only gets its status; then record
pause/resume in the Progressing condition; a paused Deployment or a scaling
event (an active ReplicaSet sized for another replica count) is only scaled
(`sync_for_scaling`); anything else rolls out by its strategy. See the
package docstring for where each Kubernetes function lives.

The controller is built by composition, read top to bottom in `__init__`:
a `DeploymentSyncer` (client, ReplicaSet lister, recorder, clock: the steps
of sync.go), a `RolloutProgress` over it and the work queue, and the two
strategies, `RollingUpdate` and `Recreate`, over both. The controller
itself only routes: handlers to the queue, `sync(key)` to the step that
applies.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.labels import selector_from_label_selector
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.deployment import util
from kpy.controllers.deployment.progress import RolloutProgress
from kpy.controllers.deployment.recreate import Recreate
from kpy.controllers.deployment.rolling import RollingUpdate
from kpy.controllers.deployment.sync import CONTROLLER, DeploymentSyncer
from kpy.controllers.ownership import ControllerRefManager, get_controller_of, new_controller_ref
from kpy.controllers.replicaset import POD_OWNER_INDEX

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.api.core.v1 import Pod
    from kpy.api.meta.v1 import OwnerReference
    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import SharedInformer
    from kpy.client import ClientProtocol
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.deployment")

__all__ = ["DeploymentController"]


class DeploymentController(Controller):
    """See the module docstring. `pods` must carry the ReplicaSet
    controller's owner index (`replicaset.pods_informer_with_owner_index`)."""

    name = CONTROLLER
    max_retries: ClassVar[int | None] = 15

    def __init__(
        self,
        client: ClientProtocol,
        deployments: SharedInformer[Deployment],
        replica_sets: SharedInformer[ReplicaSet],
        pods: SharedInformer[Pod],
        *,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(metrics=metrics, recorder=recorder)
        self.client = client
        self.d_lister = deployments.lister()
        self.rs_lister = replica_sets.lister()
        self._pods = pods
        # The steps, composed: sync.go's over the client and the ReplicaSet
        # lister; progress over those and the queue; the strategies over both.
        self.syncer = DeploymentSyncer(client, self.rs_lister, record=self.record, now=now)
        self.progress = RolloutProgress(self.syncer, self.queue)
        self.rolling = RollingUpdate(self.syncer, self.progress)
        self.recreate = Recreate(self.syncer, self.progress)
        deployments.add_event_handler(self.enqueue_handler())
        replica_sets.add_event_handler(
            EventHandler(
                on_add=self._add_replica_set,
                on_update=self._update_replica_set,
                on_delete=self._delete_replica_set,
            )
        )
        pods.add_event_handler(EventHandler(on_delete=self._delete_pod))

    # -- handlers -------------------------------------------------------------------------

    def _add_replica_set(self, rs: ReplicaSet, _initial: bool) -> None:
        if rs.metadata.HasField("deletion_timestamp"):
            self._delete_replica_set(rs)  # a restart found it mid-deletion
            return
        ref = get_controller_of(rs)
        if ref is not None:
            d = self._resolve(rs.metadata.namespace, ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._deployments_for(rs):
            self.enqueue(d)

    def _update_replica_set(self, old: ReplicaSet, cur: ReplicaSet) -> None:
        if old.metadata.resource_version == cur.metadata.resource_version:
            return  # a resync: nothing changed
        old_ref, cur_ref = get_controller_of(old), get_controller_of(cur)
        ref_changed = old_ref != cur_ref
        if ref_changed and old_ref is not None:
            previous = self._resolve(old.metadata.namespace, old_ref)
            if previous is not None:
                self.enqueue(previous)
        if cur_ref is not None:
            d = self._resolve(cur.metadata.namespace, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if ref_changed or old.metadata.labels != cur.metadata.labels:
            for d in self._deployments_for(cur):
                self.enqueue(d)

    def _delete_replica_set(self, obj: Any) -> None:
        rs = deleted_object(obj)
        if rs is None:
            return
        ref = get_controller_of(rs)
        if ref is None:
            return  # nobody cares about an orphan going
        d = self._resolve(rs.metadata.namespace, ref)
        if d is not None:
            self.enqueue(d)

    def _delete_pod(self, obj: Any) -> None:
        """A Recreate Deployment waits for its old pods to go: the last one
        going lets it create the new ReplicaSet."""
        pod = deleted_object(obj)
        if pod is None:
            return
        d = self._deployment_for_pod(pod)
        if d is None or d.spec.strategy.type != util.RECREATE:
            return
        rs_list = [
            rs
            for rs in self.rs_lister.list(d.metadata.namespace)
            if (ref := get_controller_of(rs)) is not None and ref.uid == d.metadata.uid
        ]
        if not any(self.get_pod_map_for_deployment(d, rs_list).values()):
            self.enqueue(d)

    def _deployment_for_pod(self, pod: Pod) -> Deployment | None:
        ref = get_controller_of(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return None
        rs = self.rs_lister.get(pod.metadata.namespace, ref.name)
        if rs is None or rs.metadata.uid != ref.uid:
            return None
        rs_ref = get_controller_of(rs)
        return None if rs_ref is None else self._resolve(rs.metadata.namespace, rs_ref)

    def _resolve(self, namespace: str, ref: OwnerReference) -> Deployment | None:
        """The Deployment a controllerRef names, if it is still that one."""
        if ref.kind != "Deployment":
            return None
        d = self.d_lister.get(namespace, ref.name)
        if d is None or d.metadata.uid != ref.uid:
            return None
        return d

    def _deployments_for(self, rs: ReplicaSet) -> list[Deployment]:
        found = util.get_deployments_for_replica_set(self.d_lister.list(rs.metadata.namespace), rs)
        if len(found) > 1:
            # controllerRefs keep this safe, but it is a user error worth seeing.
            log.info(
                "more than one deployment selects a replica set",
                extra={
                    "controller": self.name,
                    "replicaset": rs.metadata.name,
                    "deployments": [d.metadata.name for d in found],
                },
            )
        return found

    # -- sync -----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        cached = self.d_lister.get(namespace, name)
        if cached is None:
            return  # deleted: its ReplicaSets are the garbage collector's
        d = Deployment()
        d.CopyFrom(cached)  # listers' objects are shared; this one we may change
        selector = d.spec.selector
        if not selector.match_labels and not selector.match_expressions:
            await self._refuse_selecting_everything(d)
            return
        rs_list = await self.get_replica_sets_for_deployment(d)
        syncer = self.syncer
        if d.metadata.HasField("deletion_timestamp"):
            await syncer.sync_status_only(d, rs_list)
            return
        await syncer.check_paused_conditions(d)
        if d.spec.paused or await syncer.is_scaling_event(d, rs_list):
            await syncer.sync_for_scaling(d, rs_list)
            return
        strategy = d.spec.strategy.type
        if strategy == util.RECREATE:
            pod_map = self.get_pod_map_for_deployment(d, rs_list)
            await self.recreate.rollout_recreate(d, rs_list, pod_map)
        elif strategy == util.ROLLING_UPDATE:
            await self.rolling.rollout_rolling(d, rs_list)
        else:
            raise ValueError(f"deployment {key}: unexpected strategy type {strategy!r}")

    async def _refuse_selecting_everything(self, d: Deployment) -> None:
        log.warning(
            "this deployment selects all pods; a non-empty selector is required",
            extra={"controller": self.name, "deployment": d.metadata.name},
        )
        if d.status.observed_generation < d.metadata.generation:
            d.status.observed_generation = d.metadata.generation
            await self.syncer.write_deployment(d, status=True)

    async def get_replica_sets_for_deployment(self, d: Deployment) -> list[ReplicaSet]:
        """The ReplicaSets this Deployment controls after adopting matching
        orphans and releasing owned ones that stopped matching."""
        selector = selector_from_label_selector(d.spec.selector)
        candidates = self.rs_lister.list(d.metadata.namespace)

        async def recheck() -> Deployment:
            return await self.client.get(
                Deployment, d.metadata.name, namespace=d.metadata.namespace
            )

        manager = ControllerRefManager(
            self.client, d, selector, new_controller_ref(d, "apps/v1", "Deployment"), recheck
        )
        return await manager.claim(candidates)

    def get_pod_map_for_deployment(
        self, d: Deployment, rs_list: Sequence[ReplicaSet]
    ) -> dict[str, list[Pod]]:
        """The Deployment's pods (matching its selector) by ReplicaSet uid,
        inactive ones included: Recreate must see every old pod gone."""
        selector = selector_from_label_selector(d.spec.selector)
        index = self._pods.indexer
        pod_map: dict[str, list[Pod]] = {}
        for rs in rs_list:
            pod_map[rs.metadata.uid] = [
                p
                for p in index.by_index(POD_OWNER_INDEX, rs.metadata.uid)
                if p.metadata.namespace == d.metadata.namespace
                and selector.matches(p.metadata.labels)
            ]
        return pod_map

"""The RollingUpdate strategy (Kubernetes' pkg/controller/deployment/rolling.go).

One sync takes one step and lets the events it causes bring the next:
1. create the new ReplicaSet if missing (sized by `new_rs_new_replicas`);
2. scale the new ReplicaSet up as far as maxSurge allows
   (`reconcile_new_replica_set`); if it grew, stop here;
3. otherwise scale old ReplicaSets down as far as maxUnavailable allows
   (`reconcile_old_replica_sets`): first the pods of old ReplicaSets that are
   not available anyway (`cleanup_unhealthy_replicas`), then available ones
   (`scale_down_old_replica_sets_for_rolling_update`), oldest ReplicaSet
   first;
4. once nothing moved and the rollout is complete, delete history beyond
   revisionHistoryLimit; always write the rollout status.

Invariants, for the ReplicaSets' spec.replicas: their sum never exceeds
replicas + maxSurge, and old pods are only removed while at least
replicas - maxUnavailable pods stay available, counting the new
ReplicaSet's unavailable pods against the budget.

`RollingUpdate` is built from the `DeploymentSyncer` (scaling, history,
the new ReplicaSet) and `RolloutProgress` (the status it ends each step
with).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kpy.controllers.deployment import util

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.apps.v1 import Deployment, ReplicaSet
    from kpy.controllers.deployment.progress import RolloutProgress
    from kpy.controllers.deployment.sync import DeploymentSyncer

log = logging.getLogger("kpy.controllers.deployment")

__all__ = ["RollingUpdate"]


class RollingUpdate:
    """rolling.go's steps; see the module docstring."""

    def __init__(self, syncer: DeploymentSyncer, progress: RolloutProgress) -> None:
        self._syncer = syncer
        self._progress = progress

    async def rollout_rolling(self, d: Deployment, rs_list: Sequence[ReplicaSet]) -> None:
        """One step of the rollout (see the module docstring)."""
        syncer = self._syncer
        new_rs, old_rss = await syncer.get_all_replica_sets_and_sync_revision(d, rs_list, True)
        assert new_rs is not None  # created when missing
        all_rss: list[ReplicaSet | None] = [*old_rss, new_rs]
        if await self.reconcile_new_replica_set(all_rss, new_rs, d):
            await self._progress.sync_rollout_status(all_rss, new_rs, d)
            return
        active_old = util.filter_active_replica_sets(old_rss)
        if await self.reconcile_old_replica_sets(all_rss, active_old, new_rs, d):
            await self._progress.sync_rollout_status(all_rss, new_rs, d)
            return
        if util.deployment_complete(d, d.status):
            await syncer.cleanup_deployment(old_rss, d)
        await self._progress.sync_rollout_status(all_rss, new_rs, d)

    async def reconcile_new_replica_set(
        self, all_rss: Sequence[ReplicaSet | None], new_rs: ReplicaSet, deployment: Deployment
    ) -> bool:
        """Scales the new ReplicaSet toward the Deployment's size within the
        surge (down at once if it is larger); whether it was scaled."""
        replicas = deployment.spec.replicas
        if new_rs.spec.replicas == replicas:
            return False
        if new_rs.spec.replicas > replicas:
            scaled, _ = await self._syncer.scale_replica_set_and_record_event(
                new_rs, replicas, deployment
            )
            return scaled
        count = util.new_rs_new_replicas(deployment, all_rss, new_rs)
        scaled, _ = await self._syncer.scale_replica_set_and_record_event(new_rs, count, deployment)
        return scaled

    async def reconcile_old_replica_sets(
        self,
        all_rss: Sequence[ReplicaSet | None],
        old_rss: Sequence[ReplicaSet],
        new_rs: ReplicaSet,
        deployment: Deployment,
    ) -> bool:
        """Scales old ReplicaSets down as far as availability allows;
        whether any was scaled.

        maxScaledDown = allPods - minAvailable - newRSUnavailable: the new
        ReplicaSet's unavailable pods count against the budget, so pods of a
        broken new template never let old, working pods go (Kubernetes'
        example: 10 replicas, maxUnavailable 2, maxSurge 3, a crash-looping
        new ReplicaSet of 5: 13 - 8 - 5 = 0)."""
        old_pods = util.get_replica_count_for_replica_sets(old_rss)
        if old_pods == 0:
            return False
        all_pods = util.get_replica_count_for_replica_sets(all_rss)
        min_available = deployment.spec.replicas - util.max_unavailable(deployment)
        new_unavailable = new_rs.spec.replicas - new_rs.status.available_replicas
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        # Unhealthy pods go first, or they would block the rollout forever.
        old_after, cleaned = await self.cleanup_unhealthy_replicas(
            old_rss, deployment, max_scaled_down
        )
        scaled_down = await self.scale_down_old_replica_sets_for_rolling_update(
            [*old_after, new_rs], old_after, deployment
        )
        return cleaned + scaled_down > 0

    async def cleanup_unhealthy_replicas(
        self, old_rss: Sequence[ReplicaSet], deployment: Deployment, max_cleanup_count: int
    ) -> tuple[list[ReplicaSet], int]:
        """Removes up to `max_cleanup_count` unavailable replicas from old
        ReplicaSets, oldest first (the ReplicaSet controller deletes not-ready
        pods first, so availability does not drop); (the old ReplicaSets as
        now stored, how many replicas were removed)."""
        ordered = util.replica_sets_by_creation_timestamp(old_rss)
        total = 0
        for i, rs in enumerate(ordered):
            if total >= max_cleanup_count:
                break
            unhealthy = rs.spec.replicas - rs.status.available_replicas
            if rs.spec.replicas == 0 or unhealthy <= 0:
                continue
            count = min(max_cleanup_count - total, unhealthy)
            _, ordered[i] = await self._syncer.scale_replica_set_and_record_event(
                rs, rs.spec.replicas - count, deployment
            )
            total += count
        return ordered, total

    async def scale_down_old_replica_sets_for_rolling_update(
        self,
        all_rss: Sequence[ReplicaSet | None],
        old_rss: Sequence[ReplicaSet],
        deployment: Deployment,
    ) -> int:
        """Removes available replicas from old ReplicaSets, oldest first, while
        more than replicas - maxUnavailable stay available; how many."""
        min_available = deployment.spec.replicas - util.max_unavailable(deployment)
        # A ReplicaSet just scaled down may still report the pods it is about
        # to lose; it keeps at most spec.replicas of them, so count no more.
        available = sum(
            min(rs.status.available_replicas, rs.spec.replicas) for rs in all_rss if rs is not None
        )
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in util.replica_sets_by_creation_timestamp(old_rss):
            if total >= budget:
                break
            if rs.spec.replicas == 0:
                continue
            count = min(rs.spec.replicas, budget - total)
            await self._syncer.scale_replica_set_and_record_event(
                rs, rs.spec.replicas - count, deployment
            )
            total += count
        return total

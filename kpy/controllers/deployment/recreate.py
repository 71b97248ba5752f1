"""The Recreate strategy (Kubernetes' pkg/controller/deployment/recreate.go).

Old ReplicaSets go to 0 first; the new ReplicaSet is created (or scaled up)
only once no old pod is left that is not finished, as seen both in the old
ReplicaSets' status.replicas and in the pods themselves. The pod-deleted
handler enqueues a Recreate Deployment whose last pod went, so the new
ReplicaSet follows without waiting for anything else.

`Recreate` is built, as `RollingUpdate` is, from the `DeploymentSyncer`
and `RolloutProgress`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.controllers.deployment import util

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kpy.api.apps.v1 import Deployment, ReplicaSet
    from kpy.api.core.v1 import Pod
    from kpy.controllers.deployment.progress import RolloutProgress
    from kpy.controllers.deployment.sync import DeploymentSyncer

__all__ = ["Recreate", "old_pods_running"]


class Recreate:
    """recreate.go's steps; see the module docstring."""

    def __init__(self, syncer: DeploymentSyncer, progress: RolloutProgress) -> None:
        self._syncer = syncer
        self._progress = progress

    async def rollout_recreate(
        self,
        d: Deployment,
        rs_list: Sequence[ReplicaSet],
        pod_map: Mapping[str, Sequence[Pod]],
    ) -> None:
        """One step: old ReplicaSets down, then (their pods gone) the new one up."""
        syncer = self._syncer
        # Never create the new ReplicaSet before the old ones are down.
        new_rs, old_rss = await syncer.get_all_replica_sets_and_sync_revision(d, rs_list, False)
        all_rss: list[ReplicaSet | None] = [*old_rss, new_rs]
        active_old = util.filter_active_replica_sets(old_rss)
        if await self.scale_down_old_replica_sets_for_recreate(active_old, d):
            await self._progress.sync_rollout_status(all_rss, new_rs, d)
            return
        if old_pods_running(new_rs, old_rss, pod_map):
            await self._progress.sync_rollout_status(all_rss, new_rs, d)
            return
        if new_rs is None:
            new_rs, old_rss = await syncer.get_all_replica_sets_and_sync_revision(d, rs_list, True)
            assert new_rs is not None  # created when missing
            all_rss = [*old_rss, new_rs]
        await self.scale_up_new_replica_set_for_recreate(new_rs, d)
        if util.deployment_complete(d, d.status):
            await syncer.cleanup_deployment(old_rss, d)
        await self._progress.sync_rollout_status(all_rss, new_rs, d)

    async def scale_down_old_replica_sets_for_recreate(
        self, old_rss: Sequence[ReplicaSet], deployment: Deployment
    ) -> bool:
        scaled = False
        for rs in old_rss:
            if rs.spec.replicas == 0:
                continue
            changed, _ = await self._syncer.scale_replica_set_and_record_event(rs, 0, deployment)
            scaled = scaled or changed
        return scaled

    async def scale_up_new_replica_set_for_recreate(
        self, new_rs: ReplicaSet, deployment: Deployment
    ) -> bool:
        scaled, _ = await self._syncer.scale_replica_set_and_record_event(
            new_rs, deployment.spec.replicas, deployment
        )
        return scaled


def old_pods_running(
    new_rs: ReplicaSet | None,
    old_rss: Sequence[ReplicaSet],
    pod_map: Mapping[str, Sequence[Pod]],
) -> bool:
    """Whether an old ReplicaSet still reports pods, or a pod of one (by
    ReplicaSet uid in `pod_map`) is not Succeeded or Failed; Unknown counts
    as running, since it may be."""
    if util.get_actual_replica_count_for_replica_sets(old_rss) > 0:
        return True
    for uid, pods in pod_map.items():
        if new_rs is not None and uid == new_rs.metadata.uid:
            continue
        if any(p.status.phase not in ("Succeeded", "Failed") for p in pods):
            return True
    return False

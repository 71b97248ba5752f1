"""The Deployment controller (Kubernetes' pkg/controller/deployment).

A Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`; the
one whose template equals the Deployment's (ignoring the hash label) is the
new ReplicaSet, the others are old. A template change rolls pods from the
old ReplicaSets to the new one by the strategy (RollingUpdate within
maxSurge / maxUnavailable, or Recreate); a change of replicas alone only
scales (proportionally when several ReplicaSets have pods). Revisions live
in the `deployment.kubernetes.io/revision` annotation of each ReplicaSet and
of the Deployment; rollback is `kpyctl rollout undo`'s (kpy/cli/_rollback.py),
done the way kubectl does it, by writing an old ReplicaSet's template back
into the Deployment.

Kubernetes spreads the methods of one DeploymentController over several
files; here each file holds one small class, and the controller composes
them (see controller.py): `DeploymentSyncer` (sync.go), `RolloutProgress`
(progress.go), `RollingUpdate` (rolling.go) and `Recreate` (recreate.go).

Where Kubernetes' functions live (snake_case names throughout):

- `controller.py` (deployment_controller.go): `DeploymentController`, its
  handlers (addReplicaSet, updateReplicaSet, deleteReplicaSet, deletePod),
  `sync` (syncDeployment), `get_replica_sets_for_deployment`,
  `get_pod_map_for_deployment`.
- `sync.py` (sync.go): `get_all_replica_sets_and_sync_revision`,
  `get_new_replica_set`, `scale`, `scale_replica_set_and_record_event`,
  `scale_replica_set`, `cleanup_deployment`, `sync_deployment_status`,
  `calculate_status`, `is_scaling_event`, `check_paused_conditions`,
  `sync_status_only`, and `sync_for_scaling` (Kubernetes' `sync`, renamed
  because `sync(key)` is the controller's entry point here).
- `progress.py` (progress.go): `sync_rollout_status`,
  `requeue_stuck_deployment`, `get_replica_failures`.
- `rolling.py` (rolling.go): `rollout_rolling`, `reconcile_new_replica_set`,
  `reconcile_old_replica_sets`, `cleanup_unhealthy_replicas`,
  `scale_down_old_replica_sets_for_rolling_update`.
- `recreate.py` (recreate.go): `rollout_recreate`,
  `scale_down_old_replica_sets_for_recreate`,
  `scale_up_new_replica_set_for_recreate`, `old_pods_running`.
- `util.py` (util/deployment_util.go, plus ComputeHash and the ReplicaSet
  orderings of pkg/controller): the pure arithmetic and bookkeeping.

Differences from Kubernetes, and why:
- kpy's status subresource writes only the status, so the Deployment's
  revision annotation goes through the main path
  (`DeploymentSyncer.write_deployment`).
- There is no spec.rollbackTo (apps/v1 dropped it); rollback is client-side.
- An error while scaling old ReplicaSets fails the sync (and retries it)
  rather than being dropped until the next event.
- When scaling old ReplicaSets down for a rolling update, a ReplicaSet
  counts at most spec.replicas available pods: one just scaled down may
  still report the pods it is about to lose, and counting those could take
  availability below replicas - maxUnavailable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.controllers.deployment.controller import DeploymentController
from kpy.controllers.replicaset import pods_informer_with_owner_index

if TYPE_CHECKING:
    from kpy.controllers.base import ControllerContext

__all__ = ["DeploymentController", "new_deployment_controller"]


def new_deployment_controller(ctx: ControllerContext) -> DeploymentController:
    return DeploymentController(
        ctx.client,
        ctx.informers.informer(Deployment),
        ctx.informers.informer(ReplicaSet),
        pods_informer_with_owner_index(ctx),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("deployment-controller"),
    )

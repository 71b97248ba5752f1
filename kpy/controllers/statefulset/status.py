"""A StatefulSet's status from its pods (Kubernetes' computeReplicaStatus
and completeRollingUpdate).

- replicas: pods created (terminating ones included, as Kubernetes counts);
- readyReplicas: Running and Ready; availableReplicas: of those, ready for
  minReadySeconds;
- currentReplicas / updatedReplicas: pods not being deleted whose
  `controller-revision-hash` is the current / update revision;
- a RollingUpdate whose every pod is updated and ready is complete: the
  current revision becomes the update revision.

collisionCount is kept as it is; observedGeneration is the caller's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.apps.v1 import StatefulSetStatus
from kpy.controllers.statefulset.identity import is_available, is_healthy, pod_revision

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.apps.v1 import StatefulSet
    from kpy.api.core.v1 import Pod

__all__ = ["statefulset_status"]


def statefulset_status(
    sts: StatefulSet, pods: Sequence[Pod], current: str, update: str, now: float
) -> StatefulSetStatus:
    """See the module docstring; `current` and `update` are revision names,
    `pods` the set's pods after this sync's deletions (not its creations,
    which the watch will report), `now` in epoch seconds."""
    status = StatefulSetStatus()
    status.CopyFrom(sts.status)
    replicas = ready = available = current_replicas = updated = 0
    for pod in pods:
        replicas += 1
        if is_healthy(pod):
            ready += 1
            if is_available(pod, sts.spec.min_ready_seconds, now):
                available += 1
        if pod.metadata.HasField("deletion_timestamp"):
            continue
        revision = pod_revision(pod)
        current_replicas += revision == current
        updated += revision == update
    status.replicas = replicas
    status.ready_replicas = ready
    status.available_replicas = available
    status.current_replicas = current_replicas
    status.updated_replicas = updated
    status.current_revision = current
    status.update_revision = update
    if (
        sts.spec.update_strategy.type == "RollingUpdate"
        and updated == replicas
        and ready == replicas
    ):
        status.current_revision = update
        status.current_replicas = updated
    return status

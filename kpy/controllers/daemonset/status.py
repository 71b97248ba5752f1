"""A DaemonSet's status from its pods and the nodes (Kubernetes'
updateDaemonSetStatus).

For each node that should run the daemon: desiredNumberScheduled; if it has
a pod, currentNumberScheduled; if its oldest pod is ready, numberReady, and
if ready for minReadySeconds, numberAvailable; if that pod runs the current
revision, updatedNumberScheduled. A pod on a node that should not run one is
misscheduled. numberUnavailable is desired minus available. Conditions and
collisionCount are kept as they are; observedGeneration is the caller's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.apps.v1 import DaemonSetStatus
from kpy.controllers.daemonset.util import Placement, is_pod_updated, target_node_name
from kpy.controllers.ownership import is_pod_available, is_pod_ready, seconds

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.apps.v1 import DaemonSet
    from kpy.api.core.v1 import Node, Pod

__all__ = ["daemonset_status", "pods_by_node"]


def pods_by_node(pods: Sequence[Pod]) -> dict[str, list[Pod]]:
    """Daemon pods by the node they are for (bound or pinned by affinity)."""
    by_node: dict[str, list[Pod]] = {}
    for pod in pods:
        by_node.setdefault(target_node_name(pod), []).append(pod)
    return by_node


def daemonset_status(
    ds: DaemonSet, nodes: Sequence[Node], pods: Sequence[Pod], revision_hash: str, now: float
) -> DaemonSetStatus:
    """See the module docstring; `now` in epoch seconds."""
    status = DaemonSetStatus()
    status.CopyFrom(ds.status)
    by_node = pods_by_node(pods)
    placement = Placement.of(ds)
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        on_node = by_node.get(node.metadata.name, [])
        if not placement.should_run(node)[0]:
            misscheduled += 1 if on_node else 0
            continue
        desired += 1
        if not on_node:
            continue
        current += 1
        oldest = min(on_node, key=lambda p: seconds(p.metadata.creation_timestamp))
        if is_pod_ready(oldest):
            ready += 1
            if is_pod_available(oldest, ds.spec.min_ready_seconds, now):
                available += 1
        if is_pod_updated(oldest, revision_hash):
            updated += 1
    status.desired_number_scheduled = desired
    status.current_number_scheduled = current
    status.number_misscheduled = misscheduled
    status.number_ready = ready
    status.number_available = available
    status.number_unavailable = desired - available
    status.updated_number_scheduled = updated
    return status

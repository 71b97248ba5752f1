"""The DaemonSet controller: one pod of each DaemonSet on every node that
should run it, rolled out through ControllerRevisions.

- `controller`: handlers, the work queue and `sync` (manage, update, status).
- `util`: which nodes should run a daemon pod, the pod template, the node pin.
- `update`: the RollingUpdate plan (maxUnavailable, maxSurge).
- `history`: ControllerRevisions (current, old, cleanup).
- `status`: the status numbers.
"""

from kpy.controllers.daemonset.controller import (
    BURST_REPLICAS,
    DaemonSetController,
    new_daemonset_controller,
)

__all__ = ["BURST_REPLICAS", "DaemonSetController", "new_daemonset_controller"]

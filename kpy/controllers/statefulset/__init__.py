"""The StatefulSet controller: pods with stable names, hostnames and claims,
created and removed in order, rolled out through ControllerRevisions.

- `controller`: handlers, the work queue and `sync` (revisions, plan, status).
- `identity`: a pod's name, labels, hostname and claims; the retention policy.
- `update`: the plan of one sync (OrderedReady / Parallel, scale down,
  RollingUpdate with partition and maxUnavailable, OnDelete).
- `status`: the status numbers.
ControllerRevisions are `kpy.controllers.history`, shared with DaemonSets.
"""

from kpy.controllers.statefulset.controller import (
    StatefulSetController,
    new_statefulset_controller,
)

__all__ = ["StatefulSetController", "new_statefulset_controller"]

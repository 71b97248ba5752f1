"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes no new pods,
except pods that tolerate the node.kubernetes.io/unschedulable:NoSchedule
taint (DaemonSet pods do).

Mirrors kube-scheduler's nodeunschedulable plugin: Filter only; a rejection
is UnschedulableAndUnresolvable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from kpy.scheduler.framework import SUCCESS, Code, Status, new_status
from kpy.scheduler.plugins.taint_toleration import TaintKey, pod_tolerations, tolerates

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import BoolArray, CycleState, NodeInfo, NodeTable

__all__ = ["ERR_REASON_UNSCHEDULABLE", "NAME", "TAINT_NODE_UNSCHEDULABLE", "NodeUnschedulable"]

NAME: Final = "NodeUnschedulable"
ERR_REASON_UNSCHEDULABLE: Final = "node(s) were unschedulable"
TAINT_NODE_UNSCHEDULABLE: Final = "node.kubernetes.io/unschedulable"

_UNSCHEDULABLE_TAINT: Final = TaintKey(TAINT_NODE_UNSCHEDULABLE, "", "NoSchedule")
_REJECTED: Final = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_UNSCHEDULABLE)
_NODE_CACHE_KEY: Final = NAME


def _cordoned(node_info: NodeInfo) -> bool:
    # The one thing of a node Filter reads: the table's class key.
    return node_info.node.spec.unschedulable


class NodeUnschedulable:
    name: Final = NAME

    def filter_table(self, state: CycleState, pod: Pod, table: NodeTable) -> BoolArray:
        return table.per_class(_cordoned, lambda rep: not self.filter(state, pod, rep).code)

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        unschedulable = node_info.node_cache.get(_NODE_CACHE_KEY)
        if unschedulable is None:
            unschedulable = node_info.node.spec.unschedulable
            node_info.node_cache[_NODE_CACHE_KEY] = unschedulable
        if not unschedulable:
            return SUCCESS
        if any(tolerates(t, _UNSCHEDULABLE_TAINT) for t in pod_tolerations(state, pod)):
            return SUCCESS
        return _REJECTED

"""NodeName: a pod that names a node (spec.nodeName) fits only that node.

Mirrors kube-scheduler's nodename plugin: Filter only; a mismatch is
UnschedulableAndUnresolvable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from kpy.scheduler.framework import SUCCESS, Code, Status, new_status

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import BoolArray, CycleState, NodeInfo, NodeTable

__all__ = ["ERR_REASON", "NAME", "NodeName"]

NAME: Final = "NodeName"
ERR_REASON: Final = "node(s) didn't match the requested node name"

_REJECTED: Final = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)


class NodeName:
    name: Final = NAME

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        wanted = pod.spec.node_name
        if not wanted or wanted == node_info.name:
            return SUCCESS
        return _REJECTED

    def filter_table(self, state: CycleState, pod: Pod, table: NodeTable) -> BoolArray:
        wanted = pod.spec.node_name
        if not wanted:
            return table.everywhere()
        passed = np.zeros(len(table), np.bool_)
        row = table.row_of(wanted)
        if row is not None:
            passed[row] = True
        return passed

"""NodePorts: a pod's host ports must be free on the node.

Mirrors kube-scheduler's nodeports plugin: the wanted ports are those with
hostPort > 0 of the app containers and of sidecar init containers
(restartPolicy Always); a plain init container's host port is not held.
Ports conflict on (hostIP, protocol, port), an empty hostIP meaning 0.0.0.0
and an empty protocol TCP; 0.0.0.0 conflicts with every IP. PreFilter skips
the plugin for a pod without host ports; Filter without PreFilter is an
Error, as in Kubernetes. A conflict is Unschedulable ("node(s) didn't have
free ports for the requested pod ports").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.scheduler.framework import SUCCESS, Code, Status, new_status, pod_host_ports

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import CycleState, HostPort, NodeInfo, PreFilterResult

__all__ = ["ERR_REASON", "NAME", "NodePorts"]

NAME: Final = "NodePorts"
ERR_REASON: Final = "node(s) didn't have free ports for the requested pod ports"

_PRE_FILTER_KEY: Final = "PreFilter" + NAME
_REJECTED: Final = new_status(Code.UNSCHEDULABLE, ERR_REASON)
_SKIP: Final = new_status(Code.SKIP)
_NO_STATE: Final = new_status(Code.ERROR, f'reading "{_PRE_FILTER_KEY}" from cycleState: not found')


@dataclass(frozen=True, slots=True)
class _PreFilterState:
    ports: tuple[HostPort, ...]


class NodePorts:
    name: Final = NAME

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        ports = pod_host_ports(pod)
        if not ports:
            return None, _SKIP
        state.write(_PRE_FILTER_KEY, _PreFilterState(ports))
        return None, SUCCESS

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        wanted = state.get(_PRE_FILTER_KEY)
        if not isinstance(wanted, _PreFilterState):
            return _NO_STATE
        used = node_info.used_ports
        if not used:
            return SUCCESS
        for ip, protocol, port in wanted.ports:
            if used.check_conflict(ip, protocol, port):
                return _REJECTED
        return SUCCESS

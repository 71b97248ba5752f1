"""Why a pod fits nowhere, and how kube-scheduler says so (the Diagnosis and
FitError of kube-scheduler's `framework/types.go`).

A `Diagnosis` is filled by one Filter pass: every rejected node with the
status of the plugin that rejected it (nodes that passed are absent), the
plugins that rejected anything, the PreFilter message when PreFilter
rejected the pod outright, and PostFilter's (preemption's) message.
`fit_error_message` renders it as "0/5 nodes are available: ...".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from kpy.scheduler.framework.status import Status

__all__ = ["NO_NODES_AVAILABLE", "Diagnosis", "fit_error_message"]

#: kube-scheduler's ErrNoNodesAvailable, for a cluster with no nodes at all.
NO_NODES_AVAILABLE: Final = "no nodes available to schedule pods"


@dataclass(eq=False, slots=True)
class Diagnosis(Mapping[str, "Status"]):
    """Kubernetes' Diagnosis. Reading it as a Mapping reads
    `node_to_status` (and `==` compares only that); write through
    `node_to_status`."""

    #: node name -> the status that rejected it (stamped with its plugin)
    node_to_status: dict[str, Status] = field(default_factory=dict)
    #: every plugin that rejected the pod on some node, or outright
    unschedulable_plugins: set[str] = field(default_factory=set)
    #: PreFilter's rejection, reported once instead of per node
    pre_filter_msg: str = ""
    #: PostFilter's (preemption's) message, appended to the FitError message
    post_filter_msg: str = ""

    def __getitem__(self, node_name: str) -> Status:
        return self.node_to_status[node_name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.node_to_status)

    def __len__(self) -> int:
        return len(self.node_to_status)


def fit_error_message(num_nodes: int, diagnosis: Mapping[str, Status]) -> str:
    """Kubernetes' FitError message: "0/5 nodes are available: 2 Insufficient
    cpu, 3 node(s) had untolerated taint {k1: v1}." Each reason is counted
    over the nodes and the "<count> <reason>" strings are sorted as strings,
    as kube-scheduler sorts them. A Diagnosis's PreFilter message stands
    instead of the per-node reasons; its PostFilter message follows."""
    message = f"0/{num_nodes} nodes are available:"
    pre_filter_msg = post_filter_msg = ""
    if isinstance(diagnosis, Diagnosis):
        pre_filter_msg, post_filter_msg = diagnosis.pre_filter_msg, diagnosis.post_filter_msg
    if pre_filter_msg:
        message += f" {pre_filter_msg}."
    else:
        counts: dict[str, int] = {}
        for status in diagnosis.values():
            for reason in status.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        if counts:
            message += " " + ", ".join(sorted(f"{n} {r}" for r, n in counts.items())) + "."
    if post_filter_msg:
        message += f" {post_filter_msg}"
    return message

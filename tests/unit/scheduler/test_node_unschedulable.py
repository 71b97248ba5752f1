"""NodeUnschedulable, with cases ported from Kubernetes'
pkg/scheduler/framework/plugins/nodeunschedulable/node_unschedulable_test.go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.scheduler.framework import SUCCESS, Code, CycleState, NodeInfo, Status, new_status
from kpy.scheduler.plugins.node_unschedulable import ERR_REASON_UNSCHEDULABLE, NodeUnschedulable
from tests.unit.scheduler.sched_builders import node, pod, toleration

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod

REJECTED = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_UNSCHEDULABLE)
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


@dataclass
class Case:
    name: str
    pod: Pod
    unschedulable: bool
    want: Status = SUCCESS


CASES = [
    Case("does not schedule a pod to an unschedulable node", pod(), True, REJECTED),
    Case("schedules a pod to a normal node", pod(), False),
    Case(
        "schedules a pod tolerating the unschedulable taint to an unschedulable node",
        pod(tolerations=[toleration(UNSCHEDULABLE_TAINT, effect="NoSchedule")]),
        True,
    ),
    Case(
        "an Exists toleration with an empty key tolerates cordoning too",
        pod(tolerations=[toleration(operator="Exists")]),
        True,
    ),
    Case(
        "a toleration for another effect does not",
        pod(tolerations=[toleration(UNSCHEDULABLE_TAINT, "Exists", effect="NoExecute")]),
        True,
        REJECTED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_filter(case: Case) -> None:
    node_info = NodeInfo(node("n1", unschedulable=case.unschedulable))
    assert NodeUnschedulable().filter(CycleState(), case.pod, node_info) == case.want, case.name


def test_uncordoning_is_seen_after_set_node() -> None:
    node_info = NodeInfo(node("n1", unschedulable=True))
    plugin = NodeUnschedulable()
    assert plugin.filter(CycleState(), pod(), node_info) == REJECTED
    node_info.set_node(node("n1"))
    assert plugin.filter(CycleState(), pod(), node_info) == SUCCESS

"""NodeName, with cases ported from Kubernetes'
pkg/scheduler/framework/plugins/nodename/node_name_test.go."""

from __future__ import annotations

import pytest

from kpy.scheduler.framework import SUCCESS, Code, CycleState, NodeInfo, Status, new_status
from kpy.scheduler.plugins.node_name import ERR_REASON, NodeName
from tests.unit.scheduler.sched_builders import node, pod

REJECTED = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)


@pytest.mark.parametrize(
    ("pod_node_name", "node_name", "want"),
    [
        pytest.param("", "foo", SUCCESS, id="no host specified"),
        pytest.param("foo", "foo", SUCCESS, id="host matches"),
        pytest.param("bar", "foo", REJECTED, id="host doesn't match"),
    ],
)
def test_filter(pod_node_name: str, node_name: str, want: Status) -> None:
    got = NodeName().filter(CycleState(), pod(node_name=pod_node_name), NodeInfo(node(node_name)))
    assert got == want

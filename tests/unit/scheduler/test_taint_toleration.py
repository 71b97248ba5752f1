"""TaintToleration, with cases ported from Kubernetes'
pkg/scheduler/framework/plugins/tainttoleration/taint_toleration_test.go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    NodeInfo,
    NodeScore,
    Status,
    new_status,
)
from kpy.scheduler.plugins.taint_toleration import (
    TaintKey,
    TaintToleration,
    TolerationKey,
    tolerates,
)
from tests.unit.scheduler.sched_builders import node, pod, taint, toleration

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod, Taint

PNS = "PreferNoSchedule"


def untolerated(key: str, value: str) -> Status:
    return new_status(
        Code.UNSCHEDULABLE_AND_UNRESOLVABLE, f"node(s) had untolerated taint {{{key}: {value}}}"
    )


@dataclass
class FilterCase:
    name: str
    pod: Pod
    taints: list[Taint]
    want: Status = SUCCESS


FILTER_CASES = [
    FilterCase(
        "a pod having no tolerations can't be scheduled onto a node with nonempty taints",
        pod(),
        [taint("dedicated", "user1", "NoSchedule")],
        untolerated("dedicated", "user1"),
    ),
    FilterCase(
        "a pod which can be scheduled on a dedicated node assigned to user1 with effect NoSchedule",
        pod(tolerations=[toleration("dedicated", value="user1", effect="NoSchedule")]),
        [taint("dedicated", "user1", "NoSchedule")],
    ),
    FilterCase(
        "a pod which can't be scheduled on a dedicated node assigned to user2 "
        "with effect NoSchedule",
        pod(tolerations=[toleration("dedicated", "Equal", "user2", "NoSchedule")]),
        [taint("dedicated", "user1", "NoSchedule")],
        untolerated("dedicated", "user1"),
    ),
    FilterCase(
        "a toleration with operator Exists tolerates the taints on the node",
        pod(tolerations=[toleration("foo", "Exists", effect="NoSchedule")]),
        [taint("foo", "bar", "NoSchedule")],
    ),
    FilterCase(
        "multiple tolerations, multiple taints, all tolerated",
        pod(
            tolerations=[
                toleration("dedicated", "Equal", "user2", "NoSchedule"),
                toleration("foo", "Exists", effect="NoSchedule"),
            ]
        ),
        [taint("dedicated", "user2", "NoSchedule"), taint("foo", "bar", "NoSchedule")],
    ),
    FilterCase(
        "keys and values match the taint but the (non-empty) effect doesn't",
        pod(tolerations=[toleration("foo", "Equal", "bar", PNS)]),
        [taint("foo", "bar", "NoSchedule")],
        untolerated("foo", "bar"),
    ),
    FilterCase(
        "the toleration's effect is empty, so it tolerates a NoSchedule taint",
        pod(tolerations=[toleration("foo", "Equal", "bar")]),
        [taint("foo", "bar", "NoSchedule")],
    ),
    FilterCase(
        "key and value don't match but the taint is PreferNoSchedule",
        pod(tolerations=[toleration("dedicated", "Equal", "user2", "NoSchedule")]),
        [taint("dedicated", "user1", PNS)],
    ),
    FilterCase(
        "no toleration, but the taint is PreferNoSchedule",
        pod(),
        [taint("dedicated", "user1", PNS)],
    ),
    FilterCase(
        "a NoExecute taint must be tolerated too",
        pod(),
        [taint("node.kubernetes.io/not-ready", "", "NoExecute")],
        untolerated("node.kubernetes.io/not-ready", ""),
    ),
    FilterCase(
        "tolerationSeconds does not matter for scheduling",
        pod(tolerations=[toleration("k", "Exists", effect="NoExecute")]),
        [taint("k", "v", "NoExecute")],
    ),
    FilterCase(
        "an empty key with Exists tolerates every taint",
        pod(tolerations=[toleration(operator="Exists")]),
        [taint("a", "1", "NoSchedule"), taint("b", "2", "NoExecute")],
    ),
    FilterCase(
        "an empty key with Exists and an effect tolerates only that effect",
        pod(tolerations=[toleration(operator="Exists", effect="NoSchedule")]),
        [taint("a", "1", "NoSchedule"), taint("b", "2", "NoExecute")],
        untolerated("b", "2"),
    ),
    FilterCase(
        "the first untolerated taint in node order is reported",
        pod(tolerations=[toleration("b", "Exists")]),
        [
            taint("b", "x", "NoSchedule"),
            taint("k1", "v1", "NoSchedule"),
            taint("k2", "", "NoSchedule"),
        ],
        untolerated("k1", "v1"),
    ),
    FilterCase(
        "an unknown operator tolerates nothing (Gt/Lt are feature-gated off)",
        pod(tolerations=[toleration("sla", "Gt", "750", "NoSchedule")]),
        [taint("sla", "950", "NoSchedule")],
        untolerated("sla", "950"),
    ),
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: c.name)
def test_filter(case: FilterCase) -> None:
    node_info = NodeInfo(node("nodeA", taints=case.taints))
    assert TaintToleration().filter(CycleState(), case.pod, node_info) == case.want, case.name


@dataclass
class ScoreCase:
    name: str
    pod: Pod
    nodes: list[list[Taint]]
    expected: list[int]


SCORE_CASES = [
    ScoreCase(
        "nodes with taints tolerated by the pod score higher than those with intolerable taints",
        pod(tolerations=[toleration("foo", "Equal", "bar", PNS)]),
        [[taint("foo", "bar", PNS)], [taint("foo", "blah", PNS)]],
        [100, 0],
    ),
    ScoreCase(
        "nodes whose taints are all tolerated get the same score, however many",
        pod(
            tolerations=[
                toleration("cpu-type", "Equal", "arm64", PNS),
                toleration("disk-type", "Equal", "ssd", PNS),
            ]
        ),
        [
            [],
            [taint("cpu-type", "arm64", PNS)],
            [taint("cpu-type", "arm64", PNS), taint("disk-type", "ssd", PNS)],
        ],
        [100, 100, 100],
    ),
    ScoreCase(
        "the more intolerable taints a node has, the lower score it gets",
        pod(tolerations=[toleration("foo", "Equal", "bar", PNS)]),
        [
            [],
            [taint("cpu-type", "arm64", PNS)],
            [taint("cpu-type", "arm64", PNS), taint("disk-type", "ssd", PNS)],
        ],
        [100, 50, 0],
    ),
    ScoreCase(
        "only taints and tolerations with effect PreferNoSchedule count",
        pod(
            tolerations=[
                toleration("cpu-type", "Equal", "arm64", "NoSchedule"),
                toleration("disk-type", "Equal", "ssd", "NoSchedule"),
            ]
        ),
        [
            [],
            [taint("cpu-type", "arm64", "NoSchedule")],
            [taint("cpu-type", "arm64", PNS), taint("disk-type", "ssd", PNS)],
        ],
        [100, 100, 0],
    ),
    ScoreCase(
        "no taints and tolerations: lands on the node with no taints",
        pod(),
        [[], [taint("cpu-type", "arm64", PNS)]],
        [100, 0],
    ),
    ScoreCase(
        "a toleration with an empty effect counts for PreferNoSchedule",
        pod(tolerations=[toleration("cpu-type", "Exists")]),
        [[taint("cpu-type", "arm64", PNS)], [taint("gpu", "x", PNS)]],
        [100, 0],
    ),
    ScoreCase(
        "no node has an intolerable taint: all score the maximum",
        pod(),
        [[], []],
        [100, 100],
    ),
]


@pytest.mark.parametrize("case", SCORE_CASES, ids=lambda c: c.name)
def test_score(case: ScoreCase) -> None:
    plugin = TaintToleration()
    infos = [NodeInfo(node(f"node{i}", taints=t)) for i, t in enumerate(case.nodes)]
    state = CycleState()
    assert plugin.pre_score(state, case.pod, infos).is_success()
    scores = []
    for info in infos:
        value, status = plugin.score(state, case.pod, info)
        assert status.is_success()
        scores.append(NodeScore(info.name, value))
    batch, status = plugin.score_nodes(state, case.pod, infos)
    assert status.is_success()
    assert batch == [s.score for s in scores], "score_nodes agrees with score"
    assert plugin.normalize_score(state, case.pod, scores).is_success()
    assert [s.score for s in scores] == case.expected, case.name


@pytest.mark.parametrize(
    ("tol", "tnt", "want"),
    [
        (TolerationKey("k", "", "v", ""), TaintKey("k", "v", "NoSchedule"), True),
        (TolerationKey("k", "Equal", "v", "NoSchedule"), TaintKey("k", "w", "NoSchedule"), False),
        (TolerationKey("k", "Exists", "", ""), TaintKey("k", "anything", "NoExecute"), True),
        (TolerationKey("", "Exists", "", ""), TaintKey("any", "thing", PNS), True),
        (TolerationKey("k", "Exists", "", "NoExecute"), TaintKey("k", "v", "NoSchedule"), False),
        (TolerationKey("other", "Exists", "", ""), TaintKey("k", "v", "NoSchedule"), False),
        # An empty key with Equal (invalid by validation) compares values only, as Kubernetes does.
        (TolerationKey("", "Equal", "v", ""), TaintKey("k", "v", "NoSchedule"), True),
        (TolerationKey("k", "Lt", "5", ""), TaintKey("k", "1", "NoSchedule"), False),
    ],
)
def test_tolerates(tol: TolerationKey, tnt: TaintKey, want: bool) -> None:
    assert tolerates(tol, tnt) is want

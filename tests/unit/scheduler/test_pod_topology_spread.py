"""PodTopologySpread, with cases ported from Kubernetes'
pkg/scheduler/framework/plugins/podtopologyspread/filtering_test.go
(TestSingleConstraint) and scoring_test.go (TestPodTopologySpreadScore)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.api.labels import Selector, selector_from_set
from kpy.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Framework,
    NodeInfo,
    NodeScore,
    Status,
)
from kpy.scheduler.plugins.pod_topology_spread import PodTopologySpread
from kpy.scheduler.profiles import default_profile
from tests.unit.scheduler.sched_builders import node, taint

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kpy.api.core.v1 import Node

NOT_MATCH = Status(Code.UNSCHEDULABLE, ("node(s) didn't match pod topology spread constraints",))
MISSING = Status(
    Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
    ("node(s) didn't match pod topology spread constraints (missing required label)",),
)
FOO = {"foo": ""}


def constraint(
    key: str = "zone",
    max_skew: int = 1,
    when: str = "DoNotSchedule",
    selector: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "maxSkew": max_skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": selector
        if selector is not None
        else {"matchExpressions": [{"key": "foo", "operator": "Exists"}]},
        **extra,
    }


_seq = iter(range(1_000_000))


def spod(
    labels: Mapping[str, str] | None = None,
    *,
    node_name: str = "",
    namespace: str = "default",
    constraints: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> Pod:
    name = f"p{next(_seq)}"
    body: dict[str, Any] = {"containers": [{"name": "c"}], **spec}
    if node_name:
        body["nodeName"] = node_name
    if constraints:
        body["topologySpreadConstraints"] = constraints
    return from_dict(
        Pod,
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "labels": dict(labels or {}),
            },
            "spec": body,
        },
    )


def on(node_name: str, count: int = 1, **kwargs: Any) -> list[Pod]:
    return [spod(FOO, node_name=node_name, **kwargs) for _ in range(count)]


def terminating(pods: list[Pod]) -> list[Pod]:
    for p in pods:
        p.metadata.deletion_timestamp.seconds = 1_700_000_000
    return pods


def zoned(name: str, zone: str | None, **kwargs: Any) -> Node:
    labels = {"node": name, "kubernetes.io/hostname": name}
    if zone is not None:
        labels["zone"] = zone
    return node(name, labels=labels, **kwargs)


FOUR = [
    zoned("node-a", "zone1"),
    zoned("node-b", "zone1"),
    zoned("node-x", "zone2"),
    zoned("node-y", "zone2"),
]


@dataclass
class FilterCase:
    name: str
    pod: Pod
    nodes: list[Node]
    existing: list[Pod] = field(default_factory=list)
    want: dict[str, Status] = field(default_factory=dict)  # absent: SUCCESS


FILTER_CASES = [
    FilterCase("no existing pods", spod(FOO, constraints=[constraint()]), FOUR),
    FilterCase(
        "no existing pods, incoming pod doesn't match itself",
        spod({"bar": ""}, constraints=[constraint()]),
        FOUR,
    ),
    FilterCase(
        "existing pods in a different namespace do not count",
        spod(FOO, constraints=[constraint()]),
        FOUR,
        on("node-a", namespace="ns1") + on("node-b", namespace="ns1") + on("node-x"),
        # zone1 has 0 of ours, zone2 1: zone2 would be 2 - 0 > 1.
        {"node-x": NOT_MATCH, "node-y": NOT_MATCH},
    ),
    FilterCase(
        "pods spread across zones as 3/3, all nodes fit",
        spod(FOO, constraints=[constraint()]),
        FOUR,
        on("node-a") + on("node-b", 2) + on("node-x") + on("node-y", 2),
    ),
    FilterCase(
        "pods spread across zones as 1/2 due to absence of label 'zone' on node-b",
        spod(FOO, constraints=[constraint()]),
        [
            zoned("node-a", "zone1"),
            zoned("node-b", None),
            zoned("node-x", "zone2"),
            zoned("node-y", "zone2"),
        ],
        on("node-a") + on("node-b") + on("node-x") + on("node-y"),
        {"node-b": MISSING, "node-x": NOT_MATCH, "node-y": NOT_MATCH},
    ),
    FilterCase(
        "pod cannot be scheduled as all nodes don't have label 'rack'",
        spod(FOO, constraints=[constraint("rack")]),
        [zoned("node-a", "zone1"), zoned("node-x", "zone2")],
        want={"node-a": MISSING, "node-x": MISSING},
    ),
    FilterCase(
        "pods spread across nodes as 2/1/0/3, only node-x fits",
        spod(FOO, constraints=[constraint("node")]),
        FOUR,
        on("node-a", 2) + on("node-b") + on("node-y", 3),
        {"node-a": NOT_MATCH, "node-b": NOT_MATCH, "node-y": NOT_MATCH},
    ),
    FilterCase(
        "pods spread across nodes as 2/1/0/3, maxSkew is 2, node-b and node-x fit",
        spod(FOO, constraints=[constraint("node", max_skew=2)]),
        FOUR,
        on("node-a", 2) + on("node-b") + on("node-y", 3),
        {"node-a": NOT_MATCH, "node-y": NOT_MATCH},
    ),
    FilterCase(
        "terminating pods do not count",
        spod(FOO, constraints=[constraint("node")]),
        [zoned("node-a", "zone1"), zoned("node-b", "zone1")],
        on("node-a", 2) + terminating(on("node-b", 2)),
        {"node-a": NOT_MATCH},
    ),
    FilterCase(
        "fewer domains than minDomains: the global minimum is 0",
        spod(FOO, constraints=[constraint(minDomains=3)]),
        FOUR,
        on("node-a", 2) + on("node-x"),
        dict.fromkeys(("node-a", "node-b", "node-x", "node-y"), NOT_MATCH),
    ),
    FilterCase(
        "as many domains as minDomains: the real minimum",
        spod(FOO, constraints=[constraint(minDomains=2)]),
        FOUR,
        on("node-a", 2) + on("node-x"),
        {"node-a": NOT_MATCH, "node-b": NOT_MATCH},
    ),
    FilterCase(
        "nodeAffinityPolicy Honor (the default) leaves out nodes the pod's selector rejects",
        spod(FOO, constraints=[constraint()], nodeSelector={"zone": "zone1"}),
        FOUR,
        on("node-a"),
    ),
    FilterCase(
        "nodeAffinityPolicy Ignore counts them",
        spod(
            FOO,
            constraints=[constraint(nodeAffinityPolicy="Ignore")],
            nodeSelector={"zone": "zone1"},
        ),
        FOUR,
        on("node-a"),
        {"node-a": NOT_MATCH, "node-b": NOT_MATCH},
    ),
    FilterCase(
        "nodeTaintsPolicy Ignore (the default) counts tainted nodes",
        spod(FOO, constraints=[constraint()]),
        [
            zoned("node-a", "zone1"),
            zoned("node-x", "zone2", taints=[taint("k", "v", "NoSchedule")]),
        ],
        on("node-a"),
        {"node-a": NOT_MATCH},
    ),
    FilterCase(
        "nodeTaintsPolicy Honor leaves out nodes with an untolerated taint",
        spod(FOO, constraints=[constraint(nodeTaintsPolicy="Honor")]),
        [
            zoned("node-a", "zone1"),
            zoned("node-x", "zone2", taints=[taint("k", "v", "NoSchedule")]),
        ],
        on("node-a"),
    ),
    FilterCase(
        "matchLabelKeys counts only pods with the incoming pod's value",
        spod(
            {"foo": "", "rev": "2"},
            constraints=[constraint("node", matchLabelKeys=["rev"])],
        ),
        [zoned("node-a", "zone1"), zoned("node-b", "zone1")],
        [spod({"foo": "", "rev": "1"}, node_name="node-a") for _ in range(3)],
    ),
    FilterCase(
        "ScheduleAnyway constraints do not filter",
        spod(FOO, constraints=[constraint("node", when="ScheduleAnyway")]),
        [zoned("node-a", "zone1"), zoned("node-b", "zone1")],
        on("node-a", 3),
    ),
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: c.name)
def test_filter(case: FilterCase) -> None:
    infos = [
        NodeInfo(n, [p for p in case.existing if p.spec.node_name == n.metadata.name])
        for n in case.nodes
    ]
    plugin, state = PodTopologySpread(), CycleState()
    _, status = plugin.pre_filter(state, case.pod, infos)
    got: dict[str, Status] = {}
    if not status.is_skip():
        assert status.is_success(), case.name
        for info in infos:
            verdict = plugin.filter(state, case.pod, info)
            if verdict != SUCCESS:
                got[info.name] = verdict
    assert got == case.want, case.name


@dataclass
class ScoreCase:
    name: str
    pod: Pod
    nodes: list[Node]
    existing: list[Pod]
    want: list[int]
    default_selector: Selector | None = None


def hosts(*names: str) -> list[Node]:
    return [zoned(n, None) for n in names]


SCORE_CASES = [
    ScoreCase(
        "one constraint on node, no existing pods",
        spod(FOO, constraints=[constraint("kubernetes.io/hostname", when="ScheduleAnyway")]),
        hosts("node-a", "node-b"),
        [],
        [100, 100],
    ),
    ScoreCase(
        "one constraint on node, all 4 nodes are candidates",
        spod(FOO, constraints=[constraint("kubernetes.io/hostname", when="ScheduleAnyway")]),
        hosts("node-a", "node-b", "node-c", "node-d"),
        on("node-a", 2) + on("node-b") + on("node-d", 3),
        [20, 60, 100, 0],
    ),
    ScoreCase(
        "one constraint on zone: the emptier zone scores higher",
        spod(FOO, constraints=[constraint("zone", when="ScheduleAnyway")]),
        FOUR,
        on("node-a", 2) + on("node-b") + on("node-x"),
        # zone1: 3 pods, zone2: 1; weight log(2 + 2): 4.16 -> 4 and 1.39 -> 1;
        # 100 * (max + min - score) / max.
        [25, 25, 100, 100],
    ),
    ScoreCase(
        "nodes without the topology key are ignored and score 0",
        spod(FOO, constraints=[constraint("zone", when="ScheduleAnyway")]),
        [zoned("node-a", "zone1"), zoned("node-b", None)],
        [],
        [100, 0],
    ),
    ScoreCase(
        "no constraints and no workload: nothing to score",
        spod(FOO),
        hosts("node-a", "node-b"),
        on("node-a", 3),
        [0, 0],
    ),
    ScoreCase(
        "no constraints, but a workload: the system defaults spread by hostname",
        spod(FOO),
        hosts("node-a", "node-b", "node-c"),
        on("node-a", 3) + on("node-b"),
        # weight log(3 + 2) = 1.61, + maxSkew 3 - 1: a 6.8 -> 7, b 3.6 -> 4, c 2
        # (zone: every node lacks it and, defaults being lenient, is just skipped).
        [28, 71, 100],
        selector_from_set({"foo": ""}),
    ),
]


@pytest.mark.parametrize("case", SCORE_CASES, ids=lambda c: c.name)
def test_score(case: ScoreCase) -> None:
    infos = [
        NodeInfo(n, [p for p in case.existing if p.spec.node_name == n.metadata.name])
        for n in case.nodes
    ]
    plugin = PodTopologySpread(lambda _pod: case.default_selector)
    state = CycleState()
    state.all_nodes = infos
    status = plugin.pre_score(state, case.pod, infos)
    if status.is_skip():
        assert case.want == [0] * len(infos), case.name
        return
    assert status.is_success(), case.name
    scores = []
    for info in infos:
        value, status = plugin.score(state, case.pod, info)
        assert status.is_success(), case.name
        scores.append(NodeScore(info.name, value))
    assert plugin.normalize_score(state, case.pod, scores).is_success()
    assert [s.score for s in scores] == case.want, case.name


def test_a_replica_sets_pods_spread_over_nodes_by_default() -> None:
    web = selector_from_set({"app": "web"})
    framework = Framework(default_profile(default_spread_selector=lambda _pod: web))
    infos = [
        NodeInfo(
            node(f"n{i}", labels={"kubernetes.io/hostname": f"n{i}"}, allocatable={"pods": "20"})
        )
        for i in range(3)
    ]
    for i in range(9):
        replica = spod({"app": "web"})
        result = framework.schedule_pod(replica, infos, random.Random(i))
        assert result.node_info is not None
        replica.spec.node_name = result.node_info.name
        result.node_info.add_pod(replica)
    assert sorted(n.pod_count for n in infos) == [3, 3, 3]

"""DefaultPreemption over the default profile, with cases after Kubernetes'
pkg/scheduler/framework/plugins/defaultpreemption/default_preemption_test.go
(SelectCandidate, PodEligibleToPreemptOthers, selectVictimsOnNode)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.scheduler.framework import CycleState, Framework, NodeInfo
from kpy.scheduler.profiles import default_profile
from kpy.scheduler.scheduler import Scheduler
from tests.unit.scheduler.sched_builders import node, taint

if TYPE_CHECKING:
    from kpy.api.core.v1 import Node


def ppod(
    name: str,
    cpu: str,
    priority: int,
    *,
    node_name: str = "",
    policy: str = "",
    start: int = 0,
    terminating: bool = False,
    nominated: str = "",
    **spec: Any,
) -> Pod:
    made = from_dict(
        Pod,
        {
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {
                "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}],
                "priority": priority,
                **spec,
            },
        },
    )
    if node_name:
        made.spec.node_name = node_name
    if policy:
        made.spec.preemption_policy = policy
    made.status.start_time.seconds = 1_700_000_000 + start
    if terminating:
        made.metadata.deletion_timestamp.seconds = 1_700_000_100
    if nominated:
        made.status.nominated_node_name = nominated
    return made


def cpu_node(name: str, cpu: str = "2", **kwargs: Any) -> Node:
    return node(name, allocatable={"cpu": cpu, "memory": "8Gi", "pods": "10"}, **kwargs)


ANTI_LOW = {
    "affinity": {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"tier": "batch"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
}


@dataclass
class Case:
    name: str
    pod: Pod
    nodes: list[Node]
    existing: list[Pod] = field(default_factory=list)
    nominated: str = ""
    victims: list[str] = field(default_factory=list)
    message: str = ""


CASES = [
    Case(
        "a pod that fits nowhere preempts the lower-priority pod on a full node",
        ppod("high", "2", 100),
        [cpu_node("node1")],
        [ppod("low", "2", 1, node_name="node1")],
        nominated="node1",
        victims=["low"],
    ),
    Case(
        "preemptionPolicy Never does not preempt",
        ppod("high", "2", 100, policy="Never"),
        [cpu_node("node1")],
        [ppod("low", "2", 1, node_name="node1")],
        message="preemption: not eligible due to preemptionPolicy=Never.",
    ),
    Case(
        "pods of equal priority are never victims, and there is nothing to say",
        ppod("p", "2", 1),
        [cpu_node("node1")],
        [ppod("q", "2", 1, node_name="node1")],
    ),
    Case(
        "the node whose highest victim has the lowest priority",
        ppod("high", "2", 100),
        [cpu_node("node1"), cpu_node("node2")],
        [ppod("mid", "2", 5, node_name="node1"), ppod("low", "2", 1, node_name="node2")],
        nominated="node2",
        victims=["low"],
    ),
    Case(
        "at equal priorities, the node with fewer victims (lower sum)",
        ppod("high", "2", 100),
        [cpu_node("node1"), cpu_node("node2")],
        [
            ppod("a", "1", 1, node_name="node1"),
            ppod("b", "1", 1, node_name="node1"),
            ppod("c", "2", 1, node_name="node2"),
        ],
        nominated="node2",
        victims=["c"],
    ),
    Case(
        "at equal everything, the node whose victims started last",
        ppod("high", "2", 100),
        [cpu_node("node1"), cpu_node("node2")],
        [
            ppod("old", "2", 1, node_name="node1", start=0),
            ppod("new", "2", 1, node_name="node2", start=50),
        ],
        nominated="node2",
        victims=["new"],
    ),
    Case(
        "only as many victims as needed, the least important first",
        ppod("high", "1", 100),
        [cpu_node("node1", cpu="3")],
        [
            ppod("p3", "1", 3, node_name="node1"),
            ppod("p1", "1", 1, node_name="node1"),
            ppod("p2", "1", 2, node_name="node1"),
        ],
        nominated="node1",
        victims=["p1"],
    ),
    Case(
        "a tainted node cannot be helped; freeing too little is no help either",
        ppod("high", "1", 100),
        [cpu_node("tainted", taints=[taint("k", "v", "NoSchedule")]), cpu_node("node2")],
        [ppod("big", "1500m", 200, node_name="node2"), ppod("low", "500m", 1, node_name="node2")],
        message="preemption: 0/2 nodes are available: 1 Insufficient cpu, "
        "1 Preemption is not helpful for scheduling.",
    ),
    Case(
        "a terminating victim on the nominated node: wait, do not preempt again",
        ppod("high", "2", 100, nominated="node1"),
        [cpu_node("node1"), cpu_node("node2")],
        [
            ppod("going", "2", 1, node_name="node1", terminating=True),
            ppod("low", "2", 1, node_name="node2"),
        ],
        message="preemption: not eligible due to a terminating pod on the nominated node.",
    ),
    Case(
        "anti-affinity to a lower-priority pod is resolved by evicting it",
        ppod("high", "100m", 100, **ANTI_LOW),
        [cpu_node("node1")],
        [
            from_dict(
                Pod,
                {
                    "metadata": {
                        "name": "batch",
                        "namespace": "default",
                        "uid": "uid-batch",
                        "labels": {"tier": "batch"},
                    },
                    "spec": {"nodeName": "node1", "priority": 1, "containers": [{"name": "c"}]},
                },
            )
        ],
        nominated="node1",
        victims=["batch"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_preemption(case: Case) -> None:
    framework = Framework(default_profile())
    infos = [
        NodeInfo(
            n,
            [p for p in case.existing if p.spec.node_name == n.metadata.name],
        )
        for n in case.nodes
    ]
    for n in infos:
        n.node.metadata.labels["kubernetes.io/hostname"] = n.name
        n.labels["kubernetes.io/hostname"] = n.name
    state = CycleState()
    result = framework.schedule_pod(case.pod, infos, random.Random(0), state=state)
    assert result.node_info is None, f"{case.name}: the pod must not fit as things are"
    post, status = framework.run_post_filter(state, case.pod, result.diagnosis)
    got = (
        post.nominated_node_name if post is not None else "",
        [v.metadata.name for v in post.victims] if post is not None else [],
        status.message(),
    )
    assert got == (case.nominated, case.victims, case.message), case.name
    assert status.is_success() == bool(case.nominated), case.name


@pytest.mark.parametrize(
    ("priority", "fits"),
    [(1, False), (100, False), (200, True)],
    ids=["lower", "equal", "higher"],
)
def test_the_room_preemption_made_is_kept_for_the_preemptor(priority: int, fits: bool) -> None:
    scheduler = Scheduler(object())  # type: ignore[arg-type]
    scheduler.cache.add_node(cpu_node("node1"))
    scheduler._nominated["default/high"] = ("node1", ppod("high", "2", 100))
    decision = scheduler.decide(ppod("other", "2", priority))
    assert (decision.node == "node1") is fits, decision.message
    if not fits:
        assert decision.message == "0/1 nodes are available: 1 Insufficient cpu."

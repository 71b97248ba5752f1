"""NodeResourcesBalancedAllocation, with cases ported from Kubernetes'
pkg/scheduler/framework/plugins/noderesources/balanced_allocation_test.go."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from kpy.scheduler.framework import Code, CycleState, NodeInfo
from kpy.scheduler.plugins.balanced_allocation import BalancedAllocation, balanced_resource_score
from tests.unit.scheduler.sched_builders import node, pod, requests_pod

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod

GPU = "nvidia.com/gpu"
CPU_AND_MEMORY_AND_GPU = requests_pod(
    {"cpu": "1000m", "memory": "2000"}, {"cpu": "2000m", "memory": "3000", GPU: "3"}
)
CPU_ONLY = requests_pod({"cpu": "1000m", "memory": "0"}, {"cpu": "2000m", "memory": "0"})
CPU_AND_MEMORY = requests_pod(
    {"cpu": "1000m", "memory": "2000"}, {"cpu": "2000m", "memory": "3000"}
)
WITH_GPU = ("cpu", "memory", GPU)


def make_node(name: str, milli_cpu: int, memory: int, gpus: int | None = None) -> NodeInfo:
    resources = {"cpu": f"{milli_cpu}m", "memory": str(memory)}
    if gpus is not None:
        resources[GPU] = str(gpus)
    return NodeInfo(node(name, capacity=resources, allocatable=resources))


@dataclass
class Case:
    name: str
    pod: Pod
    nodes: list[NodeInfo]
    expected: list[int]
    # Pods already on node1 and node2.
    pods: tuple[list[Pod], list[Pod]] = field(default_factory=lambda: ([], []))
    resources: tuple[str, ...] = ("cpu", "memory")
    run_pre_score: bool = True


CASES = [
    Case(
        # CPU 3000/4000 = 75%, memory 5000/10000 = 50%: std 0.125 -> 87; node2: both 50% -> 100
        "nothing scheduled, resources requested, differently sized nodes",
        CPU_AND_MEMORY,
        [make_node("node1", 4000, 10000), make_node("node2", 6000, 10000)],
        [87, 100],
    ),
    Case(
        # node1: 6000/10000, 5000/20000 -> 82; node2: 6000/10000, 10000/20000 -> 95
        "resources requested, pods scheduled with resources",
        CPU_AND_MEMORY,
        [make_node("node1", 10000, 20000), make_node("node2", 10000, 20000)],
        [82, 95],
        pods=([CPU_ONLY], [CPU_AND_MEMORY]),
    ),
    Case(
        "resources requested, pods scheduled with resources, differently sized nodes",
        CPU_AND_MEMORY,
        [make_node("node1", 10000, 20000), make_node("node2", 10000, 50000)],
        [82, 80],
        pods=([CPU_ONLY], [CPU_AND_MEMORY]),
    ),
    Case(
        # node1: 6000/6000, 0/10000 -> 50; node2: 6000/6000, 5000/10000 -> 75
        "requested resources at node capacity",
        CPU_ONLY,
        [make_node("node1", 6000, 10000), make_node("node2", 6000, 10000)],
        [50, 75],
        pods=([CPU_ONLY], [CPU_AND_MEMORY]),
    ),
    Case(
        # three fractions: population standard deviation
        "include scalar resource on a node for balanced resource allocation",
        requests_pod({"memory": "0", GPU: "1"}),
        [make_node("node1", 3500, 40000, 8), make_node("node2", 3500, 40000, 8)],
        [70, 65],
        pods=([CPU_AND_MEMORY_AND_GPU], [CPU_AND_MEMORY]),
        resources=WITH_GPU,
    ),
    Case(
        "node without the scalar resource should skip the scalar resource",
        CPU_AND_MEMORY,
        [make_node("node1", 3500, 40000, 8), make_node("node2", 3500, 40000)],
        [63, 63],
        resources=WITH_GPU,
    ),
    Case(
        "resources requested, pods scheduled with resources if PreScore not called",
        CPU_AND_MEMORY,
        [make_node("node1", 10000, 20000), make_node("node2", 10000, 20000)],
        [82, 95],
        pods=([CPU_ONLY], [CPU_AND_MEMORY]),
        run_pre_score=False,
    ),
    Case(
        "fractions are capped at 1",
        requests_pod({"cpu": "8000m", "memory": "1000"}),
        [make_node("node1", 4000, 10000), make_node("node2", 4000, 1000)],
        # node1: min(2,1)=1 vs 0.1 -> 55; node2: 1 vs 1 -> 100
        [55, 100],
    ),
    Case(
        "a node offering one resource only has no spread",
        CPU_AND_MEMORY,
        [make_node("node1", 4000, 0)],
        [100],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_score(case: Case) -> None:
    for info, pods in zip(case.nodes, case.pods, strict=False):
        for p in pods:
            info.add_pod(p)
    plugin = BalancedAllocation(resources=case.resources)
    state = CycleState()
    if case.run_pre_score:
        assert plugin.pre_score(state, case.pod, case.nodes).is_success()
    got = []
    for info in case.nodes:
        value, status = plugin.score(state, case.pod, info)
        assert status.is_success()
        got.append(value)
    assert got == case.expected, case.name
    batch, _ = plugin.score_nodes(state, case.pod, case.nodes)
    assert batch == got, "score_nodes agrees with score"


def test_best_effort_pod_is_skipped_in_pre_score() -> None:
    nodes = [make_node("node1", 4000, 10000), make_node("node2", 4000, 10000)]
    assert BalancedAllocation().pre_score(CycleState(), pod(), nodes).code is Code.SKIP


@pytest.mark.parametrize(
    ("requested", "allocatable", "want"),
    [
        pytest.param([3000, 5000], [4000, 10000], 87, id="two resources"),
        pytest.param([1, 1], [0, 0], 100, id="nothing offered"),
        pytest.param([3000], [4000], 100, id="one resource"),
        pytest.param([3000, 5000, 4], [3500, 40000, 8], 70, id="three resources"),
    ],
)
def test_balanced_resource_score(requested: list[int], allocatable: list[int], want: int) -> None:
    assert balanced_resource_score(requested, allocatable) == want


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.resources == ("cpu", "memory")], ids=lambda c: c.name
)
def test_the_cpu_memory_shortcut_agrees_with_the_general_formula(case: Case) -> None:
    nodes = [info.clone() for info in case.nodes]
    for info, pods in zip(nodes, case.pods, strict=False):
        for p in pods:
            info.add_pod(p)
    fast, _ = BalancedAllocation().score_nodes(CycleState(), case.pod, nodes)
    general, _ = BalancedAllocation(resources=("memory", "cpu")).score_nodes(
        CycleState(), case.pod, nodes
    )
    assert fast == general

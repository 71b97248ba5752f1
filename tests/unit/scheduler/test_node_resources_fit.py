"""NodeResourcesFit (Filter and LeastAllocated Score), with cases ported from
Kubernetes' pkg/scheduler/framework/plugins/noderesources/fit_test.go and
least_allocated_test.go."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from kpy.scheduler.framework import SUCCESS, Code, CycleState, NodeInfo, Status, new_status
from kpy.scheduler.plugins.node_resources_fit import NodeResourcesFit, fits_request
from kpy.scheduler.resources import pod_request_resource
from tests.unit.scheduler.sched_builders import container, node, pod, requests_pod

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod

EXTENDED_A = "example.com/aaa"
EXTENDED_B = "example.com/bbb"
KUBERNETES_IO_A = "kubernetes.io/something"
KUBERNETES_IO_B = "subdomain.kubernetes.io/something"
HUGE_PAGE_A = "hugepages-2Mi"


def res(milli_cpu: int = 0, memory: int = 0, storage: int = 0, **scalar: int) -> dict[str, str]:
    """A request map as Kubernetes' framework.Resource.ResourceList() writes it
    (keyword names use "_" for "/" and "." so they can be Python names)."""
    out = {"cpu": f"{milli_cpu}m", "memory": str(memory), "ephemeral-storage": str(storage)}
    names = {"aaa": EXTENDED_A, "bbb": EXTENDED_B, "kio_a": KUBERNETES_IO_A}
    names |= {"kio_b": KUBERNETES_IO_B, "huge_a": HUGE_PAGE_A}
    out.update({names[k]: str(v) for k, v in scalar.items()})
    return out


def init_pod(
    app: dict[str, str], *inits: dict[str, str], overhead: dict[str, str] | None = None
) -> Pod:
    return pod(container(app), init=[container(r) for r in inits], overhead=overhead)


# makeAllocatableResources(10, 20, 32, 5, 20, 5)
ALLOCATABLE = {
    "cpu": "10m",
    "memory": "20",
    "pods": "32",
    EXTENDED_A: "5",
    "ephemeral-storage": "20",
    HUGE_PAGE_A: "5",
}


def unschedulable(*reasons: str) -> Status:
    return new_status(Code.UNSCHEDULABLE, *reasons)


def unresolvable(*reasons: str) -> Status:
    return new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)


@dataclass
class FitCase:
    name: str
    pod: Pod
    existing: list[Pod]
    want: Status = SUCCESS
    # (resource, requested, used, capacity) of each insufficient resource.
    want_insufficient: list[tuple[str, int, int, int]] = field(default_factory=list)
    ignored: tuple[str, ...] = ()
    ignored_groups: tuple[str, ...] = ()
    allocatable: dict[str, str] = field(default_factory=lambda: ALLOCATABLE)


FIT_CASES = [
    FitCase("no resources requested always fits", pod(), [requests_pod(res(10, 20))]),
    FitCase(
        "too many resources fails",
        requests_pod(res(1, 1)),
        [requests_pod(res(10, 20))],
        unschedulable("Insufficient cpu", "Insufficient memory"),
        [("cpu", 1, 10, 10), ("memory", 1, 20, 20)],
    ),
    FitCase(
        "too many resources fails due to init container cpu",
        init_pod(res(1, 1), res(3, 1)),
        [requests_pod(res(8, 19))],
        unschedulable("Insufficient cpu"),
        [("cpu", 3, 8, 10)],
    ),
    FitCase(
        "too many resources fails due to highest init container cpu",
        init_pod(res(1, 1), res(3, 1), res(2, 1)),
        [requests_pod(res(8, 19))],
        unschedulable("Insufficient cpu"),
        [("cpu", 3, 8, 10)],
    ),
    FitCase(
        "too many resources fails due to init container memory",
        init_pod(res(1, 1), res(1, 3)),
        [requests_pod(res(9, 19))],
        unschedulable("Insufficient memory"),
        [("memory", 3, 19, 20)],
    ),
    FitCase(
        "too many resources fails due to highest init container memory",
        init_pod(res(1, 1), res(1, 3), res(1, 2)),
        [requests_pod(res(9, 19))],
        unschedulable("Insufficient memory"),
        [("memory", 3, 19, 20)],
    ),
    FitCase(
        "init container fits because it's the max, not sum, of containers and init containers",
        init_pod(res(1, 1), res(1, 1)),
        [requests_pod(res(9, 19))],
    ),
    FitCase(
        "multiple init containers fit because it's the max, not sum",
        init_pod(res(1, 1), res(1, 1), res(1, 1)),
        [requests_pod(res(9, 19))],
    ),
    FitCase("both resources fit", requests_pod(res(1, 1)), [requests_pod(res(5, 5))]),
    FitCase(
        "one resource memory fits",
        requests_pod(res(2, 1)),
        [requests_pod(res(9, 5))],
        unschedulable("Insufficient cpu"),
        [("cpu", 2, 9, 10)],
    ),
    FitCase(
        "one resource cpu fits",
        requests_pod(res(1, 2)),
        [requests_pod(res(5, 19))],
        unschedulable("Insufficient memory"),
        [("memory", 2, 19, 20)],
    ),
    FitCase("equal edge case", requests_pod(res(5, 1)), [requests_pod(res(5, 19))]),
    FitCase(
        "equal edge case for init container",
        init_pod(res(4, 1), res(5, 1)),
        [requests_pod(res(5, 19))],
    ),
    FitCase("extended resource fits", requests_pod(res(aaa=1)), [requests_pod(res())]),
    FitCase(
        "extended resource fits for init container",
        init_pod(res(), res(aaa=1)),
        [requests_pod(res())],
    ),
    FitCase(
        "extended resource capacity enforced",
        requests_pod(res(1, 1, aaa=10)),
        [requests_pod(res(aaa=0))],
        unresolvable(f"Insufficient {EXTENDED_A}"),
        [(EXTENDED_A, 10, 0, 5)],
    ),
    FitCase(
        "extended resource capacity enforced for init container",
        init_pod(res(), res(1, 1, aaa=10)),
        [requests_pod(res(aaa=0))],
        unresolvable(f"Insufficient {EXTENDED_A}"),
        [(EXTENDED_A, 10, 0, 5)],
    ),
    FitCase(
        "extended resource allocatable enforced",
        requests_pod(res(1, 1, aaa=1)),
        [requests_pod(res(aaa=5))],
        unschedulable(f"Insufficient {EXTENDED_A}"),
        [(EXTENDED_A, 1, 5, 5)],
    ),
    FitCase(
        "extended resource allocatable enforced for multiple containers",
        requests_pod(res(1, 1, aaa=3), res(1, 1, aaa=3)),
        [requests_pod(res(aaa=2))],
        unresolvable(f"Insufficient {EXTENDED_A}"),
        [(EXTENDED_A, 6, 2, 5)],
    ),
    FitCase(
        "extended resource allocatable admits multiple init containers",
        init_pod(res(), res(1, 1, aaa=3), res(1, 1, aaa=3)),
        [requests_pod(res(aaa=2))],
    ),
    FitCase(
        "extended resource allocatable enforced for multiple init containers",
        init_pod(res(), res(1, 1, aaa=6), res(1, 1, aaa=3)),
        [requests_pod(res(aaa=2))],
        unresolvable(f"Insufficient {EXTENDED_A}"),
        [(EXTENDED_A, 6, 2, 5)],
    ),
    FitCase(
        "extended resource allocatable enforced for unknown resource",
        requests_pod(res(1, 1, bbb=1)),
        [requests_pod(res())],
        unresolvable(f"Insufficient {EXTENDED_B}"),
        [(EXTENDED_B, 1, 0, 0)],
    ),
    FitCase(
        "kubernetes.io resource capacity enforced",
        requests_pod(res(1, 1, kio_a=10)),
        [requests_pod(res())],
        unresolvable(f"Insufficient {KUBERNETES_IO_A}"),
        [(KUBERNETES_IO_A, 10, 0, 0)],
    ),
    FitCase(
        "kubernetes.io resource capacity enforced for init container",
        init_pod(res(), res(1, 1, kio_b=10)),
        [requests_pod(res())],
        unresolvable(f"Insufficient {KUBERNETES_IO_B}"),
        [(KUBERNETES_IO_B, 10, 0, 0)],
    ),
    FitCase(
        "hugepages resource capacity enforced",
        requests_pod(res(1, 1, huge_a=10)),
        [requests_pod(res(huge_a=0))],
        unresolvable(f"Insufficient {HUGE_PAGE_A}"),
        [(HUGE_PAGE_A, 10, 0, 5)],
    ),
    FitCase(
        "hugepages resource allocatable enforced for multiple containers",
        requests_pod(res(1, 1, huge_a=3), res(1, 1, huge_a=3)),
        [requests_pod(res(huge_a=2))],
        unresolvable(f"Insufficient {HUGE_PAGE_A}"),
        [(HUGE_PAGE_A, 6, 2, 5)],
    ),
    FitCase(
        "skip checking ignored extended resource",
        requests_pod(res(1, 1, bbb=1)),
        [requests_pod(res())],
        ignored=(EXTENDED_B,),
    ),
    FitCase(
        "skip checking an ignored extended resource group",
        requests_pod(res(1, 1, bbb=1)),
        [requests_pod(res())],
        ignored_groups=("example.com",),
    ),
    FitCase(
        "resources + pod overhead fits",
        init_pod(res(1, 1), overhead={"cpu": "3m", "memory": "13"}),
        [requests_pod(res(5, 5))],
    ),
    FitCase(
        "requests + overhead does not fit for memory",
        init_pod(res(1, 1), overhead={"cpu": "1m", "memory": "15"}),
        [requests_pod(res(5, 5))],
        unschedulable("Insufficient memory"),
        [("memory", 16, 5, 20)],
    ),
    FitCase(
        "sidecar requests add to the app containers'",
        pod(container(res(3, 1)), init=[container(res(3, 1), restart_policy="Always")]),
        [requests_pod(res(5, 5))],
        unschedulable("Insufficient cpu"),
        [("cpu", 6, 5, 10)],
    ),
    # TestStorageRequests
    FitCase(
        "due to container scratch disk",
        requests_pod(res(1, 1)),
        [requests_pod(res(10, 10))],
        unschedulable("Insufficient cpu"),
        [("cpu", 1, 10, 10)],
    ),
    FitCase("pod fit", requests_pod(res(1, 1)), [requests_pod(res(2, 10))]),
    FitCase(
        "storage ephemeral local storage request exceeds allocatable",
        requests_pod(res(storage=25)),
        [requests_pod(res(2, 2))],
        unresolvable("Insufficient ephemeral-storage"),
        [("ephemeral-storage", 25, 0, 20)],
    ),
    FitCase("storage pod fits", requests_pod(res(storage=10)), [requests_pod(res(2, 2))]),
    # TestNotEnoughRequests: one pod slot, already taken.
    FitCase(
        "even without specified resources predicate fails when there's no space for additional pod",
        pod(),
        [requests_pod(res(10, 20))],
        unschedulable("Too many pods"),
        [("pods", 1, 1, 1)],
        allocatable={"cpu": "10m", "memory": "20", "pods": "1"},
    ),
    FitCase(
        "even if both resources fit predicate fails when there's no space for additional pod",
        requests_pod(res(1, 1)),
        [requests_pod(res(5, 5))],
        unschedulable("Too many pods"),
        [("pods", 1, 1, 1)],
        allocatable={"cpu": "10m", "memory": "20", "pods": "1"},
    ),
    FitCase(
        "even for equal edge case predicate fails when there's no space for additional pod "
        "due to init container",
        init_pod(res(5, 1), res(5, 1)),
        [requests_pod(res(5, 19))],
        unschedulable("Too many pods"),
        [("pods", 1, 1, 1)],
        allocatable={"cpu": "10m", "memory": "20", "pods": "1"},
    ),
    FitCase(
        "a node without a pods allocatable takes no pods",
        pod(),
        [],
        unschedulable("Too many pods"),
        [("pods", 1, 0, 0)],
        allocatable={"cpu": "10m", "memory": "20"},
    ),
]


@pytest.mark.parametrize("case", FIT_CASES, ids=lambda c: c.name)
def test_filter(case: FitCase) -> None:
    plugin = NodeResourcesFit(
        ignored_resources=case.ignored, ignored_resource_groups=case.ignored_groups
    )
    node_info = NodeInfo(node("n", allocatable=case.allocatable), case.existing)
    state = CycleState()
    _, status = plugin.pre_filter(state, case.pod, [node_info])
    assert status.is_success()
    assert plugin.filter(state, case.pod, node_info) == case.want, case.name
    insufficient = fits_request(
        pod_request_resource(case.pod),
        node_info,
        frozenset(case.ignored),
        frozenset(case.ignored_groups),
    )
    got = [(r.resource_name, r.requested, r.used, r.capacity) for r in insufficient]
    assert got == case.want_insufficient, case.name


def test_filter_without_pre_filter_is_an_error() -> None:
    status = NodeResourcesFit().filter(CycleState(), pod(), NodeInfo(node("n")))
    assert status == new_status(
        Code.ERROR, 'reading "PreFilterNodeResourcesFit" from cycleState: not found'
    )


def test_allocatable_falls_back_to_capacity() -> None:
    node_info = NodeInfo(node("n", capacity={"cpu": "1", "pods": "2"}))
    plugin = NodeResourcesFit()
    state = CycleState()
    wants = requests_pod({"cpu": "2"})
    plugin.pre_filter(state, wants, [node_info])
    assert plugin.filter(state, wants, node_info) == unresolvable("Insufficient cpu")


DEFAULT = (("cpu", 1), ("memory", 1))
EXTENDED_RES = "vendor.com/gpu"
EXTENDED_SET = (("cpu", 1), ("memory", 1), (EXTENDED_RES, 1))


def capacity(cpu: str, memory: str, gpu: str | None = None) -> dict[str, str]:
    """st.MakeNode().Capacity(...): capacity and allocatable, with 32 pods."""
    out = {"cpu": cpu, "memory": memory, "pods": "32"}
    if gpu is not None:
        out[EXTENDED_RES] = gpu
    return out


@dataclass
class ScoreCase:
    name: str
    pod: Pod
    nodes: list[dict[str, str]]
    existing: list[list[Pod]]
    expected: list[int]
    resources: tuple[tuple[str, int], ...] = DEFAULT
    want_code: Code = Code.SUCCESS


BIG_POD = requests_pod({"cpu": "1000", "memory": "2000"}, {"cpu": "2000", "memory": "3000"})


def on_node(*requests: dict[str, str]) -> list[Pod]:
    return [requests_pod(r) for r in requests]


SCORE_CASES = [
    ScoreCase(
        "nothing scheduled, nothing requested",
        pod(),
        [capacity("4000", "10000"), capacity("4000", "10000")],
        [[], []],
        [100, 100],
    ),
    ScoreCase(
        "nothing scheduled, resources requested, differently sized nodes",
        BIG_POD,
        [capacity("4000", "10000"), capacity("6000", "10000")],
        [[], []],
        [37, 50],
    ),
    ScoreCase(
        "resources not set, pods scheduled with error",
        BIG_POD,
        [capacity("4000", "10000"), capacity("6000", "10000")],
        [[], []],
        [0, 0],
        resources=(),
        want_code=Code.ERROR,
    ),
    ScoreCase(
        "no resources requested, pods scheduled",
        pod(),
        [capacity("4000", "10000"), capacity("4000", "10000")],
        [[pod(), pod()], [pod(), pod()]],
        [100, 100],
    ),
    ScoreCase(
        "no resources requested, pods scheduled with resources",
        pod(),
        [capacity("10000", "20000"), capacity("10000", "20000")],
        [
            on_node({"cpu": "3000", "memory": "0"}, {"cpu": "3000", "memory": "0"}),
            on_node({"cpu": "3000", "memory": "0"}, {"cpu": "3000", "memory": "5000"}),
        ],
        [70, 57],
    ),
    ScoreCase(
        "resources requested, pods scheduled with resources",
        BIG_POD,
        [capacity("10000", "20000"), capacity("10000", "20000")],
        [on_node({"cpu": "3000", "memory": "0"}), on_node({"cpu": "3000", "memory": "5000"})],
        [57, 45],
    ),
    ScoreCase(
        "resources requested, pods scheduled with resources, differently sized nodes",
        BIG_POD,
        [capacity("10000", "20000"), capacity("10000", "50000")],
        [on_node({"cpu": "3000", "memory": "0"}), on_node({"cpu": "3000", "memory": "5000"})],
        [57, 60],
    ),
    ScoreCase(
        "requested resources exceed node capacity",
        requests_pod({"cpu": "3000", "memory": "0"}),
        [capacity("4000", "10000"), capacity("4000", "10000")],
        [on_node({"cpu": "3000", "memory": "0"}), on_node({"cpu": "3000", "memory": "5000"})],
        [50, 25],
    ),
    ScoreCase(
        "zero node resources, pods scheduled with resources",
        pod(),
        [{}, {}],
        [on_node({"cpu": "3000", "memory": "0"}), on_node({"cpu": "3000", "memory": "5000"})],
        [0, 0],
    ),
    ScoreCase(
        "resources requested with different weight on CPU and memory",
        BIG_POD,
        [capacity("4000", "10000"), capacity("6000", "10000")],
        [[], []],
        [41, 50],
        resources=(("memory", 2), ("cpu", 1)),
    ),
    ScoreCase(
        "bypass extended resource if the pod does not request",
        BIG_POD,
        [capacity("6000", "10000"), capacity("6000", "10000", gpu="4")],
        [[], []],
        [50, 50],
        resources=EXTENDED_SET,
    ),
    ScoreCase(
        "honor extended resource if the pod requests",
        requests_pod({"cpu": "3000", "memory": "5000", EXTENDED_RES: "2"}),
        [capacity("6000", "10000", gpu="4"), capacity("6000", "10000", gpu="10")],
        [[], []],
        [50, 60],
        resources=EXTENDED_SET,
    ),
    ScoreCase(
        "if the node doesn't have a resource",
        requests_pod({"cpu": "3000", "memory": "4000"}),
        [capacity("6000", "10000"), capacity("6000", "10000", gpu="4")],
        [[], []],
        [55, 55],
        resources=((EXTENDED_RES, 2), ("cpu", 1), ("memory", 1)),
    ),
    ScoreCase(
        "pods without requests count kube-scheduler's non-zero defaults",
        pod(container()),
        [capacity("1", "1Gi"), capacity("2", "1Gi")],
        [[], []],
        # cpu (1000-100)*100/1000 = 90, memory (1024-200)*100/1024 = 80 -> 85
        # cpu (2000-100)*100/2000 = 95, memory 80 -> 87
        [85, 87],
    ),
]


@pytest.mark.parametrize("case", SCORE_CASES, ids=lambda c: c.name)
def test_least_allocated_score(case: ScoreCase) -> None:
    plugin = NodeResourcesFit(scoring_resources=case.resources)
    infos = [
        NodeInfo(node(f"node{i + 1}", capacity=c, allocatable=c), pods)
        for i, (c, pods) in enumerate(zip(case.nodes, case.existing, strict=True))
    ]
    state = CycleState()
    assert plugin.pre_score(state, case.pod, infos).is_success()
    got = []
    for info in infos:
        value, status = plugin.score(state, case.pod, info)
        assert status.code is case.want_code, case.name
        got.append(value)
    assert got == case.expected, case.name
    batch, status = plugin.score_nodes(state, case.pod, infos)
    assert status.code is case.want_code
    assert batch == got, "score_nodes agrees with score"


@pytest.mark.parametrize(
    "resources",
    [(("memory", -1), ("cpu", 1)), (("memory", 1), ("cpu", 0)), (("memory", 1), ("cpu", 101))],
    ids=["negative weight", "zero weight", "weight larger than MaxNodeScore"],
)
def test_invalid_weights_are_refused(resources: tuple[tuple[str, int], ...]) -> None:
    with pytest.raises(ValueError, match=r"scoringStrategy\.resources\[\d\]\.weight"):
        NodeResourcesFit(scoring_resources=resources)

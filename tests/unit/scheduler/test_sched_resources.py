"""kpy.scheduler.resources: effective pod requests (Kubernetes'
component-helpers resource.PodRequests and the scheduler's non-zero
requests), node allocatable, resource names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.scheduler.resources import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    Resource,
    compute_pod_resource,
    is_extended_resource_name,
    is_scalar_resource_name,
    node_allocatable,
    pod_request_resource,
    pod_requests,
    pod_score_requests,
)
from tests.unit.scheduler.sched_builders import container, node, pod, sidecar

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod

MI = 1024 * 1024


@dataclass
class Case:
    name: str
    pod: Pod
    milli_cpu: int
    memory: int
    # The non-zero view scoring uses.
    non_zero_milli_cpu: int
    non_zero_memory: int


def cpu(value: str) -> dict[str, str]:
    return {"cpu": value}


CASES = [
    Case("no containers", pod(), 0, 0, 0, 0),
    Case(
        "a container without requests asks for nothing, but scores as 100m/200Mi",
        pod(container()),
        0,
        0,
        DEFAULT_MILLI_CPU_REQUEST,
        DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "an explicit zero is kept when scoring",
        pod(container({"cpu": "0", "memory": "0"})),
        0,
        0,
        0,
        0,
    ),
    Case(
        "only the missing resource is defaulted",
        pod(container({"cpu": "250m"})),
        250,
        0,
        250,
        DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "app containers add up",
        pod(
            container({"cpu": "1", "memory": "1Gi"}), container({"cpu": "500m", "memory": "512Mi"})
        ),
        1500,
        1536 * MI,
        1500,
        1536 * MI,
    ),
    Case(
        "the largest init container wins over a smaller sum",
        pod(
            container(cpu("1")),
            container(cpu("1")),
            init=[container(cpu("3")), container(cpu("2"))],
        ),
        3000,
        0,
        3000,
        2 * DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "the sum wins over smaller init containers",
        pod(container(cpu("2")), container(cpu("2")), init=[container(cpu("3"))]),
        4000,
        0,
        4000,
        2 * DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "a sidecar adds to the app containers",
        pod(container(cpu("1")), init=[sidecar(cpu("1"))]),
        2000,
        0,
        2000,
        2 * DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "sidecars accumulate",
        pod(container(cpu("1")), init=[sidecar(cpu("1")), sidecar(cpu("2")), sidecar(cpu("3"))]),
        7000,
        0,
        7000,
        4 * DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "an init container after a sidecar runs beside it",
        pod(container(cpu("1")), init=[sidecar(cpu("1")), container(cpu("5"))]),
        6000,
        0,
        6000,
        2 * DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "an init container before a sidecar does not",
        pod(container(cpu("1")), init=[container(cpu("5")), sidecar(cpu("1"))]),
        5000,
        0,
        5000,
        2 * DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "overhead is added",
        pod(
            container({"cpu": "100m", "memory": "100Mi"}), overhead={"cpu": "10m", "memory": "1Mi"}
        ),
        110,
        101 * MI,
        110,
        101 * MI,
    ),
    Case(
        "pod-level requests replace the container aggregate for what they name",
        pod(container({"cpu": "1", "memory": "1Gi"}), pod_requests={"cpu": "2"}),
        2000,
        1024 * MI,
        2000,
        1024 * MI,
    ),
    Case(
        "with pod-level requests, defaults apply only where nobody says anything",
        pod(container(), pod_requests={"cpu": "300m"}),
        300,
        0,
        300,
        DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "arithmetic is exact before rounding up",
        pod(container(cpu("0.5m")), container(cpu("0.5m"))),
        1,
        0,
        1,
        2 * DEFAULT_MEMORY_REQUEST,
    ),
    Case(
        "rounding is up, as MilliValue()/Value()",
        pod(container({"cpu": "1.0001m", "memory": "1.5"})),
        2,
        2,
        2,
        2,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_pod_resources(case: Case) -> None:
    computed = compute_pod_resource(case.pod)
    assert computed.resource.milli_cpu == case.milli_cpu, case.name
    assert computed.resource.memory == case.memory, case.name
    assert computed.non_zero_milli_cpu == case.non_zero_milli_cpu, case.name
    assert computed.non_zero_memory == case.non_zero_memory, case.name
    request = pod_request_resource(case.pod)
    assert (request.milli_cpu, request.memory) == (case.milli_cpu, case.memory), case.name
    assert pod_score_requests(case.pod, ("cpu", "memory"), use_requested=True) == [
        case.milli_cpu,
        case.memory,
    ]


def test_scalar_and_storage_requests() -> None:
    p = pod(
        container({"example.com/gpu": "1", "ephemeral-storage": "1Gi", "hugepages-2Mi": "4Mi"}),
        init=[container({"example.com/gpu": "2"})],
    )
    request = pod_request_resource(p)
    assert request.scalar == {"example.com/gpu": 2, "hugepages-2Mi": 4 * MI}
    assert request.ephemeral_storage == 1024 * MI
    assert pod_requests(p)["example.com/gpu"] == 2


def test_requests_of_a_pod_are_not_mutated() -> None:
    p = pod(container(), init=[sidecar({"cpu": "1"})])
    before = p.SerializeToString(deterministic=True)
    compute_pod_resource(p)
    pod_score_requests(p, ("cpu", "memory"), use_requested=False)
    assert p.SerializeToString(deterministic=True) == before


@pytest.mark.parametrize(
    ("allocatable", "capacity", "want"),
    [
        pytest.param(
            {"cpu": "2", "memory": "4Gi", "pods": "110", "example.com/gpu": "2"},
            {"cpu": "4"},
            Resource(2000, 4096 * MI, 0, 110, {"example.com/gpu": 2}),
            id="allocatable",
        ),
        pytest.param(
            {},
            {"cpu": "4", "memory": "1Gi", "pods": "10", "ephemeral-storage": "10Gi"},
            Resource(4000, 1024 * MI, 10240 * MI, 10, {}),
            id="capacity when allocatable is empty",
        ),
    ],
)
def test_node_allocatable(
    allocatable: dict[str, str], capacity: dict[str, str], want: Resource
) -> None:
    assert node_allocatable(node("n", allocatable=allocatable, capacity=capacity)) == want


@pytest.mark.parametrize(
    ("name", "extended", "scalar"),
    [
        ("cpu", False, False),
        ("memory", False, False),
        ("example.com/gpu", True, True),
        ("nvidia.com/gpu", True, True),
        ("kubernetes.io/something", False, True),
        ("subdomain.kubernetes.io/something", False, True),
        ("hugepages-2Mi", False, True),
        ("attachable-volumes-aws-ebs", False, True),
        ("requests.example.com/gpu", False, False),
        ("foo", False, False),
        ("bad name/x y", False, False),
    ],
)
def test_resource_names(name: str, extended: bool, scalar: bool) -> None:
    assert is_extended_resource_name(name) is extended
    assert is_scalar_resource_name(name) is scalar

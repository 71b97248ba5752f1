"""The scheduler cache (kube-scheduler's internal/cache cache_test.go in
spirit): assumed pods count at once, are confirmed without double counting,
forgotten when binding fails, and finished pods free their node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.scheduler.cache import Cache
from tests.unit.scheduler.sched_builders import container, node, pod

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod


def bound(name: str, node_name: str, cpu: str = "500m", phase: str = "") -> Pod:
    made = pod(container({"cpu": cpu}), name=name, uid=f"uid-{name}", node_name=node_name)
    if phase:
        made.status.phase = phase
    return made


@dataclass
class Case:
    name: str
    steps: list[tuple[str, Pod | str]]
    milli_cpu: dict[str, int]  # what each node has requested afterwards
    pods: int


A, B = "node-a", "node-b"
CASES = [
    Case("assumed counts at once", [("assume", bound("p", A))], {A: 500, B: 0}, 1),
    Case(
        "confirmed is not counted twice",
        [("assume", bound("p", A)), ("add", bound("p", A))],
        {A: 500, B: 0},
        1,
    ),
    Case(
        "forgotten frees the node",
        [("assume", bound("p", A)), ("forget", "default/p")],
        {A: 0, B: 0},
        0,
    ),
    Case(
        "a confirmed pod is not forgotten",
        [("assume", bound("p", A)), ("add", bound("p", A)), ("forget", "default/p")],
        {A: 500, B: 0},
        1,
    ),
    Case(
        "a finished pod frees its node",
        [("add", bound("p", A)), ("add", bound("p", A, phase="Succeeded"))],
        {A: 0, B: 0},
        0,
    ),
    Case("removed", [("add", bound("p", B, "1")), ("remove", bound("p", B))], {A: 0, B: 0}, 0),
    Case(
        "pods of two nodes",
        [("add", bound("p", A, "1")), ("assume", bound("q", B, "250m")), ("add", bound("r", A))],
        {A: 1500, B: 250},
        3,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cache_accounting(case: Case) -> None:
    cache = Cache()
    for name in (A, B):
        cache.add_node(node(name, allocatable={"cpu": "4", "memory": "8Gi", "pods": "10"}))
    for action, arg in case.steps:
        if action == "assume":
            cache.assume_pod(arg)  # type: ignore[arg-type]
        elif action == "add":
            cache.add_pod(arg)  # type: ignore[arg-type]
        elif action == "remove":
            cache.remove_pod(arg)  # type: ignore[arg-type]
        else:
            cache.forget_pod(arg)  # type: ignore[arg-type]
    for name, milli in case.milli_cpu.items():
        info = cache.node(name)
        assert info is not None
        assert info.requested.milli_cpu == milli, f"{case.name}: {name}"
    assert sum(1 for _ in cache.pods()) == case.pods, case.name


def test_assuming_a_known_pod_is_refused() -> None:
    cache = Cache()
    cache.assume_pod(bound("p", A))
    with pytest.raises(ValueError, match="already in the scheduler cache"):
        cache.assume_pod(bound("p", A))


def test_pods_of_a_removed_node_come_back_with_it() -> None:
    cache = Cache()
    cache.add_node(node(A, allocatable={"cpu": "4"}))
    cache.add_pod(bound("p", A, "1"))
    cache.remove_node(A)
    assert cache.node(A) is None
    cache.add_node(node(A, allocatable={"cpu": "4"}))
    info = cache.node(A)
    assert info is not None
    assert info.requested.milli_cpu == 1000
    assert info.pod_count == 1


def test_pods_seen_before_their_node_are_counted_when_it_arrives() -> None:
    cache = Cache()
    cache.add_pod(bound("p", A, "2"))
    cache.add_node(node(A, allocatable={"cpu": "4"}))
    info = cache.node(A)
    assert info is not None
    assert info.requested.milli_cpu == 2000

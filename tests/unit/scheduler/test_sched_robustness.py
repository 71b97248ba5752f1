"""One bad object never kills the scheduler: a pod or a node whose
quantities cannot be parsed (stored before the API server refused them) is
told about, left out or counted, and every other pod is still scheduled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.scheduler.cache import Cache
from kpy.scheduler.queue import SchedulingQueue
from kpy.scheduler.resources import invalid_node_quantities, invalid_pod_quantities
from kpy.scheduler.scheduler import Scheduler
from tests.unit.scheduler.sched_builders import container, node, pod

if TYPE_CHECKING:
    from kpy.api.core.v1 import Node, Pod

GOOD = {"cpu": "4", "memory": "8Gi", "pods": "10"}


def good_node(name: str) -> Node:
    return node(name, allocatable=GOOD)


def bad_node(name: str) -> Node:
    return node(name, allocatable={"cpu": "garbage!", "memory": "8Gi", "pods": "10"})


def bad_overhead_pod(name: str = "bad", node_name: str = "") -> Pod:
    return pod(
        container({"cpu": "100m"}),
        name=name,
        uid=f"uid-{name}",
        node_name=node_name,
        overhead={"cpu": "1.5.5Gi"},
    )


def good_pod(name: str = "good", cpu: str = "1") -> Pod:
    return pod(container({"cpu": cpu}), name=name, uid=f"uid-{name}")


@dataclass
class QuantityCase:
    name: str
    pod: Pod
    want: list[str]


QUANTITY_CASES = [
    QuantityCase("a valid pod", good_pod(), []),
    QuantityCase("overhead", bad_overhead_pod(), ['spec.overhead.cpu: invalid quantity "1.5.5Gi"']),
    QuantityCase(
        "a container request",
        pod(container({"cpu": "1"}), container({"memory": "lots"}), name="p"),
        ['spec.containers[1].resources.requests.memory: invalid quantity "lots"'],
    ),
    QuantityCase(
        "an init container request and pod-level requests",
        pod(init=[container({"cpu": "x"})], pod_requests={"memory": "1..2"}, name="p"),
        [
            'spec.initContainers[0].resources.requests.cpu: invalid quantity "x"',
            'spec.resources.requests.memory: invalid quantity "1..2"',
        ],
    ),
]


@pytest.mark.parametrize("case", QUANTITY_CASES, ids=lambda c: c.name)
def test_invalid_pod_quantities(case: QuantityCase) -> None:
    assert invalid_pod_quantities(case.pod) == case.want, case.name


def test_invalid_node_quantities() -> None:
    assert invalid_node_quantities(good_node("a")) == []
    assert invalid_node_quantities(bad_node("a")) == [
        'status.allocatable.cpu: invalid quantity "garbage!"'
    ]


@dataclass
class CacheCase:
    name: str
    nodes: list[Node]
    pods: list[Pod] = field(default_factory=list)
    usable: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    pod_counts: dict[str, int] = field(default_factory=dict)


CACHE_CASES = [
    CacheCase(
        "a bad node is left out", [good_node("a"), bad_node("b")], usable=["a"], invalid=["b"]
    ),
    CacheCase(
        "a node that turns bad leaves, and its fix brings it back with its pods",
        [good_node("a"), bad_node("a"), good_node("a")],
        pods=[pod(container({"cpu": "1"}), name="p", uid="u", node_name="a")],
        usable=["a"],
        pod_counts={"a": 1},
    ),
    CacheCase(
        "a good node that turns bad is left out",
        [good_node("a"), bad_node("a")],
        invalid=["a"],
    ),
    CacheCase(
        "a bound pod that cannot be parsed still counts on its node, with no requests",
        [good_node("a")],
        pods=[bad_overhead_pod("p", node_name="a")],
        usable=["a"],
        pod_counts={"a": 1},
    ),
]


@pytest.mark.parametrize("case", CACHE_CASES, ids=lambda c: c.name)
def test_cache_survives_bad_objects(case: CacheCase) -> None:
    cache = Cache()
    for p in case.pods:
        cache.add_pod(p)
    for n in case.nodes:
        cache.add_node(n)
    assert sorted(n.name for n in cache.node_infos()) == case.usable, case.name
    assert sorted(cache.invalid_nodes()) == case.invalid, case.name
    for name, count in case.pod_counts.items():
        info = cache.node(name)
        assert info is not None, case.name
        assert info.pod_count == count, case.name
        assert info.requested.milli_cpu in (0, 1000), case.name


def test_removing_a_bad_node_forgets_it() -> None:
    cache = Cache()
    cache.add_node(bad_node("b"))
    cache.remove_node("b")
    assert cache.invalid_nodes() == {}


@dataclass
class DecideCase:
    name: str
    nodes: list[Node]
    pod: Pod
    node: str | None
    message: str
    error: bool = False


DECIDE_CASES = [
    DecideCase(
        "a pod with unparsable overhead is told what is wrong",
        [good_node("a")],
        bad_overhead_pod(),
        None,
        'invalid pod: spec.overhead.cpu: invalid quantity "1.5.5Gi"; the scheduler will not '
        "place it until it is deleted and created again with valid quantities",
        error=True,
    ),
    DecideCase(
        "a good pod goes to the good node beside a bad one",
        [bad_node("b"), good_node("a")],
        good_pod(),
        "a",
        "",
    ),
    DecideCase(
        "a bad node counts among the unavailable ones with its reason",
        [bad_node("b"), good_node("a")],
        good_pod(cpu="8"),
        None,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had invalid resource quantities.",
    ),
    DecideCase(
        "only bad nodes",
        [bad_node("b")],
        good_pod(),
        None,
        "0/1 nodes are available: 1 node(s) had invalid resource quantities.",
    ),
]


def scheduler_with(nodes: list[Node]) -> Scheduler:
    s = Scheduler(_NoClient())  # type: ignore[arg-type]
    for n in nodes:
        s.cache.add_node(n)
    return s


@pytest.mark.parametrize("case", DECIDE_CASES, ids=lambda c: c.name)
def test_decide(case: DecideCase) -> None:
    decision = scheduler_with(case.nodes).decide(case.pod)
    assert (decision.node, decision.message, decision.error) == (
        case.node,
        case.message,
        case.error,
    ), case.name


def test_explain_names_what_is_wrong_with_the_pod() -> None:
    response = scheduler_with([good_node("a")]).explain(bad_overhead_pod())
    assert 'spec.overhead.cpu: invalid quantity "1.5.5Gi"' in response.message
    assert not response.nodes


class _NoClient:
    """Records bindings and status patches; the scheduler needs nothing else here."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, Any]] = []
        self.bound: list[tuple[str, str]] = []

    async def bind(self, name: str, node_name: str, **kwargs: Any) -> None:
        self.bound.append((name, node_name))

    async def patch(self, kind: Any, name: str, patch: Any, **kwargs: Any) -> None:
        self.patches.append((name, patch))


async def test_a_bad_pod_is_retried_with_back_off_and_the_next_one_scheduled() -> None:
    s = scheduler_with([good_node("a")])
    client: _NoClient = s.client  # type: ignore[assignment]
    s.queue = SchedulingQueue()
    s.queue.add(bad_overhead_pod(), "default/bad")
    s.queue.add(good_pod(), "default/good")
    async with anyio.create_task_group() as binds:
        for _ in range(2):
            s.schedule_one(await s.queue.pop(), binds)
    assert client.bound == [("good", "a")]
    assert s.queue.pending()["backoff"] == 1, "the bad pod waits out a back-off"
    (name, patch), *_ = client.patches
    condition = patch["status"]["conditions"][0]
    assert (name, condition["reason"]) == ("bad", "SchedulerError")
    assert "spec.overhead.cpu" in condition["message"]

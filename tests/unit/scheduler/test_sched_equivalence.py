"""The equivalence cache never changes a decision: over a seeded random mix
of nodes (sizes, taints, labels, cordons) and pods of a few classes placed
one after another, a framework with the cache and one without find the
same feasible nodes with the same scores, and give the same reasons."""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any

import pytest

from kpy.scheduler.cache import Cache
from kpy.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Framework,
    NodeInfo,
    Status,
    new_status,
)
from kpy.scheduler.framework.equivalence import EquivalenceCache
from kpy.scheduler.profiles import default_profile

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.api.core.v1 import Node, Pod

from tests.unit.scheduler.sched_builders import (
    container,
    node,
    pod,
    req,
    required,
    taint,
    term,
    toleration,
)


def random_nodes(rng: random.Random, count: int) -> list[Node]:
    made = []
    for i in range(count):
        cpu = rng.choice(["1", "2", "4"])
        taints = [taint("dedicated", "gpu", "NoSchedule")] if rng.random() < 0.2 else []
        made.append(
            node(
                f"n{i:02d}",
                labels={"zone": rng.choice(["a", "b"]), "kubernetes.io/hostname": f"n{i:02d}"},
                allocatable={"cpu": cpu, "memory": "4Gi", "pods": "10"},
                taints=taints,
                unschedulable=rng.random() < 0.1,
            )
        )
    return made


POD_CLASSES: list[dict[str, Any]] = [
    {"requests": {"cpu": "500m", "memory": "256Mi"}},
    {"requests": {"cpu": "1", "memory": "1Gi"}, "tolerate": True},
    {"requests": {"cpu": "250m"}, "zone": "b"},
    {"requests": {}},
]


def class_pod(index: int, klass: dict[str, Any]) -> Pod:
    kwargs: dict[str, Any] = {}
    if klass.get("tolerate"):
        kwargs["tolerations"] = [toleration("dedicated", "Equal", "gpu", "NoSchedule")]
    if klass.get("zone"):
        kwargs["affinity"] = required(term(req("zone", "In", str(klass["zone"]))))
    return pod(
        container(klass["requests"]),
        name=f"p{index:03d}",
        uid=f"uid-{index:03d}",
        **kwargs,
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_cached_and_uncached_frameworks_decide_alike(seed: int) -> None:
    rng = random.Random(seed)
    nodes = random_nodes(rng, 24)
    cache = Cache()
    for n in nodes:
        cache.add_node(n)
    with_memo = Framework(default_profile())
    without = Framework(dataclasses.replace(default_profile(), equivalence_cache=False))
    assert with_memo.equivalence is not None
    assert without.equivalence is None
    for i in range(120):
        candidate = class_pod(i, rng.choice(POD_CLASSES))
        infos = cache.node_infos()
        fits_a, why_a = with_memo.find_nodes_that_fit(candidate, infos, find_all=True)
        fits_b, why_b = without.find_nodes_that_fit(candidate, infos, find_all=True)
        assert [n.name for n in fits_a] == [n.name for n in fits_b], i
        assert dict(why_a) == dict(why_b), i
        if not fits_a:
            continue
        state_a, state_b = CycleState(), CycleState()
        with_memo.find_nodes_that_fit(candidate, infos, state=state_a, find_all=True)
        without.find_nodes_that_fit(candidate, infos, state=state_b, find_all=True)
        with_memo.run_pre_score(state_a, candidate, fits_a)
        without.run_pre_score(state_b, candidate, fits_b)
        scores_a = with_memo.run_score_plugins(state_a, candidate, fits_a)
        scores_b = without.run_score_plugins(state_b, candidate, fits_b)
        assert scores_a == scores_b, i
        # Place it on a random feasible node, as the scheduler would: nodes change.
        chosen = rng.choice(fits_a)
        candidate.spec.node_name = chosen.name
        cache.assume_pod(candidate)
    assert len(with_memo.equivalence) == len(POD_CLASSES)


# --- the wrapper alone ---


@dataclasses.dataclass(frozen=True)
class WrapCase:
    name: str
    #: what the node-local filters answer
    local: Status
    #: between the first pod and the second: "", "node" (a pod lands on the
    #: node) or "class" (the second pod asks for more)
    change: str
    #: how often the node-local filters, the cluster-wide ones and the
    #: (node-local) score plugin ran over both pods
    local_calls: int
    wide_calls: int
    scored: int


WRAP_CASES = [
    WrapCase("same class, node unchanged: remembered", SUCCESS, "", 1, 2, 1),
    WrapCase("a pod landed on the node: judged again", SUCCESS, "node", 2, 2, 2),
    WrapCase("another class: judged again", SUCCESS, "class", 2, 2, 2),
    WrapCase(
        "a rejection is remembered, and spares the cluster-wide filters",
        new_status(Code.UNSCHEDULABLE, "no"),
        "",
        1,
        0,
        1,
    ),
    WrapCase("an error is never remembered", new_status(Code.ERROR, "boom"), "", 2, 0, 1),
]


@pytest.mark.parametrize("case", WRAP_CASES, ids=lambda c: c.name)
def test_the_cache_wraps_node_local_filters_and_scores(case: WrapCase) -> None:
    calls = {"local": 0, "wide": 0, "scored": 0}

    def local(state: CycleState, p: Pod) -> Callable[[NodeInfo], Status]:
        def check(node_info: NodeInfo) -> Status:
            calls["local"] += 1
            return case.local

        return check

    def wide(state: CycleState, p: Pod) -> Callable[[NodeInfo], Status]:
        def check(node_info: NodeInfo) -> Status:
            calls["wide"] += 1
            return SUCCESS

        return check

    def score_nodes(
        state: CycleState, p: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        calls["scored"] += len(nodes)
        return [7] * len(nodes), SUCCESS

    cache = EquivalenceCache()
    check, score = cache.filter(local, wide), cache.score("Scorer", score_nodes)
    info = NodeInfo(node("n1", allocatable={"cpu": "4", "pods": "10"}))
    first = pod(container({"cpu": "1"}), name="a", uid="a")
    second = pod(container({"cpu": "2" if case.change == "class" else "1"}), name="b", uid="b")
    statuses = []
    for i, candidate in enumerate((first, second)):
        if i and case.change == "node":
            info.add_pod(pod(container({"cpu": "1"}), name="other", uid="other"))
        state = CycleState()
        statuses.append(check(state, candidate)(info))
        assert score(state, candidate, [info]) == ([7], SUCCESS), case.name
    assert statuses == [case.local, case.local], case.name
    got = (calls["local"], calls["wide"], calls["scored"])
    assert got == (case.local_calls, case.wide_calls, case.scored), case.name

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
from kpy.scheduler.framework import CycleState, Framework, default_profile

if TYPE_CHECKING:
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

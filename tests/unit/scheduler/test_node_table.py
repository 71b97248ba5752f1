"""The vectorised framework path (`Framework.schedule_table` over the
scheduler Cache's NodeTable) decides exactly as the per-node path
(`Framework.schedule_pod` over `Cache.node_infos()`): the same node, the
same number of feasible and evaluated nodes, the same draws from the
random source, on random clusters that change between pods (nodes added,
updated and removed; pods assumed, confirmed and deleted).

Also: the table's incremental refresh ends where a fresh table starts,
and the array form of the default score normalisation matches the list
form.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from kpy.api.core.v1 import (
    Affinity,
    Node,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PreferredSchedulingTerm,
)
from kpy.scheduler.cache import Cache
from kpy.scheduler.framework import (
    MAX_NODE_SCORE,
    Framework,
    NodeScore,
    NodeTable,
    default_normalize_score,
    default_normalize_table,
)
from kpy.scheduler.profiles import default_profile
from tests.unit.scheduler.sched_builders import (
    container,
    host_port,
    node,
    pod,
    taint,
    toleration,
)

ZONES = ("a", "b", "c")


def random_node(rng: random.Random, name: str) -> Node:
    cpu = rng.choice(("2", "4", "8", "500m", "0"))
    memory = rng.choice(("1Gi", "4Gi", "8Gi", "512Mi"))
    allocatable = {"cpu": cpu, "memory": memory, "pods": str(rng.choice((3, 10, 110)))}
    if rng.random() < 0.2:
        allocatable["ephemeral-storage"] = rng.choice(("1Gi", "10Gi"))
    if rng.random() < 0.1:
        allocatable["example.com/gpu"] = "2"
    taints = []
    if rng.random() < 0.2:
        taints.append(taint("dedicated", rng.choice(("db", "web")), "NoSchedule"))
    if rng.random() < 0.3:
        taints.append(taint("spot", "true", "PreferNoSchedule"))
    if rng.random() < 0.05:
        taints.append(taint("gone", "", "NoExecute"))
    labels = {"kubernetes.io/hostname": name, "zone": rng.choice(ZONES)}
    return node(
        name,
        labels=labels,
        allocatable=allocatable,
        taints=taints,
        unschedulable=rng.random() < 0.05,
    )


def random_pod(rng: random.Random, i: int, node_names: list[str]) -> Pod:
    requests: dict[str, str] = {}
    if rng.random() < 0.8:
        requests["cpu"] = rng.choice(("100m", "250m", "1", "3"))
    if rng.random() < 0.8:
        requests["memory"] = rng.choice(("64Mi", "256Mi", "1Gi", "3Gi"))
    if rng.random() < 0.1:
        requests["ephemeral-storage"] = "2Gi"
    if rng.random() < 0.05:
        requests["example.com/gpu"] = "1"
    ports = [host_port(f"TCP/0.0.0.0/{rng.choice((80, 443))}")] if rng.random() < 0.1 else []
    tolerations = []
    if rng.random() < 0.3:
        tolerations.append(toleration("dedicated", "Equal", rng.choice(("db", "web"))))
    if rng.random() < 0.2:
        tolerations.append(toleration("spot", "Exists", effect="PreferNoSchedule"))
    if rng.random() < 0.05:
        tolerations.append(toleration(operator="Exists"))
    selector = {"zone": rng.choice(ZONES)} if rng.random() < 0.1 else None
    affinity = None
    if rng.random() < 0.1:
        preferred = PreferredSchedulingTerm(
            weight=rng.randint(1, 100),
            preference=NodeSelectorTerm(
                match_expressions=[
                    NodeSelectorRequirement(key="zone", operator="In", values=[rng.choice(ZONES)])
                ]
            ),
        )
        affinity = Affinity(
            node_affinity=NodeAffinity(
                preferred_during_scheduling_ignored_during_execution=[preferred]
            )
        )
    if rng.random() < 0.03:
        pinned = NodeSelectorTerm(
            match_fields=[
                NodeSelectorRequirement(
                    key="metadata.name", operator="In", values=[rng.choice(node_names)]
                )
            ]
        )
        affinity = Affinity(
            node_affinity=NodeAffinity(
                required_during_scheduling_ignored_during_execution=NodeSelector(
                    node_selector_terms=[pinned]
                )
            )
        )
    made = pod(
        container(requests or None, ports=ports),
        name=f"p-{i}",
        uid=f"uid-{i}",
        node_selector=selector,
        affinity=affinity,
        tolerations=tolerations,
    )
    if rng.random() < 0.03:
        made.spec.node_name = rng.choice(node_names)
    return made


@dataclass(frozen=True)
class Cluster:
    name: str
    seed: int
    nodes: int
    pods: int
    percentage: int = 0  # percentageOfNodesToScore (0: adaptive)


CLUSTERS = [
    Cluster("tiny", seed=1, nodes=3, pods=40),
    Cluster("under 100 nodes: all scored", seed=2, nodes=60, pods=150),
    Cluster("adaptive sampling", seed=3, nodes=250, pods=300),
    Cluster("adaptive sampling, other seed", seed=4, nodes=400, pods=300),
    Cluster("every node scored", seed=5, nodes=250, pods=200, percentage=100),
    Cluster("fixed 30%", seed=6, nodes=350, pods=200, percentage=30),
    Cluster("crowded", seed=7, nodes=120, pods=500),
]


def _churn(rng: random.Random, caches: tuple[Cache, Cache], names: list[str], i: int) -> None:
    """The same change to both caches: a node updated, removed or added,
    or a bound pod deleted."""
    roll = rng.random()
    if roll < 0.05 and names:
        gone = names.pop(rng.randrange(len(names)))
        for cache in caches:
            cache.remove_node(gone)
    elif roll < 0.15:
        name = rng.choice(names) if names and rng.random() < 0.5 else f"late-{i}"
        if name not in names:
            names.append(name)
        made = random_node(rng, name)
        for cache in caches:
            cache.add_node(made)
    elif roll < 0.25:
        bound = list(caches[0].pods())
        if bound:
            victim = rng.choice(bound)
            for cache in caches:
                cache.remove_pod(victim)


@pytest.mark.parametrize("case", CLUSTERS, ids=lambda c: c.name)
def test_table_path_decides_as_the_per_node_path(case: Cluster) -> None:
    rng = random.Random(case.seed)
    names = [f"n-{i:04d}" for i in range(case.nodes)]
    caches = (Cache(), Cache())
    for name in names:
        made = random_node(rng, name)
        for cache in caches:
            cache.add_node(made)
    vector = Framework(default_profile(percentage_of_nodes_to_score=case.percentage))
    per_node = Framework(default_profile(percentage_of_nodes_to_score=case.percentage))
    draws_a, draws_b = random.Random(case.seed), random.Random(case.seed)
    placed = 0
    for i in range(case.pods):
        candidate = random_pod(rng, i, names or ["nowhere"])
        a = vector.schedule_table(candidate, caches[0].table(), draws_a)
        b = per_node.schedule_pod(candidate, caches[1].node_infos(), draws_b)
        got = (a.node_info and a.node_info.name, a.feasible_nodes, a.evaluated_nodes)
        want = (b.node_info and b.node_info.name, b.feasible_nodes, b.evaluated_nodes)
        assert got == want, f"{case.name}: pod {i}: table path {got}, per-node path {want}"
        if a.node_info is not None:
            placed += 1
            assumed = Pod()
            assumed.CopyFrom(candidate)
            assumed.spec.node_name = a.node_info.name
            for cache in caches:
                cache.assume_pod(assumed)
        _churn(rng, caches, names, i)
    assert placed, f"{case.name}: no pod was placed, the case tests nothing"


def _columns(table: NodeTable) -> dict[str, list[object]]:
    names = ("alloc_cpu", "alloc_memory", "pods", "req_cpu", "req_memory", "nz_cpu", "nz_memory")
    out = {n: getattr(table, n).tolist() for n in names}
    out["names"] = [i.name for i in table.infos]
    return out


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_incremental_refresh_ends_where_a_fresh_table_starts(seed: int) -> None:
    rng = random.Random(seed)
    names = [f"n-{i}" for i in range(30)]
    cache = Cache()
    for name in names:
        cache.add_node(random_node(rng, name))
    for i in range(200):
        cache.table()  # refreshed between changes, as the scheduler does
        candidate = random_pod(rng, i, names)
        candidate.spec.node_name = rng.choice(names) if names else "x"
        if candidate.spec.node_name in names:
            cache.assume_pod(candidate)
        _churn(rng, (cache, Cache()), names, i)
    fresh = NodeTable(cache.node_infos())
    assert _columns(cache.table()) == _columns(fresh), f"seed {seed}"


@pytest.mark.parametrize(
    ("name", "raw", "reverse"),
    [
        ("empty", [], False),
        ("all zero", [0, 0, 0], False),
        ("all zero, reversed", [0, 0, 0], True),
        ("scaled", [1, 2, 3], False),
        ("scaled, reversed", [1, 2, 3], True),
        ("one", [7], True),
        ("uneven", [3, 10, 0, 9], False),
    ],
)
def test_array_normalisation_matches_the_list_form(
    name: str, raw: list[int], reverse: bool
) -> None:
    scores = [NodeScore(str(i), v) for i, v in enumerate(raw)]
    default_normalize_score(MAX_NODE_SCORE, reverse, scores)
    got = default_normalize_table(MAX_NODE_SCORE, reverse, np.array(raw, np.int64)).tolist()
    assert got == [s.score for s in scores], name

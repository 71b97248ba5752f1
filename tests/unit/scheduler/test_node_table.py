"""The vectorised framework path (`Framework.schedule_table` over the
scheduler Cache's NodeTable) decides exactly as the per-node path
(`Framework.schedule_pod` over `Cache.node_infos()`): the same node, the
same number of feasible and evaluated nodes, the same draws from the
random source, on random clusters that change between pods (nodes added,
updated and removed; pods assumed, confirmed and deleted); and, where no
node fits, the same reason on every node. The spreading clusters add pods
with topology spread constraints (every policy, minDomains, matchLabelKeys),
Deployment pods spread by the system defaults, nodeSelectors and required
node affinity, on nodes that sometimes lack a topology label or carry it
empty.

Also: the table's incremental refresh ends where a fresh table starts,
and the array form of the default score normalisation matches the list
form.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import (
    Affinity,
    Node,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PreferredSchedulingTerm,
    TopologySpreadConstraint,
)
from kpy.api.labels import Selector, selector_from_set
from kpy.scheduler.cache import Cache
from kpy.scheduler.framework import (
    MAX_NODE_SCORE,
    CycleState,
    Framework,
    NodeInfo,
    NodeScore,
    NodeTable,
    default_normalize_score,
    default_normalize_table,
)
from kpy.scheduler.framework.node_table import COLUMN_LIMIT
from kpy.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from kpy.scheduler.plugins.node_affinity import NodeAffinity as NodeAffinityPlugin
from kpy.scheduler.plugins.pod_topology_spread import PodTopologySpread
from kpy.scheduler.profiles import default_profile
from tests.unit.scheduler.sched_builders import (
    container,
    host_port,
    node,
    pod,
    taint,
    toleration,
)

if TYPE_CHECKING:
    from collections.abc import Callable

ZONES = ("a", "b", "c")
ZONE = "topology.kubernetes.io/zone"
APPS = ("web", "db", "cache")
TOPOLOGY_KEYS = ("kubernetes.io/hostname", ZONE, "rack")


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


def spreading_node(rng: random.Random, name: str) -> Node:
    """random_node with topology labels: a zone (sometimes missing or
    empty) and a rack (sometimes missing)."""
    made = random_node(rng, name)
    labels = made.metadata.labels
    roll = rng.random()
    if roll < 0.85:
        labels[ZONE] = rng.choice(ZONES)
    elif roll < 0.92:
        labels[ZONE] = ""
    if rng.random() < 0.8:
        labels["rack"] = f"r{rng.randrange(6)}"
    return made


def _spread_constraint(rng: random.Random) -> TopologySpreadConstraint:
    spec: dict[str, object] = {
        "maxSkew": rng.randint(1, 3),
        "topologyKey": rng.choice(TOPOLOGY_KEYS),
        "whenUnsatisfiable": rng.choice(("DoNotSchedule", "ScheduleAnyway")),
        "labelSelector": {"matchLabels": {"app": rng.choice(APPS)}},
    }
    if spec["whenUnsatisfiable"] == "DoNotSchedule" and rng.random() < 0.3:
        spec["minDomains"] = rng.randint(1, 8)
    if rng.random() < 0.4:
        spec["nodeAffinityPolicy"] = rng.choice(("Honor", "Ignore"))
    if rng.random() < 0.4:
        spec["nodeTaintsPolicy"] = rng.choice(("Honor", "Ignore"))
    if rng.random() < 0.2:
        spec["matchLabelKeys"] = ["tier"]
    return from_dict(TopologySpreadConstraint, spec)


def _pod_affinity_term(rng: random.Random) -> dict[str, object]:
    term: dict[str, object] = {
        "labelSelector": {"matchLabels": {"app": rng.choice(APPS)}},
        "topologyKey": rng.choice(TOPOLOGY_KEYS),
    }
    roll = rng.random()
    if roll < 0.1:
        term["namespaces"] = ["default", "other"]
    elif roll < 0.15:
        term["namespaceSelector"] = {}  # every namespace: counted per node
    return term


def _pod_affinity(rng: random.Random) -> Affinity:
    """Some of required and preferred pod affinity and anti-affinity."""
    spec: dict[str, object] = {}
    for kind in ("podAffinity", "podAntiAffinity"):
        part: dict[str, object] = {}
        if rng.random() < 0.3:
            part["requiredDuringSchedulingIgnoredDuringExecution"] = [_pod_affinity_term(rng)]
        if rng.random() < 0.4:
            part["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": rng.randint(1, 100), "podAffinityTerm": _pod_affinity_term(rng)}
            ]
        if part:
            spec[kind] = part
    return from_dict(Affinity, spec)


def spreading_pod(rng: random.Random, i: int, node_names: list[str]) -> Pod:
    """random_pod with an app (and tier) label, in namespace "default" or
    "other"; a third of them with spread constraints of their own, half the
    rest owned by a ReplicaSet (spread by the defaults); some with required
    node affinity on zone or rack, some with pod (anti-)affinity."""
    made = random_pod(rng, i, node_names)
    if rng.random() < 0.2:
        made.metadata.namespace = "other"
    made.metadata.labels["app"] = rng.choice(APPS)
    made.metadata.labels["tier"] = rng.choice(("front", "back"))
    roll = rng.random()
    if roll < 0.35:
        made.spec.topology_spread_constraints.extend(
            _spread_constraint(rng) for _ in range(rng.randint(1, 2))
        )
    elif roll < 0.7:
        made.metadata.owner_references.add(
            api_version="apps/v1", kind="ReplicaSet", name="rs", uid="rs", controller=True
        )
    if rng.random() < 0.1 and not made.spec.affinity.node_affinity.HasField(
        "required_during_scheduling_ignored_during_execution"
    ):
        key, operator = rng.choice(((ZONE, "In"), ("rack", "NotIn"), ("rack", "Exists")))
        values = [] if operator == "Exists" else [rng.choice((*ZONES, "r1", "r2"))]
        term = NodeSelectorTerm(
            match_expressions=[NodeSelectorRequirement(key=key, operator=operator, values=values)]
        )
        made.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.CopyFrom(
            NodeSelector(node_selector_terms=[term])
        )
    if rng.random() < 0.25:
        affinity = _pod_affinity(rng)
        made.spec.affinity.pod_affinity.CopyFrom(affinity.pod_affinity)
        made.spec.affinity.pod_anti_affinity.CopyFrom(affinity.pod_anti_affinity)
    return made


def owners_app(pod: Pod) -> Selector | None:
    """The default spread selector: a ReplicaSet's pods are spread by app."""
    if not pod.metadata.owner_references:
        return None
    return selector_from_set({"app": pod.metadata.labels["app"]})


@dataclass(frozen=True)
class Cluster:
    name: str
    seed: int
    nodes: int
    pods: int
    percentage: int = 0  # percentageOfNodesToScore (0: adaptive)
    spreading: bool = False  # spreading_node / spreading_pod


CLUSTERS = [
    Cluster("tiny", seed=1, nodes=3, pods=40),
    Cluster("under 100 nodes: all scored", seed=2, nodes=60, pods=150),
    Cluster("adaptive sampling", seed=3, nodes=250, pods=300),
    Cluster("adaptive sampling, other seed", seed=4, nodes=400, pods=300),
    Cluster("every node scored", seed=5, nodes=250, pods=200, percentage=100),
    Cluster("fixed 30%", seed=6, nodes=350, pods=200, percentage=30),
    Cluster("crowded", seed=7, nodes=120, pods=500),
    Cluster("spreading, tiny", seed=21, nodes=4, pods=60, spreading=True),
    Cluster("spreading, under 100 nodes", seed=22, nodes=60, pods=300, spreading=True),
    Cluster("spreading, adaptive sampling", seed=23, nodes=300, pods=300, spreading=True),
    Cluster("spreading, every node", seed=24, nodes=150, pods=300, percentage=100, spreading=True),
    Cluster("spreading, crowded", seed=25, nodes=80, pods=600, spreading=True),
]


def _churn(
    rng: random.Random,
    caches: tuple[Cache, Cache],
    names: list[str],
    i: int,
    make_node: Callable[[random.Random, str], Node] = random_node,
) -> None:
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
        made = make_node(rng, name)
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
    make_node = spreading_node if case.spreading else random_node
    make_pod = spreading_pod if case.spreading else random_pod
    names = [f"n-{i:04d}" for i in range(case.nodes)]
    caches = (Cache(), Cache())
    for name in names:
        made = make_node(rng, name)
        for cache in caches:
            cache.add_node(made)
    vector, per_node = (
        Framework(
            default_profile(
                percentage_of_nodes_to_score=case.percentage, default_spread_selector=owners_app
            )
        )
        for _ in range(2)
    )
    draws_a, draws_b = random.Random(case.seed), random.Random(case.seed)
    placed = unplaced = 0
    for i in range(case.pods):
        candidate = make_pod(rng, i, names or ["nowhere"])
        a = vector.schedule_table(candidate, caches[0].table(), draws_a)
        b = per_node.schedule_pod(candidate, caches[1].node_infos(), draws_b)
        got = (a.node_info and a.node_info.name, a.feasible_nodes, a.evaluated_nodes)
        want = (b.node_info and b.node_info.name, b.feasible_nodes, b.evaluated_nodes)
        assert got == want, f"{case.name}: pod {i}: table path {got}, per-node path {want}"
        if a.node_info is None:
            unplaced += 1
            got_why, want_why = dict(a.diagnosis), dict(b.diagnosis)
            assert got_why == want_why, f"{case.name}: pod {i}: reasons differ"
        if a.node_info is not None:
            placed += 1
            assumed = Pod()
            assumed.CopyFrom(candidate)
            assumed.spec.node_name = a.node_info.name
            for cache in caches:
                cache.assume_pod(assumed)
        _churn(rng, caches, names, i, make_node)
    assert placed, f"{case.name}: no pod was placed, the case tests nothing"
    assert unplaced or case.nodes > 100, f"{case.name}: every pod was placed, no reasons compared"


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


@pytest.mark.parametrize("seed", [31, 32])
@pytest.mark.parametrize("plugin_type", [PodTopologySpread, InterPodAffinity])
def test_filter_and_score_per_node_after_a_table_pre_filter_and_pre_score(
    seed: int, plugin_type: type[PodTopologySpread | InterPodAffinity]
) -> None:
    """PreFilter and PreScore on a table keep per-domain arrays; Filter and
    Score on one node (the per-node path after a table finds nothing, and
    Explain's) read them as the per-node counts: the same status and the
    same score on every node."""
    rng = random.Random(seed)
    names = [f"n-{i:03d}" for i in range(40)]
    cache = Cache()
    for name in names:
        cache.add_node(spreading_node(rng, name))
    plugin = (
        PodTopologySpread(owners_app) if plugin_type is PodTopologySpread else InterPodAffinity()
    )
    compared = scored = 0
    for i in range(400):
        candidate = spreading_pod(rng, i, names)
        placed = Pod()
        placed.CopyFrom(candidate)
        placed.spec.node_name = rng.choice(names)
        cache.assume_pod(placed)
        table = cache.table()
        on_table, per_node = CycleState(), CycleState()
        on_table.node_table = table
        on_table.all_nodes, per_node.all_nodes = table.infos, cache.node_infos()
        _, status = plugin.pre_filter(on_table, candidate, table.infos)
        plugin.pre_filter(per_node, candidate, cache.node_infos())
        if not status.code:
            compared += 1
            for info in table.infos:
                got = plugin.filter(on_table, candidate, info)
                want = plugin.filter(per_node, candidate, info)
                assert got == want, f"seed {seed}: pod {i} on {info.name}: {got} != {want}"
        status = plugin.pre_score(on_table, candidate, table.infos)
        plugin.pre_score(per_node, candidate, cache.node_infos())
        if not status.code:
            scored += 1
            got_scores = [plugin.score(on_table, candidate, n) for n in table.infos]
            want_scores = [plugin.score(per_node, candidate, n) for n in table.infos]
            assert got_scores == want_scores, f"seed {seed}: pod {i}: scores differ"
    assert compared, f"seed {seed}: no pod was filtered"
    assert scored, f"seed {seed}: no pod was scored"


def test_a_spreading_pod_is_filtered_and_scored_on_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Deployment pod (default constraints), one with its own DoNotSchedule
    and ScheduleAnyway constraints and one with a nodeSelector and required
    affinity: none of PodTopologySpread's or NodeAffinity's per-node
    Filter or Score runs on the table path."""
    cache = Cache()
    for i in range(200):
        name = f"n-{i:03d}"
        labels = {"kubernetes.io/hostname": name, ZONE: ZONES[i % 3], "rack": f"r{i % 6}"}
        cache.add_node(node(name, labels=labels, allocatable={"cpu": "32", "pods": "110"}))
    profile = default_profile(default_spread_selector=owners_app)

    def per_node(*args: object) -> NoReturn:
        raise AssertionError("ran per node")

    for plugin in profile.filter:
        if isinstance(plugin, (PodTopologySpread, NodeAffinityPlugin)):
            monkeypatch.setattr(plugin, "filter", per_node)
            monkeypatch.setattr(plugin, "score_nodes", per_node)
    framework = Framework(profile)
    deployment = pod(container({"cpu": "100m"}), name="d", uid="d")
    deployment.metadata.labels["app"] = "web"
    deployment.metadata.owner_references.add(
        api_version="apps/v1", kind="ReplicaSet", name="rs", uid="rs", controller=True
    )
    constrained = pod(container({"cpu": "100m"}), name="c", uid="c", node_selector={"rack": "r1"})
    constrained.metadata.labels["app"] = "db"
    constrained.spec.topology_spread_constraints.extend(
        from_dict(
            TopologySpreadConstraint,
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": when,
                "labelSelector": {"matchLabels": {"app": "db"}},
            },
        )
        for key, when in ((ZONE, "DoNotSchedule"), ("kubernetes.io/hostname", "ScheduleAnyway"))
    )
    draws = random.Random(1)
    for made in (deployment, constrained):
        for n in range(30):
            candidate = Pod()
            candidate.CopyFrom(made)
            candidate.metadata.name = candidate.metadata.uid = f"{made.metadata.name}-{n}"
            result = framework.schedule_table(candidate, cache.table(), draws)
            assert result.node_info is not None, f"{candidate.metadata.name}: not placed"
            candidate.spec.node_name = result.node_info.name
            cache.assume_pod(candidate)


@pytest.mark.parametrize(
    ("name", "of_node", "change", "asked_again"),
    [
        ("pods column, nothing changed", False, "", []),
        ("pods column, a pod assumed", False, "pod", ["n-1"]),
        ("pods column, a node updated", False, "node", ["n-2"]),
        ("node column, a pod assumed", True, "pod", []),
        ("node column, a node updated", True, "node", ["n-2"]),
    ],
)
def test_plugin_columns_recompute_only_the_rows_that_changed(
    name: str, of_node: bool, change: str, asked_again: list[str]
) -> None:
    cache = Cache()
    for i in range(4):
        cache.add_node(node(f"n-{i}", labels={"rack": "r0"}, allocatable={"cpu": "4"}))
    asked: list[str] = []

    def value(info: NodeInfo) -> int:
        asked.append(info.name)
        return info.pod_count * 10 + len(info.labels)

    cache.table().column("key", value, of_node=of_node)
    assert sorted(asked) == ["n-0", "n-1", "n-2", "n-3"], name
    asked.clear()
    if change == "pod":
        cache.assume_pod(pod(container({"cpu": "1"}), name="p", uid="p", node_name="n-1"))
    elif change == "node":
        cache.update_node(node("n-2", labels={"rack": "r0", "x": "y"}, allocatable={"cpu": "4"}))
    got = cache.table().column("key", value, of_node=of_node).tolist()
    assert sorted(asked) == asked_again, name
    fresh = [value(info) for info in cache.table().infos]
    if not of_node or change != "pod":
        assert got == fresh, name


def test_plugin_columns_beyond_the_limit_drop_the_least_recently_used() -> None:
    cache = Cache()
    cache.add_node(node("n-0", allocatable={"cpu": "4"}))
    table = cache.table()
    built: list[int] = []

    def column(k: int) -> None:
        def value(info: NodeInfo) -> int:
            built.append(k)
            return k

        assert table.column(k, value).tolist() == [k]

    for k in range(COLUMN_LIMIT):
        column(k)
    column(0)  # used again: now the most recent
    column(COLUMN_LIMIT)  # one too many: column 1, the least recent, goes
    built.clear()
    column(0)
    column(1)
    assert built == [1], "column 0 kept, column 1 rebuilt"

"""InterPodAffinity, with cases ported from Kubernetes'
pkg/scheduler/framework/plugins/interpodaffinity/filtering_test.go and
scoring_test.go (their names kept where the case is theirs)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Affinity, Pod
from kpy.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Framework,
    NodeInfo,
    NodeScore,
    Status,
    fit_error_message,
    new_status,
)
from kpy.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from kpy.scheduler.profiles import default_profile
from tests.unit.scheduler.sched_builders import node

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kpy.api.core.v1 import Node

AFFINITY = new_status(
    Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) didn't match pod affinity rules"
)
ANTI = new_status(Code.UNSCHEDULABLE, "node(s) didn't match pod anti-affinity rules")
EXISTING = new_status(
    Code.UNSCHEDULABLE, "node(s) didn't satisfy existing pods anti-affinity rules"
)


def term(
    key: str = "security",
    operator: str = "In",
    values: tuple[str, ...] = ("S1",),
    topology: str = "region",
    **extra: Any,
) -> dict[str, Any]:
    expression: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        expression["values"] = list(values)
    return {
        "labelSelector": {"matchExpressions": [expression]},
        "topologyKey": topology,
        **extra,
    }


def affinity(
    *,
    required: list[dict[str, Any]] | None = None,
    anti: list[dict[str, Any]] | None = None,
    preferred: list[tuple[int, dict[str, Any]]] | None = None,
    preferred_anti: list[tuple[int, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if required or preferred:
        out["podAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": required or [],
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": w, "podAffinityTerm": t} for w, t in preferred or []
            ],
        }
    if anti or preferred_anti:
        out["podAntiAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": anti or [],
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": w, "podAffinityTerm": t} for w, t in preferred_anti or []
            ],
        }
    return out


_names = iter(range(1_000_000))


def apod(
    labels: Mapping[str, str] | None = None,
    *,
    node_name: str = "",
    namespace: str = "default",
    name: str = "",
    aff: dict[str, Any] | None = None,
) -> Pod:
    name = name or f"p{next(_names)}"
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "i"}]}
    if node_name:
        spec["nodeName"] = node_name
    made = from_dict(
        Pod,
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{namespace}-{name}",
                "labels": dict(labels or {}),
            },
            "spec": spec,
        },
    )
    if aff:
        made.spec.affinity.CopyFrom(from_dict(Affinity, aff))
    return made


S1 = {"security": "S1"}
S2 = {"security": "S2"}
REGION_R1 = {"region": "r1", "zone": "z11", "kubernetes.io/hostname": "machine1"}
NAMESPACE_LABELS = {"team-a": {"team": "a"}, "team-b": {"team": "b"}, "default": {}}


@dataclass
class FilterCase:
    name: str
    pod: Pod
    existing: list[Pod] = field(default_factory=list)
    node_labels: Mapping[str, str] = field(default_factory=lambda: REGION_R1)
    want: Status = SUCCESS


FILTER_CASES = [
    FilterCase(
        "A pod that has no required pod affinity scheduling rules can schedule onto a node "
        "with no existing pods",
        apod(),
    ),
    FilterCase(
        "satisfies with requiredDuringSchedulingIgnoredDuringExecution in PodAffinity using "
        "In operator that matches the existing pod",
        apod(S2, aff=affinity(required=[term(values=("S1", "value2"))])),
        [apod(S1, node_name="machine1")],
    ),
    FilterCase(
        "satisfies the pod with requiredDuringSchedulingIgnoredDuringExecution in PodAffinity "
        "using not in operator in labelSelector that matches the existing pod",
        apod(S2, aff=affinity(required=[term(operator="NotIn", values=("securityscan3",))])),
        [apod(S1, node_name="machine1")],
    ),
    FilterCase(
        "Does not satisfy the PodAffinity with labelSelector because of diff Namespace",
        apod(S2, aff=affinity(required=[term(namespaces=["DiffNameSpace"])])),
        [apod(S1, node_name="machine1", namespace="ns")],
        want=AFFINITY,
    ),
    FilterCase(
        "Doesn't satisfy the PodAffinity because of unmatching labelSelector with the existing pod",
        apod(S2, aff=affinity(required=[term(values=("antivirusscan",))])),
        [apod(S1, node_name="machine1")],
        want=AFFINITY,
    ),
    FilterCase(
        "satisfies the PodAffinity with different label Operators in multiple "
        "RequiredDuringSchedulingIgnoredDuringExecution",
        apod(
            S2,
            aff=affinity(
                required=[
                    term(operator="Exists", values=()),
                    term(key="wrongkey", operator="DoesNotExist", values=()),
                ]
            ),
        ),
        [apod(S1, node_name="machine1")],
    ),
    FilterCase(
        "The labelSelector requirements (items of matchExpressions) are ANDed, the pod cannot "
        "schedule onto the node because one of the matchExpression items doesn't match",
        apod(
            S2,
            aff=affinity(
                required=[
                    {
                        "labelSelector": {
                            "matchExpressions": [
                                {"key": "security", "operator": "Exists"},
                                {"key": "wrongkey", "operator": "In", "values": ["S1"]},
                            ]
                        },
                        "topologyKey": "region",
                    }
                ]
            ),
        ),
        [apod(S1, node_name="machine1")],
        want=AFFINITY,
    ),
    FilterCase(
        "satisfies the PodAffinity and PodAntiAffinity with the existing pod",
        apod(
            S2,
            aff=affinity(
                required=[term()],
                anti=[term(values=("antivirusscan",), topology="node")],
            ),
        ),
        [apod(S1, node_name="machine1")],
    ),
    FilterCase(
        "satisfies the PodAffinity but doesn't satisfy the PodAntiAffinity with the existing pod",
        apod(S2, aff=affinity(required=[term()], anti=[term(topology="zone")])),
        [apod(S1, node_name="machine1")],
        want=ANTI,
    ),
    FilterCase(
        "satisfies the PodAffinity and PodAntiAffinity but doesn't satisfy PodAntiAffinity "
        "symmetry with the existing pod",
        apod(S1, aff=affinity(required=[term()])),
        [apod(S1, node_name="machine1", aff=affinity(anti=[term(topology="zone")]))],
        want=EXISTING,
    ),
    FilterCase(
        "pod matches its own Label in PodAffinity and that matches the existing pod Labels",
        apod(S1, aff=affinity(required=[term(values=("S2",))])),
        [apod(S2, node_name="machine1")],
    ),
    FilterCase(
        "verify that PodAntiAffinity from existing pod is respected when pod has no "
        "AntiAffinity constraints. doesn't satisfy PodAntiAffinity symmetry with the "
        "existing pod",
        apod(S1),
        [apod(S1, node_name="machine1", aff=affinity(anti=[term(topology="zone")]))],
        want=EXISTING,
    ),
    FilterCase(
        "verify that PodAntiAffinity from existing pod is respected when pod has no "
        "AntiAffinity constraints. satisfy PodAntiAffinity symmetry with the existing pod",
        apod(S1),
        [
            apod(
                S2, node_name="machine1", aff=affinity(anti=[term(values=("S2",), topology="zone")])
            )
        ],
    ),
    FilterCase(
        "an existing pod's anti-affinity on a key the node lacks does not count",
        apod(S1),
        [apod(S2, node_name="machine1", aff=affinity(anti=[term(topology="rack")]))],
    ),
    FilterCase(
        "the node lacks the topology key of a required affinity term",
        apod(S1, aff=affinity(required=[term(topology="rack")])),
        [apod(S1, node_name="machine1")],
        want=AFFINITY,
    ),
    FilterCase(
        "the first pod of a group that matches its own affinity term may schedule",
        apod(S1, aff=affinity(required=[term()])),
    ),
    FilterCase(
        "a pod whose affinity term matches nothing, not even itself, may not",
        apod(S2, aff=affinity(required=[term()])),
        want=AFFINITY,
    ),
    FilterCase(
        "the first pod of a group still needs the topology key on the node",
        apod(S1, aff=affinity(required=[term(topology="rack")])),
        want=AFFINITY,
    ),
    FilterCase(
        "anti-affinity on hostname against a pod on the node",
        apod(S1, aff=affinity(anti=[term(topology="kubernetes.io/hostname")])),
        [apod(S1, node_name="machine1")],
        want=ANTI,
    ),
    FilterCase(
        "anti-affinity against a pod of another namespace does not count",
        apod(S1, aff=affinity(anti=[term(topology="kubernetes.io/hostname")])),
        [apod(S1, node_name="machine1", namespace="team-a")],
    ),
    FilterCase(
        "namespaceSelector picks the existing pod's namespace by its labels",
        apod(
            S2,
            aff=affinity(required=[term(namespaceSelector={"matchLabels": {"team": "a"}})]),
        ),
        [apod(S1, node_name="machine1", namespace="team-a")],
    ),
    FilterCase(
        "namespaceSelector that matches another namespace's labels",
        apod(
            S2,
            aff=affinity(required=[term(namespaceSelector={"matchLabels": {"team": "b"}})]),
        ),
        [apod(S1, node_name="machine1", namespace="team-a")],
        want=AFFINITY,
    ),
    FilterCase(
        "an empty namespaceSelector matches every namespace",
        apod(S1, aff=affinity(anti=[term(topology="region", namespaceSelector={})])),
        [apod(S1, node_name="machine1", namespace="team-b")],
        want=ANTI,
    ),
    FilterCase(
        "an existing pod's namespaceSelector is matched against the incoming pod's namespace",
        apod(S1, namespace="team-a"),
        [
            apod(
                S2,
                node_name="machine1",
                aff=affinity(anti=[term(namespaceSelector={"matchLabels": {"team": "a"}})]),
            )
        ],
        want=EXISTING,
    ),
    FilterCase(
        "matchLabelKeys narrows the selector to the pod's own value",
        apod(
            {**S1, "version": "v2"},
            aff=affinity(
                anti=[term(topology="kubernetes.io/hostname", matchLabelKeys=["version"])]
            ),
        ),
        [apod({**S1, "version": "v1"}, node_name="machine1")],
    ),
    FilterCase(
        "mismatchLabelKeys keeps away from pods with another value",
        apod(
            {"tenant": "x"},
            aff=affinity(
                anti=[
                    {
                        "labelSelector": {
                            "matchExpressions": [{"key": "tenant", "operator": "Exists"}]
                        },
                        "topologyKey": "region",
                        "mismatchLabelKeys": ["tenant"],
                    }
                ]
            ),
        ),
        [apod({"tenant": "y"}, node_name="machine1")],
        want=ANTI,
    ),
]


def plugin() -> InterPodAffinity:
    return InterPodAffinity(NAMESPACE_LABELS.get)


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: c.name)
def test_filter(case: FilterCase) -> None:
    info = NodeInfo(node("machine1", labels=case.node_labels), case.existing)
    p, state = plugin(), CycleState()
    _, status = p.pre_filter(state, case.pod, [info])
    if status.is_skip():
        assert case.want == SUCCESS, case.name
        return
    assert status.is_success(), case.name
    assert p.filter(state, case.pod, info) == case.want, case.name


def test_an_unparsable_selector_is_an_error_for_the_incoming_pod_only() -> None:
    bad = affinity(anti=[term(operator="Near")])
    info = NodeInfo(node("machine1", labels=REGION_R1), [apod(S1, node_name="machine1", aff=bad)])
    _, status = plugin().pre_filter(CycleState(), apod(S1), [info])
    assert status.is_skip(), "the existing pod's bad term is ignored"
    _, status = plugin().pre_filter(CycleState(), apod(S1, aff=bad), [info])
    assert status.code is Code.ERROR
    assert '"Near" is not a valid label selector operator' in status.message()


CHINA = {"region": "China"}
INDIA = {"region": "India"}
AZ1 = {"az": "az1"}


@dataclass
class ScoreCase:
    name: str
    pod: Pod
    existing: list[Pod]
    nodes: list[tuple[str, Mapping[str, str]]]
    want: list[int]


THREE_NODES = [("machine1", CHINA), ("machine2", INDIA), ("machine3", AZ1)]
SCORE_CASES = [
    ScoreCase(
        "all machines are same priority as Affinity is nil",
        apod(S1),
        [],
        THREE_NODES,
        [0, 0, 0],
    ),
    ScoreCase(
        "Affinity: pod that matches topology key & pods in nodes will get high score "
        "comparing to others which doesn't match either pods in nodes or in topology key",
        apod(S1, aff=affinity(preferred=[(5, term())])),
        [
            apod(S1, node_name="machine1"),
            apod(S2, node_name="machine2"),
            apod(S1, node_name="machine3"),
        ],
        THREE_NODES,
        [100, 0, 0],
    ),
    ScoreCase(
        "Affinity: nodes in one region with a matching pod all score high",
        apod(S1, aff=affinity(preferred=[(5, term())])),
        [apod(S1, node_name="machine1")],
        [("machine1", CHINA), ("machine2", CHINA), ("machine3", INDIA)],
        [100, 100, 0],
    ),
    ScoreCase(
        "Anti Affinity: pod that does not match existing pods in node will get high score",
        apod(S1, aff=affinity(preferred_anti=[(5, term())])),
        [apod(S1, node_name="machine1"), apod(S1, node_name="machine2")],
        [("machine1", AZ1 | CHINA), ("machine2", CHINA), ("machine3", INDIA)],
        [0, 0, 100],
    ),
    ScoreCase(
        "Affinity symmetry: considered only the preferredDuringSchedulingIgnoredDuringExecution "
        "in pod affinity symmetry",
        apod(S1),
        [
            apod(S2, node_name="machine1", aff=affinity(preferred=[(5, term())])),
            apod(S2, node_name="machine2"),
        ],
        [("machine1", CHINA), ("machine2", INDIA), ("machine3", AZ1)],
        [100, 0, 0],
    ),
    ScoreCase(
        "Affinity symmetry: considered RequiredDuringSchedulingIgnoredDuringExecution in pod "
        "affinity symmetry",
        apod(S1),
        [apod(S2, node_name="machine1", aff=affinity(required=[term()]))],
        [("machine1", CHINA), ("machine2", INDIA), ("machine3", AZ1)],
        [100, 0, 0],
    ),
    ScoreCase(
        "Anti Affinity symmetry: the existing pods in node which has anti affinity match will "
        "get high score",
        apod(S1),
        [apod(S2, node_name="machine1", aff=affinity(preferred_anti=[(5, term(topology="az"))]))],
        [("machine1", AZ1), ("machine2", INDIA)],
        [0, 100],
    ),
]


@pytest.mark.parametrize("case", SCORE_CASES, ids=lambda c: c.name)
def test_score(case: ScoreCase) -> None:
    by_node: dict[str, list[Pod]] = {}
    for p in case.existing:
        by_node.setdefault(p.spec.node_name, []).append(p)
    infos = [NodeInfo(node(n, labels=labels), by_node.get(n, [])) for n, labels in case.nodes]
    pl, state = plugin(), CycleState()
    state.all_nodes = infos
    status = pl.pre_score(state, case.pod, infos)
    if status.is_skip():
        assert case.want == [0] * len(infos), case.name
        return
    assert status.is_success(), case.name
    scores = []
    for info in infos:
        value, status = pl.score(state, case.pod, info)
        assert status.is_success(), case.name
        scores.append(NodeScore(info.name, value))
    assert pl.normalize_score(state, case.pod, scores).is_success()
    assert [s.score for s in scores] == case.want, case.name


def _nodes(count: int) -> list[Node]:
    return [
        node(
            f"node-{i}", labels={"kubernetes.io/hostname": f"node-{i}"}, allocatable={"pods": "10"}
        )
        for i in range(count)
    ]


def test_required_anti_affinity_on_hostname_spreads_replicas_and_leaves_one_pending() -> None:
    framework = Framework(default_profile())
    infos = [NodeInfo(n) for n in _nodes(3)]
    anti = affinity(anti=[term(key="app", values=("web",), topology="kubernetes.io/hostname")])
    placed = []
    for i in range(4):
        replica = apod({"app": "web"}, name=f"web-{i}", aff=anti)
        result = framework.schedule_pod(replica, infos, random.Random(i))
        if result.node_info is None:
            message = fit_error_message(len(infos), result.diagnosis)
            assert message == (
                "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
            )
            break
        replica.spec.node_name = result.node_info.name
        result.node_info.add_pod(replica)
        placed.append(result.node_info.name)
    assert sorted(placed) == ["node-0", "node-1", "node-2"]


def test_preferred_affinity_draws_a_pod_to_its_peer_despite_the_equivalence_cache() -> None:
    framework = Framework(default_profile())
    infos = [NodeInfo(n) for n in _nodes(3)]
    near = affinity(
        preferred=[(100, term(key="app", values=("db",), topology="kubernetes.io/hostname"))]
    )
    # Prime the equivalence cache for the pod class before its peer exists.
    assert framework.schedule_pod(apod({"app": "web"}, aff=near), infos, random.Random(0)).node_info
    infos[2].add_pod(apod({"app": "db"}, node_name="node-2"))
    for seed in range(5):
        result = framework.schedule_pod(apod({"app": "web"}, aff=near), infos, random.Random(seed))
        assert result.node_info is not None
        assert result.node_info.name == "node-2"

"""NodeAffinity, with cases ported from Kubernetes'
pkg/scheduler/framework/plugins/nodeaffinity/node_affinity_test.go."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kpy.api.core.v1 import NodeAffinity as NodeAffinityArgs
from kpy.api.core.v1 import NodeSelector, Pod, PreferredSchedulingTerm
from kpy.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    NodeInfo,
    NodeScore,
    PreFilterResult,
    Status,
    new_status,
)
from kpy.scheduler.plugins.node_affinity import (
    ERR_REASON_CONFLICT,
    ERR_REASON_ENFORCED,
    ERR_REASON_POD,
    NodeAffinity,
)
from tests.unit.scheduler.sched_builders import node, pod, preferred, req, required, term

REJECTED = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_POD)
SKIP = new_status(Code.SKIP)
NAME = "metadata.name"


def added_required(*terms: object) -> NodeAffinityArgs:
    return NodeAffinityArgs(
        required_during_scheduling_ignored_during_execution=NodeSelector(
            node_selector_terms=list(terms)  # type: ignore[arg-type]
        )
    )


@dataclass
class FilterCase:
    name: str
    pod: Pod
    labels: dict[str, str] = field(default_factory=dict)
    node_name: str = ""
    want_status: Status = SUCCESS
    want_pre_filter_status: Status = SUCCESS
    want_pre_filter_result: PreFilterResult | None = None
    added: NodeAffinityArgs | None = None
    run_pre_filter: bool = True


FILTER_CASES = [
    FilterCase("missing labels", pod(node_selector={"foo": "bar"}), want_status=REJECTED),
    FilterCase("same labels", pod(node_selector={"foo": "bar"}), labels={"foo": "bar"}),
    FilterCase(
        "node labels are superset",
        pod(node_selector={"foo": "bar"}),
        labels={"foo": "bar", "baz": "blah"},
    ),
    FilterCase(
        "node labels are subset",
        pod(node_selector={"foo": "bar", "baz": "blah"}),
        labels={"foo": "bar"},
        want_status=REJECTED,
    ),
    FilterCase(
        "In operator that matches the existing node",
        pod(affinity=required(term(req("foo", "In", "bar", "value2")))),
        labels={"foo": "bar"},
    ),
    FilterCase(
        "Gt operator that matches the existing node",
        pod(affinity=required(term(req("kernel-version", "Gt", "0204")))),
        labels={"kernel-version": "0206"},
    ),
    FilterCase(
        "Lt operator that does not match",
        pod(affinity=required(term(req("kernel-version", "Lt", "0204")))),
        labels={"kernel-version": "0206"},
        want_status=REJECTED,
    ),
    FilterCase(
        "Gt with a non-integer label never matches",
        pod(affinity=required(term(req("kernel-version", "Gt", "1")))),
        labels={"kernel-version": "two"},
        want_status=REJECTED,
    ),
    FilterCase(
        "NotIn operator that matches the existing node",
        pod(affinity=required(term(req("mem-type", "NotIn", "DDR", "DDR2")))),
        labels={"mem-type": "DDR3"},
    ),
    FilterCase(
        "NotIn matches a node without the label",
        pod(affinity=required(term(req("mem-type", "NotIn", "DDR")))),
    ),
    FilterCase(
        "Exists operator that matches the existing node",
        pod(affinity=required(term(req("GPU", "Exists")))),
        labels={"GPU": "NVIDIA-GRID-K1"},
    ),
    FilterCase(
        "DoesNotExist rejects a node with the label",
        pod(affinity=required(term(req("GPU", "DoesNotExist")))),
        labels={"GPU": "NVIDIA-GRID-K1"},
        want_status=REJECTED,
    ),
    FilterCase(
        "affinity that doesn't match node's labels won't schedule onto the node",
        pod(affinity=required(term(req("foo", "In", "value1", "value2")))),
        labels={"foo": "bar"},
        want_status=REJECTED,
    ),
    FilterCase(
        "empty MatchExpressions will match no objects",
        pod(affinity=required(term())),
        labels={"foo": "bar"},
        want_status=REJECTED,
    ),
    FilterCase(
        "an empty term list matches no node",
        pod(affinity=required()),
        labels={"foo": "bar"},
        want_status=REJECTED,
    ),
    FilterCase(
        "no Affinity will schedule onto a node",
        pod(),
        labels={"foo": "bar"},
        want_pre_filter_status=SKIP,
    ),
    FilterCase(
        "multiple matchExpressions ANDed that matches the existing node",
        pod(affinity=required(term(req("GPU", "Exists"), req("GPU", "NotIn", "AMD", "INTER")))),
        labels={"GPU": "NVIDIA-GRID-K1"},
    ),
    FilterCase(
        "multiple matchExpressions ANDed that doesn't match the existing node",
        pod(affinity=required(term(req("GPU", "Exists"), req("GPU", "In", "AMD", "INTER")))),
        labels={"GPU": "NVIDIA-GRID-K1"},
        want_status=REJECTED,
    ),
    FilterCase(
        "multiple NodeSelectorTerms ORed, one matches",
        pod(
            affinity=required(
                term(req("foo", "In", "bar", "value2")),
                term(req("diffkey", "In", "wrong", "value2")),
            )
        ),
        labels={"foo": "bar"},
    ),
    FilterCase(
        "Affinity and nodeSelector both satisfied",
        pod(node_selector={"foo": "bar"}, affinity=required(term(req("foo", "Exists")))),
        labels={"foo": "bar"},
    ),
    FilterCase(
        "Affinity matches but nodeSelector is not satisfied",
        pod(node_selector={"foo": "bar"}, affinity=required(term(req("foo", "Exists")))),
        labels={"foo": "barrrrrr"},
        want_status=REJECTED,
    ),
    FilterCase(
        "an invalid value in an Affinity term won't be scheduled onto the node",
        pod(affinity=required(term(req("foo", "NotIn", "invalid value: ___@#$%^")))),
        labels={"foo": "bar"},
        want_status=REJECTED,
    ),
    FilterCase(
        "an invalid term does not stop a valid one from matching",
        pod(affinity=required(term(req("foo", "Bogus", "x")), term(req("foo", "In", "bar")))),
        labels={"foo": "bar"},
    ),
    FilterCase(
        "matchFields In that matches the existing node",
        pod(affinity=required(term(fields=[req(NAME, "In", "node1")]))),
        node_name="node1",
        want_pre_filter_result=PreFilterResult(frozenset({"node1"})),
    ),
    FilterCase(
        "matchFields In that does not match the existing node",
        pod(affinity=required(term(fields=[req(NAME, "In", "node1")]))),
        node_name="node2",
        want_status=REJECTED,
        want_pre_filter_result=PreFilterResult(frozenset({"node1"})),
    ),
    FilterCase(
        "matchFields NotIn rejects the named node",
        pod(affinity=required(term(fields=[req(NAME, "NotIn", "node1")]))),
        node_name="node1",
        want_status=REJECTED,
    ),
    FilterCase(
        "two terms: matchFields does not match, but matchExpressions matches",
        pod(
            affinity=required(
                term(fields=[req(NAME, "In", "node1"), req(NAME, "In", "node2")]),
                term(req("foo", "In", "bar")),
            )
        ),
        node_name="node2",
        labels={"foo": "bar"},
    ),
    FilterCase(
        "one term: matchFields does not match, but matchExpressions matches",
        pod(affinity=required(term(req("foo", "In", "bar"), fields=[req(NAME, "In", "node1")]))),
        node_name="node2",
        labels={"foo": "bar"},
        want_status=REJECTED,
        want_pre_filter_result=PreFilterResult(frozenset({"node1"})),
    ),
    FilterCase(
        "one term: both matchFields and matchExpressions match",
        pod(affinity=required(term(req("foo", "In", "bar"), fields=[req(NAME, "In", "node1")]))),
        node_name="node1",
        labels={"foo": "bar"},
        want_pre_filter_result=PreFilterResult(frozenset({"node1"})),
    ),
    FilterCase(
        "two terms: both matchFields and matchExpressions do not match",
        pod(
            affinity=required(
                term(fields=[req(NAME, "In", "node1")]),
                term(req("foo", "In", "not-match-to-bar")),
            )
        ),
        node_name="node2",
        labels={"foo": "bar"},
        want_status=REJECTED,
    ),
    FilterCase(
        "two terms of node.Name affinity",
        pod(
            affinity=required(
                term(fields=[req(NAME, "In", "node1")]),
                term(fields=[req(NAME, "In", "node2")]),
            )
        ),
        node_name="node2",
        want_pre_filter_result=PreFilterResult(frozenset({"node1", "node2"})),
    ),
    FilterCase(
        "two conflicting match field requirements",
        pod(affinity=required(term(fields=[req(NAME, "In", "node1"), req(NAME, "In", "node2")]))),
        node_name="node2",
        labels={"foo": "bar"},
        want_pre_filter_status=new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_CONFLICT),
        want_status=REJECTED,
    ),
    FilterCase(
        "matches added affinity and Pod's node affinity",
        pod(affinity=required(term(req("zone", "In", "foo")))),
        node_name="node2",
        labels={"zone": "foo"},
        added=added_required(term(fields=[req(NAME, "In", "node2")])),
    ),
    FilterCase(
        "matches added affinity but not Pod's node affinity",
        pod(affinity=required(term(req("zone", "In", "bar")))),
        node_name="node2",
        labels={"zone": "foo"},
        added=added_required(term(fields=[req(NAME, "In", "node2")])),
        want_status=REJECTED,
    ),
    FilterCase(
        "doesn't match added affinity",
        pod(),
        node_name="node2",
        labels={"zone": "foo"},
        added=added_required(term(req("zone", "In", "bar"))),
        want_status=new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_ENFORCED),
    ),
    FilterCase(
        "matches node selector correctly even if PreFilter is not called",
        pod(node_selector={"foo": "bar"}),
        labels={"foo": "bar", "baz": "blah"},
        run_pre_filter=False,
    ),
    FilterCase(
        "matches node affinity correctly even if PreFilter is not called",
        pod(affinity=required(term(req("GPU", "Exists"), req("GPU", "NotIn", "AMD", "INTER")))),
        labels={"GPU": "NVIDIA-GRID-K1"},
        run_pre_filter=False,
    ),
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: c.name)
def test_filter(case: FilterCase) -> None:
    plugin = NodeAffinity(added_affinity=case.added)
    node_info = NodeInfo(node(case.node_name, labels=case.labels))
    state = CycleState()
    if case.run_pre_filter:
        result, status = plugin.pre_filter(state, case.pod, [node_info])
        assert status == case.want_pre_filter_status, case.name
        assert result == case.want_pre_filter_result, case.name
    assert plugin.filter(state, case.pod, node_info) == case.want_status, case.name


LABEL1 = {"foo": "bar"}
LABEL2 = {"key": "value"}
LABEL3 = {"az": "az1"}
LABEL4 = {"abc": "az11", "def": "az22"}
LABEL5 = {"foo": "bar", "key": "value", "az": "az1"}
AFFINITY1 = preferred((2, term(req("foo", "In", "bar"))))
AFFINITY2 = preferred(
    (2, term(req("foo", "In", "bar"))),
    (4, term(req("key", "In", "value"))),
    (5, term(req("foo", "In", "bar"), req("key", "In", "value"), req("az", "In", "az1"))),
)


@dataclass
class ScoreCase:
    name: str
    pod: Pod
    nodes: list[tuple[str, dict[str, str]]]
    expected: list[int]
    added: NodeAffinityArgs | None = None
    run_pre_score: bool = True


SCORE_CASES = [
    ScoreCase(
        "all nodes are same priority as NodeAffinity is nil",
        pod(),
        [("node1", LABEL1), ("node2", LABEL2), ("node3", LABEL3)],
        [0, 0, 0],
    ),
    ScoreCase(
        "no node matches preferred scheduling requirements so all nodes' priority is zero",
        pod(affinity=AFFINITY1),
        [("node1", LABEL4), ("node2", LABEL2), ("node3", LABEL3)],
        [0, 0, 0],
    ),
    ScoreCase(
        "only node1 matches the preferred scheduling requirements of pod",
        pod(affinity=AFFINITY1),
        [("node1", LABEL1), ("node2", LABEL2), ("node3", LABEL3)],
        [100, 0, 0],
    ),
    ScoreCase(
        "all nodes match the preferred scheduling requirements but with different priorities",
        pod(affinity=AFFINITY2),
        [("node1", LABEL1), ("node5", LABEL5), ("node2", LABEL2)],
        [18, 100, 36],
    ),
    ScoreCase(
        "added affinity",
        pod(),
        [("node1", LABEL1), ("node2", LABEL2)],
        [100, 0],
        added=AFFINITY1.node_affinity,
    ),
    ScoreCase(
        "added affinity and pod has default affinity",
        pod(affinity=AFFINITY1),
        [("node1", LABEL1), ("node2", LABEL2), ("node3", LABEL5)],
        [40, 60, 100],
        added=NodeAffinityArgs(
            preferred_during_scheduling_ignored_during_execution=[
                PreferredSchedulingTerm(weight=3, preference=term(req("key", "In", "value")))
            ]
        ),
    ),
    ScoreCase(
        "calculate the priorities correctly even if PreScore is not called",
        pod(affinity=AFFINITY2),
        [("node1", LABEL1), ("node5", LABEL5), ("node2", LABEL2)],
        [18, 100, 36],
        run_pre_score=False,
    ),
    ScoreCase(
        "zero-weight and empty preferred terms are ignored",
        pod(affinity=preferred((0, term(req("foo", "In", "bar"))), (7, term()))),
        [("node1", LABEL1), ("node2", LABEL2)],
        [0, 0],
    ),
]


@pytest.mark.parametrize("case", SCORE_CASES, ids=lambda c: c.name)
def test_score(case: ScoreCase) -> None:
    plugin = NodeAffinity(added_affinity=case.added)
    infos = [NodeInfo(node(name, labels=labels)) for name, labels in case.nodes]
    state = CycleState()
    if case.run_pre_score:
        status = plugin.pre_score(state, case.pod, infos)
        assert status.is_success() or status.is_skip(), case.name
    scores = []
    for info in infos:
        value, status = plugin.score(state, case.pod, info)
        assert status.is_success(), case.name
        scores.append(NodeScore(info.name, value))
    batch, status = plugin.score_nodes(state, case.pod, infos)
    assert status.is_success()
    assert batch == [s.score for s in scores], "score_nodes agrees with score"
    assert plugin.normalize_score(state, case.pod, scores).is_success()
    assert [s.score for s in scores] == case.expected, case.name


def test_pre_score_skips_a_pod_without_preferences() -> None:
    assert NodeAffinity().pre_score(CycleState(), pod(), []) == SKIP


def test_pre_score_reports_an_invalid_preferred_term_as_an_error() -> None:
    bad = pod(affinity=preferred((1, term(req("foo", "Gt", "not-a-number")))))
    status = NodeAffinity().pre_score(CycleState(), bad, [])
    assert status.code is Code.ERROR


def test_invalid_added_affinity_is_refused() -> None:
    with pytest.raises(ValueError, match="addedAffinity"):
        NodeAffinity(added_affinity=added_required(term(req("foo", "Gt", "x"))))

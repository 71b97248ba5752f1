"""NodeAffinity: spec.nodeSelector and required node affinity filter nodes;
preferred node affinity scores them.

Mirrors kube-scheduler's nodeaffinity plugin; the matching itself
(nodeSelector AND required terms, operators, matchFields on metadata.name) is
component-helpers' and lives in `kpy.api.nodeaffinity`.

- PreFilter skips the plugin for a pod with neither nodeSelector nor required
  affinity, and narrows the candidate nodes when every term pins
  metadata.name with In ("pod affinity terms conflict" when they cannot all
  hold). Filter: "node(s) didn't match Pod's node affinity/selector",
  UnschedulableAndUnresolvable.
- Score: the sum of the weights of the preferred terms the node matches
  (terms with weight 0 or empty are ignored; one that does not parse is an
  Error), normalized so the best node scores 100.
- `added_affinity` is kube-scheduler's NodeAffinityArgs.addedAffinity: a
  profile-wide affinity every pod must also satisfy ("node(s) didn't match
  scheduler-enforced node affinity") and whose preferences add to the score.

On a NodeTable, a distinct required affinity (nodeSelector included) and a
distinct set of preferred terms each become a column of the table, worked
out once per node and again only for nodes whose Node object changed
(`required_mask`, which PodTopologySpread's nodeAffinityPolicy reads too),
so `filter_table` and `score_table` are array operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.api.nodeaffinity import (
    OBJECT_NAME_FIELD,
    RequiredNodeAffinity,
    Term,
    any_term_matches,
    parse_preferred,
    parse_terms,
    required_node_affinity,
    required_node_selector,
    score_terms,
)
from kpy.scheduler.framework import (
    MAX_NODE_SCORE,
    SUCCESS,
    Code,
    PreFilterResult,
    Status,
    as_status,
    default_normalize_score,
    default_normalize_table,
    new_status,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core import v1
    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import (
        BoolArray,
        CycleState,
        IntArray,
        NodeInfo,
        NodeScore,
        NodeTable,
    )

__all__ = [
    "ERR_REASON_CONFLICT",
    "ERR_REASON_ENFORCED",
    "ERR_REASON_POD",
    "NAME",
    "NodeAffinity",
    "RequiredNodeAffinity",
    "required_mask",
    "required_node_affinity",
]

NAME: Final = "NodeAffinity"
ERR_REASON_POD: Final = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_ENFORCED: Final = "node(s) didn't match scheduler-enforced node affinity"
ERR_REASON_CONFLICT: Final = "pod affinity terms conflict"

_PRE_FILTER_KEY: Final = "PreFilter" + NAME
_PRE_SCORE_KEY: Final = "PreScore" + NAME
_REJECTED: Final = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_POD)
_REJECTED_ENFORCED: Final = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_ENFORCED)
_SKIP: Final = new_status(Code.SKIP)


def _pod_preferred(pod: Pod) -> tuple[tuple[int, Term], ...] | None:
    spec = pod.spec
    if not spec.HasField("affinity") or not spec.affinity.HasField("node_affinity"):
        return None
    preferred = spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    return parse_preferred(preferred) if preferred else None


def _names_pinned(required: v1.NodeSelector) -> frozenset[str] | None:
    """The node names the terms allow when every term pins metadata.name with
    In (their union; each term's pins intersected), else None (any node)."""
    names: frozenset[str] | None = None
    for term in required.node_selector_terms:
        term_names: frozenset[str] | None = None
        for r in term.match_fields:
            if r.key == OBJECT_NAME_FIELD and r.operator == "In":
                pinned = frozenset(r.values)
                term_names = pinned if term_names is None else term_names & pinned
        if term_names is None:
            return None
        names = term_names if names is None else names | term_names
    return names


def required_mask(table: NodeTable, required: RequiredNodeAffinity) -> BoolArray | None:
    """`required.matches(labels, name)` per row of the table (None when it
    holds everywhere: no nodeSelector and no required terms)."""
    if not required.node_selector and required.terms is None:
        return None
    column = table.column(
        (NAME, required), lambda i: required.matches(i.labels, i.name), of_node=True
    )
    mask: BoolArray = column != 0
    return mask


def _terms_mask(table: NodeTable, terms: tuple[Term, ...]) -> BoolArray:
    column = table.column(
        (NAME, "terms", terms), lambda i: any_term_matches(terms, i.labels, i.name), of_node=True
    )
    mask: BoolArray = column != 0
    return mask


@dataclass(frozen=True, slots=True)
class _PreScoreState:
    preferred: tuple[tuple[int, Term], ...]


class NodeAffinity:
    name: Final = NAME

    def __init__(self, *, added_affinity: v1.NodeAffinity | None = None) -> None:
        """`added_affinity`: see the module docstring. Raises ValueError if it
        does not parse, as kube-scheduler refuses such a configuration."""
        self._added_required: tuple[Term, ...] | None = None
        self._added_preferred: tuple[tuple[int, Term], ...] | None = None
        if added_affinity is None:
            return
        if added_affinity.HasField("required_during_scheduling_ignored_during_execution"):
            required = added_affinity.required_during_scheduling_ignored_during_execution
            terms = parse_terms(required.node_selector_terms)
            if errors := [e for t in terms for e in t.errors]:
                raise ValueError(f"addedAffinity.required: {'; '.join(errors)}")
            self._added_required = terms
        preferred = added_affinity.preferred_during_scheduling_ignored_during_execution
        if preferred:
            self._added_preferred = parse_preferred(preferred)

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        required = required_node_selector(pod)
        if required is None and self._added_required is None and not pod.spec.node_selector:
            return None, _SKIP
        state.write(_PRE_FILTER_KEY, required_node_affinity(pod))
        if required is None or not required.node_selector_terms:
            return None, SUCCESS
        names = _names_pinned(required)
        if names is None:
            return None, SUCCESS
        if not names:
            return None, new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_CONFLICT)
        return PreFilterResult(names), SUCCESS

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        labels, name = node_info.labels, node_info.name
        if self._added_required is not None and not any_term_matches(
            self._added_required, labels, name
        ):
            return _REJECTED_ENFORCED
        required = state.get(_PRE_FILTER_KEY)
        if not isinstance(required, RequiredNodeAffinity):
            # PreFilter did not run (a direct call): work it out here.
            required = required_node_affinity(pod)
        return SUCCESS if required.matches(labels, name) else _REJECTED

    def filter_table(self, state: CycleState, pod: Pod, table: NodeTable) -> BoolArray:
        passes: BoolArray | None = None
        if self._added_required is not None:
            passes = _terms_mask(table, self._added_required)
        required = state.get(_PRE_FILTER_KEY)
        if not isinstance(required, RequiredNodeAffinity):
            required = required_node_affinity(pod)
        mask = required_mask(table, required)
        if mask is not None:
            passes = mask if passes is None else passes & mask
        return table.everywhere() if passes is None else passes

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        try:
            preferred = _pod_preferred(pod)
        except ValueError as err:
            return as_status(err)
        if preferred is None and self._added_preferred is None:
            return _SKIP
        state.write(_PRE_SCORE_KEY, _PreScoreState(preferred or ()))
        return SUCCESS

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        scores, status = self.score_nodes(state, pod, (node_info,))
        return (scores[0] if scores else 0), status

    def score_nodes(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        s = state.get(_PRE_SCORE_KEY)
        if not isinstance(s, _PreScoreState):
            try:
                s = _PreScoreState(_pod_preferred(pod) or ())
            except ValueError as err:
                return [0] * len(nodes), as_status(err)
        terms = (*(self._added_preferred or ()), *s.preferred)
        return [score_terms(terms, n.labels, n.name) for n in nodes], SUCCESS

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        return default_normalize_score(MAX_NODE_SCORE, False, scores)

    def score_table(
        self, state: CycleState, pod: Pod, table: NodeTable, rows: IntArray
    ) -> IntArray | None:
        s = state.get(_PRE_SCORE_KEY)
        if not isinstance(s, _PreScoreState):
            return None
        terms = (*(self._added_preferred or ()), *s.preferred)
        if any(weight < 0 for weight, _ in terms):
            return None  # default_normalize_table wants scores that are not negative
        raw = table.column(
            (NAME, "preferred", terms),
            lambda i: score_terms(terms, i.labels, i.name),
            of_node=True,
        )
        return default_normalize_table(MAX_NODE_SCORE, False, raw[rows])

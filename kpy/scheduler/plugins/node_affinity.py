"""NodeAffinity: spec.nodeSelector and required node affinity filter nodes;
preferred node affinity scores them.

Mirrors kube-scheduler's nodeaffinity plugin and component-helpers'
scheduling/corev1/nodeaffinity:

- nodeSelector (every key=value present on the node) AND required affinity.
- Required affinity: terms are OR'ed, a term's expressions AND'ed. An empty
  term list matches nothing; an empty term (no expressions, no fields) matches
  nothing; a term that does not parse (unknown operator, In without values,
  Gt/Lt without one integer, an invalid label value) matches nothing while
  the other terms still count.
- Operators In / NotIn / Exists / DoesNotExist / Gt / Lt on labels (NotIn and
  DoesNotExist match a node without the label; Gt/Lt compare integers).
  matchFields supports only metadata.name with In or NotIn and one value, and
  is ignored for a node without a name.
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.api.labels import Operator, Selector, new_requirement
from kpy.scheduler.framework import (
    MAX_NODE_SCORE,
    SUCCESS,
    Code,
    PreFilterResult,
    Status,
    as_status,
    default_normalize_score,
    new_status,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kpy.api.core import v1
    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import CycleState, NodeInfo, NodeScore

__all__ = [
    "ERR_REASON_CONFLICT",
    "ERR_REASON_ENFORCED",
    "ERR_REASON_POD",
    "NAME",
    "NodeAffinity",
    "RequiredNodeAffinity",
    "required_node_affinity",
]

NAME: Final = "NodeAffinity"
ERR_REASON_POD: Final = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_ENFORCED: Final = "node(s) didn't match scheduler-enforced node affinity"
ERR_REASON_CONFLICT: Final = "pod affinity terms conflict"
OBJECT_NAME_FIELD: Final = "metadata.name"

_PRE_FILTER_KEY: Final = "PreFilter" + NAME
_PRE_SCORE_KEY: Final = "PreScore" + NAME
_REJECTED: Final = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_POD)
_REJECTED_ENFORCED: Final = new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_ENFORCED)
_SKIP: Final = new_status(Code.SKIP)

_LABEL_OPERATORS: Final = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
    "Gt": Operator.GREATER_THAN,
    "Lt": Operator.LESS_THAN,
}


# --- parsed node selector terms ---


@dataclass(frozen=True, slots=True)
class _Term:
    labels: Selector | None
    # (field, must equal?, value): In -> equal, NotIn -> not equal.
    fields: tuple[tuple[str, bool, str], ...] | None
    errors: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        if self.errors:
            return False
        if self.labels is not None and not self.labels.matches(labels):
            return False
        if self.fields is not None and name:
            for field, equal, value in self.fields:
                have = name if field == OBJECT_NAME_FIELD else ""
                if (have == value) != equal:
                    return False
        return True


def _parse_expressions(
    exprs: Iterable[v1.NodeSelectorRequirement], errors: list[str]
) -> Selector | None:
    requirements = []
    for i, expr in enumerate(exprs):
        op = _LABEL_OPERATORS.get(expr.operator)
        if op is None:
            errors.append(f"matchExpressions[{i}].operator: Unsupported value: {expr.operator!r}")
            continue
        try:
            requirements.append(new_requirement(expr.key, op, list(expr.values)))
        except ValueError as err:
            errors.append(f"matchExpressions[{i}]: {err}")
    return None if errors else Selector(tuple(requirements))


def _parse_fields(
    exprs: Iterable[v1.NodeSelectorRequirement], errors: list[str]
) -> tuple[tuple[str, bool, str], ...]:
    fields = []
    for i, expr in enumerate(exprs):
        if expr.operator not in ("In", "NotIn"):
            errors.append(f"matchFields[{i}].operator: Unsupported value: {expr.operator!r}")
        elif len(expr.values) != 1:
            errors.append(f"matchFields[{i}].values: Invalid value: must have one element")
        else:
            fields.append((expr.key, expr.operator == "In", expr.values[0]))
    return tuple(fields)


def _parse_term(term: v1.NodeSelectorTerm) -> _Term | None:
    """The term parsed, or None for an empty term (which selects nothing)."""
    if not term.match_expressions and not term.match_fields:
        return None
    errors: list[str] = []
    labels = _parse_expressions(term.match_expressions, errors) if term.match_expressions else None
    fields = _parse_fields(term.match_fields, errors) if term.match_fields else None
    return _Term(labels, fields, tuple(errors))


def _parse_terms(terms: Iterable[v1.NodeSelectorTerm]) -> tuple[_Term, ...]:
    return tuple(t for t in (_parse_term(term) for term in terms) if t is not None)


def _any_term_matches(terms: Sequence[_Term], labels: Mapping[str, str], name: str) -> bool:
    return any(t.matches(labels, name) for t in terms)


def _parse_preferred(
    terms: Iterable[v1.PreferredSchedulingTerm],
) -> tuple[tuple[int, _Term], ...]:
    """Weighted preferred terms; ValueError if one does not parse."""
    parsed: list[tuple[int, _Term]] = []
    for term in terms:
        if term.weight == 0:
            continue
        t = _parse_term(term.preference)
        if t is None:
            continue
        if t.errors:
            raise ValueError("; ".join(t.errors))
        parsed.append((term.weight, t))
    return tuple(parsed)


def _score_terms(terms: Sequence[tuple[int, _Term]], labels: Mapping[str, str], name: str) -> int:
    return sum(weight for weight, t in terms if t.matches(labels, name))


# --- the pod's requirements ---


@dataclass(frozen=True, slots=True)
class RequiredNodeAffinity:
    """A pod's nodeSelector and required node affinity, parsed once."""

    node_selector: tuple[tuple[str, str], ...]
    # None: the pod has no required affinity; () matches no node.
    terms: tuple[_Term, ...] | None

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        for key, value in self.node_selector:
            if labels.get(key) != value:
                return False
        if self.terms is None:
            return True
        return _any_term_matches(self.terms, labels, name)


def _required(pod: Pod) -> v1.NodeSelector | None:
    spec = pod.spec
    if not spec.HasField("affinity") or not spec.affinity.HasField("node_affinity"):
        return None
    node_affinity = spec.affinity.node_affinity
    if not node_affinity.HasField("required_during_scheduling_ignored_during_execution"):
        return None
    return node_affinity.required_during_scheduling_ignored_during_execution


def required_node_affinity(pod: Pod) -> RequiredNodeAffinity:
    """Kubernetes' GetRequiredNodeAffinity."""
    required = _required(pod)
    return RequiredNodeAffinity(
        tuple(pod.spec.node_selector.items()),
        None if required is None else _parse_terms(required.node_selector_terms),
    )


def _pod_preferred(pod: Pod) -> tuple[tuple[int, _Term], ...] | None:
    spec = pod.spec
    if not spec.HasField("affinity") or not spec.affinity.HasField("node_affinity"):
        return None
    preferred = spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    return _parse_preferred(preferred) if preferred else None


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


@dataclass(frozen=True, slots=True)
class _PreScoreState:
    preferred: tuple[tuple[int, _Term], ...]


class NodeAffinity:
    name: Final = NAME

    def __init__(self, *, added_affinity: v1.NodeAffinity | None = None) -> None:
        """`added_affinity`: see the module docstring. Raises ValueError if it
        does not parse, as kube-scheduler refuses such a configuration."""
        self._added_required: tuple[_Term, ...] | None = None
        self._added_preferred: tuple[tuple[int, _Term], ...] | None = None
        if added_affinity is None:
            return
        if added_affinity.HasField("required_during_scheduling_ignored_during_execution"):
            required = added_affinity.required_during_scheduling_ignored_during_execution
            terms = _parse_terms(required.node_selector_terms)
            if errors := [e for t in terms for e in t.errors]:
                raise ValueError(f"addedAffinity.required: {'; '.join(errors)}")
            self._added_required = terms
        preferred = added_affinity.preferred_during_scheduling_ignored_during_execution
        if preferred:
            self._added_preferred = _parse_preferred(preferred)

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        required = _required(pod)
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
        if self._added_required is not None and not _any_term_matches(
            self._added_required, labels, name
        ):
            return _REJECTED_ENFORCED
        required = state.get(_PRE_FILTER_KEY)
        if not isinstance(required, RequiredNodeAffinity):
            # PreFilter did not run (a direct call): work it out here.
            required = required_node_affinity(pod)
        return SUCCESS if required.matches(labels, name) else _REJECTED

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
        return [_score_terms(terms, n.labels, n.name) for n in nodes], SUCCESS

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        return default_normalize_score(MAX_NODE_SCORE, False, scores)

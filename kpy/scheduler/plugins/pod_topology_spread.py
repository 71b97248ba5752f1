"""PodTopologySpread: keep the pods a selector picks evenly spread over
topology domains (the nodes sharing a value of `topologyKey`).

Mirrors kube-scheduler's podtopologyspread plugin (common.go, filtering.go,
scoring.go):

- A constraint counts the pods of the incoming pod's namespace that its
  labelSelector matches (with `matchLabelKeys` adding `key in (value)` for
  the pod's own value), not terminating, per domain. Only nodes that have
  every constraint's topologyKey count, and per constraint only those its
  node inclusion policies admit: nodeAffinityPolicy Honor (the default)
  leaves out nodes the pod's nodeSelector/required node affinity rejects;
  nodeTaintsPolicy Honor (default Ignore) leaves out nodes with a NoSchedule
  or NoExecute taint the pod does not tolerate.
- Filter (whenUnsatisfiable DoNotSchedule): a node without the topologyKey
  is "node(s) didn't match pod topology spread constraints (missing
  required label)" (UnschedulableAndUnresolvable); a node whose domain would
  then have more than maxSkew above the least-loaded domain is "node(s)
  didn't match pod topology spread constraints" (Unschedulable). With fewer
  domains than minDomains (default 1) the least-loaded count is taken as 0.
- Score (whenUnsatisfiable ScheduleAnyway): each constraint adds
  count * log(domains + 2) + (maxSkew - 1) for the node's domain (the
  hostname key counts the node's own pods); NormalizeScore makes the
  fewest-pods node 100 (`100 * (max + min - s) / max`), and nodes lacking a
  required key 0.
- A pod without constraints gets the system defaults (hostname maxSkew 3,
  zone maxSkew 5, both ScheduleAnyway) when `default_selector` finds the
  Services that select it or the ReplicaSet / StatefulSet /
  ReplicationController that controls it (their selectors, merged); then
  nodes lacking a key are scored rather than ignored.

Counts per node are remembered in `NodeInfo.node_cache` against the
node's generation, so a node that did not change is not recounted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from kpy.api.labels import Operator, Selector, new_requirement, selector_from_label_selector
from kpy.scheduler.framework import MAX_NODE_SCORE, SUCCESS, Code, Status, new_status
from kpy.scheduler.plugins.node_affinity import RequiredNodeAffinity, required_node_affinity
from kpy.scheduler.plugins.taint_toleration import TaintKey, TolerationKey, tolerates

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.api.core.v1 import Pod, TopologySpreadConstraint
    from kpy.scheduler.framework import CycleState, NodeInfo, NodeScore, PreFilterResult

__all__ = [
    "ERR_REASON_CONSTRAINTS_NOT_MATCH",
    "ERR_REASON_NODE_LABEL_NOT_MATCH",
    "NAME",
    "SYSTEM_DEFAULT_CONSTRAINTS",
    "Constraint",
    "PodTopologySpread",
]

NAME: Final = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH: Final = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH: Final = (
    ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
)
LABEL_HOSTNAME: Final = "kubernetes.io/hostname"
LABEL_ZONE: Final = "topology.kubernetes.io/zone"
DO_NOT_SCHEDULE: Final = "DoNotSchedule"
SCHEDULE_ANYWAY: Final = "ScheduleAnyway"
HONOR: Final = "Honor"
IGNORE: Final = "Ignore"
#: kube-scheduler's systemDefaultConstraints: (topologyKey, maxSkew), ScheduleAnyway.
SYSTEM_DEFAULT_CONSTRAINTS: Final = ((LABEL_HOSTNAME, 3), (LABEL_ZONE, 5))

_PRE_FILTER_KEY: Final = "PreFilter" + NAME
_PRE_SCORE_KEY: Final = "PreScore" + NAME


@dataclass(frozen=True, slots=True)
class Constraint:
    """A parsed TopologySpreadConstraint (podtopologyspread's topologySpreadConstraint)."""

    max_skew: int
    topology_key: str
    selector: Selector
    min_domains: int = 1
    node_affinity_policy: str = HONOR
    node_taints_policy: str = IGNORE
    #: what counts are remembered under in NodeInfo.node_cache (with the namespace)
    count_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = f"{NAME}\x00{self.selector}\x00{self.selector.selectable}"
        object.__setattr__(self, "count_key", key)

    def includes(self, pod: Pod, node_info: NodeInfo, required: RequiredNodeAffinity) -> bool:
        """matchNodeInclusionPolicies."""
        if self.node_affinity_policy == HONOR and not required.matches(
            node_info.labels, node_info.name
        ):
            return False
        return not (self.node_taints_policy == HONOR and _untolerated_taint(pod, node_info))


def _untolerated_taint(pod: Pod, node_info: NodeInfo) -> bool:
    tolerations = [
        TolerationKey(t.key, t.operator, t.value, t.effect) for t in pod.spec.tolerations
    ]
    for t in node_info.node.spec.taints:
        if t.effect not in ("NoSchedule", "NoExecute"):
            continue
        taint = TaintKey(t.key, t.value, t.effect)
        if not any(tolerates(tol, taint) for tol in tolerations):
            return True
    return False


def _constraint(pod: Pod, c: TopologySpreadConstraint) -> Constraint:
    selector = selector_from_label_selector(
        c.label_selector if c.HasField("label_selector") else None
    )
    labels = pod.metadata.labels
    extra = [
        new_requirement(k, Operator.IN, [labels[k]]) for k in c.match_label_keys if k in labels
    ]
    if extra:
        selector = selector.add(*extra)
    return Constraint(
        c.max_skew,
        c.topology_key,
        selector,
        c.min_domains if c.HasField("min_domains") else 1,
        c.node_affinity_policy or HONOR,
        c.node_taints_policy or IGNORE,
    )


def _count(node_info: NodeInfo, c: Constraint, namespace: str) -> int:
    """countPodsMatchSelector, remembered per node generation."""
    key = f"{c.count_key}\x00{namespace}"
    hit = node_info.node_cache.get(key)
    if isinstance(hit, tuple) and hit[0] == node_info.generation:
        return int(hit[1])
    selector = c.selector
    count = 0
    for p in node_info.pods:
        meta = p.metadata
        if (
            meta.namespace == namespace
            and not meta.HasField("deletion_timestamp")
            and selector.matches(meta.labels)
        ):
            count += 1
    node_info.node_cache[key] = (node_info.generation, count)
    return count


def _has_all_keys(node_info: NodeInfo, constraints: Sequence[Constraint]) -> bool:
    labels = node_info.labels
    return all(c.topology_key in labels for c in constraints)


@dataclass(frozen=True, slots=True)
class _PreFilterState:
    constraints: tuple[Constraint, ...]
    # Per constraint: domain value -> matching pods.
    counts: tuple[dict[str, int], ...]


@dataclass(frozen=True, slots=True)
class _PreScoreState:
    constraints: tuple[Constraint, ...]
    counts: tuple[dict[str, int], ...]
    weights: tuple[float, ...]
    ignored: frozenset[str]


class PodTopologySpread:
    name: Final = NAME
    #: Verdicts depend on pods of other nodes: never remembered per pod class.
    cluster_wide: Final = True

    def __init__(self, default_selector: Callable[[Pod], Selector | None] | None = None) -> None:
        self._default_selector = default_selector

    def _constraints(self, pod: Pod, action: str) -> tuple[tuple[Constraint, ...], bool]:
        """The pod's constraints for `action`, and whether they are the
        system defaults. ValueError for a bad selector."""
        if pod.spec.topology_spread_constraints:
            return (
                tuple(
                    _constraint(pod, c)
                    for c in pod.spec.topology_spread_constraints
                    if (c.when_unsatisfiable or DO_NOT_SCHEDULE) == action
                ),
                False,
            )
        if action != SCHEDULE_ANYWAY or self._default_selector is None:
            return (), True
        selector = self._default_selector(pod)
        if selector is None or selector.empty():
            return (), True
        return tuple(
            Constraint(skew, key, selector) for key, skew in SYSTEM_DEFAULT_CONSTRAINTS
        ), True

    # -- PreFilter / Filter -------------------------------------------------------------

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        try:
            constraints, _ = self._constraints(pod, DO_NOT_SCHEDULE)
        except ValueError as e:
            return None, new_status(Code.ERROR, f"parsing topology spread constraints: {e}")
        if not constraints:
            return None, new_status(Code.SKIP)
        required = required_node_affinity(pod)
        namespace = pod.metadata.namespace
        counts: tuple[dict[str, int], ...] = tuple({} for _ in constraints)
        for node_info in nodes:
            if not _has_all_keys(node_info, constraints):
                continue
            for c, by_value in zip(constraints, counts, strict=True):
                if not c.includes(pod, node_info, required):
                    continue
                value = node_info.labels[c.topology_key]
                by_value[value] = by_value.get(value, 0) + _count(node_info, c, namespace)
        state.write(_PRE_FILTER_KEY, _PreFilterState(constraints, counts))
        return None, SUCCESS

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        s = state.get(_PRE_FILTER_KEY)
        if not isinstance(s, _PreFilterState):
            return new_status(Code.ERROR, f'reading "{_PRE_FILTER_KEY}" from cycleState: not found')
        labels = pod.metadata.labels
        for c, by_value in zip(s.constraints, s.counts, strict=True):
            value = node_info.labels.get(c.topology_key)
            if value is None:
                return new_status(
                    Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_NODE_LABEL_NOT_MATCH
                )
            if len(by_value) < c.min_domains:
                least = 0
            else:
                least = min(by_value.values(), default=2**31 - 1)
            self_match = 1 if c.selector.matches(labels) else 0
            if by_value.get(value, 0) + self_match - least > c.max_skew:
                return new_status(Code.UNSCHEDULABLE, ERR_REASON_CONSTRAINTS_NOT_MATCH)
        return SUCCESS

    # -- PreScore / Score ---------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        try:
            constraints, defaulted = self._constraints(pod, SCHEDULE_ANYWAY)
        except ValueError as e:
            return new_status(Code.ERROR, f"parsing topology spread constraints: {e}")
        if not constraints or not nodes:
            return new_status(Code.SKIP)
        require_all = not defaulted
        ignored: set[str] = set()
        counts: tuple[dict[str, int], ...] = tuple({} for _ in constraints)
        for node_info in nodes:
            if require_all and not _has_all_keys(node_info, constraints):
                ignored.add(node_info.name)
                continue
            for c, by_value in zip(constraints, counts, strict=True):
                if c.topology_key != LABEL_HOSTNAME:
                    by_value.setdefault(node_info.labels.get(c.topology_key, ""), 0)
        weights = tuple(
            math.log(
                (len(nodes) - len(ignored) if c.topology_key == LABEL_HOSTNAME else len(by_value))
                + 2
            )
            for c, by_value in zip(constraints, counts, strict=True)
        )
        required = required_node_affinity(pod)
        namespace = pod.metadata.namespace
        # The hostname domain is the node itself: Score counts it there.
        domains = [
            (c, by_value)
            for c, by_value in zip(constraints, counts, strict=True)
            if c.topology_key != LABEL_HOSTNAME
        ]
        for node_info in (state.all_nodes or nodes) if domains else ():
            if require_all and not _has_all_keys(node_info, constraints):
                continue
            for c, by_value in domains:
                value = node_info.labels.get(c.topology_key, "")
                if value and value in by_value and c.includes(pod, node_info, required):
                    by_value[value] += _count(node_info, c, namespace)
        state.write(
            _PRE_SCORE_KEY, _PreScoreState(constraints, counts, weights, frozenset(ignored))
        )
        return SUCCESS

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        scores, status = self.score_nodes(state, pod, (node_info,))
        return (scores[0] if scores else 0), status

    def score_nodes(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status]:
        s = state.get(_PRE_SCORE_KEY)
        if not isinstance(s, _PreScoreState):
            message = f'reading "{_PRE_SCORE_KEY}" from cycleState: not found'
            return [], new_status(Code.ERROR, message)
        namespace = pod.metadata.namespace
        return [_node_score(s, n, namespace) for n in nodes], SUCCESS

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        s = state.get(_PRE_SCORE_KEY)
        if not isinstance(s, _PreScoreState):
            return SUCCESS
        counted = [x.score for x in scores if x.name not in s.ignored]
        low = min(counted, default=0)
        high = max(counted, default=0)
        for x in scores:
            if x.name in s.ignored:
                x.score = 0
            elif high == 0:
                x.score = MAX_NODE_SCORE
            else:
                x.score = MAX_NODE_SCORE * (high + low - x.score) // high
        return SUCCESS


def _node_score(s: _PreScoreState, node_info: NodeInfo, namespace: str) -> int:
    if node_info.name in s.ignored:
        return 0
    score = 0.0
    labels = node_info.labels
    for c, by_value, weight in zip(s.constraints, s.counts, s.weights, strict=True):
        value = labels.get(c.topology_key)
        if value is None:
            continue
        if c.topology_key == LABEL_HOSTNAME:
            count = _count(node_info, c, namespace)
        else:
            count = by_value.get(value, 0)
        score += count * weight + (c.max_skew - 1)
    return math.floor(score + 0.5)  # Go's math.Round, for a score that is never negative

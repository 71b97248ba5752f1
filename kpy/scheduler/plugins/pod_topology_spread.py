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

On a NodeTable (`Framework.schedule_table`) the same rules run as array
operations over every node at once: each constraint's matching pods per
node are a table column (recounted only on the nodes whose pods changed),
its topology key's values a class id per node (`label_classes`), the
counts per domain one `bincount`, and the node inclusion policies masks
(required node affinity per distinct affinity, taints per taint class).
PreFilter and PreScore then keep the per-domain arrays; `filter_table`
and `score_table` give exactly the verdicts and scores of `filter` and
`score_nodes` + `normalize_score`, which still serve Explain and the
per-node path (their dict forms are built from the arrays on first use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np

from kpy.api.labels import Operator, Selector, new_requirement, selector_from_label_selector
from kpy.scheduler.framework import MAX_NODE_SCORE, SUCCESS, Code, Status, new_status
from kpy.scheduler.plugins.node_affinity import (
    RequiredNodeAffinity,
    required_mask,
    required_node_affinity,
)
from kpy.scheduler.plugins.taint_toleration import TaintKey, TolerationKey, hard_taints, tolerates

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

    from kpy.api.core.v1 import Pod, TopologySpreadConstraint
    from kpy.scheduler.framework import (
        BoolArray,
        CycleState,
        IntArray,
        NodeInfo,
        NodeScore,
        NodeTable,
        PreFilterResult,
    )
    from kpy.scheduler.framework.node_table import Classes

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
_DEFAULTS_LIMIT: Final = 4096


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


# -- the table forms ---------------------------------------------------------------------


def _labelled(value: Hashable) -> bool:
    # A class of label_classes: the node has the label.
    return value is not None


def _valued(value: Hashable) -> bool:
    # A class of label_classes: the node has the label with a non-empty value.
    return bool(value)


def _count_column(table: NodeTable, c: Constraint, namespace: str) -> IntArray:
    """`_count` for every row, recounted only on rows whose pods changed."""
    return table.column(
        (NAME, c.count_key, namespace),
        lambda info: _count(info, c, namespace),
        zero=lambda: table.pods == 0,
    )


def _included(table: NodeTable, pod: Pod, c: Constraint) -> BoolArray | None:
    """`c.includes(pod, node, required_node_affinity(pod))` per row; None
    when every row is."""
    mask: BoolArray | None = None
    spec = pod.spec
    if c.node_affinity_policy == HONOR and (
        spec.node_selector
        or (spec.HasField("affinity") and spec.affinity.HasField("node_affinity"))
    ):
        mask = required_mask(table, required_node_affinity(pod))
    if c.node_taints_policy == HONOR:
        tolerated = table.per_class(hard_taints, lambda rep: not _untolerated_taint(pod, rep))
        if tolerated is not table.everywhere():
            mask = tolerated if mask is None else mask & tolerated
    return mask


def _has_all(classes: Sequence[Classes]) -> BoolArray:
    """Per row: the node has every one of these topology keys."""
    has = classes[0].verdicts(_labelled)[classes[0].ids]
    for cl in classes[1:]:
        has = has & cl.verdicts(_labelled)[cl.ids]
    return has


@dataclass(frozen=True, slots=True)
class _Domains:
    """One DoNotSchedule constraint over the table: its topology key's
    classes, and per class id the matching pods of the included nodes and
    whether the class is one of the constraint's domains."""

    classes: Classes
    counts: IntArray
    present: BoolArray

    def as_dict(self) -> dict[str, int]:
        keys, counts = self.classes.keys, self.counts.tolist()
        return {str(keys[k]): counts[k] for k in np.flatnonzero(self.present).tolist()}


def _filter_domains(
    table: NodeTable, pod: Pod, constraints: Sequence[Constraint]
) -> tuple[_Domains, ...]:
    """PreFilter's counting loop over the table's columns."""
    namespace = pod.metadata.namespace
    classes = [table.label_classes(c.topology_key) for c in constraints]
    has_all = _has_all(classes)
    out: list[_Domains] = []
    for c, cl in zip(constraints, classes, strict=True):
        included = _included(table, pod, c)
        rows = has_all if included is None else has_all & included
        ids, k = cl.ids[rows], len(cl.keys)
        counts = np.bincount(ids, weights=_count_column(table, c, namespace)[rows], minlength=k)
        present = np.bincount(ids, minlength=k) > 0
        out.append(_Domains(cl, counts.astype(np.int64), present))
    return tuple(out)


class _PreFilterState:
    """The DoNotSchedule constraints and, per constraint, domain value ->
    matching pods: counted per node, or over a table (`domains`) and
    turned into dicts only when a node is filtered one by one."""

    __slots__ = ("_counts", "constraints", "domains")

    def __init__(
        self,
        constraints: tuple[Constraint, ...],
        counts: tuple[dict[str, int], ...] | None = None,
        domains: tuple[_Domains, ...] | None = None,
    ) -> None:
        self.constraints = constraints
        self._counts = counts
        self.domains = domains

    def counts(self) -> tuple[dict[str, int], ...]:
        if self._counts is None:
            self._counts = tuple(d.as_dict() for d in self.domains or ())
        return self._counts


@dataclass(frozen=True, slots=True)
class _ScoreCounts:
    counts: tuple[dict[str, int], ...]
    weights: tuple[float, ...]
    ignored: frozenset[str]


class _PreScoreState:
    """The ScheduleAnyway (or default) constraints; their per-node counts
    are worked out on first use (a cycle on a table scores with arrays and
    never needs them)."""

    __slots__ = ("_args", "_counts", "constraints", "require_all")

    def __init__(
        self,
        constraints: tuple[Constraint, ...],
        require_all: bool,
        args: tuple[Pod, Sequence[NodeInfo], Sequence[NodeInfo]],
    ) -> None:
        self.constraints = constraints
        self.require_all = require_all
        self._args = args
        self._counts: _ScoreCounts | None = None

    def per_node(self) -> _ScoreCounts:
        if self._counts is None:
            self._counts = _score_counts(self.constraints, self.require_all, *self._args)
        return self._counts


def _score_counts(
    constraints: tuple[Constraint, ...],
    require_all: bool,
    pod: Pod,
    nodes: Sequence[NodeInfo],
    all_nodes: Sequence[NodeInfo],
) -> _ScoreCounts:
    """PreScore's counting, node by node."""
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
            (len(nodes) - len(ignored) if c.topology_key == LABEL_HOSTNAME else len(by_value)) + 2
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
    for node_info in all_nodes if domains else ():
        if require_all and not _has_all_keys(node_info, constraints):
            continue
        for c, by_value in domains:
            value = node_info.labels.get(c.topology_key, "")
            if value and value in by_value and c.includes(pod, node_info, required):
                by_value[value] += _count(node_info, c, namespace)
    return _ScoreCounts(counts, weights, frozenset(ignored))


class PodTopologySpread:
    name: Final = NAME
    #: Verdicts depend on pods of other nodes: never remembered per pod class.
    cluster_wide: Final = True

    def __init__(self, default_selector: Callable[[Pod], Selector | None] | None = None) -> None:
        self._default_selector = default_selector
        # The default constraints per workload selector, made once each.
        self._defaults: dict[Selector, tuple[Constraint, ...]] = {}

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
        found = self._defaults.get(selector)
        if found is None:
            if len(self._defaults) >= _DEFAULTS_LIMIT:
                self._defaults.clear()
            found = self._defaults[selector] = tuple(
                Constraint(skew, key, selector) for key, skew in SYSTEM_DEFAULT_CONSTRAINTS
            )
        return found, True

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
        table = state.node_table
        if table is not None and nodes is table.infos:
            domains = _filter_domains(table, pod, constraints)
            state.write(_PRE_FILTER_KEY, _PreFilterState(constraints, domains=domains))
            return None, SUCCESS
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
        for c, by_value in zip(s.constraints, s.counts(), strict=True):
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

    def filter_table(self, state: CycleState, pod: Pod, table: NodeTable) -> BoolArray | None:
        s = state.get(_PRE_FILTER_KEY)
        if not isinstance(s, _PreFilterState) or s.domains is None:
            return None  # PreFilter counted per node: filter per node
        labels = pod.metadata.labels
        passes: BoolArray | None = None
        for c, d in zip(s.constraints, s.domains, strict=True):
            domains = int(d.present.sum())
            if domains < c.min_domains:
                least = 0
            else:
                least = int(d.counts[d.present].min()) if domains else 2**31 - 1
            self_match = 1 if c.selector.matches(labels) else 0
            ids = d.classes.ids
            ok = d.classes.verdicts(_labelled)[ids] & (
                d.counts[ids] + (self_match - least) <= c.max_skew
            )
            passes = ok if passes is None else passes & ok
        return passes

    # -- PreScore / Score ---------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        try:
            constraints, defaulted = self._constraints(pod, SCHEDULE_ANYWAY)
        except ValueError as e:
            return new_status(Code.ERROR, f"parsing topology spread constraints: {e}")
        if not constraints or not nodes:
            return new_status(Code.SKIP)
        s = _PreScoreState(constraints, not defaulted, (pod, nodes, state.all_nodes or nodes))
        table = state.node_table
        if table is None or state.all_nodes is not table.infos:
            s.per_node()  # counted now, as Kubernetes does, not at the first Score
        state.write(_PRE_SCORE_KEY, s)
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
        counts = s.per_node()
        return [_node_score(s.constraints, counts, n, namespace) for n in nodes], SUCCESS

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        s = state.get(_PRE_SCORE_KEY)
        if not isinstance(s, _PreScoreState):
            return SUCCESS
        ignored = s.per_node().ignored
        counted = [x.score for x in scores if x.name not in ignored]
        low = min(counted, default=0)
        high = max(counted, default=0)
        for x in scores:
            if x.name in ignored:
                x.score = 0
            elif high == 0:
                x.score = MAX_NODE_SCORE
            else:
                x.score = MAX_NODE_SCORE * (high + low - x.score) // high
        return SUCCESS

    def score_table(
        self, state: CycleState, pod: Pod, table: NodeTable, rows: IntArray
    ) -> IntArray | None:
        s = state.get(_PRE_SCORE_KEY)
        if not isinstance(s, _PreScoreState) or state.all_nodes is not table.infos:
            return None
        raw, ignored = _table_scores(s, pod, table, rows)
        counted = raw if ignored is None else raw[~ignored]
        low = int(counted.min()) if len(counted) else 0
        high = int(counted.max()) if len(counted) else 0
        if high == 0:
            scores = np.full(len(rows), MAX_NODE_SCORE, np.int64)
        else:
            scores = MAX_NODE_SCORE * (high + low - raw) // high
        if ignored is not None:
            scores[ignored] = 0
        return scores


def _table_scores(
    s: _PreScoreState, pod: Pod, table: NodeTable, rows: IntArray
) -> tuple[IntArray, BoolArray | None]:
    """`score_nodes` for the nodes at `rows` (raw, before normalising), and
    which of them PreScore ignores (None: none), with `_score_counts`'
    rules over the table's columns. The float arithmetic is the per-node
    path's, operation for operation, so the rounding is too."""
    namespace = pod.metadata.namespace
    classes = [table.label_classes(c.topology_key) for c in s.constraints]
    all_keys = _has_all(classes) if s.require_all else None
    ignored = None if all_keys is None else ~all_keys[rows]
    kept = rows if ignored is None else rows[~ignored]
    # Constraints with one selector (the defaults' two) share one column.
    columns: dict[str, IntArray] = {}
    score = np.zeros(len(rows), np.float64)
    for c, cl in zip(s.constraints, classes, strict=True):
        ids = cl.ids
        column = columns.get(c.count_key)
        if column is None:
            column = columns[c.count_key] = _count_column(table, c, namespace)
        if c.topology_key == LABEL_HOSTNAME:
            weight = math.log(len(kept) + 2)
            counts = column[rows]
        else:
            k = len(cl.keys)
            seen = np.zeros(k, np.bool_)
            seen[ids[kept]] = True
            domains = int(seen.sum())
            # A node without the key and one with an empty value share the
            # domain "" (labels.get(key, "")).
            missing, empty = cl.index.get(None), cl.index.get("")
            if missing is not None and empty is not None and seen[missing] and seen[empty]:
                domains -= 1
            weight = math.log(domains + 2)
            # Only rows with matching pods add to a domain's count.
            matching = np.flatnonzero(column)
            domain = ids[matching]
            counting = cl.verdicts(_valued)[domain]
            if all_keys is not None:
                counting &= all_keys[matching]
            included = _included(table, pod, c)
            if included is not None:
                counting &= included[matching]
            per_domain = np.bincount(
                domain[counting], weights=column[matching[counting]], minlength=k
            )
            counts = per_domain[ids[rows]]
        contribution = counts * weight + float(c.max_skew - 1)
        labelled = cl.verdicts(_labelled)
        if labelled.all():  # every node has the key (hostname, say)
            score = score + contribution
        else:
            score = np.where(labelled[ids[rows]], score + contribution, score)
    raw = np.floor(score + 0.5).astype(np.int64)
    if ignored is not None:
        raw[ignored] = 0
    return raw, ignored


def _node_score(
    constraints: Sequence[Constraint], s: _ScoreCounts, node_info: NodeInfo, namespace: str
) -> int:
    if node_info.name in s.ignored:
        return 0
    score = 0.0
    labels = node_info.labels
    for c, by_value, weight in zip(constraints, s.counts, s.weights, strict=True):
        value = labels.get(c.topology_key)
        if value is None:
            continue
        if c.topology_key == LABEL_HOSTNAME:
            count = _count(node_info, c, namespace)
        else:
            count = by_value.get(value, 0)
        score += count * weight + (c.max_skew - 1)
    return math.floor(score + 0.5)  # Go's math.Round, for a score that is never negative

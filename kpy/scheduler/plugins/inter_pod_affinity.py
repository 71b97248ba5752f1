"""InterPodAffinity: a pod goes where the pods it likes run (podAffinity)
and away from the pods it avoids (podAntiAffinity), per topology domain
(the nodes that share a value of `topologyKey`); and existing pods'
required anti-affinity keeps it away from them too (symmetry).

Mirrors kube-scheduler's interpodaffinity plugin (filtering.go, scoring.go)
and framework.AffinityTerm:

- A term matches a pod when the pod's namespace is in the term's
  `namespaces` (the term's own pod's namespace when both `namespaces` and
  `namespaceSelector` are absent) or its namespace's labels match
  `namespaceSelector` (an empty one matches every namespace), and the pod's
  labels match `labelSelector` (absent: nothing). `matchLabelKeys` adds
  `key in (value)` and `mismatchLabelKeys` `key notin (value)` for each key
  the term's own pod has (the API server may have merged them already; the
  requirement is then the same twice).
- PreFilter counts, per (topologyKey, value): existing pods that match all
  the incoming pod's required affinity terms; existing pods matching each
  required anti-affinity term; existing pods whose required anti-affinity
  terms match the incoming pod. It skips when all three are empty.
- Filter, in this order: every required affinity term needs the node to
  have its topologyKey and a matching pod in the node's domain, unless no
  pod in the cluster matches and the pod matches its own terms (the first
  pod of a group), "node(s) didn't match pod affinity rules"
  (UnschedulableAndUnresolvable); no pod matching a required anti-affinity
  term in the node's domain, "node(s) didn't match pod anti-affinity
  rules"; no existing pod's required anti-affinity against the incoming
  pod in any of the node's domains, "node(s) didn't satisfy existing pods
  anti-affinity rules" (both Unschedulable: preemption may help).
- Score: per domain, + weight for each existing pod matching a preferred
  affinity term of the incoming pod, - weight for a preferred anti-affinity
  term; + 1 (hardPodAffinityWeight) for each existing pod's required
  affinity term matching the incoming pod, +/- weight for its preferred
  terms. A node scores the sum over its domains; NormalizeScore maps the
  range min..max onto 0..100.

Namespace labels come from `namespace_labels` (the scheduler's namespace
lister); without it a namespace has no labels. Terms of existing pods are
parsed once per pod version; an existing pod whose selector cannot be
parsed is taken to have no terms (the incoming pod's own bad selector is an
Error: the scheduler reports it on the pod).

On a NodeTable the counting runs over columns, when no term of the
incoming pod has a namespaceSelector (the common case; otherwise per node
as above): the existing pods matching each of the incoming pod's terms
are a table column per term, and the existing pods' own terms are indexed
per node (`_TermIndex`, updated only on the nodes whose pods changed), so
a term of theirs is matched against the incoming pod once, not once per
pod that carries it. Per-domain sums are `bincount`s over the topology
key's classes; `filter_table` and `score_table` give exactly `filter`'s
verdicts and `score` + `normalize_score`'s scores, and the per-node forms
read the same counts, as Counters built on first use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from kpy.api.labels import (
    Operator,
    Selector,
    new_requirement,
    nothing,
    selector_from_label_selector,
)
from kpy.scheduler.framework import (
    MAX_NODE_SCORE,
    SUCCESS,
    Code,
    Status,
    new_status,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from kpy.api.core.v1 import Pod, PodAffinityTerm
    from kpy.scheduler.framework import (
        BoolArray,
        CycleState,
        IntArray,
        NodeInfo,
        NodeScore,
        NodeTable,
        PreFilterResult,
    )

__all__ = [
    "ERR_REASON_AFFINITY_RULES_NOT_MATCH",
    "ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH",
    "ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH",
    "NAME",
    "AffinityTerm",
    "InterPodAffinity",
    "PodTerms",
    "pod_terms",
]

NAME: Final = "InterPodAffinity"
ERR_REASON_AFFINITY_RULES_NOT_MATCH: Final = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH: Final = "node(s) didn't match pod anti-affinity rules"
ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH: Final = (
    "node(s) didn't satisfy existing pods anti-affinity rules"
)
#: kube-scheduler's default InterPodAffinityArgs.hardPodAffinityWeight.
HARD_POD_AFFINITY_WEIGHT: Final = 1

_PRE_FILTER_KEY: Final = "PreFilter" + NAME
_PRE_SCORE_KEY: Final = "PreScore" + NAME
_TERMS_CACHE_LIMIT: Final = 20_000

TopologyPair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A parsed PodAffinityTerm (framework.AffinityTerm)."""

    namespaces: frozenset[str]
    namespace_selector: Selector
    selector: Selector
    topology_key: str
    weight: int = 0

    def matches(self, pod: Pod, namespace_labels: Mapping[str, str] | None) -> bool:
        """Whether `pod`, whose namespace has `namespace_labels`, matches."""
        meta = pod.metadata
        if meta.namespace in self.namespaces or self.namespace_selector.matches(
            namespace_labels or {}
        ):
            return self.selector.matches(meta.labels)
        return False


@dataclass(frozen=True, slots=True)
class PodTerms:
    required_affinity: tuple[AffinityTerm, ...] = ()
    required_anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[AffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[AffinityTerm, ...] = ()

    def has_preferred(self) -> bool:
        return bool(self.preferred_affinity or self.preferred_anti_affinity)


_NO_TERMS: Final = PodTerms()


def _term(pod: Pod, term: PodAffinityTerm, weight: int = 0) -> AffinityTerm:
    selector = selector_from_label_selector(
        term.label_selector if term.HasField("label_selector") else None
    )
    labels = pod.metadata.labels
    extra = [
        new_requirement(k, Operator.IN, [labels[k]]) for k in term.match_label_keys if k in labels
    ]
    extra += [
        new_requirement(k, Operator.NOT_IN, [labels[k]])
        for k in term.mismatch_label_keys
        if k in labels
    ]
    if extra:
        selector = selector.add(*extra)
    has_ns_selector = term.HasField("namespace_selector")
    if not term.namespaces and not has_ns_selector:
        namespaces = frozenset((pod.metadata.namespace,))
    else:
        namespaces = frozenset(term.namespaces)
    ns_selector = (
        selector_from_label_selector(term.namespace_selector) if has_ns_selector else nothing()
    )
    return AffinityTerm(namespaces, ns_selector, selector, term.topology_key, weight)


def pod_terms(pod: Pod) -> PodTerms:
    """The pod's affinity terms, parsed. ValueError for a bad selector."""
    if not pod.spec.HasField("affinity"):
        return _NO_TERMS
    a = pod.spec.affinity
    if not a.HasField("pod_affinity") and not a.HasField("pod_anti_affinity"):
        return _NO_TERMS
    aff, anti = a.pod_affinity, a.pod_anti_affinity
    return PodTerms(
        tuple(_term(pod, t) for t in aff.required_during_scheduling_ignored_during_execution),
        tuple(_term(pod, t) for t in anti.required_during_scheduling_ignored_during_execution),
        tuple(
            _term(pod, w.pod_affinity_term, w.weight)
            for w in aff.preferred_during_scheduling_ignored_during_execution
        ),
        tuple(
            _term(pod, w.pod_affinity_term, w.weight)
            for w in anti.preferred_during_scheduling_ignored_during_execution
        ),
    )


def _matches_all(terms: Iterable[AffinityTerm], pod: Pod, ns: Mapping[str, str] | None) -> bool:
    return all(t.matches(pod, ns) for t in terms)


class _PreFilterState:
    """PreFilter's counts per topology pair, as Counters (counted per node,
    or built on first use from `table`: the same counts over a table, which
    filter_table reads)."""

    __slots__ = ("_counters", "namespace_labels", "table", "terms")

    def __init__(
        self,
        terms: PodTerms,
        namespace_labels: Mapping[str, str] | None,
        counters: tuple[Counter[TopologyPair], ...] | None = None,
        table: _TableCounts | None = None,
    ) -> None:
        self.terms = terms
        self.namespace_labels = namespace_labels
        self._counters = counters
        self.table = table

    def _all(self) -> tuple[Counter[TopologyPair], ...]:
        if self._counters is None:
            t = self.table
            assert t is not None  # one of the two is always given
            self._counters = (
                t.existing_anti_affinity.counter(),
                t.affinity.counter(),
                t.anti_affinity.counter(),
            )
        return self._counters

    @property
    def existing_anti_affinity(self) -> Counter[TopologyPair]:
        return self._all()[0]

    @property
    def affinity(self) -> Counter[TopologyPair]:
        return self._all()[1]

    @property
    def anti_affinity(self) -> Counter[TopologyPair]:
        return self._all()[2]


# -- the table forms ---------------------------------------------------------------------

#: What an existing pod's term is to the incoming pod: (kind, term).
_REQUIRED_ANTI: Final = "required anti-affinity"
_REQUIRED: Final = "required affinity"
_PREFERRED: Final = "preferred affinity"
_PREFERRED_ANTI: Final = "preferred anti-affinity"
_IndexKey = tuple[str, AffinityTerm]


def _summary(terms: PodTerms) -> Counter[_IndexKey]:
    found: Counter[_IndexKey] = Counter()
    for kind, these in (
        (_REQUIRED_ANTI, terms.required_anti_affinity),
        (_REQUIRED, terms.required_affinity),
        (_PREFERRED, terms.preferred_affinity),
        (_PREFERRED_ANTI, terms.preferred_anti_affinity),
    ):
        for term in these:
            found[kind, term] += 1
    return found


class _TermIndex:
    """The terms of the pods on the table's nodes: per (kind, term), how
    many pods of each row carry it. Brought up to date by `sync` from the
    rows whose NodeInfo changed (the table's generation column), rebuilt
    when the table lays its rows out anew."""

    __slots__ = ("_epoch", "_stamps", "_summaries", "_table", "columns", "totals")

    def __init__(self) -> None:
        self._table: NodeTable | None = None
        self._epoch = -1
        self._stamps: IntArray = np.zeros(0, np.int64)
        self._summaries: list[Counter[_IndexKey] | None] = []
        self.columns: dict[_IndexKey, IntArray] = {}
        self.totals: Counter[_IndexKey] = Counter()

    def sync(self, table: NodeTable, terms_of: Callable[[Pod], PodTerms]) -> None:
        infos = table.infos
        if table is not self._table or table.epoch != self._epoch:
            self._table, self._epoch = table, table.epoch
            self._summaries = [None] * len(infos)
            self.columns, self.totals = {}, Counter()
            rows = np.flatnonzero(table.with_affinity > 0)
        else:
            rows = np.flatnonzero(self._stamps != table.generation)
        self._stamps = table.generation.copy()
        for i in rows.tolist():
            info = infos[i]
            summary: Counter[_IndexKey] = Counter()
            if info.pods_with_affinity:
                for pod in info.pods:
                    summary.update(_summary(terms_of(pod)))
            self._apply(i, len(infos), summary)

    def _apply(self, row: int, rows: int, summary: Counter[_IndexKey]) -> None:
        old = self._summaries[row] or Counter()
        for key, count in old.items():
            self.columns[key][row] -= count
            self.totals[key] -= count
            if not self.totals[key]:
                del self.totals[key], self.columns[key]
        for key, count in summary.items():
            column = self.columns.get(key)
            if column is None:
                column = self.columns[key] = np.zeros(rows, np.int64)
            column[row] += count
            self.totals[key] += count
        self._summaries[row] = summary or None


def _labelled(value: object) -> bool:
    # A class of label_classes: the node has the label.
    return value is not None


def _plain(terms: Iterable[AffinityTerm]) -> bool:
    """No namespaceSelector: a term's matches do not depend on namespaces'
    labels, which the table does not follow."""
    return not any(t.namespace_selector.selectable for t in terms)


def _matching_column(table: NodeTable, terms: tuple[AffinityTerm, ...]) -> IntArray:
    """Per row: the pods that match every one of `terms` (plain ones)."""

    def count(info: NodeInfo) -> int:
        return sum(1 for p in info.pods if _matches_all(terms, p, None))

    return table.column((NAME, terms), count, zero=lambda: table.pods == 0)


class _Domains:
    """Sums per topology pair, one array per topology key over its classes
    (the class of nodes without the key never counts)."""

    __slots__ = ("_table", "sums")

    def __init__(self, table: NodeTable) -> None:
        self._table = table
        self.sums: dict[str, IntArray] = {}

    def add(self, key: str, per_row: IntArray, weight: int = 1) -> None:
        classes = self._table.label_classes(key)
        where = np.flatnonzero(per_row)
        if not len(where):
            self.sums.setdefault(key, np.zeros(len(classes.keys), np.int64))
            return
        ids = classes.ids[where]
        sums = np.bincount(ids, weights=per_row[where], minlength=len(classes.keys))
        missing = classes.index.get(None)
        if missing is not None:
            sums[missing] = 0
        found = self.sums.get(key)
        added = sums.astype(np.int64) * weight
        if found is None:
            self.sums[key] = added
        else:
            if len(found) < len(added):
                found = np.concatenate((found, np.zeros(len(added) - len(found), np.int64)))
            found[: len(added)] += added
            self.sums[key] = found

    def per_row(self, key: str) -> IntArray:
        """Each row's domain sum under `key` (0 where the node lacks it)."""
        classes = self._table.label_classes(key)
        sums = self.sums.get(key)
        if sums is None:
            return np.zeros(len(classes.ids), np.int64)
        if len(sums) < len(classes.keys):
            sums = np.concatenate((sums, np.zeros(len(classes.keys) - len(sums), np.int64)))
        return sums[classes.ids]

    def any(self) -> bool:
        return any(bool(s.any()) for s in self.sums.values())

    def counter(self) -> Counter[TopologyPair]:
        out: Counter[TopologyPair] = Counter()
        for key, sums in self.sums.items():
            values = self._table.label_classes(key).keys
            for k in np.flatnonzero(sums).tolist():
                out[key, str(values[k])] += int(sums[k])
        return out


class _TableScores:
    """PreScore's sums over a table; as per-node `score` reads them
    (topology key -> value -> sum) on first use."""

    __slots__ = ("_per_node", "domains")

    def __init__(self, domains: _Domains) -> None:
        self.domains = domains
        self._per_node: dict[str, Counter[str]] | None = None

    def per_node(self) -> dict[str, Counter[str]]:
        if self._per_node is None:
            self._per_node = {}
            for (key, value), total in self.domains.counter().items():
                self._per_node.setdefault(key, Counter())[value] += total
        return self._per_node


@dataclass(frozen=True, slots=True)
class _TableCounts:
    existing_anti_affinity: _Domains
    affinity: _Domains
    anti_affinity: _Domains


class InterPodAffinity:
    name: Final = NAME
    #: Verdicts depend on pods of other nodes: never remembered per pod class.
    cluster_wide: Final = True

    def __init__(
        self, namespace_labels: Callable[[str], Mapping[str, str] | None] | None = None
    ) -> None:
        self._namespace_labels = namespace_labels
        self._terms: dict[tuple[str, str, str], PodTerms] = {}
        self._index = _TermIndex()

    def _ns_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._namespace_labels(namespace) if self._namespace_labels is not None else None

    def _existing_terms(self, pod: Pod) -> PodTerms:
        meta = pod.metadata
        key = (meta.uid, meta.namespace + "/" + meta.name, meta.resource_version)
        found = self._terms.get(key)
        if found is None:
            try:
                found = pod_terms(pod)
            except ValueError:
                found = _NO_TERMS  # refused by validation today; ignore what was stored before
            if len(self._terms) >= _TERMS_CACHE_LIMIT:
                self._terms.clear()
            self._terms[key] = found
        return found

    # -- PreFilter / Filter -------------------------------------------------------------

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        try:
            terms = pod_terms(pod)
        except ValueError as e:
            return None, new_status(Code.ERROR, f"parsing pod affinity of the pod: {e}")
        ns_labels = self._ns_labels(pod.metadata.namespace)
        existing: Counter[TopologyPair] = Counter()
        affinity: Counter[TopologyPair] = Counter()
        anti: Counter[TopologyPair] = Counter()
        required = bool(terms.required_affinity or terms.required_anti_affinity)
        table = state.node_table
        if (
            table is not None
            and nodes is table.infos
            and _plain(terms.required_affinity)
            and _plain(terms.required_anti_affinity)
        ):
            counts = self._table_counts(pod, terms, ns_labels, table)
            if not required and not counts.existing_anti_affinity.any():
                return None, new_status(Code.SKIP)
            state.write(_PRE_FILTER_KEY, _PreFilterState(terms, ns_labels, table=counts))
            return None, SUCCESS
        if table is not None and nodes is table.infos:
            # Only the nodes the loop below would look into, found in the
            # table's columns instead of one attribute read per node.
            worth = table.with_anti_affinity > 0
            nodes = table.rows_where(worth | (table.pods > 0) if required else worth)
        for node_info in nodes:
            if node_info.pods_with_required_anti_affinity:
                self._count_existing_anti_affinity(pod, ns_labels, node_info, existing)
            if required and node_info.pod_count:
                self._count_matching(terms, node_info, affinity, anti)
        if not required and not existing:
            return None, new_status(Code.SKIP)
        state.write(_PRE_FILTER_KEY, _PreFilterState(terms, ns_labels, (existing, affinity, anti)))
        return None, SUCCESS

    def _table_counts(
        self,
        pod: Pod,
        terms: PodTerms,
        ns_labels: Mapping[str, str] | None,
        table: NodeTable,
    ) -> _TableCounts:
        """PreFilter's three counts over the table's columns."""
        self._index.sync(table, self._existing_terms)
        existing, affinity, anti = _Domains(table), _Domains(table), _Domains(table)
        for (kind, term), column in self._index.columns.items():
            if kind == _REQUIRED_ANTI and term.matches(pod, ns_labels):
                existing.add(term.topology_key, column)
        if terms.required_affinity:
            column = _matching_column(table, terms.required_affinity)
            for term in terms.required_affinity:
                affinity.add(term.topology_key, column)
        for term in terms.required_anti_affinity:
            anti.add(term.topology_key, _matching_column(table, (term,)))
        return _TableCounts(existing, affinity, anti)

    def _count_existing_anti_affinity(
        self,
        pod: Pod,
        ns_labels: Mapping[str, str] | None,
        node_info: NodeInfo,
        into: Counter[TopologyPair],
    ) -> None:
        labels = node_info.labels
        for existing in node_info.pods:
            for term in self._existing_terms(existing).required_anti_affinity:
                value = labels.get(term.topology_key)
                if value is not None and term.matches(pod, ns_labels):
                    into[term.topology_key, value] += 1

    def _count_matching(
        self,
        terms: PodTerms,
        node_info: NodeInfo,
        affinity: Counter[TopologyPair],
        anti: Counter[TopologyPair],
    ) -> None:
        labels = node_info.labels
        for existing in node_info.pods:
            ns = self._ns_labels(existing.metadata.namespace)
            if terms.required_affinity and _matches_all(terms.required_affinity, existing, ns):
                for term in terms.required_affinity:
                    value = labels.get(term.topology_key)
                    if value is not None:
                        affinity[term.topology_key, value] += 1
            for term in terms.required_anti_affinity:
                value = labels.get(term.topology_key)
                if value is not None and term.matches(existing, ns):
                    anti[term.topology_key, value] += 1

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        s = state.get(_PRE_FILTER_KEY)
        if not isinstance(s, _PreFilterState):
            return new_status(Code.ERROR, f'reading "{_PRE_FILTER_KEY}" from cycleState: not found')
        if not _satisfies_pod_affinity(s, pod, node_info):
            return new_status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_AFFINITY_RULES_NOT_MATCH
            )
        if not _satisfies_pod_anti_affinity(s, node_info):
            return new_status(Code.UNSCHEDULABLE, ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH)
        if not _satisfies_existing_pods_anti_affinity(s, node_info):
            return new_status(Code.UNSCHEDULABLE, ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH)
        return SUCCESS

    def filter_table(self, state: CycleState, pod: Pod, table: NodeTable) -> BoolArray | None:
        s = state.get(_PRE_FILTER_KEY)
        if not isinstance(s, _PreFilterState) or s.table is None:
            return None  # counted per node: filter per node
        t = s.table
        passes = np.ones(len(table), np.bool_)
        if s.terms.required_affinity:
            # Every topology key present, and a matching pod in each domain
            # unless this is the first pod of a group that likes itself.
            first = not t.affinity.any() and _matches_all(
                s.terms.required_affinity, pod, s.namespace_labels
            )
            for term in s.terms.required_affinity:
                classes = table.label_classes(term.topology_key)
                passes &= classes.verdicts(_labelled)[classes.ids]
                if not first:
                    passes &= t.affinity.per_row(term.topology_key) > 0
        if t.anti_affinity.any():
            for term in s.terms.required_anti_affinity:
                passes &= t.anti_affinity.per_row(term.topology_key) <= 0
        for key in t.existing_anti_affinity.sums:
            passes &= t.existing_anti_affinity.per_row(key) <= 0
        return passes

    # -- PreScore / Score ---------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status:
        try:
            terms = pod_terms(pod)
        except ValueError as e:
            return new_status(Code.ERROR, f"parsing pod affinity of the pod: {e}")
        ns_labels = self._ns_labels(pod.metadata.namespace)
        scores: dict[str, Counter[str]] = {}
        everywhere = terms.has_preferred()
        visit = state.all_nodes or nodes
        table = state.node_table
        if (
            table is not None
            and visit is table.infos
            and _plain(terms.preferred_affinity)
            and _plain(terms.preferred_anti_affinity)
        ):
            domains = self._table_scores(pod, terms, ns_labels, table)
            if not domains.any():
                return new_status(Code.SKIP)
            state.write(_PRE_SCORE_KEY, _TableScores(domains))
            return SUCCESS
        if not everywhere and table is not None and visit is table.infos:
            visit = table.rows_where(table.with_affinity > 0)  # what the loop keeps
        for node_info in visit:
            if not everywhere and not node_info.pods_with_affinity:
                continue
            if not node_info.labels:
                continue
            for existing in node_info.pods:
                self._score_existing(terms, pod, ns_labels, existing, node_info, scores)
        if not any(scores.values()):
            return new_status(Code.SKIP)
        state.write(_PRE_SCORE_KEY, scores)
        return SUCCESS

    def _table_scores(
        self,
        pod: Pod,
        terms: PodTerms,
        ns_labels: Mapping[str, str] | None,
        table: NodeTable,
    ) -> _Domains:
        """PreScore's sums per topology pair over the table's columns."""
        self._index.sync(table, self._existing_terms)
        domains = _Domains(table)
        for term in terms.preferred_affinity:
            domains.add(term.topology_key, _matching_column(table, (term,)), term.weight)
        for term in terms.preferred_anti_affinity:
            domains.add(term.topology_key, _matching_column(table, (term,)), -term.weight)
        for (kind, term), column in self._index.columns.items():
            if kind == _REQUIRED_ANTI or not term.matches(pod, ns_labels):
                continue
            if kind == _REQUIRED:
                weight = HARD_POD_AFFINITY_WEIGHT
            else:
                weight = term.weight if kind == _PREFERRED else -term.weight
            domains.add(term.topology_key, column, weight)
        return domains

    def _score_existing(
        self,
        terms: PodTerms,
        pod: Pod,
        ns_labels: Mapping[str, str] | None,
        existing: Pod,
        node_info: NodeInfo,
        scores: dict[str, Counter[str]],
    ) -> None:
        labels = node_info.labels

        def add(
            term: AffinityTerm, weight: int, candidate: Pod, ns: Mapping[str, str] | None
        ) -> None:
            value = labels.get(term.topology_key)
            if value is not None and term.matches(candidate, ns):
                scores.setdefault(term.topology_key, Counter())[value] += weight

        if terms.has_preferred():
            existing_ns = self._ns_labels(existing.metadata.namespace)
            for term in terms.preferred_affinity:
                add(term, term.weight, existing, existing_ns)
            for term in terms.preferred_anti_affinity:
                add(term, -term.weight, existing, existing_ns)
        theirs = self._existing_terms(existing)
        for term in theirs.required_affinity:
            add(term, HARD_POD_AFFINITY_WEIGHT, pod, ns_labels)
        for term in theirs.preferred_affinity:
            add(term, term.weight, pod, ns_labels)
        for term in theirs.preferred_anti_affinity:
            add(term, -term.weight, pod, ns_labels)

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status]:
        scores = state.get(_PRE_SCORE_KEY)
        if isinstance(scores, _TableScores):
            scores = scores.per_node()
        if not isinstance(scores, dict):
            return 0, new_status(
                Code.ERROR, f'reading "{_PRE_SCORE_KEY}" from cycleState: not found'
            )
        total = 0
        for key, values in scores.items():
            value = node_info.labels.get(key)
            if value is not None:
                total += values.get(value, 0)
        return total, SUCCESS

    def score_table(
        self, state: CycleState, pod: Pod, table: NodeTable, rows: IntArray
    ) -> IntArray | None:
        s = state.get(_PRE_SCORE_KEY)
        if not isinstance(s, _TableScores):
            return None
        raw = np.zeros(len(rows), np.int64)
        for key in s.domains.sums:
            raw += s.domains.per_row(key)[rows]
        if not len(raw):
            return raw
        low, high = int(raw.min()), int(raw.max())
        if high == low:
            return np.zeros(len(rows), np.int64)
        # normalize_score's float arithmetic, element by element.
        return (MAX_NODE_SCORE * ((raw - low) / (high - low))).astype(np.int64)

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status:
        if not scores:
            return SUCCESS
        low = min(s.score for s in scores)
        high = max(s.score for s in scores)
        spread = high - low
        for s in scores:
            # Go's int64(float64) truncates; the values here are never negative.
            s.score = int(MAX_NODE_SCORE * ((s.score - low) / spread)) if spread > 0 else 0
        return SUCCESS


def _satisfies_pod_affinity(s: _PreFilterState, pod: Pod, node_info: NodeInfo) -> bool:
    pods_exist = True
    labels = node_info.labels
    for term in s.terms.required_affinity:
        value = labels.get(term.topology_key)
        if value is None:
            return False  # every topology label must exist on the node
        if s.affinity[term.topology_key, value] <= 0:
            pods_exist = False
    if pods_exist:
        return True
    # The first pod of a group that has affinity to itself: no pod in the
    # cluster matches yet, so it may go anywhere that has the topologies.
    return not s.affinity and _matches_all(s.terms.required_affinity, pod, s.namespace_labels)


def _satisfies_pod_anti_affinity(s: _PreFilterState, node_info: NodeInfo) -> bool:
    if not s.anti_affinity:
        return True
    labels = node_info.labels
    for term in s.terms.required_anti_affinity:
        value = labels.get(term.topology_key)
        if value is not None and s.anti_affinity[term.topology_key, value] > 0:
            return False
    return True


def _satisfies_existing_pods_anti_affinity(s: _PreFilterState, node_info: NodeInfo) -> bool:
    if not s.existing_anti_affinity:
        return True
    counts = s.existing_anti_affinity
    return not any(counts[pair] > 0 for pair in node_info.labels.items())

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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

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
    from kpy.scheduler.framework import CycleState, NodeInfo, NodeScore, PreFilterResult

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


@dataclass(frozen=True, slots=True)
class _PreFilterState:
    terms: PodTerms
    existing_anti_affinity: Counter[TopologyPair]
    affinity: Counter[TopologyPair]
    anti_affinity: Counter[TopologyPair]
    namespace_labels: Mapping[str, str] | None


class InterPodAffinity:
    name: Final = NAME
    #: Verdicts depend on pods of other nodes: never remembered per pod class.
    cluster_wide: Final = True

    def __init__(
        self, namespace_labels: Callable[[str], Mapping[str, str] | None] | None = None
    ) -> None:
        self._namespace_labels = namespace_labels
        self._terms: dict[tuple[str, str, str], PodTerms] = {}

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
        state.write(_PRE_FILTER_KEY, _PreFilterState(terms, existing, affinity, anti, ns_labels))
        return None, SUCCESS

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

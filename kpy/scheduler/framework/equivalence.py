"""Equivalence classes: remember each node's verdict for a kind of pod.

Pods of one ReplicaSet, Job or DaemonSet are scheduled alike: same
requests, tolerations, affinity, ports. For a plugin that judges a node
from the pod and that node alone (all of kpy's default plugins except
inter-pod affinity and topology spread, which count pods on other nodes
and say so with `cluster_wide = True`), a node's filter verdict and raw
score for one pod hold for the next pod of its class, until the node
changes. NodeInfo.generation changes on every change (a pod assumed,
bound or gone; the node updated), so an entry is used only while its
generation matches, and the cache never serves a stale verdict.

The cache is a wrapper: `filter` wraps the node-local filters (and runs
the cluster-wide ones after them, every time, on the nodes that passed),
`score` wraps one node-local plugin's `score_nodes`. The runner calls the
wrapped functions as it would the plain ones and knows nothing of the
cache. Errors are never remembered.

Scheduling a Deployment's pods then costs one filter-and-score pass over
the nodes for the first pod, and one node (the one that got the previous
pod) for each next pod. Normalisation and host selection still look at
every node, as they must.

The cache holds `classes` classes (least recently used dropped first);
entries of removed nodes go with their class. Enable it per profile
(`Profile.equivalence_cache`); a plugin that looks beyond one node must
be marked `cluster_wide`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from kpy.scheduler.framework.status import SUCCESS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework.cycle_state import CycleState
    from kpy.scheduler.framework.interface import FilterRunner, NodeFilter, ScoreNodes
    from kpy.scheduler.framework.status import Status
    from kpy.scheduler.framework.types import NodeInfo

__all__ = ["EquivalenceCache", "PodClass", "class_key"]

# Where a cycle keeps its pod's class, so the class key is computed once.
_STATE_KEY: Final = "EquivalenceClass"


def class_key(pod: Pod) -> bytes:
    """What the default plugins read of a pod: its spec (requests, node
    name, selector, affinity, tolerations, ports), namespace and labels."""
    labels = "\x00".join(f"{k}={v}" for k, v in sorted(pod.metadata.labels.items()))
    head = f"{pod.metadata.namespace}\x00{labels}\x00".encode()
    return head + pod.spec.SerializeToString(deterministic=True)


@dataclass(slots=True)
class PodClass:
    #: node name -> (node generation, filter verdict)
    filters: dict[str, tuple[int, Status]] = field(default_factory=dict)
    #: plugin -> node name -> (node generation, raw score before normalising)
    scores: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)


class EquivalenceCache:
    def __init__(self, classes: int = 64) -> None:
        self._classes: OrderedDict[bytes, PodClass] = OrderedDict()
        self._limit = classes

    def for_pod(self, pod: Pod) -> PodClass:
        key = class_key(pod)
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = PodClass()
            while len(self._classes) > self._limit:
                self._classes.popitem(last=False)
        else:
            self._classes.move_to_end(key)
        return found

    def __len__(self) -> int:
        return len(self._classes)

    def filter(self, local: FilterRunner, cluster_wide: FilterRunner) -> FilterRunner:
        """Filter as `local` then `cluster_wide` would, with `local`'s
        verdict on a node remembered for the pod's class."""

        def for_cycle(state: CycleState, pod: Pod) -> NodeFilter:
            memo = self._class_of(state, pod).filters
            check_local, check_wide = local(state, pod), cluster_wide(state, pod)

            def check(node_info: NodeInfo) -> Status:
                hit = memo.get(node_info.name)
                if hit is not None and hit[0] == node_info.generation:
                    status = hit[1]
                else:
                    status = check_local(node_info)
                    if not status.code or status.is_rejected():
                        memo[node_info.name] = (node_info.generation, status)
                return check_wide(node_info) if not status.code else status

            return check

        return for_cycle

    def score(self, plugin: str, score_nodes: ScoreNodes) -> ScoreNodes:
        """`score_nodes` of `plugin`, called only for the nodes whose raw
        score for the pod's class is not remembered at their generation."""

        def cached(
            state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
        ) -> tuple[list[int], Status]:
            known = self._class_of(state, pod).scores.setdefault(plugin, {})
            stale = [n for n in nodes if (h := known.get(n.name)) is None or h[0] != n.generation]
            if stale:
                values, status = score_nodes(state, pod, stale)
                if status.code:
                    return values, status
                for node_info, value in zip(stale, values, strict=True):
                    known[node_info.name] = (node_info.generation, value)
            return [known[n.name][1] for n in nodes], SUCCESS

        return cached

    def _class_of(self, state: CycleState, pod: Pod) -> PodClass:
        """The pod's class, looked up once per cycle."""
        found = state.get(_STATE_KEY)
        if isinstance(found, tuple) and found[0] is pod:
            pod_class: PodClass = found[1]
            return pod_class
        pod_class = self.for_pod(pod)
        state.write(_STATE_KEY, (pod, pod_class))
        return pod_class

"""Equivalence classes: remember each node's verdict for a kind of pod.

Pods of one ReplicaSet, Job or DaemonSet are scheduled alike: same
requests, tolerations, affinity, ports. For a plugin that judges a node
from the pod and that node alone (all of kpy's default plugins except
inter-pod affinity and topology spread, which count pods on other nodes
and say so with `cluster_wide = True`), a node's filter verdict and raw
score for one pod hold for the next pod of its class, until the node
changes. The framework remembers only those plugins' verdicts and runs
the cluster-wide ones every time. NodeInfo.generation changes on every change
(a pod assumed, bound or gone; the node updated), so an entry is used only
while its generation matches, and the cache never serves a stale verdict.

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod
    from kpy.scheduler.framework import Status

__all__ = ["EquivalenceCache", "PodClass", "class_key"]


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

"""The selector of the default topology spread constraints (kube-scheduler's
helper.DefaultSelector): which pods count as "the same workload" as a pod
that states no topologySpreadConstraints of its own.

It merges the selectors of the Services in the pod's namespace that select
it, then adds the selector of the ReplicaSet, StatefulSet or
ReplicationController that controls it (its controller ownerReference).
An empty result means "no workload": the default constraints do not apply.
Everything is read from the scheduler's informers, never the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.apps.v1 import ReplicaSet, StatefulSet
from kpy.api.core.v1 import ReplicationController, Service
from kpy.api.labels import Selector, selector_from_label_selector, selector_from_set

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod
    from kpy.cache.informer import SharedInformerFactory

__all__ = ["DefaultSpreadSelector"]


class DefaultSpreadSelector:
    """Callable: pod -> its workload's selector (empty when it has none)."""

    def __init__(self, informers: SharedInformerFactory) -> None:
        self._services = informers.informer(Service).lister()
        self._replica_sets = informers.informer(ReplicaSet).lister()
        self._stateful_sets = informers.informer(StatefulSet).lister()
        self._controllers = informers.informer(ReplicationController).lister()

    def __call__(self, pod: Pod) -> Selector:
        namespace, labels = pod.metadata.namespace, pod.metadata.labels
        merged: dict[str, str] = {}
        for service in self._services.list(namespace):
            wanted = service.spec.selector
            if wanted and all(labels.get(k) == v for k, v in wanted.items()):
                merged.update(wanted)
        selector = selector_from_set(merged)
        owner = next((o for o in pod.metadata.owner_references if o.controller), None)
        if owner is None:
            return selector
        if owner.api_version == "v1" and owner.kind == "ReplicationController":
            rc = self._controllers.get(namespace, owner.name)
            if rc is not None:
                merged.update(rc.spec.selector)
                selector = selector_from_set(merged)
            return selector
        if owner.api_version != "apps/v1":
            return selector
        workload: ReplicaSet | StatefulSet | None = None
        if owner.kind == "ReplicaSet":
            workload = self._replica_sets.get(namespace, owner.name)
        elif owner.kind == "StatefulSet":
            workload = self._stateful_sets.get(namespace, owner.name)
        if workload is None or not workload.spec.HasField("selector"):
            return selector
        try:
            theirs = selector_from_label_selector(workload.spec.selector)
        except ValueError:
            return selector  # refused by validation; nothing sensible to spread by
        return selector.add(*theirs.requirements)

"""The pod event handlers of a controller whose objects own pods by a
controller reference (the DaemonSet and StatefulSet controllers), as
Kubernetes' addPod / updatePod / deletePod of those controllers:

- a pod that names one of ours as its controller wakes that owner; its
  creation or deletion is counted against the owner's expectations (a pod
  found already terminating counts as deleted);
- a pod that changes controller wakes the one it left;
- an owner's pod that turns ready wakes the owner again once it has been
  ready for `minReadySeconds`, when it counts as available;
- an orphan wakes every owner whose selector matches it (to adopt it), on
  add and when its labels or its controller change.

Owners are resolved from the lister (same kind, name and uid); nothing is
read from the API in a handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kpy.api.apps.v1 import DaemonSet, StatefulSet
from kpy.api.labels import selector_from_label_selector
from kpy.cache.informer import EventHandler
from kpy.cache.store import meta_namespace_key
from kpy.controllers.base import deleted_object
from kpy.controllers.ownership import get_controller_of, is_pod_ready

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kpy.api.core.v1 import Pod
    from kpy.cache.expectations import ControllerExpectations
    from kpy.cache.informer import Lister
    from kpy.controllers.base import Controller

__all__ = ["OwnedPods"]

#: the kinds whose pods these handlers follow
Owner = TypeVar("Owner", DaemonSet, StatefulSet)


class OwnedPods(Generic[Owner]):
    """Pod events for `controller`, whose objects of `kind` are in `owners`;
    see the module docstring."""

    def __init__(
        self,
        controller: Controller,
        kind: str,
        owners: Lister[Owner],
        expectations: ControllerExpectations,
    ) -> None:
        self._controller = controller
        self._kind = kind
        self._owners: Lister[Owner] = owners
        self._expectations = expectations

    def handler(self) -> EventHandler[Pod]:
        return EventHandler(on_add=self._add, on_update=self._update, on_delete=self._delete)

    def resolve(self, pod: Pod) -> Owner | None:
        """The pod's controller if it is one of ours (same kind, name and uid)."""
        ref = get_controller_of(pod)
        if ref is None or ref.kind != self._kind:
            return None
        owner = self._owners.get(pod.metadata.namespace, ref.name)
        if owner is None or owner.metadata.uid != ref.uid:
            return None
        return owner

    def matching(self, namespace: str, labels: Mapping[str, str]) -> list[Owner]:
        """Our objects in `namespace` whose (non-empty) selector matches `labels`."""
        if not labels:
            return []
        return [
            owner
            for owner in self._owners.list(namespace)
            if not (sel := selector_from_label_selector(owner.spec.selector)).empty()
            and sel.matches(labels)
        ]

    def _add(self, pod: Pod, _initial: bool) -> None:
        if pod.metadata.HasField("deletion_timestamp"):
            self._delete(pod)  # a restart found it mid-deletion
            return
        owner = self.resolve(pod)
        if owner is not None:
            key = meta_namespace_key(owner)
            self._expectations.creation_observed(key)
            self._controller.enqueue_key(key)
        elif get_controller_of(pod) is None:
            for match in self.matching(pod.metadata.namespace, pod.metadata.labels):
                self._controller.enqueue(match)

    def _update(self, old: Pod, new: Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        if new.metadata.HasField("deletion_timestamp") and not old.metadata.HasField(
            "deletion_timestamp"
        ):
            self._delete(new)
            return
        old_ref, new_ref = get_controller_of(old), get_controller_of(new)
        if old_ref is not None and (new_ref is None or old_ref.uid != new_ref.uid):
            previous = self.resolve(old)
            if previous is not None:
                self._controller.enqueue(previous)
        owner = self.resolve(new)
        if owner is not None:
            self._controller.enqueue(owner)
            wait = owner.spec.min_ready_seconds
            if wait > 0 and not is_pod_ready(old) and is_pod_ready(new):
                self._controller.enqueue_after(owner, wait + 1)
            return
        if new_ref is None and (old.metadata.labels != new.metadata.labels or old_ref is not None):
            for match in self.matching(new.metadata.namespace, new.metadata.labels):
                self._controller.enqueue(match)

    def _delete(self, obj: Any) -> None:
        pod = deleted_object(obj)
        if pod is None:
            return
        owner = self.resolve(pod)
        if owner is None:
            return
        key = meta_namespace_key(owner)
        self._expectations.deletion_observed(key, meta_namespace_key(pod))
        self._controller.enqueue_key(key)

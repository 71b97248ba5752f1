"""One object of a fixed name in every active namespace: the shape shared by
the ServiceAccount controller (`default`) and the root CA publisher
(`kube-root-ca.crt`), as Kubernetes' two controllers share it.

- The queue holds namespace names. A Namespace added or updated is
  enqueued; the named object deleted, or changed, enqueues its namespace.
- The named object is watched alone: one informer with the field selector
  `metadata.name=<name>` across namespaces, run by the controller itself
  (`run`), so the controller holds one object per namespace, not every
  ConfigMap or ServiceAccount of the cluster.
- `sync(namespace)`: nothing for a namespace that is gone, terminating or
  not Active. Otherwise the object is created when the cache has none; when
  it has one, `repaired(current)` (subclasses) may return a corrected copy
  to update. A create that finds the namespace gone or terminating is not
  retried (the namespace's own events say what comes next), and one that
  finds the object already there is not an error: the watch brings it.
"""

from __future__ import annotations

import abc
import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
from google.protobuf.message import Message

from kpy.api import errors
from kpy.cache.informer import EventHandler, SharedInformer, deleted_object
from kpy.controllers.base import Controller

if TYPE_CHECKING:
    from kpy.api.core.v1 import Namespace
    from kpy.cache.informer import Lister
    from kpy.client import ClientProtocol
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers")

__all__ = ["PerNamespaceObjectController", "is_active"]

M = TypeVar("M", bound=Message)


def is_active(namespace: Namespace) -> bool:
    """Whether objects may be created in `namespace` (phase Active, not being deleted)."""
    if namespace.metadata.HasField("deletion_timestamp"):
        return False
    return (namespace.status.phase or "Active") == "Active"


def _terminating(e: errors.StatusError) -> bool:
    """The API server's refusal to create in a namespace being deleted."""
    return isinstance(e, errors.Forbidden) and "being terminated" in str(e)


class PerNamespaceObjectController(Controller, Generic[M], abc.ABC):
    """See the module docstring. Subclasses set `name`, `kind` and
    `object_name`, and implement `desired` (and `repaired` to correct an
    object that exists)."""

    kind: type[M]
    object_name: str

    def __init__(
        self,
        client: ClientProtocol,
        namespaces: SharedInformer[Namespace],
        objects: SharedInformer[M] | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._namespaces: Lister[Namespace] = namespaces.lister()
        #: run by `run` when made here; a test passes one it fills itself
        self._own_informer = objects is None
        self.objects: SharedInformer[M] = objects or SharedInformer(
            client, self.kind, field_selector=f"metadata.name={self.object_name}"
        )
        self._objects: Lister[M] = self.objects.lister()
        namespaces.add_event_handler(
            EventHandler(
                on_add=lambda ns, _initial: self.enqueue_key(ns.metadata.name),
                on_update=lambda _old, ns: self.enqueue_key(ns.metadata.name),
            )
        )
        self.objects.add_event_handler(
            EventHandler(
                on_update=lambda _old, obj: self._object_changed(obj),
                on_delete=self._object_changed,
            )
        )

    def _object_changed(self, obj: Any) -> None:
        found = deleted_object(obj)
        if found is not None and found.metadata.name == self.object_name:
            self.enqueue_key(found.metadata.namespace)

    async def run(self, workers: int) -> None:
        """Runs the object's informer (when this controller made it), waits
        for its first list, then the workers; until cancelled."""
        if not self._own_informer:
            await super().run(workers)
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.objects.run)
            await self.objects.wait_for_sync()
            await super().run(workers)
            tg.cancel_scope.cancel()

    async def sync(self, key: str) -> None:
        namespace = self._namespaces.get("", key)
        if namespace is None or not is_active(namespace):
            return
        current = self._objects.get(key, self.object_name)
        if current is None:
            await self._create(key)
            return
        fixed = self.repaired(current)
        if fixed is not None:
            log.info(
                "updating",
                extra={"controller": self.name, "key": f"{key}/{self.object_name}"},
            )
            await self._client.update(fixed)

    async def _create(self, namespace: str) -> None:
        obj = self.desired()
        obj.metadata.name = self.object_name  # type: ignore[attr-defined]
        obj.metadata.namespace = namespace  # type: ignore[attr-defined]
        try:
            await self._client.create(obj, namespace=namespace)
        except errors.AlreadyExists:
            return  # made by someone else meanwhile: the watch brings it
        except errors.NotFound:
            return  # the namespace went meanwhile
        except errors.Forbidden as e:
            if _terminating(e):
                return
            raise
        log.info(
            "created", extra={"controller": self.name, "key": f"{namespace}/{self.object_name}"}
        )

    @abc.abstractmethod
    def desired(self) -> M:
        """A new object to create (its name and namespace are set by the caller)."""

    def repaired(self, current: M) -> M | None:
        """A corrected copy of `current` to update, or None when it is right
        (the default: an object that exists is left as it is)."""
        del current
        return None

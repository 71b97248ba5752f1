"""One kind's controller: kpy's `Controller` (informer handlers -> keys on a
rate-limited work queue -> workers) running an operator's handlers.

Guarantees, on top of base.Controller's (one worker per key, a key changed
while syncing is synced once more, failures retried with back-off):

- Level-based: the queue holds keys, and `sync` reads the object from the
  informer's cache when a worker takes the key, so a handler always gets
  the newest state the process has seen, never a queued old copy.
- Never older than already seen: the controller remembers, per key, the
  newest resourceVersion it handed out or wrote. If the cache is behind it
  (the event of our own write has not arrived yet), the sync is skipped and
  the arrival of that newer version reconciles the key.
- Own writes do not echo: a watch event carrying exactly the
  resourceVersion the SDK itself wrote (status, finalizer, owned object)
  enqueues nothing, since the reconcile that wrote it already saw that
  state. Resyncs (same resourceVersion on both sides) always enqueue.
- Finalizers: with a deletion handler, the finalizer is added before the
  first reconcile; once the object is being deleted the deletion handler
  runs (instead of reconcile) and, when it returns, the finalizer is
  removed. A deleting object without the finalizer is left alone.
- Owned kinds (`owns=`) map each event to the owner named by the object's
  controller ownerReference (old and new owner on an update); `watches=`
  mappers map any kind to keys.
- Per-key memory is dropped when the primary object is deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kpy.api import errors
from kpy.api.meta.v1 import OwnerReference
from kpy.api.scheme import scheme
from kpy.cache.events import WARNING
from kpy.cache.informer import EventHandler, deleted_object, deletion_key
from kpy.cache.store import meta_namespace_key, split_key
from kpy.controllers.base import Controller
from kpy.operator._context import Context, PermanentError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformerFactory
    from kpy.client import ClientProtocol
    from kpy.clock import Clock
    from kpy.metrics import Metrics
    from kpy.operator._types import DeleteHandler, Mapper, ReconcileHandler

log = logging.getLogger("kpy.operator")

__all__ = ["KindController", "KindSpec"]


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What an operator registered for one primary kind."""

    kind: type[Any]
    reconcile: ReconcileHandler | None = None
    on_delete: DeleteHandler | None = None
    finalizer: str = ""
    owns: tuple[type[Any], ...] = ()
    watches: tuple[tuple[type[Any], Mapper], ...] = ()
    workers: int = 4


class KindController(Controller):
    """See the module docstring."""

    logger = log

    def __init__(
        self,
        operator: str,
        spec: KindSpec,
        *,
        client: ClientProtocol,
        informers: SharedInformerFactory,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        clock: Clock | None = None,
        check_mutations: bool = False,
    ) -> None:
        info = scheme.for_message(spec.kind)
        self.operator = operator
        self.kind_name = info.kind
        self.name = f"{operator}.{info.kind.lower()}"
        super().__init__(metrics=metrics, clock=clock, recorder=recorder)
        self.spec = spec
        self.client = client
        self._api_version = info.api_version
        self._group = info.group
        self._namespaced = info.namespaced
        self._check_mutations = check_mutations
        self.informer = informers.informer(spec.kind)
        self.lister: Lister[Any] = self.informer.lister()
        self._listers: dict[type[Any], Lister[Any]] = {spec.kind: self.lister}
        #: key -> newest resourceVersion handed to a handler or written
        self._newest: dict[str, int] = {}
        #: (kind, key) -> resourceVersion of our own write whose event is due
        self._echo: dict[tuple[type[Any], str], str] = {}
        #: keys whose last sync failed, with the error (cleared on success)
        self.failures: dict[str, Exception] = {}
        self.informer.add_event_handler(
            EventHandler(
                on_add=lambda obj, _initial: self._changed(spec.kind, obj, self._key_of),
                on_update=lambda old, new: self._updated(spec.kind, old, new, self._key_of),
                on_delete=self._primary_deleted,
            )
        )
        for kind in spec.owns:
            owned = informers.informer(kind)
            self._listers[kind] = owned.lister()
            owned.add_event_handler(self._mapping_handler(kind, self._owner_keys))
        for kind, mapper in spec.watches:
            informers.informer(kind).add_event_handler(self._mapping_handler(kind, mapper))

    # -- events -> keys ------------------------------------------------------------------

    @staticmethod
    def _key_of(obj: Any) -> Iterable[str]:
        return (meta_namespace_key(obj),)

    def _owner_keys(self, obj: Any) -> Iterable[str]:
        m = obj.metadata
        for ref in m.owner_references:
            if ref.controller and ref.kind == self.kind_name and _group(ref) == self._group:
                yield f"{m.namespace}/{ref.name}" if self._namespaced else ref.name

    def _mapping_handler(self, kind: type[Any], keys: Mapper) -> EventHandler[Any]:
        def deleted(obj: Any) -> None:
            self._echo.pop((kind, deletion_key(obj)), None)
            gone = deleted_object(obj)
            if gone is not None:
                self._enqueue_all(keys(gone))

        return EventHandler(
            on_add=lambda obj, _initial: self._changed(kind, obj, keys),
            on_update=lambda old, new: self._updated(kind, old, new, keys),
            on_delete=deleted,
        )

    def _changed(self, kind: type[Any], obj: Any, keys: Mapper) -> None:
        if not self._is_echo(kind, obj):
            self._enqueue_all(keys(obj))

    def _updated(self, kind: type[Any], old: Any, new: Any, keys: Mapper) -> None:
        if old.metadata.resource_version != new.metadata.resource_version and self._is_echo(
            kind, new
        ):
            return
        now = set(keys(new))
        self._enqueue_all(now)
        if kind is not self.spec.kind:
            self._enqueue_all(k for k in keys(old) if k not in now)

    def _enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.queue.add(key)

    def _primary_deleted(self, obj: Any) -> None:
        key = deletion_key(obj)
        self._newest.pop(key, None)
        self._echo.pop((self.spec.kind, key), None)
        self.failures.pop(key, None)
        self.queue.forget(key)

    def _is_echo(self, kind: type[Any], obj: Any) -> bool:
        """Whether `obj` is the event of our own last write (consumed once)."""
        if not self._echo:
            return False
        slot = (kind, meta_namespace_key(obj))
        written = self._echo.get(slot)
        if written is None:
            return False
        rv = obj.metadata.resource_version
        if rv == written:
            del self._echo[slot]
            return True
        if _newer(rv, written):
            del self._echo[slot]  # the echo was missed (relist): forget it
        return False

    # -- what Context uses ------------------------------------------------------------

    def wrote(self, obj: Any) -> None:
        """Notes an object the SDK just wrote (see the module docstring)."""
        key = meta_namespace_key(obj)
        rv = obj.metadata.resource_version
        self._echo[(type(obj), key)] = rv
        if type(obj) is self.spec.kind and rv.isdigit():
            self._newest[key] = max(int(rv), self._newest.get(key, 0))

    def cached(self, kind: type[Any], namespace: str, name: str) -> Any:
        """The object from an informer this controller runs; None when it is
        not there (or `kind` is not watched: the caller asks the API)."""
        lister = self._listers.get(kind)
        if lister is not None:
            return lister.get(namespace, name)
        return None

    def owner_ref(self, owner: Any) -> OwnerReference:
        m = owner.metadata
        return OwnerReference(
            api_version=self._api_version,
            kind=self.kind_name,
            name=m.name,
            uid=m.uid,
            controller=True,
            block_owner_deletion=True,
        )

    # -- sync ---------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        obj = self.lister.get(namespace, name)
        if obj is None:
            return
        rv = obj.metadata.resource_version
        newest = self._newest.get(key)
        if newest is not None and rv.isdigit() and int(rv) < newest:
            # Our newer write has not reached the cache: let its event
            # (no longer treated as an echo) reconcile the key.
            self._echo.pop((self.spec.kind, key), None)
            return
        if rv.isdigit():
            self._newest[key] = int(rv)
        ctx = Context(self, key, obj)
        before = obj.SerializeToString(deterministic=True) if self._check_mutations else b""
        try:
            await self._handle(ctx, key, obj)
            if self._check_mutations and obj.SerializeToString(deterministic=True) != before:
                raise AssertionError(
                    f"a handler of {self.operator} changed {self.kind_name} {key} in place; "
                    "objects handed to handlers are the cache's: copy before changing one"
                )
        except PermanentError as e:
            ctx.log.error("giving up until the object changes", extra={"error": str(e)})
            self.record(obj, WARNING, "ReconcileFailed", str(e))
        except Exception as e:
            self.failures[key] = e
            raise
        self.failures.pop(key, None)

    async def _handle(self, ctx: Context, key: str, obj: Any) -> None:
        spec = self.spec
        m = obj.metadata
        if m.HasField("deletion_timestamp"):
            if spec.on_delete is not None and spec.finalizer in m.finalizers:
                await spec.on_delete(ctx, obj)
                await self._set_finalizers(obj, [f for f in m.finalizers if f != spec.finalizer])
                ctx.log.info("finalized")
            return
        if spec.on_delete is not None and spec.finalizer not in m.finalizers:
            obj = ctx.obj = await self._set_finalizers(obj, [*m.finalizers, spec.finalizer])
        if spec.reconcile is None:
            return
        result = await spec.reconcile(ctx, obj)
        if result is not None and result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)

    async def _set_finalizers(self, obj: Any, finalizers: list[str]) -> Any:
        """A merge patch guarded by the object's resourceVersion: a
        concurrent change is a Conflict (retried), never a lost finalizer."""
        m = obj.metadata
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": m.resource_version}}
        try:
            updated = await self.client.patch(
                self.spec.kind, m.name, patch, namespace=m.namespace or None, patch_type="merge"
            )
        except errors.NotFound:
            return obj  # gone once its last finalizer went: nothing left to do
        # Remembered even when this removed the object, so that a sync before
        # its DELETED event does not finalize it twice; but not once the
        # informer has dropped it already (no memory for a key that is gone).
        if self.lister.get(m.namespace, m.name) is not None:
            self.wrote(updated)
        return updated


def _group(ref: OwnerReference) -> str:
    return ref.api_version.rpartition("/")[0]


def _newer(rv: str, than: str) -> bool:
    return rv.isdigit() and than.isdigit() and int(rv) > int(than)

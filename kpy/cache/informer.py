"""SharedInformer, its factory, and listers (client-go's shared_informer.go,
informers factory and listers).

A `SharedInformer` runs one Reflector into one DeltaFIFO and pops it into one
Indexer, calling every registered handler for each change: `on_add(obj,
is_in_initial_list)`, `on_update(old, new)`, `on_delete(obj)` where `obj` may
be a `DeletedFinalStateUnknown` (the watch missed the delete; the object is
its last known state). Handlers run in the informer's task, one change at a
time, in order; they must be quick and must not block (enqueue a key on a
work queue, as controllers do). A handler that raises is logged and the
others still run. A handler added after the informer started first gets an
`on_add` for every object already in the store.

With `resync_period` every object is delivered again as `on_update(obj, obj)`
that often, so level-driven controllers re-check what they own.

`SharedInformerFactory` hands out one informer per kind (and namespace), so
a process watches each resource once however many controllers use it.
Contract: objects from informers, stores and listers are shared; never
mutate them (copy first).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
from google.protobuf.message import Message

from kpy.cache.delta_fifo import DeletedFinalStateUnknown, DeltaFIFO, Deltas, DeltaType
from kpy.cache.reflector import Reflector
from kpy.cache.store import Indexer, IndexFunc, list_by_namespace, meta_namespace_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.api.labels import Selector
    from kpy.client import ClientProtocol

log = logging.getLogger("kpy.cache.informer")

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class EventHandler(Generic[M]):
    """The callbacks of one consumer; any may be None."""

    on_add: Callable[[M, bool], None] | None = None
    on_update: Callable[[M, M], None] | None = None
    on_delete: Callable[[Any], None] | None = None


@dataclass(frozen=True, slots=True)
class InformerStatistics:
    objects: int
    queued: int
    handlers: int
    lists: int
    last_event_age: float
    synced: bool


class SharedInformer(Generic[M]):
    def __init__(
        self,
        client: ClientProtocol,
        kind: type[M],
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resync_period: float = 0.0,
        indexers: dict[str, IndexFunc[Any]] | None = None,
    ) -> None:
        self.kind = kind
        # Stores are typed over objects with metadata; messages are checked at run time.
        self.indexer: Indexer[Any] = Indexer(indexers=indexers)
        self._fifo: DeltaFIFO[Any] = DeltaFIFO(known_objects=self.indexer)
        self.reflector = Reflector(
            client,
            kind,
            self._fifo,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        self._resync_period = resync_period
        self._handlers: list[EventHandler[M]] = []
        self._started = False

    # -- consumers ------------------------------------------------------------------

    def add_event_handler(self, handler: EventHandler[M]) -> None:
        if self._started and handler.on_add is not None:
            for obj in self.indexer.list():
                _call(handler.on_add, obj, False)
        self._handlers.append(handler)

    def add_indexers(self, indexers: dict[str, IndexFunc[Any]]) -> None:
        """Adds indexes to the informer's store (client-go's AddIndexers);
        ValueError if a name is taken. Controllers sharing an informer call
        this with distinct names, or check `indexer.get_indexers()` first."""
        self.indexer.add_indexers(indexers)

    def lister(self) -> Lister[M]:
        return Lister(self.indexer)

    def has_synced(self) -> bool:
        return self._fifo.has_synced()

    async def wait_for_sync(self) -> None:
        await self._fifo.wait_synced()

    @property
    def last_event_time(self) -> float:
        """Monotonic time of the last event or bookmark: the liveness signal."""
        return self.reflector.last_event_time

    def statistics(self) -> InformerStatistics:
        return InformerStatistics(
            objects=len(self.indexer.list_keys()),
            queued=len(self._fifo),
            handlers=len(self._handlers),
            lists=self.reflector.lists,
            last_event_age=max(0.0, time.monotonic() - self.reflector.last_event_time),
            synced=self.has_synced(),
        )

    # -- running --------------------------------------------------------------------

    async def run(self) -> None:
        """Runs until cancelled; owns the reflector, the pop loop and the
        resync timer."""
        if self._started:
            raise RuntimeError("an informer runs once")
        self._started = True
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.reflector.run)
                if self._resync_period > 0:
                    tg.start_soon(self._resync)
                while True:
                    await self._fifo.pop(self._process)
        finally:
            self._fifo.close()

    async def _resync(self) -> None:
        while True:
            await anyio.sleep(self._resync_period)
            self._fifo.resync()

    async def _process(self, deltas: Deltas[Any], is_in_initial_list: bool) -> None:
        for delta in deltas:
            obj = delta.object
            if delta.type == DeltaType.DELETED:
                gone = getattr(obj, "object", obj)  # DeletedFinalStateUnknown wraps it
                if self.indexer.get(gone) is not None:
                    self.indexer.delete(gone)
                self._dispatch("delete", obj)
                continue
            old = self.indexer.get(obj)
            if old is not None:
                self.indexer.update(obj)
                self._dispatch("update", old, obj)
            else:
                self.indexer.add(obj)
                self._dispatch("add", obj, is_in_initial_list)

    def _dispatch(self, what: str, *args: Any) -> None:
        for handler in self._handlers:
            callback = getattr(handler, f"on_{what}")
            if callback is not None:
                _call(callback, *args)


def deleted_object(obj: Any) -> Any:
    """The object of an `on_delete` notification, unwrapping a
    DeletedFinalStateUnknown; None when its last state is unknown."""
    if isinstance(obj, DeletedFinalStateUnknown):
        return obj.object
    return obj


def deletion_key(obj: Any) -> str:
    """The store key of an object or of a DeletedFinalStateUnknown
    (client-go's DeletionHandlingMetaNamespaceKeyFunc)."""
    if isinstance(obj, DeletedFinalStateUnknown):
        return obj.key
    return meta_namespace_key(obj)


def _call(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        log.exception("an informer event handler failed", extra={"handler": repr(callback)})


class Lister(Generic[M]):
    """Reads of an informer's store (client-go's listers): never the API."""

    def __init__(self, indexer: Indexer[Any]) -> None:
        self._indexer = indexer

    def list(self, namespace: str = "", selector: Selector | None = None) -> list[M]:
        """Objects in `namespace` ("" for all) whose labels match `selector`."""
        found: list[M] = list_by_namespace(self._indexer, namespace, selector)
        return found

    def get(self, namespace: str, name: str) -> M | None:
        found: M | None = self._indexer.get_by_key(f"{namespace}/{name}" if namespace else name)
        return found


class SharedInformerFactory:
    """One informer per (kind, namespace) for a process; `run` runs them all,
    including informers asked for after it started. `forget(kind)` stops one
    (kinds that come and go: custom resources)."""

    def __init__(
        self, client: ClientProtocol, *, namespace: str | None = None, resync_period: float = 0.0
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._resync = resync_period
        self._informers: dict[type[Message], SharedInformer[Any]] = {}
        #: the cancel scope of each running informer (made in its task: a
        #: scope needs the event loop, `informer` may be called without one)
        self._scopes: dict[type[Message], anyio.CancelScope] = {}
        self._group: anyio.abc.TaskGroup | None = None

    def informer(self, kind: type[M]) -> SharedInformer[M]:
        found = self._informers.get(kind)
        if found is None:
            found = SharedInformer(
                self._client, kind, namespace=self._namespace, resync_period=self._resync
            )
            self._informers[kind] = found
            if self._group is not None:
                self._group.start_soon(self._run_one, kind, found)
        return found

    def forget(self, kind: type[Message]) -> None:
        """Stops the informer of `kind` (if any) and drops it: its handlers,
        whoever added them, get no more events, and a later `informer(kind)`
        makes a new one that lists afresh. For kinds that stop being served;
        the caller must be the only consumer of that kind's informer, or
        tell the others."""
        self._informers.pop(kind, None)
        scope = self._scopes.pop(kind, None)
        if scope is not None:
            scope.cancel()

    async def _run_one(self, kind: type[Message], informer: SharedInformer[Any]) -> None:
        if self._informers.get(kind) is not informer:
            return  # forgotten before it started
        with anyio.CancelScope() as scope:
            self._scopes[kind] = scope
            try:
                await informer.run()
            finally:
                if self._scopes.get(kind) is scope:
                    del self._scopes[kind]

    async def run(self) -> None:
        """Runs every informer until cancelled."""
        async with anyio.create_task_group() as tg:
            self._group = tg
            try:
                for kind, informer in list(self._informers.items()):
                    tg.start_soon(self._run_one, kind, informer)
                await anyio.sleep_forever()
            finally:
                self._group = None

    async def wait_for_cache_sync(self) -> None:
        for informer in list(self._informers.values()):
            await informer.wait_for_sync()

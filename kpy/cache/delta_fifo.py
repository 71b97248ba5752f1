"""DeltaFIFO: the queue between a reflector and an informer, after client-go's
`tools/cache/delta_fifo.go`.

Contract:

- The reflector (producer) calls `add`, `update`, `delete`, `replace` and
  `resync`; the informer (consumer) calls `pop`. Each key is queued once, in
  the order it was first queued; what it accumulates is a deque of `Delta`s,
  everything that happened to the object since it was last popped.
- Two consecutive Deleted deltas collapse into one, keeping the one that knows
  more (a real object over a `DeletedFinalStateUnknown`). No other compression
  happens: an informer sees every Added, Updated and Sync.
- `delete` of a key neither queued nor in `known_objects` is ignored (the
  object was never seen, so there is nothing to tell anyone).
- `replace(objects)` queues Replaced for each listed object and
  Deleted(DeletedFinalStateUnknown) for each queued or known key not listed:
  the watch missed those deletions. `resync` queues Sync for every known
  object that has nothing queued.
- `pop(process)` awaits the oldest key and awaits `process(deltas,
  is_in_initial_list)`. Pops are serialized: a second `pop` waits until the
  first one's `process` returns. If `process` raises `RequeueError` (or is
  cancelled) the deltas go back in front of anything queued for the key
  meanwhile; any other exception propagates and the deltas are dropped.
- `has_synced()` turns true once the first `replace` (or any earlier add,
  update or delete) has been popped entirely.
- `close()` makes a `pop` waiting on an empty queue raise `FIFOClosedError`;
  keys still queued are popped first.
- Objects in deltas are shared with the store and the handlers: never mutate.
  No locks: every method but `pop` runs without awaiting on one event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from kpy.cache.store import ObjectWithMeta, meta_namespace_key

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = [
    "DeletedFinalStateUnknown",
    "Delta",
    "DeltaFIFO",
    "DeltaType",
    "Deltas",
    "FIFOClosedError",
    "KeyListerGetter",
    "RequeueError",
]

T = TypeVar("T", bound=ObjectWithMeta)
T_co = TypeVar("T_co", bound=ObjectWithMeta, covariant=True)


class DeltaType(StrEnum):
    ADDED = "Added"
    UPDATED = "Updated"
    DELETED = "Deleted"
    # A relist saw the object (client-go's Replaced, emitted as if
    # EmitDeltaTypeReplaced were set).
    REPLACED = "Replaced"
    # A periodic resync re-delivers an object nothing happened to.
    SYNC = "Sync"


@dataclass(frozen=True, slots=True)
class DeletedFinalStateUnknown(Generic[T]):
    """An object deleted while the watch was down: its last known state
    (None when no store had it), which may be stale."""

    key: str
    object: T | None


@dataclass(frozen=True, slots=True)
class Delta(Generic[T]):
    type: DeltaType
    object: T | DeletedFinalStateUnknown[T]


Deltas = deque[Delta[T]]


class KeyListerGetter(Protocol[T_co]):
    """What a DeltaFIFO needs of the informer's store (an `Indexer` fits)."""

    def list_keys(self) -> list[str]: ...

    def get_by_key(self, key: str) -> T_co | None: ...


class FIFOClosedError(Exception):
    """The queue was closed: its consumer should stop popping."""

    def __init__(self) -> None:
        super().__init__("DeltaFIFO: pop on a closed and drained queue; stop the consumer")


class RequeueError(Exception):
    """Raised by a pop's `process` to put the deltas back; `pop` then raises
    `cause` if there is one and returns normally otherwise."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__(f"requeue: {cause}" if cause else "requeue")
        self.cause = cause


class DeltaFIFO(Generic[T]):
    def __init__(
        self,
        *,
        key_func: Callable[[T], str] = meta_namespace_key,
        known_objects: KeyListerGetter[T] | None = None,
    ) -> None:
        self._key_func = key_func
        self._known = known_objects
        self._items: dict[str, Deltas[T]] = {}
        self._queue: deque[str] = deque()  # the keys of _items, oldest first
        self._populated = False
        self._initial_population_count = 0
        self._closed = False
        self._changed = asyncio.Event()
        self._synced = asyncio.Event()
        self._pop_lock = asyncio.Lock()

    # Producer side.

    def add(self, obj: T) -> None:
        self._populated = True
        self._queue_action(DeltaType.ADDED, obj)

    def update(self, obj: T) -> None:
        self._populated = True
        self._queue_action(DeltaType.UPDATED, obj)

    def delete(self, obj: T | DeletedFinalStateUnknown[T]) -> None:
        key = self.key_of(obj)
        self._populated = True
        if key not in self._items and (self._known is None or self._known.get_by_key(key) is None):
            return
        self._queue_action(DeltaType.DELETED, obj)

    def replace(self, objects: Iterable[T], resource_version: str) -> None:
        """A relist: Replaced for each of `objects`, Deleted for every queued
        or known key missing from them. `resource_version` is unused, as in
        client-go."""
        del resource_version
        listed: set[str] = set()
        for obj in objects:
            listed.add(self.key_of(obj))
            self._queue_action(DeltaType.REPLACED, obj)

        queued_deletions = 0
        for key in list(self._queue):
            if key in listed:
                continue
            newest = self._items[key][-1].object
            last = newest.object if isinstance(newest, DeletedFinalStateUnknown) else newest
            queued_deletions += 1
            self._queue_action(DeltaType.DELETED, DeletedFinalStateUnknown(key, last))

        if self._known is not None:
            for key in self._known.list_keys():
                if key in listed or key in self._items:
                    continue
                known = self._known.get_by_key(key)
                queued_deletions += 1
                self._queue_action(DeltaType.DELETED, DeletedFinalStateUnknown(key, known))

        if not self._populated:
            self._populated = True
            self._initial_population_count = len(listed) + queued_deletions
        self._note_synced()  # an empty first list is synced at once

    def resync(self) -> None:
        """Sync for every known object with nothing queued."""
        if self._known is None:
            return
        for key in self._known.list_keys():
            obj = self._known.get_by_key(key)
            if obj is None or self._items.get(self.key_of(obj)):
                continue
            self._queue_action(DeltaType.SYNC, obj)

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    # Consumer side.

    async def pop(self, process: Callable[[Deltas[T], bool], Awaitable[None]]) -> Deltas[T]:
        """Await the oldest key, hand its deltas to `process` and return them."""
        async with self._pop_lock:
            while not self._queue:
                if self._closed:
                    raise FIFOClosedError
                self._changed.clear()
                await self._changed.wait()
            is_in_initial_list = not self.has_synced()
            key = self._queue.popleft()
            if self._initial_population_count > 0:
                self._initial_population_count -= 1
            deltas = self._items.pop(key)
            try:
                await process(deltas, is_in_initial_list)
            except RequeueError as e:
                self._requeue(key, deltas)
                if e.cause is not None:
                    raise e.cause from e
            except asyncio.CancelledError:
                self._requeue(key, deltas)
                raise
            self._note_synced()
            return deltas

    def has_synced(self) -> bool:
        return self._populated and self._initial_population_count == 0

    async def wait_synced(self) -> None:
        """Returns once `has_synced()` holds and the pop that made it hold has
        finished processing (at once after an empty first `replace`)."""
        await self._synced.wait()

    def _note_synced(self) -> None:
        if not self._synced.is_set() and self.has_synced():
            self._synced.set()

    # Inspection.

    def key_of(self, obj: T | DeletedFinalStateUnknown[T]) -> str:
        if isinstance(obj, DeletedFinalStateUnknown):
            return obj.key
        return self._key_func(obj)

    def list_keys(self) -> list[str]:
        return list(self._queue)

    def get_by_key(self, key: str) -> Deltas[T] | None:
        """A copy of the deltas queued for `key`."""
        deltas = self._items.get(key)
        return None if deltas is None else deque(deltas)

    def is_closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    # Internals.

    def _queue_action(self, type_: DeltaType, obj: T | DeletedFinalStateUnknown[T]) -> None:
        key = self.key_of(obj)
        deltas = self._items.get(key)
        if deltas is None:
            deltas = self._items[key] = deque()
            self._queue.append(key)
        _append_deduped(deltas, Delta(type_, obj))
        self._changed.set()
        self._note_synced()

    def _requeue(self, key: str, deltas: Deltas[T]) -> None:
        # client-go re-adds only if the key is absent, which it always is there
        # because Pop holds the lock while processing. Here process awaits, so
        # newer deltas may have been queued meanwhile: they go after the old.
        newer = self._items.get(key)
        if newer is None:
            self._items[key] = deltas
            self._queue.append(key)
        else:
            for delta in newer:
                _append_deduped(deltas, delta)
            self._items[key] = deltas
        self._changed.set()


def _append_deduped(deltas: Deltas[T], delta: Delta[T]) -> None:
    """Append, collapsing two Deleted deltas into the better-informed one."""
    if deltas and deltas[-1].type is DeltaType.DELETED and delta.type is DeltaType.DELETED:
        if isinstance(deltas[-1].object, DeletedFinalStateUnknown):
            deltas[-1] = delta
        return
    deltas.append(delta)

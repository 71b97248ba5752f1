"""The API server's watch cache: one etcd watch per resource, fanned out to
any number of client watches (Kubernetes' "cacher").

A `WatchCache` serves one resource in every namespace. It holds one etcd
watch, the current objects in memory, and a window of the last `capacity`
events; every client watch is a `CacheWatcher` fed from it.

Contract:
- `resource_version` is the etcd revision the cache is current to. It
  advances with every event and with etcd's progress notifications; `get`
  and `list` read the in-memory objects synchronously, and a `list` is a
  consistent snapshot at the version it returns.
- Objects and events handed out are shared by every caller and every
  watcher: never mutate them. The cache keeps each object as etcd stored it
  and decodes it only when a filter or a reader needs it (`CacheEvent.object`,
  `get`, `list`); `CacheEvent.encoded()` is the object's encoding, made once
  and without decoding where the kind allows it (`kpy.storage.codec.versioned`).
  `get_encoded` and `list_items` answer reads with that same encoding, so
  a reply passes the stored bytes on as a watch does.
- `watch(resource_version=R)` with R > 0 delivers every change with a
  version above R exactly once, in order, then live changes. R is servable
  while all events after it are still in the window (R >= the oldest
  version, see `statistics()`), else Expired ("list again"). An R the cache
  has not reached yet is waited for up to `catch_up_timeout`, then Timeout.
- R == 0 starts from the cache's current version: with `initial_events` the
  watcher first gets one synthetic ADDED per current matching object (in key
  order, each with its object's version: resume only from a later event or
  a bookmark). `initial_events` with R > 0 sends the snapshot once the cache
  has reached R (Kubernetes' sendInitialEvents with NotOlderThan). With
  `bookmarks` too, the snapshot ends with a BOOKMARK at the snapshot's
  version annotated `k8s.io/initial-events-end: "true"`.
- Filtering by namespace and by `matches` follows Kubernetes: a MODIFIED
  whose old state matched and new state does not reaches the watcher as
  DELETED (the old state, stamped with the event's version), one whose new
  state matches and old did not as ADDED; a DELETED goes to watchers whose
  filter matched the last state.
- With `bookmarks`, every `bookmark_interval` seconds a watcher whose last
  queued version is below the cache's gets a BOOKMARK at the cache's version,
  queued behind every event before it.
- Fan-out works in ticks: changes from etcd are applied to the objects at
  once, and handed to watchers together `dispatch_interval` seconds (10 ms)
  after the first of them: a message costs a stream far more than an event
  in it, so a watcher gets one message per tick, not one per write.
  Watchers with the same namespace and selectors form a group, and each
  tick's events are filtered and serialised once per group, as one `Frame`
  shared by its watchers (`CacheWatcher.next_response()` gives the bytes to
  write). One timer per cache, none per watcher.
- Fan-out never waits on a watcher: one that holds `watcher_queue_size` or
  more undelivered events when a tick comes is closed at once; its iterator
  raises TooManyRequests naming the version to resume from (the last one it
  handed out). Others are unaffected.
- A watcher's iterator raises Unavailable when the cache re-lists (etcd
  compacted the history it needed while the watch was down) and when `run`
  ends; the client watches again. A `CacheWatcher` yields batches: all that
  is queued when it is read (initial events: at most `watcher_queue_size`
  at a time, more only to keep the events of one etcd transaction, which
  share its revision, in one batch).
- Start-up lists the resource `history_revisions` revisions back and replays
  etcd's history from there, so a client can resume a watch from before an
  API server restart. etcd being unreachable re-opens the watch from the
  cache's version with jittered back-off; watchers stay open meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Self, TypeVar

import anyio
import anyio.abc
from google.protobuf.message import Message

from kpy.api.errors import (
    BadRequest,
    Expired,
    StatusError,
    Timeout,
    TooManyRequests,
    Unavailable,
)
from kpy.api.selection import Predicate
from kpy.apiserver.replies import list_item
from kpy.backoff import Backoff
from kpy.rpc.apiserver import v1 as api
from kpy.storage.codec import copy, decode, meta, versioned

if TYPE_CHECKING:
    import builtins
    from collections.abc import Awaitable, Iterable, Iterator
    from types import TracebackType

    from kpy.api.scheme import ResourceInfo
    from kpy.storage import Store, WatchEvent

__all__ = ["CacheEvent", "CacheStatistics", "CacheWatcher", "Filter", "Frame", "WatchCache"]

log = logging.getLogger(__name__)

T = TypeVar("T")

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]

Filter = Callable[[Message], bool]
"""Whether an object belongs to a watch or list (a label or field selector).
Called on shared objects: it must not mutate them."""

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
"""The annotation on the bookmark that ends a watch's initial events."""

_LIST_PAGE = 5_000  # objects per etcd range request when (re)listing
_BACKOFF_INITIAL = 0.1
_BACKOFF_MAX = 5.0


class _Stored:
    """One state of one object: the bytes etcd stored (or, for objects that
    came decoded, the object), decoded and encoded each at most once."""

    __slots__ = ("_info", "_item", "_object", "_skip", "key", "resource_version", "value")

    def __init__(
        self,
        info: ResourceInfo,
        resource_version: int,
        *,
        key: bytes = b"",
        value: bytes | None = None,
        obj: Message | None = None,
    ) -> None:
        self._info = info
        self.resource_version = resource_version
        self.key = key
        self.value = value
        self._object = obj
        self._item: bytes | None = None
        self._skip = 0  # bytes of _item before the encoding

    @classmethod
    def of(cls, info: ResourceInfo, change: WatchEvent) -> _Stored:
        """The state a change from etcd left, kept encoded."""
        if change.value is not None:
            return cls(info, change.resource_version, key=change.key, value=change.value)
        return cls(info, change.resource_version, obj=change.object)

    @property
    def object(self) -> Message:
        """The object, with its resource_version; StatusError if the stored
        bytes do not parse."""
        obj = self._object
        if obj is None:
            assert self.value is not None  # one of the two is always set
            obj = decode(self._info, self.key, self.value, self.resource_version)
            self._object = obj
        return obj

    def encoded(self) -> bytes:
        """The object's encoding with its resource_version (out of `item`)."""
        return self.item()[self._skip :]

    def item(self) -> bytes:
        """The object's encoding as an element of a list reply's items
        (`replies.list_item`), made once and kept: the one encoded form the
        cache holds, so that a list joins what it holds as it is."""
        data = self._item
        if data is None:
            if self.value is not None:
                encoding = versioned(self._info, self.key, self.value, self.resource_version)
            else:
                encoding = self.object.SerializeToString()
            data = self._item = list_item(encoding)
            self._skip = len(data) - len(encoding)
        return data

    def at(self, resource_version: int) -> _Stored:
        """The same object stamped with another version."""
        if self.value is not None:
            return _Stored(self._info, resource_version, key=self.key, value=self.value)
        obj = copy(self.object)
        meta(obj).resource_version = str(resource_version)
        return _Stored(self._info, resource_version, obj=obj)


class CacheEvent:
    """One change as the cache hands it out. `object` is the new state (for
    DELETED the last state, for BOOKMARK an empty object carrying only its
    resource_version); `prev_object` the state before (None for ADDED and
    BOOKMARK); `namespace` the object's namespace ("" if cluster-scoped).
    Objects are decoded on first access. Shared by every watcher: never
    mutate it or its objects."""

    __slots__ = (
        "_as_added",
        "_as_deleted",
        "_prev",
        "_state",
        "namespace",
        "resource_version",
        "type",
    )

    def __init__(
        self,
        type: EventType,
        state: _Stored,
        prev: _Stored | None,
        resource_version: int,
        namespace: str = "",
    ) -> None:
        self.type: EventType = type
        self.resource_version = resource_version
        self.namespace = namespace
        self._state = state
        self._prev = prev
        self._as_added: CacheEvent | None = None
        self._as_deleted: CacheEvent | None = None

    @property
    def object(self) -> Message:
        return self._state.object

    @property
    def prev_object(self) -> Message | None:
        return None if self._prev is None else self._prev.object

    def encoded(self) -> bytes:
        """`object` in binary protobuf (JSON for custom kinds), made on the
        first call only (later calls copy it out of the form kept)."""
        return self._state.encoded()

    def as_added(self) -> CacheEvent:
        """This change as seen by a watcher whose filter only now matches."""
        event = self._as_added
        if event is None:
            event = CacheEvent("ADDED", self._state, None, self.resource_version, self.namespace)
            self._as_added = event
        return event

    def as_deleted(self) -> CacheEvent:
        """This change as seen by a watcher whose filter no longer matches:
        the old state, stamped with this event's version (as Kubernetes does)."""
        event = self._as_deleted
        if event is None:
            if self._prev is None:
                raise ValueError(f"a {self.type} event has no previous state to delete")
            gone = self._prev.at(self.resource_version)
            event = CacheEvent("DELETED", gone, self._prev, self.resource_version, self.namespace)
            self._as_deleted = event
        return event

    def __repr__(self) -> str:
        return f"CacheEvent({self.type}, {self.namespace!r}, {self.resource_version})"


class Frame:
    """Events in the order a group of watchers sees them, serialised once for
    all of them as one `WatchResponse`. Shared: never mutate it."""

    __slots__ = ("_data", "events")

    def __init__(self, events: tuple[CacheEvent, ...]) -> None:
        self.events = events
        self._data: bytes | None = None

    def data(self) -> bytes:
        """The WatchResponse holding the events, serialised on the first call."""
        data = self._data
        if data is None:
            data = api.WatchResponse(
                events=[
                    api.WatchEvent(
                        type=e.type, object=e.encoded(), resource_version=str(e.resource_version)
                    )
                    for e in self.events
                ]
            ).SerializeToString()
            self._data = data
        return data


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of a cache, for metrics. A watch is servable from any
    version >= `oldest_resource_version`."""

    objects: int
    events: int
    oldest_resource_version: int
    resource_version: int
    watchers: int
    watchers_closed_slow: int


class CacheWatcher:
    """One client watch served by a `WatchCache`. Iterate it for batches of
    events (`async for batch in watcher:`), or read `next_response()` for the
    same batches as WatchResponse bytes, by one task; reading is cancel-safe
    (a cancelled read loses nothing). `close()` (or leaving `async with`)
    ends it: reads then stop. When the server ends it, reads raise
    TooManyRequests (the client fell behind) or Unavailable (the cache
    re-listed or shut down) instead."""

    def __init__(
        self,
        *,
        group_resource: str,
        group: _Group,
        bookmarks: bool,
        queue_size: int,
        initial: deque[CacheEvent],
        initial_resumable: bool,
        resource_version: int,
        live_from: int,
        forget: Callable[[CacheWatcher], None],
    ) -> None:
        self.bookmarks = bookmarks
        self._group_resource = group_resource
        self._group = group
        self._size = queue_size
        self._queue: deque[Frame] = deque()  # live frames, shared with the group
        self._queued_events = 0  # events in _queue
        self._initial = initial  # replayed or synthetic events, outside the bound
        self._initial_resumable = initial_resumable
        self._live_from = live_from
        # resuming from _handed loses nothing (0: the snapshot is not handed out yet)
        self._handed = resource_version if initial else live_from
        self._queued = live_from  # version of the last event queued (for bookmarks)
        self._wakeup = asyncio.Event()
        self._closed = False
        self._error: Exception | None = None
        self._forget = forget

    @property
    def namespace(self) -> str | None:
        return self._group.namespace

    # -- reading ------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[CacheEvent]:
        frames = await self._next_frames()
        return [event for frame in frames for event in frame.events]

    async def next_response(self) -> bytes:
        """The next batch as one serialised `WatchResponse`: the frames
        queued since the last read, each serialised once for its whole
        group and joined (concatenated WatchResponses parse as one whose
        events are theirs in order). StopAsyncIteration once closed."""
        frames = await self._next_frames()
        if len(frames) == 1:
            return frames[0].data()
        return b"".join(frame.data() for frame in frames)

    async def _next_frames(self) -> list[Frame]:
        while True:
            if self._error is not None:
                raise self._error.with_traceback(None)
            if self._closed:
                raise StopAsyncIteration
            if self._initial:
                return [Frame(tuple(self._take_initial()))]
            if self._queue:
                frames = list(self._queue)
                self._queue.clear()
                self._queued_events = 0
                self._handed = frames[-1].events[-1].resource_version
                return frames
            self._wakeup.clear()
            await self._wakeup.wait()

    def _take_initial(self) -> list[CacheEvent]:
        initial = self._initial
        count = min(len(initial), self._size)
        batch = [initial.popleft() for _ in range(count)]
        # The events of one etcd transaction (a batch of Events) share its
        # revision: keep them in one batch, or a client resuming from the
        # last version it saw would skip the rest of the transaction.
        while initial and initial[0].resource_version == batch[-1].resource_version:
            batch.append(initial.popleft())
        if self._initial_resumable:
            self._handed = batch[-1].resource_version
        if not initial:
            self._handed = max(self._handed, self._live_from)
        return batch

    def close(self) -> None:
        """Ends the watch; idempotent. A pending read returns (stops)."""
        if self._closed:
            return
        self._closed = True
        self._drop()
        self._forget(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- used by the cache ----------------------------------------------------

    def _push(self, frame: Frame) -> bool:
        """Queues a tick's frame, without waiting; False when the watcher
        already holds `queue_size` undelivered events (the cache then ends
        it). A watcher that keeps up takes any frame, however large."""
        if self._queued_events >= self._size:
            return False
        self._queue.append(frame)
        self._queued_events += len(frame.events)
        self._queued = frame.events[-1].resource_version
        self._wakeup.set()
        return True

    def _offer_bookmark(self, bookmark: Frame) -> None:
        """Queues a bookmark if this watcher wants one and has room; a full
        queue only skips it (the events queued already carry progress)."""
        version = bookmark.events[-1].resource_version
        if self._queued < version and self._queued_events < self._size:
            self._push(bookmark)

    def _fell_behind(self, dropped: int) -> TooManyRequests:
        behind = self._queued_events + len(self._initial) + dropped
        if self._handed:
            then = f"watch again from resource version {self._handed}"
        else:
            then = "list (or watch with initial events) again"
        return TooManyRequests(
            f"watch of {self._group_resource} closed: the client fell behind by "
            f"{behind} events; {then}",
            kind=self._group_resource,
        )

    def _end(self, error: Exception) -> None:
        """Ends the watch from the server's side: reads raise `error`."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._drop()

    def _ended_by(self, reason: str) -> Unavailable:
        then = f" from resource version {self._handed}" if self._handed else ""
        return Unavailable(
            f"watch of {self._group_resource} closed: {reason}; watch again{then}",
            kind=self._group_resource,
        )

    def _drop(self) -> None:
        self._queue.clear()
        self._queued_events = 0
        self._initial.clear()
        self._wakeup.set()


class _Group:
    """The watchers of one namespace (None: all) with equal selectors: each
    tick's events are filtered and serialised once for all of them."""

    __slots__ = ("key", "matches", "namespace", "watchers")

    def __init__(self, key: Hashable, namespace: str | None, matches: Filter | None) -> None:
        self.key = key
        self.namespace = namespace
        self.matches = matches
        self.watchers: set[CacheWatcher] = set()

    def frame(self, events: list[CacheEvent], log_extra: dict[str, str]) -> Frame | None:
        """What `events` (all of this group's namespace) mean to its
        watchers, as one frame; None when nothing concerns them."""
        matches = self.matches
        if matches is None:
            return Frame(tuple(events))
        seen: list[CacheEvent] = []
        for event in events:
            try:
                one = _as_seen_by(event, None, matches)
            except StatusError as e:  # a stored object that does not parse
                log.error("cannot filter a watch event, left out: %s", e, extra=log_extra)
                continue
            if one is not None:
                seen.append(one)
        return Frame(tuple(seen)) if seen else None


def _group_key(namespace: str | None, matches: Filter | None) -> Hashable:
    """Watches with equal keys see the same events. Selectors parsed from the
    same text are equal; any other filter is a group of its own."""
    if isinstance(matches, Predicate):
        return (namespace, matches.label, matches.field)
    return (namespace, matches)


class WatchCache:
    """The current objects and recent events of one resource, kept up to date
    by one etcd watch and served to any number of watchers. See the module
    docstring for the contract. Start it with `run` (it runs until cancelled);
    everything else may be called from any task of the same event loop."""

    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        *,
        capacity: int = 20_000,
        history_revisions: int = 10_000,
        bookmark_interval: float = 5.0,
        watcher_queue_size: int = 1_000,
        catch_up_timeout: float = 3.0,
        dispatch_interval: float = 0.01,
    ) -> None:
        if capacity < 1 or watcher_queue_size < 1 or history_revisions < 0:
            raise ValueError(
                "capacity and watcher_queue_size must be positive and history_revisions "
                f"not negative, got {capacity}, {watcher_queue_size}, {history_revisions}"
            )
        if bookmark_interval <= 0 or catch_up_timeout < 0 or dispatch_interval < 0:
            raise ValueError(
                "bookmark_interval must be positive, and catch_up_timeout and "
                f"dispatch_interval not negative, got {bookmark_interval}, "
                f"{catch_up_timeout}, {dispatch_interval}"
            )
        self._store = store
        self._info = info
        self._gr = info.group_resource
        self._capacity = capacity
        self._history = history_revisions
        self._bookmark_interval = bookmark_interval
        self._queue_size = watcher_queue_size
        self._catch_up_timeout = catch_up_timeout
        self._dispatch_interval = dispatch_interval
        # namespace -> name -> the object's latest state as an ADDED event
        self._objects: dict[str, dict[str, CacheEvent]] = {}
        self._count = 0
        self._window: deque[CacheEvent] = deque()
        self._oldest = 0
        self._rv = 0
        self._changed_at = 0.0  # time.monotonic() of the last change applied
        self._ready = asyncio.Event()
        self._advanced: asyncio.Event | None = None  # set (and dropped) when _rv moves
        self._started = False
        self._stopped: str | None = None  # why the cache no longer serves watches
        # watcher groups: of every namespace, and by namespace
        self._all_namespaces: dict[Hashable, _Group] = {}
        self._by_namespace: dict[str, dict[Hashable, _Group]] = {}
        self._watcher_count = 0
        self._undispatched: list[CacheEvent] = []  # applied, not yet handed to watchers
        self._dispatch_at: asyncio.TimerHandle | None = None
        self._closed_slow = 0
        self._log = {"component": "watch-cache", "resource": self._gr}

    # -- reads ----------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The etcd revision the cache is current to (0 before it is ready)."""
        return self._rv

    @property
    def changed_at(self) -> float:
        """`time.monotonic()` when the cache last applied a change of its
        resource (not a progress notification); 0.0 before any."""
        return self._changed_at

    def get(self, namespace: str, name: str) -> Message | None:
        """The object's current state ("" as namespace if cluster-scoped),
        or None. Shared: never mutate it. Decoded on its first read (as are
        `list`'s): StatusError naming its key if the stored bytes do not parse."""
        names = self._objects.get(namespace)
        entry = names.get(name) if names is not None else None
        return entry.object if entry is not None else None

    def list(
        self, namespace: str | None = None, matches: Filter | None = None
    ) -> tuple[list[Message], int]:
        """The current objects (in `namespace`, or all) that `matches`, sorted
        by (namespace, name), and the version they are current to.
        Unavailable before the first list from etcd has loaded. The objects
        are shared: never mutate them."""
        self._check_ready()
        objects = [e.object for e in self._entries(namespace)]
        if matches is not None:
            objects = [o for o in objects if matches(o)]
        return objects, self._rv

    def get_encoded(self, namespace: str, name: str) -> bytes | None:
        """`get`'s object in binary protobuf, as a watch event carries it
        (`CacheEvent.encoded()`): for kinds without a read hook, the stored
        bytes and a metadata holding the version, neither decoded nor
        encoded. None when absent; StatusError naming its key when the
        stored value cannot be read (never the value itself: an
        undecryptable one stays as etcd holds it)."""
        names = self._objects.get(namespace)
        entry = names.get(name) if names is not None else None
        return entry._state.encoded() if entry is not None else None

    def list_items(
        self, namespace: str | None = None, matches: Filter | None = None
    ) -> tuple[builtins.list[bytes], int]:
        """`list`, each object encoded as `get_encoded` gives it and framed
        as an element of a list reply's items (`replies.list_item`): joined,
        they are the reply's items field. Only `matches` decodes (the
        objects it reads)."""
        self._check_ready()
        entries: Iterable[CacheEvent] = self._entries(namespace)
        if matches is not None:
            entries = [e for e in entries if matches(e.object)]
        return [e._state.item() for e in entries], self._rv

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(
            objects=self._count,
            events=len(self._window),
            oldest_resource_version=self._oldest,
            resource_version=self._rv,
            watchers=self._watcher_count,
            watchers_closed_slow=self._closed_slow,
        )

    async def wait_ready(self) -> None:
        """Returns once the first list has loaded; Unavailable if the cache
        has stopped."""
        await self._ready.wait()
        self._check_serving()

    async def wait_until_fresh(self, resource_version: int) -> None:
        """Returns once the cache has reached `resource_version`; Timeout if
        it does not within `catch_up_timeout` seconds (for a list or watch
        that must not be older than a version the client has seen)."""
        await self.wait_ready()
        with anyio.move_on_after(self._catch_up_timeout):
            while self._rv < resource_version and self._stopped is None:
                if self._advanced is None:
                    self._advanced = asyncio.Event()
                await self._advanced.wait()
        self._check_serving()
        if self._rv < resource_version:
            raise Timeout(
                f"too large resource version: {resource_version} is ahead of this API "
                f"server's cache of {self._gr} (at {self._rv}), which did not catch up "
                f"within {self._catch_up_timeout:g}s; retry shortly",
                kind=self._gr,
            )

    # -- watches ----------------------------------------------------------------

    async def watch(
        self,
        *,
        namespace: str | None = None,
        resource_version: int = 0,
        matches: Filter | None = None,
        bookmarks: bool = False,
        initial_events: bool = False,
    ) -> CacheWatcher:
        """A new watcher; see the module docstring for what it delivers.
        Expired when `resource_version` is older than the window, Timeout
        when it is ahead of the cache for longer than `catch_up_timeout`."""
        if resource_version < 0:
            raise BadRequest(f"resource_version must not be negative: {resource_version}")
        namespace = namespace or None
        await self.wait_until_fresh(resource_version)
        # From here to the registration nothing awaits: no event slips between.
        # Events applied but not handed out yet go to the watchers there are
        # now, so that every later tick holds only events after `rv`.
        self._dispatch()
        rv = self._rv
        if initial_events:
            initial = deque(self._snapshot(namespace, matches))
            if bookmarks:
                initial.append(self._bookmark(rv, initial_events_end=True))
            start = 0
        elif resource_version:
            if resource_version < self._oldest:
                raise Expired(
                    f"too old resource version: {resource_version} (oldest available is "
                    f"{self._oldest}); list again",
                    kind=self._gr,
                )
            initial = deque(self._replay(namespace, matches, resource_version))
            start = resource_version
        else:
            initial, start = deque(), rv
        key = _group_key(namespace, matches)
        groups = (
            self._all_namespaces
            if namespace is None
            else self._by_namespace.setdefault(namespace, {})
        )
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(key, namespace, matches)
        watcher = CacheWatcher(
            group_resource=self._gr,
            group=group,
            bookmarks=bookmarks,
            queue_size=self._queue_size,
            initial=initial,
            initial_resumable=not initial_events,
            resource_version=start,
            live_from=rv,
            forget=self._forget,
        )
        group.watchers.add(watcher)
        self._watcher_count += 1
        return watcher

    def _snapshot(self, namespace: str | None, matches: Filter | None) -> Iterator[CacheEvent]:
        for entry in self._entries(namespace):
            if matches is None or matches(entry.object):
                yield entry

    def _replay(
        self, namespace: str | None, matches: Filter | None, after: int
    ) -> builtins.list[CacheEvent]:
        """What the window holds after version `after`, as a watcher of
        `namespace` with filter `matches` sees it."""
        newer: builtins.list[CacheEvent] = []
        for event in reversed(self._window):
            if event.resource_version <= after:
                break
            newer.append(event)
        newer.reverse()
        seen = (_as_seen_by(e, namespace, matches) for e in newer)
        return [e for e in seen if e is not None]

    def _forget(self, watcher: CacheWatcher) -> None:
        group = watcher._group
        if watcher not in group.watchers:
            return
        group.watchers.discard(watcher)
        self._watcher_count -= 1
        if group.watchers:
            return
        if group.namespace is None:
            self._all_namespaces.pop(group.key, None)
            return
        groups = self._by_namespace.get(group.namespace)
        if groups is not None:
            groups.pop(group.key, None)
            if not groups:
                del self._by_namespace[group.namespace]

    def _groups(self) -> Iterator[_Group]:
        yield from self._all_namespaces.values()
        for groups in self._by_namespace.values():
            yield from groups.values()

    def _watchers(self) -> Iterator[CacheWatcher]:
        for group in self._groups():
            yield from group.watchers

    def _end_all(self, reason: str) -> None:
        watchers = list(self._watchers())
        for group in self._groups():
            group.watchers.clear()
        self._all_namespaces.clear()
        self._by_namespace.clear()
        self._watcher_count = 0
        self._drop_undispatched()
        for w in watchers:
            w._end(w._ended_by(reason))

    # -- running ----------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Loads the resource, then follows etcd until cancelled. Reports
        started once the first list has loaded. When it ends, every watcher's
        iterator raises Unavailable."""
        if self._started:
            raise RuntimeError(f"the watch cache of {self._gr} has already been run")
        self._started = True
        reason = "the API server is shutting down"
        try:
            await self._load()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._follow_etcd)
                tg.start_soon(self._send_bookmarks)
                task_status.started()
        except BaseException as e:
            if not isinstance(e, anyio.get_cancelled_exc_class()):
                reason = f"the API server's cache of {self._gr} failed ({e})"
                log.exception("watch cache failed", extra=self._log)
            raise
        finally:
            self._stop(reason)

    async def _load(self) -> None:
        """Lists `history_revisions` back, so that the watch opened next
        replays the history since into the window."""
        current = await _retrying(self._store.current_revision, self._log)
        start = max(1, current - self._history)
        try:
            items, rv = await _retrying(lambda: self._list_at(start), self._log)
        except Expired:
            log.info(
                "revision %d is compacted; starting the cache at the current revision",
                start,
                extra=self._log,
            )
            items, rv = await _retrying(lambda: self._list_at(0), self._log)
        self._replace(items, rv)
        self._ready.set()
        log.info("watch cache loaded %d objects at revision %d", len(items), rv, extra=self._log)

    async def _list_at(self, revision: int) -> tuple[builtins.list[WatchEvent], int]:
        # Stored values, not objects: one that cannot be read (no configured
        # key decrypts it) fails the reads of that object, not the cache.
        store, info = self._store, self._info
        page = await store.list_stored(info, limit=_LIST_PAGE, resource_version=revision)
        items = list(page.items)
        while page.continue_token is not None:
            page = await store.list_stored(
                info, limit=_LIST_PAGE, continue_token=page.continue_token
            )
            items.extend(page.items)
        return items, page.resource_version

    async def _follow_etcd(self) -> None:
        backoff = _etcd_backoff()
        while True:
            try:
                async with self._store.watch(self._info, resource_version=self._rv) as w:
                    backoff.reset()
                    async for event in w:
                        self._apply(event)
            except Expired as e:
                log.warning("etcd history is gone (%s); re-listing", e, extra=self._log)
                await self._relist()
            except (Unavailable, Timeout, TimeoutError) as e:
                delay = backoff.next()
                log.warning(
                    "etcd watch lost (%s); re-opening from revision %d in %.2fs",
                    e,
                    self._rv,
                    delay,
                    extra=self._log,
                )
                await anyio.sleep(delay)

    async def _relist(self) -> None:
        items, rv = await _retrying(lambda: self._list_at(0), self._log)
        self._replace(items, rv)
        self._end_all("the API server's cache was re-listed")
        self._notify_advanced()
        log.info("watch cache re-listed %d objects at revision %d", len(items), rv, extra=self._log)

    async def _send_bookmarks(self) -> None:
        while True:
            await anyio.sleep(self._bookmark_interval)
            self._dispatch()  # a bookmark goes behind every event before it
            rv, bookmark = self._rv, None
            for w in self._watchers():
                if w.bookmarks and w._queued < rv:
                    if bookmark is None:
                        bookmark = Frame((self._bookmark(rv),))
                    w._offer_bookmark(bookmark)

    def _stop(self, reason: str) -> None:
        self._stopped = reason
        self._end_all(reason)
        self._ready.set()  # wake waiters, who then see the cache stopped
        self._notify_advanced()

    def _check_ready(self) -> None:
        if not self._ready.is_set():
            raise Unavailable(
                f"the watch cache of {self._gr} is not ready yet; retry shortly", kind=self._gr
            )

    def _check_serving(self) -> None:
        if self._stopped is not None:
            raise Unavailable(
                f"the watch cache of {self._gr} is not serving: {self._stopped}; retry",
                kind=self._gr,
            )

    # -- state --------------------------------------------------------------------

    def _replace(self, items: Iterable[WatchEvent], rv: int) -> None:
        objects: dict[str, dict[str, CacheEvent]] = {}
        count = 0
        info = self._info
        for item in items:
            namespace, name = self._names(item)
            version = item.resource_version
            state = _Stored.of(info, item)
            objects.setdefault(namespace, {})[name] = CacheEvent(
                "ADDED", state, None, version, namespace
            )
            count += 1
        self._objects, self._count = objects, count
        self._window.clear()
        self._oldest = self._rv = rv

    def _apply(self, change: WatchEvent) -> None:
        rv = change.resource_version
        if change.type == "BOOKMARK":
            if rv > self._rv:
                self._rv = rv
                self._notify_advanced()
            return
        namespace, name = self._names(change)
        state = _Stored.of(self._info, change)
        names = self._objects.get(namespace)
        entry = names.get(name) if names is not None else None
        prev = entry._state if entry is not None else None
        if change.type == "DELETED":
            event = CacheEvent("DELETED", state, prev, rv, namespace)
            if names is not None and entry is not None:
                del names[name]
                self._count -= 1
                if not names:
                    del self._objects[namespace]
        else:
            added = CacheEvent("ADDED", state, None, rv, namespace)
            if prev is None:
                event = added
                self._count += 1
            else:
                event = CacheEvent("MODIFIED", state, prev, rv, namespace)
                event._as_added = added
            if names is None:
                names = self._objects[namespace] = {}
            names[name] = added
        window = self._window
        if len(window) >= self._capacity:
            self._oldest = window.popleft().resource_version
        window.append(event)
        self._rv = rv
        self._changed_at = time.monotonic()
        if self._watcher_count:
            self._undispatched.append(event)
            self._schedule_dispatch()
        self._notify_advanced()

    def _names(self, change: WatchEvent) -> tuple[str, str]:
        """The namespace ("" if cluster-scoped) and name of a change's object,
        read from its etcd key (`.../<namespace>/<name>`): no decoding."""
        if not change.key:
            m = meta(change.object)
            return m.namespace, m.name
        parts = change.key.decode().rsplit("/", 2)
        return (parts[-2] if self._info.namespaced else ""), parts[-1]

    # -- fan-out --------------------------------------------------------------------

    def _schedule_dispatch(self) -> None:
        """Hands the events applied so far to the watchers `dispatch_interval`
        seconds after the first of them: a burst of writes then reaches
        each watcher as one message rather than one per write (a message
        costs far more than an event in it)."""
        if self._dispatch_at is None:
            loop = asyncio.get_running_loop()
            self._dispatch_at = loop.call_later(self._dispatch_interval, self._dispatch)

    def _drop_undispatched(self) -> None:
        self._undispatched = []
        if self._dispatch_at is not None:
            self._dispatch_at.cancel()
            self._dispatch_at = None

    def _dispatch(self) -> None:
        """Hands the undispatched events to every watcher: one frame per
        group, the same object for all its watchers. Never waits; a watcher
        that has fallen too far behind is ended instead."""
        events = self._undispatched
        self._drop_undispatched()
        if not events:
            return
        slow: builtins.list[tuple[CacheWatcher, int]] = []
        for group in self._all_namespaces.values():
            self._hand(group, events, slow)
        if self._by_namespace:
            by_namespace: dict[str, builtins.list[CacheEvent]] = {}
            for event in events:
                by_namespace.setdefault(event.namespace, []).append(event)
            for namespace, of_namespace in by_namespace.items():
                for group in self._by_namespace.get(namespace, {}).values():
                    self._hand(group, of_namespace, slow)
        for w, dropped in slow:
            self._closed_slow += 1
            error = w._fell_behind(dropped)
            self._forget(w)
            w._end(error)
            log.info("closed a slow watcher: %s", error, extra=self._log)

    def _hand(
        self,
        group: _Group,
        events: builtins.list[CacheEvent],
        slow: builtins.list[tuple[CacheWatcher, int]],
    ) -> None:
        frame = group.frame(events, self._log)
        if frame is None:
            return
        for w in group.watchers:
            if not w._push(frame):
                slow.append((w, len(frame.events)))

    def _entries(self, namespace: str | None) -> Iterator[CacheEvent]:
        if namespace is not None:
            names = self._objects.get(namespace, {})
            for name in sorted(names):
                yield names[name]
            return
        for ns in sorted(self._objects):
            names = self._objects[ns]
            for name in sorted(names):
                yield names[name]

    def _bookmark(self, rv: int, *, initial_events_end: bool = False) -> CacheEvent:
        obj = self._info.message()
        m = meta(obj)
        m.resource_version = str(rv)
        if initial_events_end:
            m.annotations[INITIAL_EVENTS_END] = "true"
        return CacheEvent("BOOKMARK", _Stored(self._info, rv, obj=obj), None, rv)

    def _notify_advanced(self) -> None:
        advanced = self._advanced
        if advanced is not None:
            self._advanced = None
            advanced.set()


def _as_seen_by(
    event: CacheEvent, namespace: str | None, matches: Filter | None
) -> CacheEvent | None:
    """What `event` means to a watcher of `namespace` filtering by `matches`
    (None: nothing)."""
    if namespace is not None and event.namespace != namespace:
        return None
    if matches is None:
        return event
    if event.type != "MODIFIED":
        return event if matches(event.object) else None
    new = matches(event.object)
    old = matches(event.prev_object)  # type: ignore[arg-type]  # MODIFIED has one
    if new:
        return event if old else event.as_added()
    return event.as_deleted() if old else None


def _etcd_backoff() -> Backoff:
    """Waits for etcd: 0.1 s doubling to 5 s, each jittered by ±20%."""
    return Backoff(base=_BACKOFF_INITIAL, cap=_BACKOFF_MAX, jitter=(0.8, 1.2))


async def _retrying(call: Callable[[], Awaitable[T]], extra: dict[str, str]) -> T:
    """`call()`, retried with back-off while etcd is unreachable or slow."""
    backoff = _etcd_backoff()
    while True:
        try:
            return await call()
        except (Unavailable, Timeout) as e:
            delay = backoff.next()
            log.warning("etcd call failed (%s); retrying in %.2fs", e, delay, extra=extra)
            await anyio.sleep(delay)

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
  watcher: never mutate them. `CacheEvent.encoded()` serialises an event's
  object once, for all watchers.
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
- Fan-out never waits on a watcher: each holds at most `watcher_queue_size`
  undelivered events, and one that falls further behind is closed at once;
  its iterator raises TooManyRequests naming the version to resume from (the
  last one it handed out). Others are unaffected.
- A watcher's iterator raises Unavailable when the cache re-lists (etcd
  compacted the history it needed while the watch was down) and when `run`
  ends; the client watches again. A `CacheWatcher` yields batches: all that
  is queued when it is read (at most `watcher_queue_size` events).
- Start-up lists the resource `history_revisions` revisions back and replays
  etcd's history from there, so a client can resume a watch from before an
  API server restart. etcd being unreachable re-opens the watch from the
  cache's version with jittered back-off; watchers stay open meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Self, TypeVar

import anyio
import anyio.abc
from google.protobuf.message import Message

from kpy.api.errors import BadRequest, Expired, Timeout, TooManyRequests, Unavailable
from kpy.backoff import Backoff
from kpy.storage.codec import copy, meta

if TYPE_CHECKING:
    import builtins
    from collections.abc import Awaitable, Iterable, Iterator
    from types import TracebackType

    from kpy.api.scheme import ResourceInfo
    from kpy.storage import Store, WatchEvent

__all__ = ["CacheEvent", "CacheStatistics", "CacheWatcher", "Filter", "WatchCache"]

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


@dataclass(frozen=True, slots=True, eq=False)
class CacheEvent:
    """One change as the cache hands it out. `object` is the new state (for
    DELETED the last state, for BOOKMARK an empty object carrying only its
    resource_version); `prev_object` the state before (None for ADDED and
    BOOKMARK); `namespace` the object's namespace ("" if cluster-scoped).
    Shared by every watcher: never mutate it or its objects."""

    type: EventType
    object: Message
    prev_object: Message | None
    resource_version: int
    namespace: str = ""
    _encoded: bytes | None = field(default=None, init=False, repr=False)
    _as_added: CacheEvent | None = field(default=None, init=False, repr=False)
    _as_deleted: CacheEvent | None = field(default=None, init=False, repr=False)

    def encoded(self) -> bytes:
        """`object` in binary protobuf, serialised on the first call only."""
        data = self._encoded
        if data is None:
            data = self.object.SerializeToString()
            object.__setattr__(self, "_encoded", data)
        return data

    def as_added(self) -> CacheEvent:
        """This change as seen by a watcher whose filter only now matches."""
        event = self._as_added
        if event is None:
            event = CacheEvent("ADDED", self.object, None, self.resource_version, self.namespace)
            object.__setattr__(self, "_as_added", event)
        return event

    def as_deleted(self) -> CacheEvent:
        """This change as seen by a watcher whose filter no longer matches:
        the old state, stamped with this event's version (as Kubernetes does)."""
        event = self._as_deleted
        if event is None:
            if self.prev_object is None:
                raise ValueError(f"a {self.type} event has no previous state to delete")
            gone = copy(self.prev_object)
            meta(gone).resource_version = str(self.resource_version)
            event = CacheEvent(
                "DELETED", gone, self.prev_object, self.resource_version, self.namespace
            )
            object.__setattr__(self, "_as_deleted", event)
        return event


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
    events (`async for batch in watcher:`), by one task; reading is
    cancel-safe (a cancelled read loses nothing). `close()` (or leaving
    `async with`) ends it: the iterator then stops. When the server ends it,
    the iterator raises TooManyRequests (the client fell behind) or
    Unavailable (the cache re-listed or shut down) instead."""

    def __init__(
        self,
        *,
        group_resource: str,
        namespace: str | None,
        matches: Filter | None,
        bookmarks: bool,
        queue_size: int,
        initial: deque[CacheEvent],
        initial_resumable: bool,
        resource_version: int,
        live_from: int,
        forget: Callable[[CacheWatcher], None],
    ) -> None:
        self.namespace = namespace
        self.bookmarks = bookmarks
        self._group_resource = group_resource
        self._matches = matches
        self._size = queue_size
        self._queue: deque[CacheEvent] = deque()
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

    # -- reading ------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[CacheEvent]:
        while True:
            if self._error is not None:
                raise self._error.with_traceback(None)
            if self._closed:
                raise StopAsyncIteration
            if self._initial:
                return self._take_initial()
            if self._queue:
                batch = list(self._queue)
                self._queue.clear()
                self._handed = batch[-1].resource_version
                return batch
            self._wakeup.clear()
            await self._wakeup.wait()

    def ready(self) -> bool:
        """Whether a read would return at once (events queued, or the end)."""
        return bool(self._queue or self._initial or self._closed or self._error is not None)

    def _take_initial(self) -> list[CacheEvent]:
        initial = self._initial
        count = min(len(initial), self._size)
        batch = [initial.popleft() for _ in range(count)]
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

    def _offer(self, event: CacheEvent) -> bool:
        """Queues what the event means to this watcher, without waiting;
        False when the queue is full (the cache then ends this watcher)."""
        matches = self._matches
        if matches is not None:
            kind = event.type
            if kind == "MODIFIED":
                new = matches(event.object)
                old = matches(event.prev_object)  # type: ignore[arg-type]  # MODIFIED has one
                if new and not old:
                    event = event.as_added()
                elif old and not new:
                    event = event.as_deleted()
                elif not new:
                    return True
            elif not matches(event.object):
                return True
        queue = self._queue
        if len(queue) >= self._size:
            return False
        queue.append(event)
        self._queued = event.resource_version
        self._wakeup.set()
        return True

    def _offer_bookmark(self, bookmark: CacheEvent) -> None:
        """Queues a bookmark if this watcher wants one and has room; a full
        queue only skips it (the events queued already carry progress)."""
        if self._queued < bookmark.resource_version and len(self._queue) < self._size:
            self._queue.append(bookmark)
            self._queued = bookmark.resource_version
            self._wakeup.set()

    def _fell_behind(self) -> TooManyRequests:
        behind = len(self._queue) + len(self._initial) + 1
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
        """Ends the watch from the server's side: the iterator raises `error`."""
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
        self._initial.clear()
        self._wakeup.set()


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
    ) -> None:
        if capacity < 1 or watcher_queue_size < 1 or history_revisions < 0:
            raise ValueError(
                "capacity and watcher_queue_size must be positive and history_revisions "
                f"not negative, got {capacity}, {watcher_queue_size}, {history_revisions}"
            )
        if bookmark_interval <= 0 or catch_up_timeout < 0:
            raise ValueError(
                f"bookmark_interval must be positive and catch_up_timeout not negative, "
                f"got {bookmark_interval}, {catch_up_timeout}"
            )
        self._store = store
        self._info = info
        self._gr = info.group_resource
        self._capacity = capacity
        self._history = history_revisions
        self._bookmark_interval = bookmark_interval
        self._queue_size = watcher_queue_size
        self._catch_up_timeout = catch_up_timeout
        # namespace -> name -> the object's latest state as an ADDED event
        self._objects: dict[str, dict[str, CacheEvent]] = {}
        self._count = 0
        self._window: deque[CacheEvent] = deque()
        self._oldest = 0
        self._rv = 0
        self._ready = asyncio.Event()
        self._advanced: asyncio.Event | None = None  # set (and dropped) when _rv moves
        self._started = False
        self._stopped: str | None = None  # why the cache no longer serves watches
        self._all_namespaces: set[CacheWatcher] = set()
        self._by_namespace: dict[str, set[CacheWatcher]] = {}
        self._closed_slow = 0
        self._log = {"component": "watch-cache", "resource": self._gr}

    # -- reads ----------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The etcd revision the cache is current to (0 before it is ready)."""
        return self._rv

    def get(self, namespace: str, name: str) -> Message | None:
        """The object's current state ("" as namespace if cluster-scoped),
        or None. Shared: never mutate it."""
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
        if not self._ready.is_set():
            raise Unavailable(
                f"the watch cache of {self._gr} is not ready yet; retry shortly", kind=self._gr
            )
        objects = [e.object for e in self._entries(namespace)]
        if matches is not None:
            objects = [o for o in objects if matches(o)]
        return objects, self._rv

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(
            objects=self._count,
            events=len(self._window),
            oldest_resource_version=self._oldest,
            resource_version=self._rv,
            watchers=len(self._all_namespaces) + sum(map(len, self._by_namespace.values())),
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
        watcher = CacheWatcher(
            group_resource=self._gr,
            namespace=namespace,
            matches=matches,
            bookmarks=bookmarks,
            queue_size=self._queue_size,
            initial=initial,
            initial_resumable=not initial_events,
            resource_version=start,
            live_from=rv,
            forget=self._forget,
        )
        if namespace is None:
            self._all_namespaces.add(watcher)
        else:
            self._by_namespace.setdefault(namespace, set()).add(watcher)
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
        if watcher.namespace is None:
            self._all_namespaces.discard(watcher)
            return
        watchers = self._by_namespace.get(watcher.namespace)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._by_namespace[watcher.namespace]

    def _watchers(self) -> Iterator[CacheWatcher]:
        yield from self._all_namespaces
        for watchers in self._by_namespace.values():
            yield from watchers

    def _end_all(self, reason: str) -> None:
        watchers = list(self._watchers())
        self._all_namespaces.clear()
        self._by_namespace.clear()
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

    async def _list_at(self, revision: int) -> tuple[builtins.list[Message], int]:
        page = await self._store.list(self._info, limit=_LIST_PAGE, resource_version=revision)
        items = list(page.items)
        while page.continue_token is not None:
            page = await self._store.list(
                self._info, limit=_LIST_PAGE, continue_token=page.continue_token
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
            rv, bookmark = self._rv, None
            for w in self._watchers():
                if w.bookmarks and w._queued < rv:
                    if bookmark is None:
                        bookmark = self._bookmark(rv)
                    w._offer_bookmark(bookmark)

    def _stop(self, reason: str) -> None:
        self._stopped = reason
        self._end_all(reason)
        self._ready.set()  # wake waiters, who then see the cache stopped
        self._notify_advanced()

    def _check_serving(self) -> None:
        if self._stopped is not None:
            raise Unavailable(
                f"the watch cache of {self._gr} is not serving: {self._stopped}; retry",
                kind=self._gr,
            )

    # -- state --------------------------------------------------------------------

    def _replace(self, items: Iterable[Message], rv: int) -> None:
        objects: dict[str, dict[str, CacheEvent]] = {}
        count = 0
        for obj in items:
            m = meta(obj)
            objects.setdefault(m.namespace, {})[m.name] = CacheEvent(
                "ADDED", obj, None, int(m.resource_version), m.namespace
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
        obj = change.object
        m = meta(obj)
        namespace, name = m.namespace, m.name
        names = self._objects.get(namespace)
        entry = names.get(name) if names is not None else None
        prev = entry.object if entry is not None else None
        if change.type == "DELETED":
            event = CacheEvent("DELETED", obj, prev, rv, namespace)
            if names is not None and entry is not None:
                del names[name]
                self._count -= 1
                if not names:
                    del self._objects[namespace]
        else:
            added = CacheEvent("ADDED", obj, None, rv, namespace)
            if prev is None:
                event = added
                self._count += 1
            else:
                event = CacheEvent("MODIFIED", obj, prev, rv, namespace)
                object.__setattr__(event, "_as_added", added)
            if names is None:
                names = self._objects[namespace] = {}
            names[name] = added
        window = self._window
        if len(window) >= self._capacity:
            self._oldest = window.popleft().resource_version
        window.append(event)
        self._rv = rv
        self._dispatch(event)
        self._notify_advanced()

    def _dispatch(self, event: CacheEvent) -> None:
        slow: builtins.list[CacheWatcher] = []
        for w in self._all_namespaces:
            if not w._offer(event):
                slow.append(w)
        watchers = self._by_namespace.get(event.namespace)
        if watchers:
            for w in watchers:
                if not w._offer(event):
                    slow.append(w)
        for w in slow:
            self._closed_slow += 1
            error = w._fell_behind()
            self._forget(w)
            w._end(error)
            log.info("closed a slow watcher: %s", error, extra=self._log)

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
        return CacheEvent("BOOKMARK", obj, None, rv)

    def _notify_advanced(self) -> None:
        advanced = self._advanced
        if advanced is not None:
            self._advanced = None
            advanced.set()


def _as_seen_by(
    event: CacheEvent, namespace: str | None, matches: Filter | None
) -> CacheEvent | None:
    """What `event` means to a watcher of `namespace` filtering by `matches`
    (None: nothing). `CacheWatcher._offer` inlines the same rules."""
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

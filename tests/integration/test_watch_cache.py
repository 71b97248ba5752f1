"""The API server's watch cache against a real etcd: what a client watching
through it can rely on.

The session etcd is shared, so every test works in its own namespace and
watches through a namespace or a filter; the cache itself always serves the
whole resource, as in the API server.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest

from kpy.api.core.v1 import ConfigMap
from kpy.api.errors import Expired, StatusError, Timeout, TooManyRequests, Unavailable
from kpy.api.scheme import scheme
from kpy.api.selection import parse_predicate
from kpy.apiserver.watch_cache import INITIAL_EVENTS_END, CacheEvent, CacheWatcher, WatchCache
from kpy.rpc.apiserver import v1 as api
from kpy.storage import Store, Watch, WatchEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from types import TracebackType

    import aetcd
    from google.protobuf.message import Message

    from kpy.api.meta.v1 import ObjectMeta
    from kpy.api.scheme import ResourceInfo

_info = scheme.lookup("v1", "ConfigMap")
assert _info is not None
CONFIGMAPS: ResourceInfo = _info


def configmap(namespace: str, name: str, *, labels: dict[str, str] | None = None) -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.namespace = namespace
    cm.metadata.name = name
    cm.metadata.labels.update(labels or {})
    return cm


def rv(obj: Any) -> int:
    return int(obj.metadata.resource_version)


def metadata(obj: Message) -> ObjectMeta:
    return cast("ObjectMeta", cast("Any", obj).metadata)


def name_of(event: CacheEvent | WatchEvent) -> str:
    return metadata(event.object).name


def summary(event: CacheEvent | WatchEvent) -> tuple[str, str, int]:
    return (event.type, name_of(event), event.resource_version)


def in_namespace(namespace: str) -> Callable[[Message], bool]:
    return lambda obj: metadata(obj).namespace == namespace


@asynccontextmanager
async def running(store: Store, **options: Any) -> AsyncIterator[WatchCache]:
    """A started cache of configmaps, stopped when the block ends."""
    cache = WatchCache(store, CONFIGMAPS, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(cache.run)
        yield cache
        tg.cancel_scope.cancel()


async def take(
    watcher: CacheWatcher, count: int, *, within: float = 10.0, bookmarks: bool = False
) -> list[CacheEvent]:
    """Events from `watcher` until `count` have arrived (bookmarks left out
    unless asked for); whole batches, so a surplus shows."""
    events: list[CacheEvent] = []
    with anyio.fail_after(within):
        async for batch in watcher:
            events.extend(e for e in batch if bookmarks or e.type != "BOOKMARK")
            if len(events) >= count:
                break
    return events


async def truth(store: Store, namespace: str, since: int, count: int) -> list[WatchEvent]:
    """The next `count` changes after `since` in `namespace`, straight from etcd."""
    events: list[WatchEvent] = []
    async with store.watch(CONFIGMAPS, namespace, resource_version=since) as w:
        with anyio.fail_after(10):
            async for event in w:
                if event.type != "BOOKMARK":
                    events.append(event)
                if len(events) == count:
                    break
    return events


async def relabel(store: Store, namespace: str, name: str, labels: dict[str, str]) -> ConfigMap:
    def change(cm: ConfigMap) -> ConfigMap:
        cm.metadata.labels.clear()
        cm.metadata.labels.update(labels)
        return cm

    return await store.guaranteed_update(CONFIGMAPS, namespace, name, change)


async def touch(store: Store, namespace: str, name: str) -> ConfigMap:
    def change(cm: ConfigMap) -> ConfigMap:
        cm.data["n"] = str(int(cm.data.get("n", "0")) + 1)
        return cm

    return await store.guaranteed_update(CONFIGMAPS, namespace, name, change)


# -- list and get ------------------------------------------------------------------


async def test_list_and_get_follow_the_store(store: Store, namespace: str) -> None:
    for name in ("c", "a", "b", "d"):
        await store.create(CONFIGMAPS, configmap(namespace, name, labels={"keep": name}))

    async with running(store) as cache:
        changed = await touch(store, namespace, "b")
        await store.delete(CONFIGMAPS, namespace, "d")
        last = await store.create(CONFIGMAPS, configmap(namespace, "e"))
        await cache.wait_until_fresh(rv(last))

        items, at = cache.list(namespace)
        expected = (await store.list(CONFIGMAPS, namespace)).items
        assert items == list(expected)
        assert [o.metadata.name for o in cast("list[ConfigMap]", items)] == ["a", "b", "c", "e"]
        assert at >= rv(last)
        cases: list[tuple[str, Message | None, Message | None]] = [
            ("created", cache.get(namespace, "a"), expected[0]),
            ("updated", cache.get(namespace, "b"), changed),
            ("deleted", cache.get(namespace, "d"), None),
            ("never existed", cache.get(namespace, "zz"), None),
            ("another namespace", cache.get(namespace + "-x", "a"), None),
        ]
        for case, got, want in cases:
            assert got == want, case

        labelled, _ = cache.list(namespace, lambda o: "keep" in metadata(o).labels)
        assert [metadata(o).name for o in labelled] == ["a", "b", "c"]
        everyone, _ = cache.list()
        assert [o for o in everyone if metadata(o).namespace == namespace] == items

        for name in ("a", "b", "c", "e"):
            await store.delete(CONFIGMAPS, namespace, name)
        await cache.wait_until_fresh(await store.current_revision())
        assert cache.list(namespace)[0] == []


# -- watching from a version ---------------------------------------------------------


async def test_a_watch_gets_every_change_after_its_version_once_and_in_order(
    store: Store, namespace: str
) -> None:
    async with running(store) as cache:
        since = rv(await store.create(CONFIGMAPS, configmap(namespace, "seed")))
        await cache.wait_until_fresh(since)
        by_namespace = await cache.watch(namespace=namespace, resource_version=since)
        by_filter = await cache.watch(resource_version=since, matches=in_namespace(namespace))
        names = [f"cm-{i:03}" for i in range(100)]
        total = 250
        seen: dict[str, list[CacheEvent]] = {}

        async def read(case: str, watcher: CacheWatcher) -> None:
            seen[case] = await take(watcher, total)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read, "watching by namespace from the start", by_namespace)
            tg.start_soon(read, "watching by filter from the start", by_filter)
            await asyncio.gather(
                *(store.create(CONFIGMAPS, configmap(namespace, n)) for n in names)
            )
            mid_way = await cache.watch(namespace=namespace, resource_version=since)
            tg.start_soon(read, "joining mid-way from the start", mid_way)
            await asyncio.gather(*(touch(store, namespace, n) for n in names))
            await asyncio.gather(*(store.delete(CONFIGMAPS, namespace, n) for n in names[:50]))

        after = await cache.watch(namespace=namespace, resource_version=since)
        seen["resuming afterwards from the window"] = await take(after, total)
        expected = [summary(e) for e in await truth(store, namespace, since, total)]
        for case, events in seen.items():
            assert [summary(e) for e in events] == expected, case
        versions = [e.resource_version for e in seen["watching by namespace from the start"]]
        assert versions == sorted(set(versions))


async def test_the_window_keeps_the_last_capacity_events(store: Store, namespace: str) -> None:
    async with running(store, capacity=3) as cache:
        created = [
            await store.create(CONFIGMAPS, configmap(namespace, f"cm-{i}")) for i in range(6)
        ]
        await cache.wait_until_fresh(rv(created[-1]))

        stats = cache.statistics()
        assert (stats.events, stats.oldest_resource_version) == (3, rv(created[2]))
        cases: list[tuple[str, int, list[str] | None]] = [
            ("the oldest servable version", rv(created[2]), ["cm-3", "cm-4", "cm-5"]),
            ("a version inside the window", rv(created[4]), ["cm-5"]),
            ("just below the window", rv(created[2]) - 1, None),
            ("long before the window", rv(created[0]), None),
        ]
        for case, since, want in cases:
            if want is None:
                with pytest.raises(Expired) as caught:
                    await cache.watch(namespace=namespace, resource_version=since)
                assert str(caught.value) == (
                    f"too old resource version: {since} "
                    f"(oldest available is {rv(created[2])}); list again"
                ), case
            else:
                async with await cache.watch(namespace=namespace, resource_version=since) as w:
                    assert [name_of(e) for e in await take(w, len(want))] == want, case
        assert cache.statistics().watchers == 0, "closed watchers are forgotten"


async def test_a_restarted_cache_resumes_watches_from_before_it_started(
    store: Store, namespace: str
) -> None:
    first = await store.create(CONFIGMAPS, configmap(namespace, "a"))
    async with running(store) as cache:
        await cache.wait_until_fresh(rv(first))
        watcher = await cache.watch(namespace=namespace, resource_version=rv(first))
        await touch(store, namespace, "a")
        resume_at = (await take(watcher, 1))[-1].resource_version
        pending = await cache.watch(namespace=namespace)
    with pytest.raises(Unavailable, match="shutting down; watch again"):
        await anext(watcher)
    with pytest.raises(Unavailable, match="shutting down; watch again"):
        await anext(pending)

    # While no API server runs, the object changes twice.
    missed = [
        await touch(store, namespace, "a"),
        await store.create(CONFIGMAPS, configmap(namespace, "b")),
    ]
    history = await store.current_revision() - resume_at
    async with running(store, history_revisions=history) as restarted:
        assert restarted.statistics().oldest_resource_version == resume_at
        resumed = await restarted.watch(namespace=namespace, resource_version=resume_at)
        got = await take(resumed, 2)
        assert [summary(e) for e in got] == [
            ("MODIFIED", "a", rv(missed[0])),
            ("ADDED", "b", rv(missed[1])),
        ]
        assert got[0].prev_object is not None
        assert cast("ConfigMap", got[0].prev_object).data["n"] == "1"
        with pytest.raises(Expired, match=f"oldest available is {resume_at}"):
            await restarted.watch(namespace=namespace, resource_version=resume_at - 1)


async def test_a_version_ahead_of_the_cache_is_waited_for_then_times_out(
    store: Store, namespace: str
) -> None:
    # 2 s: on a loaded machine the cache may take more than 0.5 s to see a
    # write made 0.1 s in.
    async with running(store, catch_up_timeout=2.0) as cache:
        ahead = await store.current_revision() + 1

        async def write_soon() -> None:
            await anyio.sleep(0.1)
            await store.create(CONFIGMAPS, configmap(namespace, "later"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(write_soon)
            started = time.monotonic()
            w = await cache.watch(namespace=namespace, resource_version=ahead)
            assert time.monotonic() - started < 2.0
        w.close()

        started = time.monotonic()
        with pytest.raises(Timeout) as caught:
            await cache.watch(namespace=namespace, resource_version=ahead + 1_000_000)
        assert 2.0 <= time.monotonic() - started < 8.0  # the catch-up timeout, and load's slack
        assert (
            f"too large resource version: {ahead + 1_000_000} is ahead of this API server's cache"
            in str(caught.value)
        )


# -- what a watcher sees -------------------------------------------------------------


async def test_filtered_watchers_see_objects_enter_and_leave_as_added_and_deleted(
    store: Store, namespace: str
) -> None:
    async with running(store) as cache:
        since = await store.current_revision()
        await cache.wait_until_fresh(since)

        def web(obj: Message) -> bool:
            return metadata(obj).labels.get("app") == "web"

        everything = await cache.watch(namespace=namespace, resource_version=since)
        live = await cache.watch(namespace=namespace, resource_version=since, matches=web)
        steps: list[tuple[str, str, dict[str, str] | None, str | None]] = [
            # (step, object, labels written (None: delete), what the filtered watcher sees)
            ("create matching", "x", {"app": "web"}, "ADDED"),
            ("create not matching", "y", {"app": "db"}, None),
            ("update out of the filter", "x", {"app": "db"}, "DELETED"),
            ("update into the filter", "y", {"app": "web"}, "ADDED"),
            ("update within the filter", "y", {"app": "web", "v": "2"}, "MODIFIED"),
            ("update outside the filter", "x", {"app": "db", "v": "2"}, None),
            ("delete matching", "y", None, "DELETED"),
            ("delete not matching", "x", None, None),
        ]
        created: set[str] = set()
        for _, name, labels, _ in steps:
            if labels is None:
                await store.delete(CONFIGMAPS, namespace, name)
            elif name in created:
                await relabel(store, namespace, name, labels)
            else:
                await store.create(CONFIGMAPS, configmap(namespace, name, labels=labels))
                created.add(name)
        changes = await take(everything, len(steps))
        replayed = await cache.watch(namespace=namespace, resource_version=since, matches=web)
        wanted = sum(see is not None for *_, see in steps)

        for watcher_case, watcher in (("live", live), ("replayed", replayed)):
            events = await take(watcher, wanted)
            assert len(events) == wanted, [summary(e) for e in events]
            delivered = iter(events)
            for (step, name, _, see), change in zip(steps, changes, strict=True):
                if see is None:
                    continue
                event = next(delivered)
                got = (event.type, name_of(event), event.resource_version)
                assert got == (see, name, change.resource_version), f"{watcher_case}: {step}"
                app = metadata(event.object).labels["app"]
                assert app == "web", f"{watcher_case}: {step}: {event.object}"
                assert rv(event.object) == change.resource_version, f"{watcher_case}: {step}"
                sent = ConfigMap.FromString(event.encoded())
                assert sent == event.object, f"{watcher_case}: {step}: what the wire carries"


async def test_initial_events_list_the_current_objects_then_continue_live(
    store: Store, namespace: str
) -> None:
    for name in ("b", "c", "a"):
        await store.create(CONFIGMAPS, configmap(namespace, name, labels={"odd": str(name != "b")}))
    async with running(store) as cache:
        await cache.wait_until_fresh(await store.current_revision())
        at = cache.resource_version
        before = list((await store.list(CONFIGMAPS, namespace)).items)
        full = await cache.watch(namespace=namespace, initial_events=True, bookmarks=True)
        odd = await cache.watch(
            namespace=namespace,
            initial_events=True,
            matches=lambda o: metadata(o).labels["odd"] == "True",
        )
        fresh = await cache.watch(namespace=namespace)
        changed = await touch(store, namespace, "b")

        cases: list[tuple[str, CacheWatcher, list[tuple[str, str, int]]]] = [
            ("all, with bookmarks", full, [("ADDED", "a", rv(before[0])),
                                           ("ADDED", "b", rv(before[1])),
                                           ("ADDED", "c", rv(before[2])),
                                           ("BOOKMARK", "", at),
                                           ("MODIFIED", "b", rv(changed))]),
            ("filtered", odd, [("ADDED", "a", rv(before[0])), ("ADDED", "c", rv(before[2]))]),
            ("no initial events", fresh, [("MODIFIED", "b", rv(changed))]),
        ]  # fmt: skip
        seen: dict[str, list[CacheEvent]] = {}
        for case, watcher, want in cases:
            seen[case] = await take(watcher, len(want), bookmarks=True)
            assert [summary(e) for e in seen[case]] == want, case

        snapshot = seen["all, with bookmarks"]
        assert [e.object for e in snapshot[:3]] == before
        end = snapshot[3].object
        assert dict(metadata(end).annotations) == {INITIAL_EVENTS_END: "true"}
        assert rv(end) == at


async def test_bookmarks_carry_the_cache_version_and_never_go_back(
    store: Store, namespace: str
) -> None:
    other = namespace + "-other"
    async with running(store, bookmark_interval=0.3) as cache:
        since = rv(await store.create(CONFIGMAPS, configmap(namespace, "a")))
        await cache.wait_until_fresh(since)
        watcher = await cache.watch(namespace=namespace, resource_version=since, bookmarks=True)
        quiet = await cache.watch(namespace=namespace, resource_version=since)
        seen: list[CacheEvent] = []

        async def read() -> None:
            with anyio.move_on_after(1.7):  # writes for ~1 s, then etcd stands still
                async for batch in watcher:
                    seen.extend(batch)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            for i in range(7):  # etcd moves on, mostly in another namespace
                await store.create(CONFIGMAPS, configmap(other, f"o-{i}"))
                if i % 3 == 1:
                    await store.create(CONFIGMAPS, configmap(namespace, f"n-{i}"))
                await anyio.sleep(0.15)

        marks = [e for e in seen if e.type == "BOOKMARK"]
        assert len(marks) >= 2, [summary(e) for e in seen]
        versions = [e.resource_version for e in seen]
        assert versions == sorted(set(versions)), [summary(e) for e in seen]
        assert marks[-1].resource_version == cache.resource_version, "progress past the events"
        assert marks[-1].resource_version > max(
            e.resource_version for e in seen if e.type != "BOOKMARK"
        )
        for mark in marks:
            expected = ConfigMap()
            expected.metadata.resource_version = str(mark.resource_version)
            assert mark.object == expected
            assert mark.encoded() == expected.SerializeToString()
        assert [e.type for e in await take(quiet, 2)] == ["ADDED"] * 2


def wire(data: bytes) -> list[tuple[str, str, int]]:
    """The events of a serialised WatchResponse, as `summary` gives them."""
    events = api.WatchResponse.FromString(data).events
    return [
        (e.type, ConfigMap.FromString(e.object).metadata.name, int(e.resource_version))
        for e in events
    ]


async def test_watchers_with_the_same_selection_share_one_serialised_frame(
    store: Store, namespace: str
) -> None:
    async with running(store) as cache:
        since = await store.current_revision()
        await cache.wait_until_fresh(since)

        def watch(label_selector: str = "") -> Any:
            predicate = parse_predicate("ConfigMap", label_selector)
            matches = None if predicate.empty else predicate
            return cache.watch(namespace=namespace, resource_version=since, matches=matches)

        everything = [await watch(), await watch()]
        web = [await watch("app=web"), await watch("app=web")]  # parsed apart, equal
        db = await watch("app=db")
        assert cache.statistics().watchers == 5
        a = await store.create(CONFIGMAPS, configmap(namespace, "a", labels={"app": "web"}))
        b = await store.create(CONFIGMAPS, configmap(namespace, "b", labels={"app": "db"}))

        async def read_two(watcher: CacheWatcher) -> list[bytes]:
            got: list[bytes] = []
            with anyio.fail_after(10):
                while sum(len(wire(d)) for d in got) < 2:
                    got.append(await watcher.next_response())
            return got

        cases: list[tuple[str, list[CacheWatcher], int, list[tuple[str, str, int]]]] = [
            ("no selector", everything, 2, [("ADDED", "a", rv(a)), ("ADDED", "b", rv(b))]),
            ("app=web", web, 1, [("ADDED", "a", rv(a))]),
        ]
        for case, watchers, count, want in cases:
            first = (
                await read_two(watchers[0]) if count == 2 else [await watchers[0].next_response()]
            )
            second = (
                await read_two(watchers[1]) if count == 2 else [await watchers[1].next_response()]
            )
            assert [e for d in first for e in wire(d)] == want, case
            assert len(first) == len(second), case
            for mine, theirs in zip(first, second, strict=True):
                assert mine is theirs, f"{case}: serialised once for the group"
        assert wire(await db.next_response()) == [("ADDED", "b", rv(b))]


async def test_writes_within_a_tick_reach_a_watcher_as_one_batch(
    store: Store, namespace: str
) -> None:
    # A long tick, so that the concurrent writes certainly fall within one.
    async with running(store, dispatch_interval=3.0) as cache:
        since = await store.current_revision()
        await cache.wait_until_fresh(since)
        watcher = await cache.watch(namespace=namespace, resource_version=since)
        names = [f"cm-{i}" for i in range(5)]
        await asyncio.gather(*(store.create(CONFIGMAPS, configmap(namespace, n)) for n in names))

        with anyio.fail_after(10):
            batch = await anext(watcher)
        assert sorted(name_of(e) for e in batch) == names


async def test_store_watch_events_keep_the_stored_bytes(
    store: Store, etcd_client: aetcd.Client, namespace: str
) -> None:
    since = await store.current_revision()
    created = await store.create(CONFIGMAPS, configmap(namespace, "a", labels={"x": "1"}))
    async with store.watch(CONFIGMAPS, namespace, resource_version=since) as w:
        with anyio.fail_after(10):
            event = await anext(w)
    stored = await etcd_client.get(event.key)
    assert stored is not None
    assert event.value == stored.value
    assert event.key.decode().endswith(f"/configmaps/{namespace}/a")
    assert event.object == created


async def test_a_stalled_watcher_is_closed_while_the_others_get_everything(
    store: Store, namespace: str
) -> None:
    async with running(store, watcher_queue_size=8) as cache:
        since = rv(await store.create(CONFIGMAPS, configmap(namespace, "counter")))
        await cache.wait_until_fresh(since)
        stalled = await cache.watch(namespace=namespace, resource_version=since, bookmarks=True)
        reader = await cache.watch(namespace=namespace, resource_version=since)
        got: list[CacheEvent] = []

        async def read() -> None:
            got.extend(await take(reader, 30))

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            for _ in range(30):
                await touch(store, namespace, "counter")

        assert [summary(e) for e in got] == [
            summary(e) for e in await truth(store, namespace, since, 30)
        ]
        with pytest.raises(TooManyRequests) as caught:
            await anext(stalled)
        message = str(caught.value)
        found = re.fullmatch(
            r"watch of configmaps closed: the client fell behind by (\d+) events; "
            r"watch again from resource version (\d+)",
            message,
        )
        assert found is not None, message
        assert int(found[1]) >= 8
        stats = cache.statistics()
        assert (stats.watchers, stats.watchers_closed_slow) == (1, 1)

        # Resuming where the message says loses nothing.
        resume_at = int(found[2])
        again = await cache.watch(namespace=namespace, resource_version=resume_at)
        rest = [summary(e) for e in got if e.resource_version > resume_at]
        assert [summary(e) for e in await take(again, len(rest))] == rest


async def test_stopping_the_cache_ends_every_watch_with_unavailable(
    store: Store, namespace: str
) -> None:
    cache = WatchCache(store, CONFIGMAPS)
    ended: list[tuple[str, float, StatusError]] = []

    async def read(case: str, watcher: CacheWatcher, stopped: list[float]) -> None:
        try:
            async for _ in watcher:
                pass
        except StatusError as e:
            ended.append((case, time.monotonic() - stopped[0], e))

    stopped: list[float] = []
    async with anyio.create_task_group() as readers, anyio.create_task_group() as server:
        await server.start(cache.run)
        for case in ("all namespaces", "one namespace"):
            namespace_ = None if case == "all namespaces" else namespace
            readers.start_soon(read, case, await cache.watch(namespace=namespace_), stopped)
        idle = await cache.watch(namespace=namespace, bookmarks=True)
        await anyio.sleep(0.05)
        stopped.append(time.monotonic())
        server.cancel_scope.cancel()
    assert sorted(case for case, _, _ in ended) == ["all namespaces", "one namespace"]
    for case, delay, error in ended:
        assert isinstance(error, Unavailable), case
        assert "API server is shutting down; watch again" in str(error), case
        assert delay < 0.5, case
    with pytest.raises(Unavailable, match="shutting down"):
        await anext(idle)
    with pytest.raises(Unavailable, match="not serving"):
        await cache.watch(namespace=namespace)


# -- etcd trouble ---------------------------------------------------------------------


class FlakyStore(Store):
    """The real store, whose watches fail on demand at their next event (as
    when etcd goes away, or compacts history a disconnected watch needed).
    The event they fail on is lost, as it would be."""

    def __init__(self, client: aetcd.Client) -> None:
        super().__init__(client)
        self.fail_next: StatusError | None = None
        self.opened_from: list[int] = []

    def watch(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        resource_version: int,
        progress_notify: bool = True,
    ) -> Watch:
        self.opened_from.append(resource_version)
        inner = super().watch(
            info, namespace, resource_version=resource_version, progress_notify=progress_notify
        )
        return cast("Watch", _FlakyWatch(inner, self))


class _FlakyWatch:
    def __init__(self, inner: Watch, store: FlakyStore) -> None:
        self._inner = inner
        self._store = store

    async def __aenter__(self) -> _FlakyWatch:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._inner.__aexit__(kind, e, tb)

    def __aiter__(self) -> _FlakyWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        event = await anext(self._inner)
        error, self._store.fail_next = self._store.fail_next, None
        if error is not None:
            raise error
        return event


async def test_an_etcd_outage_reopens_the_watch_and_keeps_watchers(
    etcd_client: aetcd.Client, namespace: str
) -> None:
    store = FlakyStore(etcd_client)
    async with running(store) as cache:
        since = rv(await store.create(CONFIGMAPS, configmap(namespace, "a")))
        await cache.wait_until_fresh(since)
        watcher = await cache.watch(namespace=namespace, resource_version=since)
        store.fail_next = Unavailable("etcd went away (injected)")
        written = [await touch(store, namespace, "a") for _ in range(5)]

        got = await take(watcher, 5)
        assert [e.resource_version for e in got] == [rv(o) for o in written]
        assert len(store.opened_from) == 2
        assert store.opened_from[1] >= since


async def test_lost_etcd_history_relists_and_sends_watchers_to_watch_again(
    etcd_client: aetcd.Client, namespace: str
) -> None:
    store = FlakyStore(etcd_client)
    async with running(store) as cache:
        since = rv(await store.create(CONFIGMAPS, configmap(namespace, "a")))
        await cache.wait_until_fresh(since)
        watcher = await cache.watch(namespace=namespace, resource_version=since)
        store.fail_next = Expired("etcd compacted the history (injected)")
        with pytest.raises(Unavailable, match="cache was re-listed; watch again") as caught:
            with anyio.fail_after(5):
                await anext(watcher)
        assert f"from resource version {since}" in str(caught.value)

        b = await store.create(CONFIGMAPS, configmap(namespace, "b"))
        await cache.wait_until_fresh(rv(b))
        assert [metadata(o).name for o in cache.list(namespace)[0]] == ["a", "b"]
        assert cache.statistics().oldest_resource_version > since - 1
        again = await cache.watch(namespace=namespace, resource_version=rv(b) - 1)
        assert [summary(e) for e in await take(again, 1)] == [("ADDED", "b", rv(b))]

"""The storage layer against a real etcd: what the API server can rely on."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api.core.v1 import ConfigMap, Namespace
from kpy.api.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    NotFound,
    StatusError,
    TooLarge,
    Unavailable,
)
from kpy.api.meta.v1 import Preconditions
from kpy.api.scheme import ResourceInfo
from kpy.storage import MAX_OBJECT_BYTES, EtcdServer, Store, WatchEvent, new_client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aetcd

    from kpy.storage import Watch

CONFIGMAPS = ResourceInfo(
    group="",
    version="v1",
    kind="ConfigMap",
    plural="configmaps",
    namespaced=True,
    message=ConfigMap,
)
NAMESPACES = ResourceInfo(
    group="",
    version="v1",
    kind="Namespace",
    plural="namespaces",
    namespaced=False,
    message=Namespace,
)
STALE = "the object has been modified; please apply your changes to the latest version"


def configmap(namespace: str, name: str, **data: str) -> ConfigMap:
    cm = ConfigMap(data=data)
    cm.metadata.namespace = namespace
    cm.metadata.name = name
    return cm


def rv(obj: Any) -> int:
    return int(obj.metadata.resource_version)


async def create_many(store: Store, objects: list[ConfigMap], *, chunk: int = 250) -> None:
    for i in range(0, len(objects), chunk):
        await asyncio.gather(*(store.create(CONFIGMAPS, o) for o in objects[i : i + chunk]))


async def collect(w: Watch, count: int, *, within: float = 30.0) -> list[WatchEvent]:
    """The next `count` events of `w` that are not bookmarks, and the bookmarks
    among them (in order)."""
    events: list[WatchEvent] = []
    async with asyncio.timeout(within):
        async for event in w:
            events.append(event)
            if sum(e.type != "BOOKMARK" for e in events) == count:
                break
    return events


def changes(events: list[WatchEvent]) -> list[WatchEvent]:
    return [e for e in events if e.type != "BOOKMARK"]


def summary(event: WatchEvent) -> tuple[str, str, int, dict[str, str]]:
    obj: Any = event.object
    return (event.type, obj.metadata.name, event.resource_version, dict(obj.data))


# -- create / get / errors ------------------------------------------------------


async def test_create_then_get_returns_the_stored_object(
    store: Store, etcd_client: aetcd.Client, namespace: str
) -> None:
    mine = configmap(namespace, "settings", color="blue")
    created = await store.create(CONFIGMAPS, mine)

    assert rv(created) > 0
    assert mine.metadata.resource_version == "", "create must not mutate the caller's object"
    fetched = await store.get(CONFIGMAPS, namespace, "settings")
    assert fetched == created
    # The etcd value is binary protobuf, without the resource version.
    raw = await etcd_client.get(f"/registry/core/v1/configmaps/{namespace}/settings".encode())
    assert raw is not None
    assert raw.mod_revision == rv(created)
    stored = ConfigMap.FromString(raw.value)
    assert stored.data["color"] == "blue"
    assert not stored.metadata.HasField("resource_version")


async def test_cluster_scoped_objects_have_no_namespace_segment(
    store: Store, etcd_client: aetcd.Client, namespace: str
) -> None:
    ns = Namespace()
    ns.metadata.name = namespace
    created = await store.create(NAMESPACES, ns)

    raw = await etcd_client.get(f"/registry/core/v1/namespaces/{namespace}".encode())
    assert raw is not None
    assert raw.mod_revision == rv(created)
    assert await store.get(NAMESPACES, "", namespace) == created
    names = [o.metadata.name for o in (await store.list(NAMESPACES)).items]
    assert namespace in names


async def test_errors_name_the_object_and_the_problem(store: Store, namespace: str) -> None:
    existing = await store.create(CONFIGMAPS, configmap(namespace, "taken"))
    no_version = configmap(namespace, "taken")
    bad_version = configmap(namespace, "taken")
    bad_version.metadata.resource_version = "abc"
    gone = configmap(namespace, "gone")
    gone.metadata.resource_version = existing.metadata.resource_version
    cluster_scoped = Namespace()
    cluster_scoped.metadata.name = "n"
    cluster_scoped.metadata.namespace = namespace

    cases: list[tuple[str, Callable[[], Awaitable[Any]], type[StatusError], str]] = [
        ("create twice", lambda: store.create(CONFIGMAPS, configmap(namespace, "taken")),
         AlreadyExists, 'configmaps "taken" already exists'),
        ("get missing", lambda: store.get(CONFIGMAPS, namespace, "nope"),
         NotFound, 'configmaps "nope" not found'),
        ("update missing", lambda: store.update(CONFIGMAPS, gone),
         NotFound, 'configmaps "gone" not found'),
        ("update without version", lambda: store.update(CONFIGMAPS, no_version),
         BadRequest, "resourceVersion: must be specified"),
        ("update with a bad version", lambda: store.update(CONFIGMAPS, bad_version),
         BadRequest, '"abc" is not a valid version'),
        ("delete missing", lambda: store.delete(CONFIGMAPS, namespace, "nope"),
         NotFound, 'configmaps "nope" not found'),
        ("guaranteed_update missing",
         lambda: store.guaranteed_update(CONFIGMAPS, namespace, "nope", lambda o: o),
         NotFound, 'configmaps "nope" not found'),
        ("namespaced without namespace", lambda: store.get(CONFIGMAPS, "", "x"),
         BadRequest, "a namespace is required"),
        ("cluster-scoped with namespace", lambda: store.create(NAMESPACES, cluster_scoped),
         BadRequest, "cluster-scoped"),
        ("name with a slash", lambda: store.get(CONFIGMAPS, namespace, "a/b"),
         BadRequest, 'may not contain "/"'),
        ("negative limit", lambda: store.list(CONFIGMAPS, namespace, limit=-1),
         BadRequest, "must not be negative, got -1, 0"),
    ]  # fmt: skip
    for name, call, error, message in cases:
        with pytest.raises(error) as caught:
            await call()
        assert message in str(caught.value), f"{name}: {caught.value}"


# -- compare-and-swap -------------------------------------------------------------


async def test_racing_updates_from_one_version_exactly_one_wins(
    store: Store, namespace: str
) -> None:
    base = await store.create(CONFIGMAPS, configmap(namespace, "race", owner="none"))
    writers = []
    for who in ("alice", "bob"):
        change = ConfigMap()
        change.CopyFrom(base)
        change.data["owner"] = who
        writers.append(store.update(CONFIGMAPS, change))

    results = await asyncio.gather(*writers, return_exceptions=True)

    winners = [r for r in results if isinstance(r, ConfigMap)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    assert STALE in str(losers[0])
    assert 'Operation cannot be fulfilled on configmaps "race"' in str(losers[0])
    assert await store.get(CONFIGMAPS, namespace, "race") == winners[0]


async def test_guaranteed_update_loses_no_concurrent_increment(
    store: Store, namespace: str
) -> None:
    await store.create(CONFIGMAPS, configmap(namespace, "counter", count="0"))
    calls = 0

    def increment(cm: ConfigMap) -> ConfigMap:
        nonlocal calls
        calls += 1
        cm.data["count"] = str(int(cm.data["count"]) + 1)
        return cm

    async def increment_async(cm: ConfigMap) -> ConfigMap:
        await asyncio.sleep(0)  # let the others read the same version
        return increment(cm)

    n = 40
    updates = [
        store.guaranteed_update(
            CONFIGMAPS, namespace, "counter", increment if i % 2 else increment_async
        )
        for i in range(n)
    ]
    await asyncio.gather(*updates)

    final: Any = await store.get(CONFIGMAPS, namespace, "counter")
    assert final.data["count"] == str(n)
    assert calls > n, "the incrementers never conflicted, so the test proved nothing"


async def test_guaranteed_update_skips_unchanged_and_checks_preconditions(
    store: Store, namespace: str
) -> None:
    created = await store.create(CONFIGMAPS, configmap(namespace, "cm", a="1"))
    created.metadata.uid = "uid-1"
    created = await store.update(CONFIGMAPS, created)
    before = await store.current_revision()

    same = await store.guaranteed_update(CONFIGMAPS, namespace, "cm", lambda cm: cm)
    assert same == created
    assert await store.current_revision() == before, "wrote an unchanged object"

    def abort(cm: ConfigMap) -> ConfigMap:
        raise ValueError("not today")

    with pytest.raises(ValueError, match="not today"):
        await store.guaranteed_update(CONFIGMAPS, namespace, "cm", abort)
    with pytest.raises(Conflict, match="UID in precondition: other"):
        await store.guaranteed_update(
            CONFIGMAPS, namespace, "cm", lambda cm: cm, preconditions=Preconditions(uid="other")
        )
    assert await store.current_revision() == before

    def bump(cm: ConfigMap) -> ConfigMap:
        cm.data["a"] = "2"
        return cm

    updated = await store.guaranteed_update(
        CONFIGMAPS, namespace, "cm", bump, preconditions=Preconditions(uid="uid-1")
    )
    assert updated.data["a"] == "2"
    assert rv(updated) > rv(created)


async def test_delete_honours_preconditions_and_returns_the_last_state(
    store: Store, namespace: str
) -> None:
    obj = configmap(namespace, "doomed", a="1")
    obj.metadata.uid = "uid-1"
    first = await store.create(CONFIGMAPS, obj)
    latest = await store.update(CONFIGMAPS, first)

    cases = [
        ("wrong uid", Preconditions(uid="uid-2"), "UID in precondition: uid-2"),
        ("stale version", Preconditions(resource_version=first.metadata.resource_version),
         f"ResourceVersion in precondition: {rv(first)}"),
    ]  # fmt: skip
    for name, preconditions, message in cases:
        with pytest.raises(Conflict) as caught:
            await store.delete(CONFIGMAPS, namespace, "doomed", preconditions=preconditions)
        assert message in str(caught.value), f"{name}: {caught.value}"

    exact = Preconditions(uid="uid-1", resource_version=latest.metadata.resource_version)
    deleted = await store.delete(CONFIGMAPS, namespace, "doomed", preconditions=exact)
    assert deleted == latest
    with pytest.raises(NotFound):
        await store.get(CONFIGMAPS, namespace, "doomed")


async def test_objects_over_the_size_limit_are_refused(store: Store, namespace: str) -> None:
    def sized(name: str, size: int) -> ConfigMap:
        cm = configmap(namespace, name, blob="")
        cm.data["blob"] = "x" * (size - cm.ByteSize())
        while cm.ByteSize() > size:  # the length prefix grew with the blob
            cm.data["blob"] = cm.data["blob"][:-1]
        assert cm.ByteSize() == size
        return cm

    at_limit = await store.create(CONFIGMAPS, sized("at-limit", MAX_OBJECT_BYTES))
    assert (await store.get(CONFIGMAPS, namespace, "at-limit")) == at_limit

    with pytest.raises(TooLarge, match=r'configmaps "over" is too large: \d+ bytes'):
        await store.create(CONFIGMAPS, sized("over", MAX_OBJECT_BYTES + 1))
    grown = sized("at-limit", MAX_OBJECT_BYTES + 1)
    grown.metadata.resource_version = at_limit.metadata.resource_version
    with pytest.raises(TooLarge):
        await store.update(CONFIGMAPS, grown)


async def test_unreachable_etcd_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = new_client(f"127.0.0.1:{port}")
    try:
        with pytest.raises(Unavailable, match=r"(?s)etcd is unavailable .* then retry"):
            await Store(client, request_timeout=5).get(CONFIGMAPS, "default", "x")
    finally:
        await client.close()


# -- list -----------------------------------------------------------------------


async def test_paging_is_one_consistent_snapshot_despite_writes_between_pages(
    store: Store, namespace: str
) -> None:
    total, limit = 5000, 500
    originals = [configmap(namespace, f"cm-{i:05d}", v="original") for i in range(total)]
    await create_many(store, originals)

    seen: list[str] = []
    versions, remaining = set(), []
    token: str | None = None
    for page in range(total // limit):
        result = await store.list(CONFIGMAPS, namespace, limit=limit, continue_token=token)
        seen.extend(o.metadata.name for o in result.items)
        assert all(o.data["v"] == "original" for o in result.items)
        versions.add(result.resource_version)
        remaining.append(result.remaining)
        token = result.continue_token
        # Writes between pages: new objects before and after the cursor, a delete
        # and an update of objects not listed yet.
        await store.create(CONFIGMAPS, configmap(namespace, f"cm-{page * limit:05d}a"))
        await store.create(CONFIGMAPS, configmap(namespace, f"cm-{total - 1 - page:05d}z"))
        await store.delete(CONFIGMAPS, namespace, f"cm-{total - 1 - page:05d}")
        await store.guaranteed_update(CONFIGMAPS, namespace, f"cm-{total - 2 - page:05d}",
                                      lambda cm: ConfigMap(metadata=cm.metadata))  # fmt: skip

    assert token is None, "the last page must not carry a continue token"
    assert seen == [o.metadata.name for o in originals], "not every object exactly once"
    assert len(versions) == 1, f"pages were read at different revisions: {versions}"
    assert remaining == [total - limit * (p + 1) for p in range(total // limit)]
    now = await store.list(CONFIGMAPS, namespace)
    assert len(now.items) == total + 2 * (total // limit) - total // limit
    assert now.resource_version > versions.pop()


async def test_list_is_scoped_to_its_namespace(store: Store, namespace: str) -> None:
    await store.create(CONFIGMAPS, configmap(namespace, "mine"))
    await store.create(CONFIGMAPS, configmap(namespace + "x", "neighbour"))  # a longer prefix

    names = [o.metadata.name for o in (await store.list(CONFIGMAPS, namespace)).items]
    everywhere = [o.metadata.name for o in (await store.list(CONFIGMAPS)).items]
    assert names == ["mine"]
    assert {"mine", "neighbour"} <= set(everywhere)


async def test_bad_continue_tokens_are_bad_requests(store: Store, namespace: str) -> None:
    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode()

    cases = [
        ("not base64", "%%%"),
        ("not json", b64("hello")),
        ("unknown version", b64('{"v": 99, "rv": 5, "start": "a"}')),
        ("no revision", b64('{"v": 1, "start": "a"}')),
        ("negative revision", b64('{"v": 1, "rv": -3, "start": "a"}')),
    ]
    for name, token in cases:
        with pytest.raises(BadRequest) as caught:
            await store.list(CONFIGMAPS, namespace, limit=1, continue_token=token)
        assert "continue token is not valid" in str(caught.value), f"{name}: {caught.value}"


# -- watch ------------------------------------------------------------------------


async def test_watch_delivers_3000_writes_once_in_order_and_resumes_mid_way(
    store: Store, namespace: str
) -> None:
    objects, updates = 250, 10  # 250 x (create + 10 updates + delete) = 3000 writes
    written: dict[str, list[ConfigMap]] = {}

    async def life(name: str) -> None:
        states = written[name] = [await store.create(CONFIGMAPS, configmap(namespace, name, n="0"))]
        for n in range(1, updates + 1):
            change = ConfigMap()
            change.CopyFrom(states[-1])
            change.data["n"] = str(n)
            states.append(await store.update(CONFIGMAPS, change))
        await store.delete(CONFIGMAPS, namespace, name)

    start = await store.current_revision()
    watch = store.watch(CONFIGMAPS, namespace, resource_version=start)
    async with watch as w, asyncio.TaskGroup() as tg:
        received = tg.create_task(collect(w, objects * (updates + 2)))
        await asyncio.gather(*(life(f"cm-{i:03d}") for i in range(objects)))
    events = received.result()
    got = changes(events)

    assert len(got) == objects * (updates + 2)
    versions = [e.resource_version for e in got]
    assert versions == sorted(set(versions)), "resource versions must strictly increase"
    assert all(int(e.object.metadata.resource_version) == e.resource_version for e in events)
    for name, states in written.items():
        mine = [e for e in got if e.object.metadata.name == name]
        expected = [("ADDED", name, rv(states[0]), dict(states[0].data))]
        expected += [("MODIFIED", name, rv(s), dict(s.data)) for s in states[1:]]
        assert [summary(e) for e in mine[:-1]] == expected, name
        last = mine[-1]
        assert last.type == "DELETED", name
        assert last.resource_version > rv(states[-1]), name
        assert dict(last.object.data) == dict(states[-1].data), name
    for i, event in enumerate(events):  # a bookmark never runs ahead of an event
        if event.type == "BOOKMARK":
            assert all(e.resource_version <= event.resource_version for e in events[:i])
            assert all(e.resource_version > event.resource_version for e in changes(events[i:]))

    middle = got[len(got) // 2].resource_version
    async with store.watch(CONFIGMAPS, namespace, resource_version=middle) as w:
        tail = changes(await collect(w, len(got) - len(got) // 2 - 1))
        sentinel = await store.create(CONFIGMAPS, configmap(namespace, "sentinel"))
        after = changes(await collect(w, 1))
    assert [summary(e) for e in tail] == [summary(e) for e in got[len(got) // 2 + 1 :]]
    assert [summary(e) for e in after] == [("ADDED", "sentinel", rv(sentinel), {})]


async def test_watch_from_zero_starts_now_and_stays_in_its_namespace(
    store: Store, namespace: str
) -> None:
    await store.create(CONFIGMAPS, configmap(namespace, "before"))
    async with store.watch(CONFIGMAPS, namespace, resource_version=0) as w:
        await store.create(CONFIGMAPS, configmap(namespace + "x", "neighbour"))
        after = await store.create(CONFIGMAPS, configmap(namespace, "after"))
        events = changes(await collect(w, 1))
    assert [summary(e) for e in events] == [("ADDED", "after", rv(after), {})]


async def test_bookmarks_arrive_only_when_asked_for(store: Store, namespace: str) -> None:
    start = await store.current_revision()
    async with store.watch(CONFIGMAPS, namespace, resource_version=start) as w:
        async with asyncio.timeout(5):
            first = await anext(w)
    assert first.type == "BOOKMARK"
    assert first.resource_version >= start
    bookmark: Any = first.object
    assert isinstance(bookmark, ConfigMap)
    assert bookmark.metadata.resource_version == str(first.resource_version)

    start = await store.current_revision()
    async with store.watch(
        CONFIGMAPS, namespace, resource_version=start, progress_notify=False
    ) as w:
        await asyncio.sleep(0.6)  # three progress intervals of the test etcd
        await store.create(CONFIGMAPS, configmap(namespace, "quiet"))
        async with asyncio.timeout(5):
            first = await anext(w)
    assert first.type == "ADDED"


async def test_watch_and_list_from_a_compacted_revision_are_expired(
    store: Store, namespace: str
) -> None:
    cm = await store.create(CONFIGMAPS, configmap(namespace, "old", n="1"))
    first = rv(cm)
    cm.data["n"] = "2"
    cm = await store.update(CONFIGMAPS, cm)
    paged = await store.create(CONFIGMAPS, configmap(namespace, "paged"))
    page = await store.list(CONFIGMAPS, namespace, limit=1)
    cm.data["n"] = "3"
    cm = await store.update(CONFIGMAPS, cm)
    compacted = rv(cm)
    await store.compact(compacted)
    await store.compact(compacted)  # again: a no-op

    with pytest.raises(Expired, match=f"compacted up to revision {compacted}"):
        async with store.watch(CONFIGMAPS, namespace, resource_version=first) as w:
            await anext(w)
    async with store.watch(CONFIGMAPS, namespace, resource_version=compacted - 1) as w:
        event = await anext(w)
    assert (event.type, event.resource_version) == ("MODIFIED", compacted)

    with pytest.raises(Expired, match=f"too old resource version: {first}"):
        await store.list(CONFIGMAPS, namespace, resource_version=first)
    at_compaction = await store.list(CONFIGMAPS, namespace, resource_version=compacted)
    assert [rv(o) for o in at_compaction.items] == [compacted, rv(paged)]
    with pytest.raises(Expired, match=r"continue token .* is too old"):
        await store.list(CONFIGMAPS, namespace, limit=1, continue_token=page.continue_token)


async def test_watch_fails_loudly_when_etcd_goes_away() -> None:
    with EtcdServer(unsafe_no_fsync=True) as server:
        client = new_client(server.endpoint)
        try:
            store = Store(client)
            async with store.watch(CONFIGMAPS, "default", resource_version=0) as w:
                began = time.monotonic()
                server.stop()
                with pytest.raises(
                    Unavailable, match=r"(?i)re-open (it|the watch) from resource version"
                ):
                    async with asyncio.timeout(10):
                        await anext(w)
                assert time.monotonic() - began < 10
        finally:
            await client.close()

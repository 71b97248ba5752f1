"""Watching through the API server as a user sees it: real `kpy-apiserver`
processes over the session etcd, watched through the client SDK (and, to
stall a stream on purpose, the raw gRPC stub).

What the SDK promises (`kpy.client.Watch`): every change after the starting
version exactly once, in resource-version order, across stream ends, slow
readers, server restarts and failover; only Expired ends a watch. Tests that
kill or stop servers start their own (`start_server`); the others use the
session server, whose bookmark interval is 0.5 s. Every test works in its own
namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
import pytest

from kpy.api.core.v1 import ConfigMap, Pod
from kpy.api.errors import (
    AlreadyExists,
    BadRequest,
    Expired,
    StatusError,
    Timeout,
    TooManyRequests,
    Unavailable,
)
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client, Watch, WatchEvent
from kpy.rpc import status
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from kpy.storage import EtcdServer, Store

pytestmark = pytest.mark.etcd

BOOKMARK_INTERVAL = 0.5  # of the session server and of every server started here

# -- helpers ----------------------------------------------------------------------


def configmap(
    name: str, *, labels: dict[str, str] | None = None, data: dict[str, str] | None = None
) -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.name = name
    cm.metadata.labels.update(labels or {})
    cm.data.update(data or {})
    return cm


def pod(name: str) -> Pod:
    p = Pod()
    p.metadata.name = name
    p.spec.containers.add(name="app", image="nginx:1.25")
    return p


def rv(obj: Any) -> int:
    return int(obj.metadata.resource_version)


def summary(event: WatchEvent[Any]) -> tuple[str, str]:
    return (event.type, event.object.metadata.name)


def changes(events: list[WatchEvent[Any]]) -> list[WatchEvent[Any]]:
    return [e for e in events if e.type != "BOOKMARK"]


def assert_in_order_once(events: list[WatchEvent[Any]], names: list[str], who: str = "") -> None:
    """`events` are one ADDED per name of `names`, each once, with strictly
    increasing resource versions (every event's own and its object's)."""
    seen = [e.object.metadata.name for e in events]
    duplicates = sorted({n for n in seen if seen.count(n) > 1})
    assert not duplicates, f"{who}: delivered more than once: {duplicates}"
    missing = sorted(set(names) - set(seen))
    assert not missing, f"{who}: never delivered: {missing}"
    assert len(seen) == len(names), f"{who}: unexpected events: {sorted(set(seen) - set(names))}"
    assert {e.type for e in events} == {"ADDED"}, who
    versions = [int(e.resource_version) for e in events]
    assert versions == sorted(set(versions)), f"{who}: versions out of order: {versions}"
    assert versions == [rv(e.object) for e in events], who


# A reader's deadline counts from before the writes it waits for: on a
# loaded machine 200 concurrent creates alone have taken most of 20 s.
WRITES_AND_EVENTS = 60.0


async def take(
    events: Watch[Any], count: int, *, within: float = 10.0, bookmarks: bool = False
) -> list[WatchEvent[Any]]:
    """The next `count` events (bookmarks skipped unless `bookmarks`); fails
    naming what did arrive when they do not come within `within` seconds."""
    got: list[WatchEvent[Any]] = []
    try:
        async with asyncio.timeout(within):
            async for event in events:
                if bookmarks or event.type != "BOOKMARK":
                    got.append(event)
                    if len(got) == count:
                        return got
    except TimeoutError:
        pass
    pytest.fail(f"{len(got)} of {count} events within {within}s: {[summary(e) for e in got]}")


async def quiet(events: Watch[Any], seconds: float) -> list[WatchEvent[Any]]:
    """The bookmarks of the next `seconds`; fails on any other event."""
    got: list[WatchEvent[Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for event in events:
                assert event.type == "BOOKMARK", f"unexpected event {summary(event)}"
                got.append(event)
    return got


async def write_all(
    client: Client,
    namespace: str,
    names: list[str],
    *,
    concurrency: int,
    size: int = 0,
    written: Callable[[str], None] | None = None,
) -> None:
    """Creates a ConfigMap per name, `concurrency` at a time, calling
    `written(name)` once each is done. A create whose answer was lost with its
    server and is retried finds its object made: AlreadyExists then means
    done."""
    limit = asyncio.Semaphore(concurrency)

    async def write(name: str) -> None:
        async with limit:
            with contextlib.suppress(AlreadyExists):
                await client.create(
                    configmap(name, data={"pad": "x" * size} if size else None),
                    namespace=namespace,
                )
            if written is not None:
                written(name)

    async with asyncio.TaskGroup() as tg:
        for name in names:
            tg.create_task(write(name))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def start_server(etcd_server: EtcdServer) -> Iterator[Callable[..., APIServerProcess]]:
    """Starts API server processes of this test (blocking: call it through
    `asyncio.to_thread` while something must keep running); each is stopped
    by its pid at the end."""
    started: list[tuple[APIServerProcess, int]] = []

    def start(**options: Any) -> APIServerProcess:
        options.setdefault("bookmark_interval", BOOKMARK_INTERVAL)
        server = APIServerProcess(etcd_server.endpoint, **options)
        server.start()
        started.append((server, server.pid))
        return server

    yield start
    for server, pid in started:
        server.stop()
        assert not Path(f"/proc/{pid}").exists(), f"kpy-apiserver (pid {pid}) still runs"
        server.log_path.unlink(missing_ok=True)


# -- what a watch delivers --------------------------------------------------------


async def test_watch_from_empty_version_lists_then_follows(
    client: Client, api_namespace: str
) -> None:
    for name in ("b", "a"):
        await client.create(configmap(name), namespace=api_namespace)
    async with client.watch(ConfigMap, namespace=api_namespace, bookmarks=False) as events:
        initial = await take(events, 2)
        assert sorted(summary(e) for e in initial) == [("ADDED", "a"), ("ADDED", "b")]
        assert int(events.resource_version) >= max(rv(e.object) for e in initial)

        await client.create(configmap("c"), namespace=api_namespace)
        a = await client.get(ConfigMap, "a", namespace=api_namespace)
        a.data["k"] = "v"
        updated = await client.update(a)
        await client.delete(ConfigMap, "b", namespace=api_namespace)

        live = await take(events, 3)
        assert [summary(e) for e in live] == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
        assert live[1].object.data["k"] == "v"
        assert live[1].resource_version == updated.metadata.resource_version
        assert [int(e.resource_version) for e in live] == sorted(
            int(e.resource_version) for e in live
        )


async def test_watch_from_empty_version_includes_every_earlier_write(
    client: Client, api_namespace: str
) -> None:
    """As in Kubernetes, a watch without a version starts from the latest
    state: its initial events include every write made before it."""
    for i in range(30):  # the cache lags only now and then: try often
        made = await client.create(configmap(f"cm-{i}"), namespace=api_namespace)
        async with client.watch(ConfigMap, namespace=api_namespace) as events:
            got = await take(events, i + 2, bookmarks=True)
        assert summary(got[-1]) == ("BOOKMARK", ""), [summary(e) for e in got]
        assert int(got[-1].resource_version) >= rv(made), f"try {i}: the snapshot is stale"
        assert sorted(summary(e) for e in got[:-1]) == sorted(
            ("ADDED", f"cm-{j}") for j in range(i + 1)
        )


async def test_watch_from_version_gets_exactly_the_later_changes(
    client: Client, api_namespace: str
) -> None:
    a = await client.create(configmap("a"), namespace=api_namespace)
    a.data["k"] = "1"
    a = await client.update(a)
    start = a.metadata.resource_version
    a.data["k"] = "2"
    a = await client.update(a)
    await client.create(configmap("b"), namespace=api_namespace)
    await client.delete(ConfigMap, "a", namespace=api_namespace)

    async with client.watch(
        ConfigMap, namespace=api_namespace, resource_version=start, bookmarks=False
    ) as events:
        got = await take(events, 3)
        assert [summary(e) for e in got] == [
            ("MODIFIED", "a"),
            ("ADDED", "b"),
            ("DELETED", "a"),
        ]
        assert got[0].object.data["k"] == "2"
        assert all(int(e.resource_version) > int(start) for e in got)
        # A read given up on (a timeout) loses nothing and repeats nothing.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await anext(events)
        await client.create(configmap("c"), namespace=api_namespace)
        assert [summary(e) for e in await take(events, 1)] == [("ADDED", "c")]
        await quiet(events, 0.6)


@dataclass(frozen=True)
class SelectorCase:
    name: str
    kind: type[Any]
    label_selector: str = ""
    field_selector: str = ""


SELECTOR_CASES = [
    SelectorCase("label equality", ConfigMap, label_selector="app=web"),
    SelectorCase("label set", ConfigMap, label_selector="app in (web),tier!=cache"),
    SelectorCase("field", Pod, field_selector="status.phase=Running"),
]


@pytest.mark.parametrize("case", SELECTOR_CASES, ids=lambda c: c.name)
async def test_watch_with_selector(client: Client, api_namespace: str, case: SelectorCase) -> None:
    """An object that starts matching arrives as ADDED, one that stops
    matching as DELETED (its last matching state), others not at all."""
    ns = api_namespace

    async def make(name: str, matching: bool) -> Any:
        if case.kind is Pod:
            created = await client.create(pod(name), namespace=ns)
            return await set_matching(created, matching) if matching else created
        return await client.create(configmap(name, labels=labels(matching)), namespace=ns)

    def labels(matching: bool) -> dict[str, str]:
        return {"app": "web"} if matching else {"app": "db"}

    async def set_matching(obj: Any, matching: bool) -> Any:
        if case.kind is Pod:
            obj.status.phase = "Running" if matching else "Succeeded"
            return await client.update_status(obj)
        obj.metadata.labels.clear()
        obj.metadata.labels.update(labels(matching))
        return await client.update(obj)

    before = await make("before", True)
    await make("before-other", False)
    async with client.watch(
        case.kind,
        namespace=ns,
        label_selector=case.label_selector,
        field_selector=case.field_selector,
        bookmarks=False,
    ) as events:
        assert [summary(e) for e in await take(events, 1)] == [("ADDED", "before")]

        await make("other", False)
        one = await make("one", True)
        two = await make("two", False)
        one = await set_matching(one, False)  # stops matching
        two = await set_matching(two, True)  # starts matching
        await client.delete(case.kind, "two", namespace=ns)
        await client.delete(case.kind, "before", namespace=ns)

        got = await take(events, 5)
        assert [summary(e) for e in got] == [
            ("ADDED", "one"),
            ("DELETED", "one"),
            ("ADDED", "two"),
            ("DELETED", "two"),
            ("DELETED", "before"),
        ], case.name
        # "one" leaves with its last matching state, at the version it left.
        assert got[1].resource_version == one.metadata.resource_version, case.name
        if case.kind is Pod:
            assert got[1].object.status.phase == "Running", case.name
        else:
            assert got[1].object.metadata.labels["app"] == "web", case.name
        assert rv(before) < int(got[0].resource_version), case.name
        await quiet(events, 0.3)


async def test_bookmarks_when_idle_and_versions_never_go_back(
    client: Client, api_namespace: str
) -> None:
    """A watcher that sees no change while others happen gets bookmarks, so
    it would resume from past those changes, not from where it started."""
    ns = api_namespace
    selector = "app=web"
    start = (await client.list(ConfigMap, namespace=ns)).resource_version
    noise: list[ConfigMap] = []

    async def write_noise() -> None:  # changes this watcher does not see
        for i in range(100):
            noise.append(
                await client.create(configmap(f"noise-{i}", labels={"app": "db"}), namespace=ns)
            )
            await asyncio.sleep(0.1)

    async with (
        client.watch(
            ConfigMap, namespace=ns, resource_version=start, label_selector=selector
        ) as events,
        client.watch(
            ConfigMap,
            namespace=ns,
            resource_version=start,
            label_selector=selector,
            bookmarks=False,
        ) as silent,
    ):
        writer = asyncio.create_task(write_noise())
        idle, none = await asyncio.gather(
            quiet(events, 3 * BOOKMARK_INTERVAL + 0.3), quiet(silent, 3 * BOOKMARK_INTERVAL + 0.3)
        )
        writer.cancel()
        assert len(idle) >= 2, "a bookmark every interval while others change"
        # Without bookmarks asked for none is delivered, yet they advance the
        # point the watch would resume from.
        assert none == []
        assert int(silent.resource_version) > rv(noise[0])
        assert int(idle[-1].resource_version) > rv(noise[0])
        for bookmark in idle:
            assert bookmark.object.metadata.resource_version == bookmark.resource_version
            assert bookmark.object.metadata.name == ""  # it carries only a version

        created = await client.create(configmap("web", labels={"app": "web"}), namespace=ns)
        after: list[WatchEvent[Any]] = []
        while not changes(after):
            after += await take(events, 1, bookmarks=True)
        assert [summary(e) for e in changes(after)] == [("ADDED", "web")]
        versions = [int(e.resource_version) for e in [*idle, *after]]
        assert versions == sorted(versions), f"versions went back: {versions}"
        assert int(start) <= versions[0]
        assert versions[-1] >= rv(created)

        assert [summary(e) for e in await take(silent, 1)] == [("ADDED", "web")]
    assert events.reconnects == 0


async def test_initial_events_end_with_a_bookmark(client: Client, api_namespace: str) -> None:
    await client.create(configmap("a"), namespace=api_namespace)
    async with client.watch(ConfigMap, namespace=api_namespace) as events:
        first, end = await take(events, 2, bookmarks=True)
    assert summary(first) == ("ADDED", "a")
    assert end.type == "BOOKMARK"
    assert end.object.metadata.annotations["k8s.io/initial-events-end"] == "true"
    assert int(end.resource_version) >= rv(first.object)


# -- resuming ---------------------------------------------------------------------


async def test_resume_across_restart_loses_and_repeats_nothing(
    start_server: Callable[..., APIServerProcess], api_namespace: str
) -> None:
    first = start_server()
    names = [f"cm-{i:03d}" for i in range(60)]
    async with Client(first.address, retry_timeout=20.0) as client:
        start = (await client.list(ConfigMap, namespace=api_namespace)).resource_version
        async with client.watch(ConfigMap, namespace=api_namespace, resource_version=start) as w:
            reader = asyncio.create_task(take(w, len(names), within=30.0))
            written: list[str] = []
            a_third = asyncio.Event()

            def count(name: str) -> None:
                written.append(name)
                if len(written) == len(names) // 3:
                    a_third.set()

            writing = asyncio.create_task(
                write_all(client, api_namespace, names, concurrency=5, written=count)
            )
            async with asyncio.timeout(10):
                await a_third.wait()
            first.kill()  # with writes in flight
            assert len(written) < len(names)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(start_server, port=first.port)
            await writing

            got = await reader
            assert_in_order_once(got, names, "after a restart")
            assert w.reconnects >= 1
            await quiet(w, 0.5)


async def test_failover_to_the_next_server(
    start_server: Callable[..., APIServerProcess], api_namespace: str
) -> None:
    first, second = start_server(), start_server()
    names = [f"cm-{i:03d}" for i in range(30)]
    # By name, the servers are used one at a time, in order, so the watch is
    # on the first (IP addresses would spread calls and watches over both).
    servers = [f"localhost:{first.port}", f"localhost:{second.port}"]
    async with Client(servers, retry_timeout=20.0) as client:
        start = (await client.list(ConfigMap, namespace=api_namespace)).resource_version
        async with client.watch(ConfigMap, namespace=api_namespace, resource_version=start) as w:
            reader = asyncio.create_task(take(w, len(names), within=WRITES_AND_EVENTS))
            await write_all(client, api_namespace, names[:15], concurrency=5)
            await asyncio.to_thread(first.stop)
            await write_all(client, api_namespace, names[15:], concurrency=5)
            assert (await client.get(ConfigMap, names[-1], namespace=api_namespace)).data == {}

            assert_in_order_once(await reader, names, "after failover")
            assert w.reconnects >= 1


@dataclass(frozen=True)
class ExpiredCase:
    name: str
    watch_cache_size: int | None  # None: the default
    compact: bool


EXPIRED_CASES = [
    ExpiredCase("out of the cache window", watch_cache_size=5, compact=False),
    ExpiredCase("compacted before the server started", watch_cache_size=None, compact=True),
]


@pytest.mark.parametrize("case", EXPIRED_CASES, ids=lambda c: c.name)
async def test_expired_then_relist(
    start_server: Callable[..., APIServerProcess],
    client: Client,
    api_namespace: str,
    store: Store,
    case: ExpiredCase,
) -> None:
    old = await client.create(configmap("a"), namespace=api_namespace)
    first_version = old.metadata.resource_version
    for i in range(10):
        old.data["i"] = str(i)
        old = await client.update(old)
    if case.compact:
        await store.compact(await store.current_revision())
    server = await asyncio.to_thread(start_server, watch_cache_size=case.watch_cache_size)

    async with Client(server.address, retry_timeout=5.0) as own:
        with pytest.raises(Expired, match="too old resource version") as raised:
            async with own.watch(
                ConfigMap, namespace=api_namespace, resource_version=first_version
            ) as events:
                await anext(events)
        assert first_version in str(raised.value), case.name

        listed = await own.list(ConfigMap, namespace=api_namespace)
        assert [o.data["i"] for o in listed.items] == ["9"], case.name
        async with own.watch(
            ConfigMap, namespace=api_namespace, resource_version=listed.resource_version
        ) as events:
            old.data["i"] = "10"
            await own.update(old)
            got = await take(events, 1)
        assert summary(got[0]) == ("MODIFIED", "a"), case.name
        assert got[0].object.data["i"] == "10", case.name


# -- the SDK's resume rules, against a scripted server -------------------------------


@dataclass(frozen=True)
class Step:
    """One Watch call's answer: responses of (type, name, version) events,
    then an error (a StatusError with its Status, or a bare gRPC code), or
    else the normal end of the stream (for the last step: nothing more)."""

    responses: list[list[tuple[str, str, int]]]
    error: StatusError | grpc.StatusCode | None = None


class ScriptedAPI(api.APIServicer):
    """Answers the n-th Watch call with the n-th step, and holds the stream
    of the last step open; records the resource version each call asked for."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = list(steps)
        self.versions: list[str] = []

    async def Watch(self, request: api.WatchRequest, context: Any) -> AsyncIterator[Any]:
        self.versions.append(request.resource_version)
        if not self.steps:
            await asyncio.Event().wait()
        step = self.steps.pop(0)
        for events in step.responses:
            yield api.WatchResponse(events=[_event(*e) for e in events])
        if isinstance(step.error, StatusError):
            e = step.error
            await context.abort(status.code_for(e), e.message, status.trailing_metadata(e))
        elif step.error is not None:
            await context.abort(step.error, "connection reset by a proxy")
        elif not self.steps:
            await asyncio.Event().wait()


def _event(type_: str, name: str, version: int) -> api.WatchEvent:
    cm = configmap(name)
    cm.metadata.resource_version = str(version)
    if type_ == "END":  # the bookmark that ends the initial events
        type_ = "BOOKMARK"
        cm.metadata.annotations["k8s.io/initial-events-end"] = "true"
    return api.WatchEvent(type=type_, object=cm.SerializeToString(), resource_version=str(version))


@contextlib.asynccontextmanager
async def scripted_server(steps: list[Step]) -> AsyncIterator[tuple[str, ScriptedAPI]]:
    """An in-process gRPC server answering Watch by `steps`: its address and servicer."""
    scripted = ScriptedAPI(steps)
    server = grpc.aio.server()
    api.add_APIServicer_to_server(scripted, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", scripted
    finally:
        await server.stop(None)


@dataclass(frozen=True)
class ResumeCase:
    name: str
    start: str  # the watch's resource_version
    steps: list[Step]
    want: list[tuple[str, str]]  # what the user gets
    versions: list[str] | None  # what each Watch call asked for (None: not checked)
    raises: type[StatusError] | None = None  # after `want`
    retry_timeout: float = 5.0


RESUME_CASES = [
    ResumeCase(
        "stream ends during the initial events",
        "",
        [
            Step([[("ADDED", "a", 12), ("ADDED", "b", 11)]]),
            Step([[("ADDED", "a", 12), ("ADDED", "b", 11)], [("ADDED", "c", 5), ("END", "", 13)]]),
            Step([[("MODIFIED", "c", 14)]]),
        ],
        want=[("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("MODIFIED", "c")],
        versions=["", "", "13"],
    ),
    ResumeCase(
        "fell behind: resume from the last version, bookmarks included",
        "10",
        [
            Step([[("MODIFIED", "x", 20)], [("BOOKMARK", "", 25)]], TooManyRequests("slow")),
            Step([[("MODIFIED", "x", 26)]]),
        ],
        want=[("MODIFIED", "x"), ("MODIFIED", "x")],
        versions=["10", "25"],
    ),
    ResumeCase(
        "server's cache re-listed",
        "10",
        [Step([[("ADDED", "x", 20)]], Unavailable("re-listed")), Step([[("DELETED", "x", 21)]])],
        want=[("ADDED", "x"), ("DELETED", "x")],
        versions=["10", "20"],
    ),
    ResumeCase(
        "server's cache behind the version",
        "10",
        [Step([], Timeout("too large resource version")), Step([[("ADDED", "x", 20)]])],
        want=[("ADDED", "x")],
        versions=["10", "10"],
    ),
    ResumeCase(
        "transport failure",
        "10",
        [Step([[("ADDED", "x", 20)]], grpc.StatusCode.UNAVAILABLE), Step([[("ADDED", "y", 21)]])],
        want=[("ADDED", "x"), ("ADDED", "y")],
        versions=["10", "20"],
    ),
    ResumeCase(
        "stream ends",
        "10",
        [Step([[("ADDED", "x", 20)]]), Step([[("ADDED", "y", 21)]])],
        want=[("ADDED", "x"), ("ADDED", "y")],
        versions=["10", "20"],
    ),
    ResumeCase(
        "expired ends the watch",
        "10",
        [Step([[("ADDED", "x", 20)]], Expired("too old resource version"))],
        want=[("ADDED", "x")],
        versions=["10"],
        raises=Expired,
    ),
    ResumeCase(
        "an outage longer than retry_timeout ends the watch",
        "10",
        [Step([[("ADDED", "x", 20)]], grpc.StatusCode.UNAVAILABLE)]
        + [Step([], grpc.StatusCode.UNAVAILABLE)] * 50,
        want=[("ADDED", "x")],
        versions=None,
        raises=Unavailable,
        retry_timeout=0.5,
    ),
    ResumeCase(
        "a bad request ends the watch",
        "10",
        [Step([], BadRequest("unable to parse requirement"))],
        want=[],
        versions=["10"],
        raises=BadRequest,
    ),
]


@pytest.mark.parametrize("case", RESUME_CASES, ids=lambda c: c.name)
async def test_sdk_resume_rules(case: ResumeCase) -> None:
    async with (
        scripted_server(case.steps) as (address, scripted),
        Client(address, retry_timeout=case.retry_timeout) as client,
    ):
        async with client.watch(ConfigMap, resource_version=case.start, bookmarks=False) as events:
            got = await take(events, len(case.want)) if case.want else []
            assert [summary(e) for e in got] == case.want, case.name
            if case.raises is not None:
                with pytest.raises(case.raises):
                    await anext(events)
            else:
                assert await quiet(events, 0.2) == [], case.name
        if case.versions is not None:
            assert scripted.versions == case.versions, case.name


async def test_close_from_another_task_ends_iteration() -> None:
    async with (
        scripted_server([Step([[("ADDED", "x", 20)]])]) as (address, _),
        Client(address) as client,
    ):
        events = client.watch(ConfigMap, resource_version="10")

        async def read_all() -> list[tuple[str, str]]:
            return [summary(e) async for e in events]

        reader = asyncio.create_task(read_all())
        await asyncio.sleep(0.2)  # the reader waits for more
        events.close()
        async with asyncio.timeout(5):
            assert await reader == [("ADDED", "x")]


# -- load ---------------------------------------------------------------------------


async def test_stalled_watcher_is_closed_while_others_keep_receiving(
    start_server: Callable[..., APIServerProcess], api_namespace: str
) -> None:
    queue_size = 50
    server = start_server(extra_args=("--watch-queue-size", str(queue_size)))
    names = [f"cm-{i:03d}" for i in range(150)]
    ref = api.ResourceRef(version="v1", resource="configmaps", namespace=api_namespace)
    # Without BDP probing the stalled stream's HTTP/2 window stays at 64 KiB,
    # so a few 16 KB objects fill it and the rest pile up in the server.
    options = [("grpc.http2.bdp_probe", 0)]
    async with (
        Client(server.address, retry_timeout=10.0) as client,
        grpc.aio.insecure_channel(server.address, options=options) as channel,
    ):
        start = (await client.list(ConfigMap, namespace=api_namespace)).resource_version
        # Opened from `start`, it gets every event after it whenever it
        # registers; it is never read until the end.
        stalled = api.APIStub(channel).Watch(api.WatchRequest(ref=ref, resource_version=start))
        async with client.watch(ConfigMap, namespace=api_namespace, resource_version=start) as w:
            reader = asyncio.create_task(take(w, len(names), within=WRITES_AND_EVENTS))
            await write_all(client, api_namespace, names, concurrency=10, size=16_000)
            got = await reader
        assert_in_order_once(got, names, "the reading watcher")

        received: list[api.WatchEvent] = []

        async def read_to_the_end() -> None:
            async with asyncio.timeout(10):
                async for response in stalled:
                    received.extend(response.events)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await read_to_the_end()
    buffered = [e for e in received if e.type != "BOOKMARK"]
    e = raised.value
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # HTTP 429
    error = status.from_grpc(e.code(), e.details(), e.trailing_metadata() or ())
    assert isinstance(error, TooManyRequests), error
    # It got what was buffered before it was closed: the first events, in order.
    assert 0 < len(buffered) < len(names) - queue_size
    assert [(b.type, b.resource_version) for b in buffered] == [
        (g.type, g.resource_version) for g in got[: len(buffered)]
    ]
    # Resuming from the version the error names loses nothing.
    assert f"watch again from resource version {received[-1].resource_version}" in error.message


async def test_many_watchers_see_every_concurrent_write(client: Client, api_namespace: str) -> None:
    names = [unique("cm") for _ in range(200)]
    start = (await client.list(ConfigMap, namespace=api_namespace)).resource_version
    watches = [
        client.watch(ConfigMap, namespace=api_namespace, resource_version=start) for _ in range(20)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for w in watches:
            await stack.enter_async_context(w)
        readers = [
            asyncio.create_task(take(w, len(names), within=WRITES_AND_EVENTS)) for w in watches
        ]
        await write_all(client, api_namespace, names, concurrency=len(names))
        seen = await asyncio.gather(*readers)
    for i, got in enumerate(seen):
        assert_in_order_once(got, names, f"watcher {i}")
        assert [e.resource_version for e in got] == [e.resource_version for e in seen[0]]

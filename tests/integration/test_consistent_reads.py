"""Consistent reads from the watch cache (`kpy.apiserver.consistent`)
against a real etcd: after `CacheFreshness.wait`, the cache holds every
write that finished before the call.

These tests run their own etcd without timed progress notifications
(etcd's default: one per 10 minutes), so a cache of an idle resource never
advances by itself: only the freshness check's own proof can let a read
through, and a read that waited for the cache to move would time out.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api.core.v1 import ConfigMap, Secret
from kpy.api.scheme import scheme
from kpy.apiserver.consistent import BUSY, CacheFreshness
from kpy.apiserver.watch_cache import WatchCache
from kpy.storage import EtcdServer, Store, new_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from kpy.api.scheme import ResourceInfo


def _info(kind: str) -> ResourceInfo:
    info = scheme.lookup("v1", kind)
    assert info is not None
    return info


CONFIGMAPS = _info("ConfigMap")
SECRETS = _info("Secret")


@pytest.fixture(scope="module")
def quiet_etcd() -> Iterator[EtcdServer]:
    """An etcd whose watches get no timed progress notifications."""
    server = EtcdServer(progress_notify_interval=None, unsafe_no_fsync=True)
    server.start()
    pid = server.pid
    yield server
    server.stop()
    assert not Path(f"/proc/{pid}").exists(), f"etcd (pid {pid}) is still running after stop()"


@pytest.fixture
async def quiet_store(quiet_etcd: EtcdServer) -> AsyncIterator[Store]:
    client = new_client(quiet_etcd.endpoint)
    await client.connect()
    yield Store(client)
    await client.close()


@asynccontextmanager
async def fresh_cache(
    store: Store, info: ResourceInfo
) -> AsyncIterator[tuple[WatchCache, CacheFreshness]]:
    """A running cache of `info` (a short catch-up timeout: a read that
    waits for a cache that will not move fails fast) and its freshness."""
    cache = WatchCache(store, info, catch_up_timeout=1.0)
    async with anyio.create_task_group() as tg:
        await tg.start(cache.run)
        yield cache, CacheFreshness(store, info, cache)
        tg.cancel_scope.cancel()


def configmap(namespace: str, name: str, **data: str) -> ConfigMap:
    cm = ConfigMap(data=data)
    cm.metadata.namespace, cm.metadata.name = namespace, name
    return cm


async def test_a_read_after_a_write_sees_it(quiet_store: Store, namespace: str) -> None:
    async with fresh_cache(quiet_store, CONFIGMAPS) as (cache, freshness):
        for i in range(20):
            written = await quiet_store.create(
                CONFIGMAPS, configmap(namespace, f"cm-{i}", n=str(i))
            )
            await freshness.wait()
            got: Any = cache.get(namespace, f"cm-{i}")
            assert got is not None, f"cm-{i}: written at {written.metadata.resource_version}"
            assert got.metadata.resource_version == written.metadata.resource_version


async def test_updates_and_deletes_are_seen_too(quiet_store: Store, namespace: str) -> None:
    async with fresh_cache(quiet_store, CONFIGMAPS) as (cache, freshness):
        cm = await quiet_store.create(CONFIGMAPS, configmap(namespace, "cm", v="1"))
        cm.data["v"] = "2"
        await quiet_store.update(CONFIGMAPS, cm)
        await freshness.wait()
        got: Any = cache.get(namespace, "cm")
        assert dict(got.data) == {"v": "2"}
        await quiet_store.delete(CONFIGMAPS, namespace, "cm")
        await freshness.wait()
        assert cache.get(namespace, "cm") is None


async def test_an_idle_resource_is_read_without_waiting_for_etcd_progress(
    quiet_store: Store, namespace: str
) -> None:
    # Writes to another resource move etcd's revision past the configmaps'
    # cache, which will not hear of it: the freshness check proves the
    # configmaps unchanged instead (without it the wait would time out).
    async with fresh_cache(quiet_store, CONFIGMAPS) as (cache, freshness):
        await quiet_store.create(CONFIGMAPS, configmap(namespace, "idle"))
        await freshness.wait()
        behind = cache.resource_version
        for i in range(3):
            secret = Secret()
            secret.metadata.namespace, secret.metadata.name = namespace, f"s-{i}"
            await quiet_store.create(SECRETS, secret)
            await freshness.wait()
        assert await quiet_store.fresh_revision() > behind
        assert cache.get(namespace, "idle") is not None
        # ... and a write to the resource after such a proof is still seen.
        await quiet_store.create(CONFIGMAPS, configmap(namespace, "after"))
        await freshness.wait()
        assert cache.get(namespace, "after") is not None


async def test_reads_sharing_spaced_revision_requests_see_another_servers_writes(
    quiet_etcd: EtcdServer, quiet_store: Store, namespace: str
) -> None:
    # Under a steady load of reads, the revision requests are shared and
    # spaced (kpy.storage.store.FRESH_READ_SPACING): a read arriving while
    # one is in flight waits for the next. Each write here is made through
    # another client (another API server, whose writes this one cannot
    # know of) and finished before its read began: the read must see it.
    other = new_client(quiet_etcd.endpoint)
    await other.connect()
    try:
        writer = Store(other)
        # The cache hears of each write 30 ms late, as a loaded server's
        # would: a read that trusted a revision read before it began would
        # find the write missing.
        lagging = _LaggingWatches(quiet_store._client)
        async with fresh_cache(lagging, CONFIGMAPS) as (cache, freshness):
            done = anyio.Event()

            async def background_reads() -> None:
                while not done.is_set():
                    await freshness.wait()

            async with anyio.create_task_group() as tg:
                for _ in range(16):
                    tg.start_soon(background_reads)
                for i in range(40):
                    written = await writer.create(
                        CONFIGMAPS, configmap(namespace, f"other-{i}", n=str(i))
                    )
                    await freshness.wait()
                    got: Any = cache.get(namespace, f"other-{i}")
                    assert got is not None, (
                        f"other-{i}: written at {written.metadata.resource_version} by another "
                        f"client before the read began, missing from the cache at "
                        f"{cache.resource_version}"
                    )
                done.set()
    finally:
        await other.close()


async def test_a_quiet_resource_is_read_without_waiting_for_its_watch(
    quiet_store: Store, namespace: str
) -> None:
    # A cluster writes Leases and Events all the time: etcd's revision
    # moves on while a quiet resource's cache does not. A read of it must
    # not wait the catch-up grace for a watch that has nothing to deliver
    # (a grace of 5 s here: a read that waited for it would take that
    # long), and must still see a write to the resource made just before
    # it (the cache hears of it 30 ms late).
    lagging = _LaggingWatches(quiet_store._client)
    async with fresh_cache(lagging, CONFIGMAPS) as (cache, _):
        freshness = CacheFreshness(lagging, CONFIGMAPS, cache, grace=5.0)
        await quiet_store.create(CONFIGMAPS, configmap(namespace, "quiet"))
        await freshness.wait()
        await anyio.sleep(BUSY + 0.1)
        for i in range(3):
            secret = Secret()
            secret.metadata.namespace, secret.metadata.name = namespace, f"elsewhere-{i}"
            await quiet_store.create(SECRETS, secret)
            started = anyio.current_time()
            await freshness.wait()
            took = anyio.current_time() - started
            assert took < 2.5, f"read {i} of a quiet resource waited {took:.2f}s for its watch"
        await anyio.sleep(BUSY + 0.1)
        written = await quiet_store.create(CONFIGMAPS, configmap(namespace, "late"))
        await freshness.wait()
        got: Any = cache.get(namespace, "late")
        assert got is not None, (
            f"late: written at {written.metadata.resource_version} before the read began, "
            f"missing from the cache at {cache.resource_version}"
        )


class _LaggingWatches(Store):
    """A Store whose watches deliver every event `lag` seconds late."""

    def __init__(self, client: Any, lag: float = 0.03) -> None:
        super().__init__(client)
        self._lag = lag

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        return _Lagging(super().watch(*args, **kwargs), self._lag)


class _Lagging:
    def __init__(self, watch: Any, lag: float) -> None:
        self._watch, self._lag = watch, lag

    async def __aenter__(self) -> _Lagging:
        await self._watch.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> Any:
        return await self._watch.__aexit__(*exc)

    def __aiter__(self) -> _Lagging:
        return self

    async def __anext__(self) -> Any:
        event = await self._watch.__anext__()
        await anyio.sleep(self._lag)
        return event

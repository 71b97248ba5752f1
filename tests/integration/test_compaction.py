"""etcd compaction by the API server (issue 14): against a real etcd of its
own, since compacting the session's etcd would expire other tests' versions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap
from kpy.apiserver.compaction import Compactor
from kpy.apiserver.process import APIServerProcess
from kpy.storage import EtcdServer, Store, new_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from kpy.api.scheme import ResourceInfo

pytestmark = pytest.mark.etcd

INTERVAL = 0.3


@pytest.fixture(scope="module")
def own_etcd() -> Iterator[EtcdServer]:
    server = EtcdServer(unsafe_no_fsync=True)
    server.start()
    pid = server.pid
    yield server
    server.stop()
    assert not Path(f"/proc/{pid}").exists(), f"etcd (pid {pid}) is still running after stop()"


@pytest.fixture
async def own_store(own_etcd: EtcdServer) -> AsyncIterator[Store]:
    client = new_client(own_etcd.endpoint)
    await client.connect()
    yield Store(client)
    await client.close()


def _configmaps() -> ResourceInfo:
    from kpy.api.scheme import scheme

    return scheme.resolve("configmaps")


async def _write(store: Store, name: str) -> int:
    cm = ConfigMap()
    cm.metadata.name = name
    cm.metadata.namespace = "compaction"
    created = await store.create(_configmaps(), cm)
    return int(created.metadata.resource_version)


async def _readable(store: Store, revision: int) -> bool:
    try:
        await store.list(_configmaps(), "compaction", resource_version=revision)
    except errors.Expired:
        return False
    return True


async def test_compacts_to_the_revision_of_the_previous_tick(own_store: Store) -> None:
    compactor = Compactor(own_store, INTERVAL)
    first = await _write(own_store, "a")
    await compactor.tick()  # sees the current revision; compacts nothing
    assert compactor.statistics.compacted_to == 0
    seen = await own_store.current_revision()
    await _write(own_store, "b")
    latest = await _write(own_store, "c")
    await compactor.tick()
    assert compactor.statistics.compacted_to == seen, "compacts to what it saw one tick ago"
    assert not await _readable(own_store, first), "history before the last interval is gone"
    assert await _readable(own_store, seen), "the last interval's history is kept"
    assert await _readable(own_store, latest)


async def test_two_compactors_compact_once_per_interval(own_store: Store) -> None:
    """Two API servers' compactors, out of phase: each interval both tick
    (driven here one after the other, with writes between, so no wall
    clock is involved) and only one of them compacts."""
    one, two = Compactor(own_store, INTERVAL), Compactor(own_store, INTERVAL)
    start = await _write(own_store, "before-two")
    intervals = 5
    for i in range(intervals):
        await _write(own_store, f"w-{i}-a")
        await one.tick()
        await _write(own_store, f"w-{i}-b")
        await two.tick()
    ticks = one.statistics.ticks + two.statistics.ticks
    claims = one.statistics.claimed + two.statistics.claimed
    assert ticks == 2 * intervals
    # the first interval only learns a revision; then one compaction each
    assert claims == intervals - 1, f"{claims} compactions in {intervals} intervals"
    assert not await _readable(own_store, start)


async def test_compactors_run_on_their_interval(own_store: Store) -> None:
    """`run` ticks every interval (its sleep injected: no wall clock)."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > 3:
            raise anyio.get_cancelled_exc_class()

    compactor = Compactor(own_store, INTERVAL, sleep=sleep)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await compactor.run()
    assert slept == [INTERVAL] * 4
    assert compactor.statistics.ticks == 3


@pytest.mark.timeout(120)
async def test_apiserver_compacts_with_its_flag(own_etcd: EtcdServer, own_store: Store) -> None:
    old = await _write(own_store, "old")
    server = APIServerProcess(
        own_etcd.endpoint, extra_args=("--etcd-compaction-interval", str(INTERVAL))
    )
    server.start()
    pid = server.pid
    try:
        with anyio.fail_after(60):
            while await _readable(own_store, old):
                await _write(own_store, f"n-{time.monotonic_ns()}")
                await anyio.sleep(INTERVAL)
    finally:
        server.stop()
    assert not _alive(pid), f"kpy-apiserver (pid {pid}) still runs after stop()"


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()

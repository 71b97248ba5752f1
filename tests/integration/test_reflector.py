"""The reflector over the real API server: an Indexer that follows the
resource, through watch resumes and a relist after history is lost."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api.core.v1 import ConfigMap
from kpy.apiserver.process import APIServerProcess
from kpy.cache.reflector import Reflector
from kpy.cache.store import Indexer
from kpy.client import Client

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from kpy.storage import EtcdServer, Store


class WatchedIndexer(Indexer[ConfigMap]):
    """An Indexer that lets a test wait for a state instead of polling."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = anyio.Event()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def add(self, obj: ConfigMap) -> None:
        super().add(obj)
        self._touch()

    def update(self, obj: ConfigMap) -> None:
        super().update(obj)
        self._touch()

    def delete(self, obj: ConfigMap) -> None:
        super().delete(obj)
        self._touch()

    def replace(self, objects: Any, resource_version: str) -> None:
        super().replace(objects, resource_version)
        self._touch()

    def state(self) -> dict[str, str]:
        return {cm.metadata.name: cm.data.get("v", "") for cm in self.list()}

    async def wait_for(self, want: dict[str, str]) -> None:
        with anyio.fail_after(15):
            while self.state() != want:
                await self._changed.wait()


def configmap(name: str, value: str) -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.name = name
    cm.data["v"] = value
    return cm


@pytest.fixture
def own_server(etcd_server: EtcdServer) -> Iterator[Callable[..., APIServerProcess]]:
    started: list[APIServerProcess] = []

    def start(**options: Any) -> APIServerProcess:
        server = APIServerProcess(etcd_server.endpoint, bookmark_interval=0.5, **options)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        server.log_path.unlink(missing_ok=True)


async def test_the_store_follows_lists_and_watch_events(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    for i in range(3):
        await client.create(configmap(f"before-{i}", "0"), namespace=ns)
    store = WatchedIndexer()
    reflector = Reflector(client, ConfigMap, store, namespace=ns, page_size=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reflector.run)
        await store.wait_for({"before-0": "0", "before-1": "0", "before-2": "0"})
        await client.create(configmap("after", "1"), namespace=ns)
        await client.patch(ConfigMap, "before-0", {"data": {"v": "2"}}, namespace=ns)
        await client.delete(ConfigMap, "before-1", namespace=ns)
        await store.wait_for({"before-0": "2", "before-2": "0", "after": "1"})
        assert reflector.lists == 1
        assert int(reflector.last_sync_resource_version) > 0
        tg.cancel_scope.cancel()


async def test_lost_history_means_a_relist_that_drops_what_vanished(
    own_server: Callable[..., APIServerProcess],
    client: Client,
    store: Store,
    api_namespace: str,
) -> None:
    ns = api_namespace
    server = await asyncio.to_thread(own_server)
    port = server.port
    await client.create(configmap("kept", "0"), namespace=ns)
    await client.create(configmap("doomed", "0"), namespace=ns)
    cache = WatchedIndexer()
    async with Client(server.address, retry_timeout=20) as own, anyio.create_task_group() as tg:
        reflector = Reflector(own, ConfigMap, cache, namespace=ns)
        tg.start_soon(reflector.run)
        await cache.wait_for({"kept": "0", "doomed": "0"})

        await asyncio.to_thread(server.stop)  # the reflector's server goes away...
        await client.delete(ConfigMap, "doomed", namespace=ns)
        await client.patch(ConfigMap, "kept", {"data": {"v": "1"}}, namespace=ns)
        await store.compact(await store.current_revision())  # ...and history with it
        await asyncio.to_thread(own_server, port=port)

        await cache.wait_for({"kept": "1"})
        assert reflector.lists == 2, "the resumed watch was Expired, so the reflector relisted"
        tg.cancel_scope.cancel()

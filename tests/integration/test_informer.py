"""Shared informers over the real API server: handlers see every change in
order, listers read the store, one informer per kind from the factory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from kpy.api.core.v1 import ConfigMap, Secret
from kpy.api.labels import parse_selector
from kpy.cache.informer import EventHandler, SharedInformer, SharedInformerFactory

if TYPE_CHECKING:
    from kpy.client import Client


def configmap(name: str, value: str, **labels: str) -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.name = name
    cm.metadata.labels.update(labels)
    cm.data["v"] = value
    return cm


class Seen:
    """What a handler was told, with an event to wait on instead of polling."""

    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []
        self._changed = anyio.Event()

    def _note(self, *entry: str) -> None:
        self.log.append(entry)
        self._changed.set()
        self._changed = anyio.Event()

    def handler(self) -> EventHandler[ConfigMap]:
        return EventHandler(
            on_add=lambda obj, initial: self._note("add", obj.metadata.name, str(initial)),
            on_update=lambda old, new: self._note(
                "update", new.metadata.name, old.data["v"], new.data["v"]
            ),
            on_delete=lambda obj: self._note("delete", getattr(obj, "object", obj).metadata.name),
        )

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(15):
            while len(self.log) < count:
                await self._changed.wait()


async def test_handlers_see_initial_list_then_every_change(
    client: Client, api_namespace: str
) -> None:
    ns = api_namespace
    await client.create(configmap("a", "0", app="web"), namespace=ns)
    informer = SharedInformer(client, ConfigMap, namespace=ns)
    seen = Seen()
    informer.add_event_handler(seen.handler())
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        with anyio.fail_after(15):
            await informer.wait_for_sync()
        assert seen.log == [("add", "a", "True")]

        await client.create(configmap("b", "0", app="db"), namespace=ns)
        await client.patch(ConfigMap, "a", {"data": {"v": "1"}}, namespace=ns)
        await client.delete(ConfigMap, "b", namespace=ns)
        await seen.wait_for(4)
        # Order holds per object (a key's changes are popped together), as
        # in client-go; changes to different objects may interleave.
        later = seen.log[1:]
        assert sorted(later) == sorted(
            [("add", "b", "False"), ("update", "a", "0", "1"), ("delete", "b")]
        )
        assert later.index(("add", "b", "False")) < later.index(("delete", "b"))

        lister = informer.lister()
        assert [cm.metadata.name for cm in lister.list(ns)] == ["a"]
        assert lister.list(ns, parse_selector("app=db")) == []
        got = lister.get(ns, "a")
        assert got is not None
        assert got.data["v"] == "1"

        late = Seen()
        informer.add_event_handler(late.handler())  # joins late: told what exists
        assert late.log == [("add", "a", "False")]
        assert informer.statistics().synced
        tg.cancel_scope.cancel()


async def test_an_empty_resource_is_synced_at_once(client: Client, api_namespace: str) -> None:
    informer = SharedInformer(client, ConfigMap, namespace=api_namespace)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        with anyio.fail_after(15):
            await informer.wait_for_sync()
        assert informer.lister().list() == []
        tg.cancel_scope.cancel()


async def test_resync_redelivers_every_object(client: Client, api_namespace: str) -> None:
    await client.create(configmap("a", "0"), namespace=api_namespace)
    informer = SharedInformer(client, ConfigMap, namespace=api_namespace, resync_period=0.2)
    seen = Seen()
    informer.add_event_handler(seen.handler())
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await seen.wait_for(3)
        resynced = ("update", "a", "0", "0")  # an update from an object to itself
        assert seen.log[:3] == [("add", "a", "True"), resynced, resynced]
        tg.cancel_scope.cancel()


async def test_the_factory_shares_one_informer_per_kind(client: Client, api_namespace: str) -> None:
    factory = SharedInformerFactory(client, namespace=api_namespace)
    first: Any = factory.informer(ConfigMap)
    assert factory.informer(ConfigMap) is first
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        await anyio.lowlevel.checkpoint()
        secrets = factory.informer(Secret)  # asked for after the factory started
        with anyio.fail_after(15):
            await factory.wait_for_cache_sync()
        assert first.has_synced()
        assert secrets.has_synced()
        tg.cancel_scope.cancel()

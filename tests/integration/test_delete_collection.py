"""deletecollection over thousands of objects (issue 14): done within the
request's deadline, one DELETED event per object, finalizers respected, and
work that outlives its deadline finished by the server anyway."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap
from kpy.client import Client

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess

pytestmark = pytest.mark.etcd


async def _create_many(client: Client, count: int, *, label: str = "bulk") -> None:
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            cm = ConfigMap()
            cm.metadata.name = f"cm-{i}"
            cm.metadata.labels["set"] = label
            cm.data["i"] = str(i)
            await client.create(cm)

    await asyncio.gather(*(worker() for _ in range(40)))


@pytest.mark.timeout(300)
async def test_deletes_3000_within_the_deadline_one_event_each(
    client: Client, api_namespace: str
) -> None:
    count = 3000
    await _create_many(client, count)
    listed = await client.list(ConfigMap, namespace=api_namespace)
    assert len(listed.items) == count

    deleted_events: Counter[str] = Counter()
    async with client.watch(
        ConfigMap, namespace=api_namespace, resource_version=listed.resource_version
    ) as events:

        async def follow() -> None:
            async for event in events:
                if event.type == "DELETED":
                    deleted_events[event.object.metadata.name] += 1
                    if len(deleted_events) == count:
                        return

        watching = asyncio.create_task(follow())
        started = time.monotonic()
        # The default deadline of the client (30 s) is the request's deadline.
        assert client.config.timeout == 30.0
        deleted = await client.delete_collection(ConfigMap, namespace=api_namespace)
        took = time.monotonic() - started
        await asyncio.wait_for(watching, 60)

    assert len(deleted) == count, f"{len(deleted)} objects reported deleted of {count}"
    assert took < 30, f"deletecollection took {took:.1f}s"
    left = await client.list(ConfigMap, namespace=api_namespace)
    assert not left.items, f"{len(left.items)} objects left"
    assert len(deleted_events) == count
    twice = [name for name, n in deleted_events.items() if n != 1]
    assert not twice, f"objects with more than one DELETED event: {twice[:5]}"


async def test_finalizers_are_kept(client: Client, api_namespace: str) -> None:
    held = ConfigMap()
    held.metadata.name = "held"
    held.metadata.finalizers.append("example.com/hold")
    await client.create(held)
    free = ConfigMap()
    free.metadata.name = "free"
    await client.create(free)

    deleted = await client.delete_collection(ConfigMap, namespace=api_namespace)

    assert sorted(o.metadata.name for o in deleted) == ["free", "held"]
    still = await client.get(ConfigMap, "held")
    assert still.metadata.HasField("deletion_timestamp"), "marked for deletion"
    assert list(still.metadata.finalizers) == ["example.com/hold"]
    with pytest.raises(errors.NotFound):
        await client.get(ConfigMap, "free")
    still.metadata.ClearField("finalizers")
    await client.update(still)  # the last finalizer gone: removed
    with pytest.raises(errors.NotFound):
        await client.get(ConfigMap, "held")


@pytest.mark.timeout(300)
async def test_work_past_the_deadline_is_finished(
    apiserver: APIServerProcess, api_namespace: str
) -> None:
    count = 1000
    async with Client(apiserver.address) as setup:
        setup.config = dataclasses.replace(setup.config, namespace=api_namespace)
        await _create_many(setup, count)
        hurried = dataclasses.replace(setup.config, timeout=0.5)
        async with Client(hurried, retry_timeout=1.0) as client:
            with pytest.raises(errors.Timeout, match="goes on deleting"):
                await client.delete_collection(ConfigMap, namespace=api_namespace)
        for _ in range(300):  # a minute
            left = len((await setup.list(ConfigMap, namespace=api_namespace)).items)
            if not left:
                break
            await asyncio.sleep(0.2)
        assert left == 0, f"{left} of {count} objects left a minute after the deadline"


async def test_a_refused_delete_is_reported_as_itself(client: Client, api_namespace: str) -> None:
    await _create_many(client, 3)
    with pytest.raises(errors.Invalid, match="propagationPolicy"):
        await client.delete_collection(
            ConfigMap, namespace=api_namespace, propagation_policy="Sometimes"
        )
    left = await client.list(ConfigMap, namespace=api_namespace)
    assert len(left.items) == 3

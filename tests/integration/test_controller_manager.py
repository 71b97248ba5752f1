"""`kpy-controller-manager` as real processes: one leads, a standby takes
over when the leader dies or stops, and no pod is ever created twice."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Pod
from kpy.controllers.process import ControllerManagerProcess
from tests.integration._controllers import LEASE, RETRY, elected_pair, eventually
from tests.integration.test_replicaset import replicaset, wait_for_count

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kpy._process import ElectedProcess
    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


@pytest.fixture
def managers(apiserver: APIServerProcess, namespace: str) -> Iterator[dict[str, ElectedProcess]]:
    """Two replicas "a" and "b" sharing a Lease named after the test."""

    def new(**kwargs: Any) -> ElectedProcess:
        return ControllerManagerProcess(apiserver.address, **kwargs)

    with elected_pair(new, namespace, "--controllers=replicaset") as pair:
        yield pair


async def holder(client: Client, lease: str) -> str:
    try:
        found = await client.get(Lease, lease, namespace="kube-system")
    except errors.NotFound:
        return ""
    return found.spec.holder_identity


async def http_get(port: int, path: str) -> tuple[str, str]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        with anyio.fail_after(5):
            while True:
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    break
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body


async def test_standby_takes_over_within_the_lease_and_creates_nothing_twice(
    client: Client, api_namespace: str, managers: dict[str, ElectedProcess]
) -> None:
    a, b = managers["a"], managers["b"]
    a.start()
    await eventually(lambda: _is(client, api_namespace, "a"), what="a leading")
    b.start()
    added: list[str] = []
    async with (
        client.watch(Pod, namespace=api_namespace) as events,
        anyio.create_task_group() as tg,
    ):

        async def count_added() -> None:
            async for event in events:
                if event.type == "ADDED":
                    added.append(event.object.metadata.name)

        tg.start_soon(count_added)
        await client.create(replicaset("web", 4))
        pods = await wait_for_count(client, api_namespace, "app=web", 4)
        assert await holder(client, api_namespace) == "a"

        a.kill()
        killed = time.monotonic()
        await client.delete(Pod, pods[0].metadata.name)
        await eventually(
            lambda: _is(client, api_namespace, "b"), timeout=LEASE * 3, what="b leading"
        )
        took = time.monotonic() - killed
        await wait_for_count(client, api_namespace, "app=web", 4)
        await client.scale(ReplicaSet, "web", 6)
        await wait_for_count(client, api_namespace, "app=web", 6)
        await anyio.sleep(1.0)  # room for a duplicate to show up
        tg.cancel_scope.cancel()
    # Takeover needs the old record unchanged for a whole lease, then one retry.
    assert took <= LEASE + 2 * RETRY * 1.2 + 1.0, f"handover took {took:.1f} s"
    assert len(added) == 4 + 1 + 2, f"pods created: {added}"
    assert len(set(added)) == len(added)


async def test_a_clean_stop_hands_the_lease_over_at_once(
    client: Client, api_namespace: str, managers: dict[str, ElectedProcess]
) -> None:
    a, b = managers["a"], managers["b"]
    a.start()
    await eventually(lambda: _is(client, api_namespace, "a"), what="a leading")
    b.start()
    a.stop()
    stopped = time.monotonic()
    await eventually(lambda: _is(client, api_namespace, "b"), timeout=LEASE * 3, what="b leading")
    # A released Lease is taken at the next retry, well before it would expire.
    assert time.monotonic() - stopped < LEASE


async def test_metrics_show_queues_and_syncs(
    client: Client, api_namespace: str, managers: dict[str, ElectedProcess]
) -> None:
    a = managers["a"]
    a.start()
    await eventually(lambda: _is(client, api_namespace, "a"), what="a leading")
    await client.create(replicaset("web", 2))
    await wait_for_count(client, api_namespace, "app=web", 2)

    async def synced() -> str:
        status, body = await http_get(a.metrics_port, "/metrics")
        assert status == "HTTP/1.0 200 OK"
        return (
            body
            if 'kpy_controller_syncs_total{controller="replicaset",result="success"}' in body
            else ""
        )

    body = await eventually(synced, what="a successful sync counted")
    for metric in (
        'workqueue_depth{name="replicaset"}',
        'workqueue_adds_total{name="replicaset"}',
        'workqueue_retries_total{name="replicaset"}',
        'workqueue_work_duration_seconds_count{name="replicaset"}',
        'kpy_leader{component="kpy-controller-manager"} 1.0',
    ):
        assert metric in body
    assert await http_get(a.metrics_port, "/healthz") == ("HTTP/1.0 200 OK", "ok\n")
    assert (await http_get(a.metrics_port, "/nope"))[0] == "HTTP/1.0 404 Not Found"


async def _is(client: Client, lease: str, identity: str) -> bool:
    return await holder(client, lease) == identity

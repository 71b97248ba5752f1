"""The API server's limits against abuse, against a real etcd (issue 23, part 7):
calls over the in-flight limits wait briefly and are then refused with
TooManyRequests and a retry-after hint; kpy's own heartbeats have seats of
their own; watches over their limit are refused; an oversized request is
RequestEntityTooLarge naming the limit; the SDK waits out the hint and
succeeds once capacity frees.

Each test runs a private API server in this process (small limits, its own
etcd prefix), so that it can hold seats itself and make a flood
deterministic; loops are bounded in count and time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import grpc
import grpc.aio
import pytest

from kpy.api import errors
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import ConfigMap, Namespace
from kpy.apiserver import main as apiserver_main
from kpy.apiserver.limits import (
    MUTATING,
    READ_ONLY,
    TOO_MANY_REQUESTS,
    Kind,
    Limits,
    RequestLimiter,
)
from kpy.apiserver.process import APIServerProcess
from kpy.apiserver.server import APIServer, ServerConfig
from kpy.client import Client
from kpy.rpc import status
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kpy.storage import EtcdServer

pytestmark = pytest.mark.etcd

LIMITS = Limits(
    max_requests_inflight=1,
    max_mutating_requests_inflight=1,
    system_requests_inflight=2,
    max_watches=2,
    queue_length=2,
    queue_wait=0.2,
    retry_after=1,
)
NS = "limits"


@contextlib.asynccontextmanager
async def private_server(
    etcd_server: EtcdServer, limits: Limits = LIMITS, max_request_bytes: int = 0
) -> AsyncIterator[APIServer]:
    """An API server on a free port over its own etcd prefix, stopped on exit;
    the namespace NS exists."""
    config = ServerConfig(
        etcd_endpoints=(etcd_server.endpoint,),
        port=0,
        prefix=f"/limits-{uuid.uuid4().hex[:8]}",
        limits=limits,
        compaction_interval=0,
    )
    if max_request_bytes:
        config = dataclasses.replace(config, max_request_bytes=max_request_bytes)
    server = APIServer(config)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        async with Client(f"127.0.0.1:{server.port}") as client:
            ns = Namespace()
            ns.metadata.name = NS
            await client.create(ns)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def seats(server: APIServer) -> RequestLimiter:
    """The server's limiter, to hold seats from the test itself."""
    assert server.gate is not None
    assert server.gate.requests is not None
    return server.gate.requests


def address(server: APIServer) -> str:
    return f"127.0.0.1:{server.port}"


def list_request() -> api.ListRequest:
    # limit > 0: a page read from etcd, so each list takes a while (awaits etcd)
    return api.ListRequest(
        ref=api.ResourceRef(version="v1", resource="configmaps", namespace=NS), limit=500
    )


def lease_ref(name: str) -> api.ResourceRef:
    return api.ResourceRef(
        group="coordination.k8s.io", version="v1", resource="leases", namespace=NS, name=name
    )


def refusal(e: grpc.aio.AioRpcError) -> errors.TooManyRequests:
    """The TooManyRequests a raw call was refused with (asserting it is one)."""
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    metadata = e.trailing_metadata() or ()
    error = status.from_grpc(e.code(), e.details(), metadata)
    assert isinstance(error, errors.TooManyRequests), error
    assert error.message.startswith(TOO_MANY_REQUESTS), error.message
    assert error.retry_after_seconds == 1
    assert (status.RETRY_AFTER_KEY, "1") in list(metadata)
    return error


@pytest.mark.timeout(60)
async def test_read_over_the_limit_waits_then_is_refused(etcd_server: EtcdServer) -> None:
    async with private_server(etcd_server) as server:
        held = await seats(server).acquire(Kind(READ_ONLY))  # the only read seat
        try:
            async with grpc.aio.insecure_channel(address(server)) as channel:
                stub = api.APIStub(channel)
                began = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.List(list_request(), timeout=10)
                waited = time.monotonic() - began
                error = refusal(caught.value)
                assert "--max-requests-inflight" in error.message
                assert waited >= LIMITS.queue_wait * 0.9, f"refused after {waited:.2f}s"
                # a write has seats of its own
                cm = ConfigMap()
                cm.metadata.name = "written"
                await stub.Create(
                    api.CreateRequest(
                        ref=api.ResourceRef(version="v1", resource="configmaps", namespace=NS),
                        object=cm.SerializeToString(),
                    ),
                    timeout=10,
                )
        finally:
            held.release()


@pytest.mark.timeout(60)
async def test_sdk_waits_out_the_hint_and_succeeds(etcd_server: EtcdServer) -> None:
    """A create refused for lack of seats is sent again after the hint and
    lands once: the refused attempt was never executed."""
    async with private_server(etcd_server) as server:
        held = await seats(server).acquire(Kind(MUTATING))
        async with Client(address(server), retry_timeout=10.0) as client:
            cm = ConfigMap()
            cm.metadata.name = "patient"
            cm.metadata.namespace = NS
            began = time.monotonic()
            creating = asyncio.create_task(client.create(cm))
            await asyncio.sleep(LIMITS.queue_wait + 0.3)  # refused once by now
            assert not creating.done()
            held.release()
            created = await asyncio.wait_for(creating, 10)
            took = time.monotonic() - began
            assert created.metadata.name == "patient"
            # it waited for the 1 s hint, not the client's 0.1 s first back-off
            assert took >= 1.0, f"sent again after {took:.2f}s, before the hint"
            found = await client.list(ConfigMap, namespace=NS)
            assert [c.metadata.name for c in found.items] == ["patient"]


@pytest.mark.timeout(60)
async def test_sdk_gives_up_after_its_retry_budget(etcd_server: EtcdServer) -> None:
    async with private_server(etcd_server) as server:
        held = await seats(server).acquire(Kind(READ_ONLY))
        try:
            async with Client(address(server), retry_timeout=2.5) as client:
                began = time.monotonic()
                with pytest.raises(errors.TooManyRequests) as caught:
                    await client.list(ConfigMap, namespace=NS, limit=10)
                took = time.monotonic() - began
            assert caught.value.message.startswith(TOO_MANY_REQUESTS)
            assert took < 10, f"gave up after {took:.1f}s, past its 2.5 s budget"
        finally:
            held.release()


async def _flood(stub: api.APIAsyncStub, deadline: float, counts: dict[str, int]) -> None:
    """List calls back to back until `deadline`, counting answers and refusals."""
    while time.monotonic() < deadline:
        try:
            await stub.List(list_request(), timeout=10)
            counts["served"] += 1
        except grpc.aio.AioRpcError as e:
            refusal(e)
            counts["refused"] += 1


async def _seed(server: APIServer) -> Lease:
    """Something for each list to read, and a node's Lease (returned)."""
    async with Client(address(server)) as client:
        for i in range(50):
            cm = ConfigMap()
            cm.metadata.name = f"cm-{i}"
            cm.data["x"] = "y" * 1000
            await client.create(cm, namespace=NS)
        lease = Lease()
        lease.metadata.name = "node-1"
        lease.spec.holder_identity = "node-1"
        return await client.create(lease, namespace=NS)


@pytest.mark.timeout(90)
async def test_lease_update_goes_through_a_flood_of_lists(etcd_server: EtcdServer) -> None:
    async with (
        private_server(etcd_server) as server,
        grpc.aio.insecure_channel(address(server)) as channel,
    ):
        stub = api.APIStub(channel)
        lease = await _seed(server)
        counts = {"served": 0, "refused": 0}
        deadline = time.monotonic() + 15.0
        renewed = 0
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(_flood, stub, deadline, counts)
            await asyncio.sleep(0.3)  # the flood is on
            while time.monotonic() < deadline - 1.0 and renewed < 10:
                lease.spec.lease_duration_seconds = 40 + renewed
                # raw calls, no SDK retry: each must be served at once
                answer = await stub.Update(
                    api.UpdateRequest(ref=lease_ref("node-1"), object=lease.SerializeToString()),
                    timeout=5,
                )
                lease = Lease.FromString(answer.object)
                renewed += 1
                await asyncio.sleep(0.1)
            tg.cancel_scope.cancel()  # the flood ends with the renewals
        assert renewed == 10, f"only {renewed} lease updates during the flood"
        assert counts["refused"] > 0, f"the flood never hit the limit: {counts}"
        assert counts["served"] > 0, counts


@pytest.mark.timeout(60)
async def test_watches_over_the_limit_are_refused(etcd_server: EtcdServer) -> None:
    async with (
        private_server(etcd_server) as server,
        grpc.aio.insecure_channel(address(server)) as channel,
    ):
        stub = api.APIStub(channel)
        request = api.WatchRequest(
            ref=api.ResourceRef(version="v1", resource="configmaps", namespace=NS),
            allow_watch_bookmarks=True,
        )
        open_ = [stub.Watch(request) for _ in range(LIMITS.max_watches)]
        for call in open_:
            await call.read()  # the initial-events-end bookmark: the watch is open
        refused = stub.Watch(request)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await refused.read()
        error = refusal(caught.value)
        assert "--max-watches" in error.message
        # the SDK's watch is refused too, and gets in once a place frees
        async with (
            Client(address(server), retry_timeout=10.0) as client,
            client.watch(ConfigMap, namespace=NS, bookmarks=True) as watch,
        ):
            getting = asyncio.create_task(anext(watch))
            await asyncio.sleep(0.5)
            assert not getting.done(), "a watch over the limit was let in"
            open_[0].cancel()
            first = await asyncio.wait_for(getting, 10)
            assert first.type == "BOOKMARK"
            assert watch.reconnects >= 1
        for call in open_[1:]:
            call.cancel()


@pytest.mark.timeout(60)
async def test_oversized_request_is_too_large_naming_the_limit(etcd_server: EtcdServer) -> None:
    limit = 64 * 1024
    async with (
        private_server(etcd_server, max_request_bytes=limit) as server,
        Client(address(server)) as client,
    ):
        for size, says in (
            (2 * limit, f"accepts at most {limit} bytes per request"),  # the service's check
            (8 * limit, "larger than the server accepts"),  # past gRPC's own cap
        ):
            cm = ConfigMap()
            cm.metadata.name = f"big-{size}"
            cm.data["blob"] = "x" * size
            with pytest.raises(errors.TooLarge) as caught:
                await client.create(cm, namespace=NS)
            assert says in caught.value.message, caught.value.message
        cm = ConfigMap()
        cm.metadata.name = "small"
        cm.data["blob"] = "x" * (limit // 2)
        await client.create(cm, namespace=NS)


@pytest.mark.timeout(60)
async def test_flags_set_the_limits_of_kpy_apiserver(etcd_server: EtcdServer) -> None:
    """`kpy-apiserver --max-watches 1`: the second watch is refused."""
    process = APIServerProcess(etcd_server.endpoint, extra_args=("--max-watches", "1"))
    process.start()
    pid = process.pid
    try:
        async with grpc.aio.insecure_channel(process.address) as channel:
            stub = api.APIStub(channel)
            request = api.WatchRequest(
                ref=api.ResourceRef(version="v1", resource="namespaces"),
                allow_watch_bookmarks=True,
            )
            first = stub.Watch(request)
            await first.read()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Watch(request).read()
            assert "limit of 1 open watches (--max-watches)" in refusal(caught.value).message
            first.cancel()
    finally:
        process.stop()
    assert not _running(pid), f"kpy-apiserver (pid {pid}) still runs"
    process.log_path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize(
    "flag", ["--max-requests-inflight", "--max-mutating-requests-inflight", "--max-watches"]
)
def test_negative_limit_flags_are_refused(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = apiserver_main._parser()
    args = parser.parse_args([flag, "-1"])
    with pytest.raises(SystemExit):
        apiserver_main._check(parser, args)
    assert f"{flag} must not be negative" in capsys.readouterr().err

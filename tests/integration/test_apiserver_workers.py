"""`kpy-apiserver --workers N` (issue 22 item 5): N API server processes on
consecutive ports over one etcd, supervised by one process; the SDK spreads
its calls over them, and a watch resumes on another worker when the one
serving it dies, without losing or repeating an event."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.api.core.v1 import ConfigMap, Namespace
from kpy.apiserver.process import APIServerProcess, APIServerStartError
from kpy.client import Client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kpy.storage import EtcdServer

pytestmark = pytest.mark.etcd


def _consecutive_free_ports(count: int) -> int:
    """A port P such that P .. P+count-1 are free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first: int = probe.getsockname()[1]
        if first + count > 65535:
            continue
        held = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


@pytest.fixture
def workers(etcd_server: EtcdServer) -> Iterator[APIServerProcess]:
    """`kpy-apiserver --workers 2` on two consecutive ports, stopped by its pid."""
    port = _consecutive_free_ports(2)
    server = APIServerProcess(etcd_server.endpoint, port=port, bookmark_interval=0.5, workers=2)
    server.start(timeout=60.0)
    yield server
    server.stop()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_workers_listen_on_consecutive_ports_and_stop_with_their_supervisor(
    etcd_server: EtcdServer,
) -> None:
    port = _consecutive_free_ports(2)
    server = APIServerProcess(etcd_server.endpoint, port=port, workers=2)
    server.start(timeout=60.0)
    supervisor = server.pid
    try:
        assert server.addresses == [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"]
        pids = list(server.worker_pids.values())
        assert len(set(pids)) == 2, server.worker_pids
        assert supervisor not in pids, server.worker_pids
        assert all(_alive(pid) for pid in pids)
    finally:
        server.stop()
    assert not _alive(supervisor), f"the supervisor (pid {supervisor}) still runs after SIGTERM"
    still = [pid for pid in pids if _alive(pid)]
    assert not still, f"workers {still} outlived their supervisor's SIGTERM"


def test_a_worker_that_cannot_start_fails_the_command(etcd_server: EtcdServer) -> None:
    port = _consecutive_free_ports(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 1))
        taken.listen()
        server = APIServerProcess(etcd_server.endpoint, port=port, workers=2)
        with pytest.raises(APIServerStartError) as raised:
            server.start(timeout=60.0)
    assert "worker 2 exited with code 1 before it served" in str(raised.value), raised.value


async def test_calls_and_a_watch_survive_each_worker_dying_in_turn(
    workers: APIServerProcess, namespace: str
) -> None:
    async with Client(workers.addresses, retry_timeout=60.0) as client:
        ns = Namespace()
        ns.metadata.name = namespace
        await client.create(ns)
        seen: list[str] = []
        created: list[str] = []
        total = 10 + 20 * len(workers.worker_pids)  # the creates below
        all_seen = anyio.Event()

        async def create(count: int) -> None:
            for _ in range(count):
                cm = ConfigMap()
                cm.metadata.name = f"cm-{len(created):03d}"
                await client.create(cm, namespace=namespace)
                created.append(cm.metadata.name)

        async with client.watch(ConfigMap, namespace=namespace) as events:

            async def consume() -> None:
                async for event in events:
                    if event.type == "ADDED":
                        seen.append(event.object.metadata.name)
                    if len(seen) >= total:
                        all_seen.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await create(10)
                for port in list(workers.worker_pids):
                    # SIGKILL, as a crash: whichever worker carried the watch dies
                    # once, and writes go on through the other
                    os.kill(workers.worker_pids[port], signal.SIGKILL)
                    await create(10)
                    await anyio.to_thread.run_sync(workers.wait_for_worker, port)
                    await create(10)
                assert len(created) == total
                with anyio.fail_after(60):
                    await all_seen.wait()
                await anyio.sleep(1.0)  # time for a duplicate to show up
                tg.cancel_scope.cancel()
        assert events.reconnects > 0, "the watch never lost its worker: nothing was tested"
        assert seen == created, (
            f"the watch saw {len(seen)} ADDED for {len(created)} creates "
            f"(missing {sorted(set(created) - set(seen))}, "
            f"repeated {sorted({n for n in seen if seen.count(n) > 1})})"
        )
        stored = await client.list(ConfigMap, namespace=namespace)
        assert sorted(cm.metadata.name for cm in stored.items) == created

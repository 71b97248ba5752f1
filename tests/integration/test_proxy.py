"""kpy-proxy over a real API server, in both modes: a Service's cluster IP
reaches its ready endpoints (two TCP servers on loopback pod-range
addresses, listed in an EndpointSlice written through the API), spread over
both, follows endpoint changes within about a second, refuses at once when
no endpoint is left, and leaves nothing behind when stopped."""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import subprocess
import threading
import time
import uuid
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.proxy import iptables
from kpy.proxy.process import ProxyProcess

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

pytestmark = pytest.mark.etcd


class NameServer:
    """A TCP server on `ip` (`port`, 0: any) that answers every connection
    with its name."""

    def __init__(self, ip: str, name: str, port: int = 0) -> None:
        self.name = name
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.address = f"{ip}:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(self.name.encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@contextlib.contextmanager
def two_servers() -> Iterator[tuple[NameServer, NameServer]]:
    # Addresses of the pod range (kpy.agent.runtime's IPAM), high enough
    # that no pod of a local cluster holds them, random so runs differ.
    base = f"127.{random.randint(200, 250)}.{random.randint(1, 254)}"
    a = NameServer(f"{base}.1", "alpha")
    try:
        b = NameServer(f"{base}.2", "beta", port=a.sock.getsockname()[1])  # a slice's one port
    except OSError:
        a.close()
        raise
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def ask(ip: str, port: int) -> str:
    """The name the endpoint reached answers; "refused" if refused, "reset"
    if reset, "timeout" if nothing came within 2 s (userspace: a connection
    queued on a listener as it closes)."""
    try:
        with socket.create_connection((ip, port), timeout=2) as s:
            return s.recv(64).decode()
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "timeout"


async def answers(ip: str, port: int, times: int) -> list[str]:
    return [await anyio.to_thread.run_sync(ask, ip, port) for _ in range(times)]


def endpoint_slice(service: str, addresses: list[str]) -> EndpointSlice:
    port = int(addresses[0].rpartition(":")[2]) if addresses else 1
    return from_dict(
        EndpointSlice,
        {
            "metadata": {
                "name": f"{service}-manual",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [a.rpartition(":")[0]], "conditions": {"ready": True}}
                for a in addresses
            ],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    )


def nat_chains(prefix: str) -> list[str]:
    out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if prefix in line]


@pytest.mark.parametrize("mode", ["iptables", "userspace"])
async def test_cluster_ip_reaches_ready_endpoints(
    client: Client, api_namespace: str, apiserver: APIServerProcess, mode: str, tmp_path: Path
) -> None:
    if mode == "iptables":
        why = await anyio.to_thread.run_sync(iptables.unavailable)
        if why:
            pytest.skip(f"iptables cannot be used here: {why}")
    with two_servers() as (alpha, beta):
        svc = from_dict(
            Service,
            {"metadata": {"name": "echo"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
        )
        svc = await client.create(svc)
        ip = svc.spec.cluster_ip
        assert ip.startswith("127."), ip
        slice_ = await client.create(endpoint_slice("echo", [alpha.address, beta.address]))

        uid = uuid.uuid4().hex[:16]
        prefix = iptables.chain_prefix(uid)
        proxy = ProxyProcess(
            apiserver.address,
            "node-1",
            cluster_uid=uid,
            mode=mode,
            status_file=tmp_path / "proxy-status",
            extra_args=("--resync-period", "5"),
        )
        await anyio.to_thread.run_sync(proxy.start, 30.0)
        try:
            assert proxy.mode == mode
            assert (tmp_path / "proxy-status").read_text().startswith(mode)

            got = await answers(ip, 80, 40)
            assert set(got) == {"alpha", "beta"}, got

            slice_.endpoints.pop(0)  # alpha leaves
            slice_ = await client.update(slice_)
            start = time.monotonic()
            # 20 betas in a row: by chance once in a million while alpha is in.
            while set(await answers(ip, 80, 20)) != {"beta"}:
                assert time.monotonic() - start < 5, "alpha still answers 5 s after it left"
            assert set(await answers(ip, 80, 20)) == {"beta"}

            del slice_.endpoints[:]  # none left: refused at once
            slice_ = await client.update(slice_)
            start = time.monotonic()
            while await anyio.to_thread.run_sync(ask, ip, 80) != "refused":
                assert time.monotonic() - start < 10, "still answered 10 s after the last endpoint"
            started = time.monotonic()
            assert await anyio.to_thread.run_sync(ask, ip, 80) == "refused"
            assert time.monotonic() - started < 1.0, "refusing took more than a second"
            if mode == "iptables":
                assert nat_chains(prefix), "no chain of this cluster while the proxy runs"
        finally:
            pid = proxy.pid
            await anyio.to_thread.run_sync(proxy.stop)
            assert not await anyio.Path(f"/proc/{pid}").exists(), f"kpy-proxy (pid {pid}) runs"
        if mode == "iptables":
            assert nat_chains(prefix) == [], "the proxy's chains outlive it"
        else:
            with socket.socket() as s:  # the listener is gone with the process
                assert s.connect_ex((ip, 80)) == errno.ECONNREFUSED


def test_cleanup_removes_a_dead_proxys_chains(tmp_path: Path) -> None:
    """What `kpy down` runs when a proxy died without cleaning up: the
    chains go by name; another cluster's stay."""
    why = iptables.unavailable()
    if why:
        pytest.skip(f"iptables cannot be used here: {why}")
    ours, theirs = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    for uid in (ours, theirs):
        prefix = iptables.chain_prefix(uid)
        iptables.restore(iptables.render([], prefix, iptables.parse_save(iptables.save(), prefix)))
    try:
        assert iptables.cleanup(ours) is True
        assert nat_chains(iptables.chain_prefix(ours)) == []
        assert nat_chains(iptables.chain_prefix(theirs)) != []
        assert iptables.cleanup(ours) is False
    finally:
        iptables.cleanup(theirs)
    assert nat_chains(iptables.chain_prefix(theirs)) == []


def test_proxies_stopping_at_once_both_clean_up_without_error() -> None:
    """The proxies of one cluster's nodes share its chains; when `kpy down`
    stops them together, each removal succeeds, whichever goes first."""
    why = iptables.unavailable()
    if why:
        pytest.skip(f"iptables cannot be used here: {why}")
    uid = uuid.uuid4().hex[:16]
    prefix = iptables.chain_prefix(uid)
    errors: list[BaseException] = []
    for _ in range(5):
        iptables.restore(iptables.render([], prefix, iptables.parse_save(iptables.save(), prefix)))

        def remove() -> None:
            try:
                iptables.cleanup(uid)
            except BaseException as e:  # collected for the assertion below
                errors.append(e)

        threads = [threading.Thread(target=remove) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert nat_chains(prefix) == []

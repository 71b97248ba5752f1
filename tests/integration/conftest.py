"""Fixtures for tests against a real etcd.

One etcd runs for the whole session (progress notifications every second,
as `kpy up` asks: at 0.2 s they cost an idle etcd and API server pair a
twentieth of a core; no fsync), and is stopped by its pid at the end.
Tests share it, so each one works in its own namespace (the `namespace`
fixture) and never assumes an empty keyspace or a particular revision.
A second etcd, serving TLS with client-certificate authentication
(`tls_etcd_server`, its certificates in `etcd_pki`), starts only when a
test asks for it.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kpy import pki
from kpy.api.core.v1 import Namespace
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client
from kpy.storage import ClientTLS, EtcdServer, ServingTLS, Store, new_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import aetcd

PROGRESS_NOTIFY_INTERVAL = 1.0  # seconds between etcd's watch progress notifications


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    server = EtcdServer(progress_notify_interval=PROGRESS_NOTIFY_INTERVAL, unsafe_no_fsync=True)
    server.start()
    pid = server.pid
    yield server
    server.stop()
    assert not Path(f"/proc/{pid}").exists(), f"etcd (pid {pid}) is still running after stop()"


@pytest.fixture(scope="session")
async def etcd_client(etcd_server: EtcdServer) -> AsyncIterator[aetcd.Client]:
    client = new_client(etcd_server.endpoint)
    await client.connect()
    yield client
    await client.close()


@pytest.fixture
def store(etcd_client: aetcd.Client) -> Store:
    return Store(etcd_client)


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace name no other test uses."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"


# -- the API server, as a real process -----------------------------------------


@pytest.fixture(scope="session")
def apiserver(etcd_server: EtcdServer) -> Iterator[APIServerProcess]:
    """One kpy-apiserver process for the session (fast bookmarks), stopped by pid."""
    server = APIServerProcess(etcd_server.endpoint, bookmark_interval=0.5)
    server.start()
    pid = server.pid
    yield server
    server.stop()
    assert not Path(f"/proc/{pid}").exists(), f"kpy-apiserver (pid {pid}) still runs after stop()"


@pytest.fixture
async def client(apiserver: APIServerProcess) -> AsyncIterator[Client]:
    async with Client(apiserver.address, retry_timeout=10.0) as c:
        yield c


@pytest.fixture
async def api_namespace(client: Client, namespace: str) -> str:
    """A fresh namespace created through the API server for this test, made
    the `client`'s default namespace. It is left behind (no other test uses
    its name), so a failed test's objects can be looked at afterwards."""
    ns = Namespace()
    ns.metadata.name = namespace
    await client.create(ns)
    client.config = dataclasses.replace(client.config, namespace=namespace)
    return namespace


# -- etcd over TLS, as kubeadm runs it (started only by the tests that ask) --------


@dataclasses.dataclass(frozen=True)
class EtcdPKI:
    """An etcd CA of its own and what it signs, as kubeadm lays out
    /etc/kubernetes/pki/etcd: `server` serves etcd and is also a client
    certificate (etcd's health check), `client` is the API server's
    (CN kube-apiserver-etcd-client); `other_ca` and `other_client` come from
    another CA, for the refusals."""

    root: Path

    def path(self, stem: str) -> tuple[Path, Path]:
        return self.root / f"{stem}.crt", self.root / f"{stem}.key"

    def client_tls(self, ca: str = "ca", client: str | None = "client") -> ClientTLS:
        cert, key = self.path(client) if client else (None, None)
        tls = ClientTLS.load(self.path(ca)[0], cert, key)
        assert tls is not None
        return tls

    def flags(self) -> tuple[str, ...]:
        return self.client_tls().flags()


@pytest.fixture(scope="session")
def etcd_pki(tmp_path_factory: pytest.TempPathFactory) -> EtcdPKI:
    out = EtcdPKI(tmp_path_factory.mktemp("etcd-pki"))
    ca, other = pki.new_ca("etcd-ca"), pki.new_ca("another-ca")
    for stem, pair in (
        ("ca", ca),
        ("server", pki.issue_server(ca, "kpy-etcd", client_auth=True)),
        ("client", pki.issue_client(ca, "kube-apiserver-etcd-client")),
        ("other_ca", other),
        ("other_client", pki.issue_client(other, "kube-apiserver-etcd-client")),
    ):
        pki.write(pair, *out.path(stem))
    return out


@pytest.fixture(scope="session")
def tls_etcd_server(etcd_pki: EtcdPKI) -> Iterator[EtcdServer]:
    """An etcd serving its clients TLS only, with --client-cert-auth."""
    cert, key = etcd_pki.path("server")
    server = EtcdServer(
        progress_notify_interval=PROGRESS_NOTIFY_INTERVAL,
        unsafe_no_fsync=True,
        client_tls=ServingTLS(cert, key, etcd_pki.path("ca")[0]),
    )
    server.start()
    pid = server.pid
    yield server
    server.stop()
    assert not Path(f"/proc/{pid}").exists(), f"etcd (pid {pid}) is still running after stop()"

"""etcd over TLS with client certificates, as kubeadm runs it: the store,
kpy-apiserver and `kpy rotate-encryption-key` against a real etcd serving
TLS only with --client-cert-auth (the `tls_etcd_server` fixture), and the
refusals a user meets when etcd and the client disagree, each naming the
flag to fix."""

from __future__ import annotations

import asyncio
import base64
import random
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap, Namespace, Secret
from kpy.api.scheme import scheme
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client
from kpy.cluster.local import ClusterError, ClusterState, Member
from kpy.cluster.rotate import api_servers, rewrite
from kpy.storage import EtcdServer, EtcdTLSError, Store, etcd_tls, new_client
from kpy.storage.encryption import Key, load_config, render_config, write_private

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kpy.storage import ClientTLS
    from tests.integration.conftest import EtcdPKI

pytestmark = pytest.mark.etcd

CONFIGMAPS = scheme.resolve("configmaps")
SECRETS = scheme.resolve("secrets")


def configmap(namespace: str, name: str, **data: str) -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, namespace
    cm.data.update(data)
    return cm


async def test_the_store_reads_writes_watches_and_compacts_over_tls(
    tls_etcd_server: EtcdServer, etcd_pki: EtcdPKI, namespace: str
) -> None:
    client = new_client(tls_etcd_server.endpoint, tls=etcd_pki.client_tls())
    try:
        store = Store(client)
        first = await store.create(CONFIGMAPS, configmap(namespace, "a", k="1"))
        start = int(first.metadata.resource_version)
        async with store.watch(CONFIGMAPS, namespace, resource_version=start) as w:
            await store.create(CONFIGMAPS, configmap(namespace, "b", k="2"))
            async with asyncio.timeout(30):
                async for event in w:
                    if event.type != "BOOKMARK":
                        break
        assert (event.type, event.object.metadata.name) == ("ADDED", "b")
        got = await store.get(CONFIGMAPS, namespace, "a")
        assert got.data["k"] == "1"
        assert await store.fresh_revision() >= event.resource_version
        await store.compact(start)  # the API server's compactor's call
    finally:
        await client.close()


async def test_several_endpoints_over_tls_fail_over_to_the_member_that_answers(
    tls_etcd_server: EtcdServer, etcd_pki: EtcdPKI, namespace: str, unused_tcp_port: int
) -> None:
    """gRPC checks one name for a channel of several members: `localhost`,
    which the serving certificate carries (see kpy.storage.etcd_tls)."""
    endpoints = f"127.0.0.1:{unused_tcp_port},{tls_etcd_server.endpoint}"
    client = new_client(endpoints, tls=etcd_pki.client_tls(), timeout=10)
    try:
        created = await Store(client).create(CONFIGMAPS, configmap(namespace, "x"))
        assert created.metadata.resource_version
    finally:
        await client.close()


@pytest.fixture
def unused_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- disagreements: named, with the flag to fix --------------------------------------

# (name, etcd: "tls" or "plain", the client's CA and certificate stems (None:
# plaintext), what check() says, what a store call's Unavailable says)
REFUSALS = [
    (
        "plaintext client, etcd wants TLS",
        "tls",
        None,
        "serves TLS, but this client speaks plaintext: give --etcd-cafile, --etcd-certfile "
        "and --etcd-keyfile",
        "If etcd serves TLS (https:// client URLs), give --etcd-cafile",
    ),
    (
        "no client certificate",
        "tls",
        ("ca", None),
        "refused this client's certificate (none was given): give --etcd-certfile and "
        "--etcd-keyfile",
        "Etcd refused this client's certificate: give --etcd-certfile and --etcd-keyfile",
    ),
    (
        "a client certificate from another CA",
        "tls",
        ("ca", "other_client"),
        "refused this client's certificate (--etcd-certfile ",
        "Etcd refused this client's certificate: give --etcd-certfile and --etcd-keyfile",
    ),
    (
        "etcd's certificate from a CA the client does not trust",
        "tls",
        ("other_ca", "client"),
        "has a serving certificate this client does not trust (unable to get local issuer",
        "Etcd has a serving certificate this client does not trust: give --etcd-cafile",
    ),
    (
        "TLS client, plaintext etcd",
        "plain",
        ("ca", "client"),
        "does not speak TLS: remove --etcd-cafile, --etcd-certfile and --etcd-keyfile",
        "Etcd does not speak TLS: remove --etcd-cafile",
    ),
]


@pytest.mark.parametrize(
    ("etcd", "stems", "checked", "unavailable"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
async def test_a_disagreement_is_refused_naming_the_flag(
    etcd: str,
    stems: tuple[str, str | None] | None,
    checked: str,
    unavailable: str,
    tls_etcd_server: EtcdServer,
    etcd_server: EtcdServer,
    etcd_pki: EtcdPKI,
    namespace: str,
) -> None:
    server = tls_etcd_server if etcd == "tls" else etcd_server
    tls: ClientTLS | None = etcd_pki.client_tls(*stems) if stems else None
    with pytest.raises(EtcdTLSError) as refused:
        await asyncio.to_thread(etcd_tls.check, [server.endpoint], tls)
    assert f"etcd at {server.endpoint} " in str(refused.value)
    assert checked in str(refused.value)

    client = new_client(server.endpoint, tls=tls)
    try:
        with pytest.raises(errors.Unavailable) as failed:
            await Store(client).get(CONFIGMAPS, namespace, "any")
    finally:
        await client.close()
    assert unavailable in str(failed.value)


def test_the_agreeing_pairs_pass_the_check(
    tls_etcd_server: EtcdServer, etcd_server: EtcdServer, etcd_pki: EtcdPKI, unused_tcp_port: int
) -> None:
    etcd_tls.check([tls_etcd_server.endpoint], etcd_pki.client_tls())
    etcd_tls.check([etcd_server.endpoint], None)
    etcd_tls.check([f"127.0.0.1:{unused_tcp_port}"], etcd_pki.client_tls())  # an outage: waited


# -- kpy-apiserver -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_apiserver(tls_etcd_server: EtcdServer, etcd_pki: EtcdPKI) -> Iterator[APIServerProcess]:
    server = APIServerProcess(
        tls_etcd_server.endpoint, bookmark_interval=0.5, extra_args=etcd_pki.flags()
    )
    server.start()
    yield server
    pid = server.pid
    server.stop()
    assert not server.running, f"kpy-apiserver (pid {pid}) still runs after stop()"


async def test_apiserver_with_the_etcd_flags_serves_create_get_and_watch(
    tls_apiserver: APIServerProcess, namespace: str
) -> None:
    async with Client(tls_apiserver.address, retry_timeout=10.0) as c:
        ns = Namespace()
        ns.metadata.name = namespace
        await c.create(ns)
        await c.create(configmap(namespace, "first", k="v"), namespace=namespace)
        got = await c.get(ConfigMap, "first", namespace=namespace)
        assert got.data["k"] == "v"
        async with c.watch(ConfigMap, namespace=namespace, bookmarks=False) as events:
            await c.create(configmap(namespace, "second"), namespace=namespace)
            seen = []
            async with asyncio.timeout(30):
                async for event in events:
                    seen.append((event.type, event.object.metadata.name))
                    if len(seen) == 2:
                        break
        assert seen == [("ADDED", "first"), ("ADDED", "second")]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ((), "serves TLS, but this client speaks plaintext: give --etcd-cafile"),
        (("--etcd-certfile", "{client_crt}"), "--etcd-certfile and --etcd-keyfile go together"),
        (("--etcd-cafile", "{missing}"), "--etcd-cafile {missing}: cannot read it"),
        (("--etcd-cafile", "{ca}"), "refused this client's certificate (none was given)"),
    ],
    ids=["no flags", "a certificate without its key", "a missing file", "no certificate"],
)
def test_apiserver_refuses_to_start_naming_the_flag(
    flags: tuple[str, ...], says: str, tls_etcd_server: EtcdServer, etcd_pki: EtcdPKI
) -> None:
    files = {
        "client_crt": str(etcd_pki.path("client")[0]),
        "ca": str(etcd_pki.path("ca")[0]),
        "missing": str(etcd_pki.root / "missing.crt"),
    }
    argv = [word.format(**files) for word in flags]
    done = subprocess.run(
        [sys.executable, "-m", "kpy.apiserver.main", "--etcd-servers", tls_etcd_server.endpoint,
         "--port", "0", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert says.format(**files) in done.stderr


# -- kpy rotate-encryption-key -----------------------------------------------------


def recorded(directory: Path, argv: tuple[str, ...]) -> ClusterState:
    """A cluster.json's record of one API server started with `argv`."""
    return ClusterState(
        str(directory), "", "simulated", [Member("kpy-apiserver", 1, 1, "", argv=argv)]
    )


async def test_rotate_encryption_key_rewrites_over_tls_with_the_apiservers_files(
    tls_etcd_server: EtcdServer, etcd_pki: EtcdPKI, tmp_path: Path, namespace: str
) -> None:
    """The rewrite reaches etcd as the API servers do: with the files of
    their --etcd-cafile, --etcd-certfile and --etcd-keyfile."""
    prefix = f"/rot-tls-{uuid.uuid4().hex[:8]}"
    old = Key("key1", base64.b64encode(b"o" * 32).decode())
    new = Key("key2", base64.b64encode(b"n" * 32).decode())
    config = tmp_path / "encryption-config.yaml"
    write_private(config, render_config([old]))
    argv = (
        "kpy-apiserver", "--etcd-servers", tls_etcd_server.endpoint, "--etcd-prefix", prefix,
        "--encryption-provider-config", str(config), *etcd_pki.flags(),
    )  # fmt: skip
    state = ClusterState(
        str(tmp_path), "", "simulated", [Member("kpy-apiserver", 1, 1, "", argv=argv)]
    )
    servers = api_servers(state)
    assert servers.etcd_tls is not None

    client = new_client(tls_etcd_server.endpoint, tls=etcd_pki.client_tls())
    try:
        store = Store(client, prefix=prefix, encryption=load_config(config))
        for i in range(3):
            s = Secret()
            s.metadata.name, s.metadata.namespace = f"s{i}", namespace
            s.data["v"] = b"x"
            await store.create(SECRETS, s)
        write_private(config, render_config([new, old]))
        lines: list[str] = []
        done = await rewrite(servers, lines.append)
        assert (done.total, done.rewritten) == (3, 3), lines
        key = f"{prefix}/core/v1/secrets/{namespace}/s0".encode()
        stored = await client.get(key)
        assert bytes(stored.value).startswith(b"k8s:enc:aesgcm:v1:key2:")
    finally:
        await client.close()

    plain_argv = argv[: argv.index(etcd_pki.flags()[0])]
    plain = api_servers(
        ClusterState(
            str(tmp_path), "", "simulated", [Member("kpy-apiserver", 1, 1, "", argv=plain_argv)]
        )
    )
    with pytest.raises(ClusterError, match="serves TLS, but this client speaks plaintext"):
        await rewrite(plain, lines.append)


# -- kpy up --ha -------------------------------------------------------------------


def cluster_port() -> int:
    """Two consecutive free ports in 27000-27999 (this suite's share)."""
    for _ in range(200):
        port = random.randrange(27_000, 27_998)
        if all(_free(port + i) for i in range(2)):
            return port
    raise RuntimeError("no two consecutive free ports in 27000-27999")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def kpy(*words: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "kpy"), *words]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.cluster
@pytest.mark.timeout(360)
async def test_kpy_up_ha_runs_etcd_with_client_and_peer_tls(tmp_path: Path) -> None:
    started = kpy("up", "--ha", "--runtime", "simulated", "--dir", str(tmp_path),
                  "--port", str(cluster_port()))  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "starting etcd (3 members; TLS, client certificates of pki/etcd/ca.crt)" in (
            started.stdout
        )
        state = ClusterState.load(tmp_path)
        assert state is not None
        members = [m for m in state.members if m.name.startswith("etcd-")]
        assert len(members) == 3
        for m in members:
            assert "--client-cert-auth=true" in m.argv, m.name
            assert "--peer-client-cert-auth=true" in m.argv, m.name
            peer = next(w for w in m.argv if w.startswith("--listen-peer-urls="))
            assert peer.startswith("--listen-peer-urls=https://"), m.name
            # The raw client and peer ports refuse a plaintext client.
            for address in (m.address, peer.removeprefix("--listen-peer-urls=https://")):
                with pytest.raises(EtcdTLSError, match="serves TLS, but this client speaks"):
                    await asyncio.to_thread(etcd_tls.check, [address], None)
        endpoints = ",".join(m.address for m in members)
        plain = new_client(members[0].address)
        try:
            with pytest.raises(errors.Unavailable):
                await Store(plain).current_revision()
        finally:
            await plain.close()

        api = next(m for m in state.members if m.name.startswith("kpy-apiserver"))
        servers = api_servers(state)
        assert servers.etcd_tls is not None, f"{api.name} reaches etcd over TLS: {api.argv}"
        assert servers.etcd_tls.cert_file == tmp_path / "pki/etcd/apiserver-etcd-client.crt"
        secure = new_client(endpoints, tls=servers.etcd_tls)
        try:
            assert await Store(secure).current_revision() > 0
        finally:
            await secure.close()
    finally:
        stopped = kpy("down", "--dir", str(tmp_path))
    assert stopped.returncode == 0, stopped.stderr

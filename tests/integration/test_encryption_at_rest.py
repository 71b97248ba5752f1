"""Secrets encrypted at rest, against the real etcd and a real kpy-apiserver
started with --encryption-provider-config: what etcd holds, what the API
returns (get, list, watch, the watch cache's initial list), a value no key
reads, and a key rotation's rewrite. Each server here has an etcd prefix of
its own, so the session's API server never sees these Secrets."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.api import codec, errors
from kpy.api.core.v1 import ConfigMap, Event, Namespace, Secret
from kpy.api.scheme import scheme
from kpy.apiserver.process import APIServerProcess
from kpy.apiserver.watch_cache import WatchCache
from kpy.client import Client
from kpy.cluster import etcd_certs
from kpy.cluster.local import ClusterState
from kpy.cluster.rotate import APIServers, add_key, rewrite
from kpy.storage import ClientTLS, Store, new_client
from kpy.storage.encryption import (
    Key,
    config_keys,
    parse_config,
    render_config,
    write_private,
)
from tests.e2e._ports import two_free_ports

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aetcd

    from kpy.storage import EtcdServer

pytestmark = pytest.mark.etcd

KEY1 = Key("key1", base64.b64encode(b"k" * 32).decode())


def secret(namespace: str, name: str, **data: bytes) -> Secret:
    s = Secret()
    s.metadata.name, s.metadata.namespace = name, namespace
    for k, v in data.items():
        s.data[k] = v
    return s


def start_server(etcd: str, prefix: str, config: Path, port: int = 0) -> APIServerProcess:
    server = APIServerProcess(
        etcd,
        port=port,
        bookmark_interval=0.5,
        extra_args=("--etcd-prefix", prefix, "--encryption-provider-config", str(config)),
    )
    server.start()
    return server


def stop_server(server: APIServerProcess) -> None:
    pid = server.pid
    server.stop()
    assert not server.running, f"kpy-apiserver (pid {pid}) still runs after stop()"


class Encrypted:
    """An API server sealing Secrets with KEY1 under an etcd prefix of its own."""

    def __init__(self, server: APIServerProcess, prefix: str, config: Path) -> None:
        self.server, self.prefix, self.config = server, prefix, config

    def key(self, namespace: str, name: str, resource: str = "secrets") -> bytes:
        return etcd_key(self.prefix, namespace, name, resource)


def etcd_key(prefix: str, namespace: str, name: str, resource: str = "secrets") -> bytes:
    info = scheme.resolve(resource)
    where = f"{info.storage_group}/{info.stored_version}/{info.plural}"
    return f"{prefix}/{where}/{namespace}/{name}".encode()


EARLY_NS = f"early-{uuid.uuid4().hex[:6]}"
EARLY_SECRET = b"written-before-encryption-" + uuid.uuid4().hex.encode()


@pytest.fixture(scope="module")
async def encrypted(
    etcd_server: EtcdServer, etcd_client: aetcd.Client, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Encrypted]:
    prefix = f"/enc-{uuid.uuid4().hex[:8]}"
    # A Secret stored in plaintext before encryption was turned on.
    await Store(etcd_client, prefix=prefix).create(
        scheme.resolve("secrets"), secret(EARLY_NS, "old", token=EARLY_SECRET)
    )
    config = tmp_path_factory.mktemp("encryption") / "encryption-config.yaml"
    write_private(config, render_config([KEY1]))
    server = start_server(etcd_server.endpoint, prefix, config)
    yield Encrypted(server, prefix, config)
    stop_server(server)


@pytest.fixture
async def enc_client(encrypted: Encrypted, namespace: str) -> AsyncIterator[Client]:
    async with Client(encrypted.server.address, retry_timeout=10.0) as c:
        ns = Namespace()
        ns.metadata.name = namespace
        await c.create(ns)
        yield c


async def raw(etcd_client: aetcd.Client, key: bytes) -> bytes:
    got = await etcd_client.get(key)
    assert got is not None, f"nothing stored at {key!r}"
    return bytes(got.value)


async def test_secret_is_encrypted_in_etcd_and_reads_back(
    encrypted: Encrypted, enc_client: Client, etcd_client: aetcd.Client, namespace: str
) -> None:
    password = b"hunter2-" + uuid.uuid4().hex.encode()
    body = {
        "metadata": {"name": "db", "namespace": namespace},
        "data": {"password": base64.b64encode(password).decode()},
        "stringData": {"user": "admin-" + password.decode()},
    }
    async with enc_client.watch(Secret, namespace=namespace, bookmarks=False) as events:
        created = await enc_client.create(codec.from_dict(Secret, body))
        stored = await raw(etcd_client, encrypted.key(namespace, "db"))
        assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:"), stored[:40]
        assert password not in stored, "the plaintext is in etcd"
        assert b"admin-" not in stored, "stringData's plaintext is in etcd"

        want = {"password": password, "user": b"admin-" + password}
        got = await enc_client.get(Secret, "db", namespace=namespace)
        assert dict(got.data) == want
        assert got.metadata.resource_version == created.metadata.resource_version
        listed = await enc_client.list(Secret, namespace=namespace)
        assert [dict(s.data) for s in listed.items] == [want]
        async for event in events:  # through the watch cache, from etcd's watch
            assert event.type == "ADDED"
            assert dict(event.object.data) == want
            break

    cm_key = encrypted.key(namespace, "plain", "configmaps")
    await enc_client.create(
        codec.from_dict(
            ConfigMap,
            {"metadata": {"name": "plain", "namespace": namespace}, "data": {"k": "visible"}},
        )
    )
    assert b"visible" in await raw(etcd_client, cm_key), "only the configured resources"


async def test_plaintext_written_before_encryption_still_reads(
    encrypted: Encrypted, enc_client: Client, etcd_client: aetcd.Client
) -> None:
    early = await enc_client.get(Secret, "old", namespace=EARLY_NS)
    assert early.data["token"] == EARLY_SECRET
    assert EARLY_SECRET in await raw(etcd_client, encrypted.key(EARLY_NS, "old"))

    early.data["more"] = b"x"
    await enc_client.update(early)  # a write seals it
    stored = await raw(etcd_client, encrypted.key(EARLY_NS, "old"))
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert EARLY_SECRET not in stored


async def test_a_value_no_key_reads_is_an_internal_error(
    encrypted: Encrypted, enc_client: Client, etcd_client: aetcd.Client, namespace: str
) -> None:
    await enc_client.create(secret(namespace, "good", v=b"1"))
    sealed = await raw(etcd_client, encrypted.key(namespace, "good"))
    cases = [
        ("sealed with a key not configured", b"k8s:enc:aesgcm:v1:gone:" + b"\0" * 40, "gone"),
        ("moved from another key", sealed, "does not authenticate it"),
    ]
    for i, (case, value, reason) in enumerate(cases):
        name = f"bad-{i}"
        await etcd_client.put(encrypted.key(namespace, name), value)
        with pytest.raises(errors.Internal) as raised:
            await enc_client.get(Secret, name, namespace=namespace)
        message = str(raised.value)
        assert f'secrets "{namespace}/{name}": no configured key can decrypt it' in message, case
        assert reason in message, case
        await etcd_client.delete(encrypted.key(namespace, name))
    # The server is still up and serves the others.
    good = await enc_client.get(Secret, "good", namespace=namespace)
    assert good.data["v"] == b"1"


async def test_rotation_rewrites_every_secret_with_the_new_key(
    etcd_server: EtcdServer, etcd_client: aetcd.Client, tmp_path: Path, namespace: str
) -> None:
    prefix = f"/rot-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "encryption-config.yaml"
    write_private(config, render_config([KEY1]))
    holder = [start_server(etcd_server.endpoint, prefix, config)]
    try:
        port = holder[0].port
        async with Client(holder[0].address, retry_timeout=20.0) as c:
            ns = Namespace()
            ns.metadata.name = namespace
            await c.create(ns)
            for i in range(5):
                await c.create(secret(namespace, f"s{i}", v=f"value-{i}".encode()))

            writers: list[list[str]] = []

            def restart() -> None:  # what kpy-supervisor does after the SIGTERM
                writers.append([k.name for k in config_keys(config.read_text())[0]])
                stop_server(holder[0])
                holder[0] = start_server(etcd_server.endpoint, prefix, config, port)

            lines: list[str] = []
            new = add_key(config, servers=2, restart=restart, progress=lines.append)
            assert new.name == "key2"
            assert writers == [["key1", "key2"], ["key2", "key1"]], (
                "every server can read the new key before any writes with it"
            )
            servers = APIServers((), config, etcd_server.endpoint, prefix)
            done = await rewrite(servers, lines.append)
            assert (done.total, done.rewritten) == (5, 5)
            assert "rewrote 5/5 secrets (5 needed it)" in lines
            for i in range(5):
                stored = await raw(etcd_client, etcd_key(prefix, namespace, f"s{i}"))
                assert stored.startswith(b"k8s:enc:aesgcm:v1:key2:"), f"s{i}: {stored[:30]!r}"
            again = await rewrite(servers, lines.append)
            assert again.rewritten == 0, "a second rewrite has nothing left to do"

            # With the old key gone, every Secret still reads.
            keys, _ = config_keys(config.read_text())
            write_private(config, render_config([keys[0]]))
            stop_server(holder[0])
            holder[0] = start_server(etcd_server.endpoint, prefix, config, port)
            listed = await c.list(Secret, namespace=namespace)
            assert sorted(s.data["v"] for s in listed.items) == [
                f"value-{i}".encode() for i in range(5)
            ]
    finally:
        if holder[0].running:
            stop_server(holder[0])


async def test_watch_cache_initial_list_decrypts_and_keeps_an_unreadable_value_apart(
    etcd_client: aetcd.Client, namespace: str
) -> None:
    """The cache's initial list (history_revisions=0: nothing replayed from
    etcd's history) reads plaintext and sealed values alike, and a value no
    key reads fails only the reads of that object, not the cache."""
    prefix = f"/cache-{uuid.uuid4().hex[:8]}"
    info = scheme.resolve("secrets")
    plain = Store(etcd_client, prefix=prefix)
    sealing = Store(etcd_client, prefix=prefix, encryption=parse_config(render_config([KEY1])))
    await plain.create(info, secret(namespace, "plain", v=b"p"))
    await sealing.create(info, secret(namespace, "sealed", v=b"s"))
    await etcd_client.put(
        etcd_key(prefix, namespace, "lost"), b"k8s:enc:aesgcm:v1:gone:" + b"\0" * 40
    )
    cache = WatchCache(sealing, info, history_revisions=0)
    async with anyio.create_task_group() as tg:
        await tg.start(cache.run)
        for name, value in (("plain", b"p"), ("sealed", b"s")):
            got = cache.get(namespace, name)
            assert isinstance(got, Secret), name
            assert got.data["v"] == value, name
        with pytest.raises(errors.Internal, match="no configured key can decrypt it"):
            cache.get(namespace, "lost")
        tg.cancel_scope.cancel()


async def test_secret_values_never_reach_the_logs_or_events(
    encrypted: Encrypted, enc_client: Client, etcd_client: aetcd.Client, namespace: str
) -> None:
    """Every path that writes, rejects or fails to read a Secret, then the
    API server's log and the namespace's Events: the value is in neither."""
    value = "never-logged-" + uuid.uuid4().hex
    made = await enc_client.create(secret(namespace, "s", v=value.encode()))
    stale = await enc_client.get(Secret, "s", namespace=namespace)
    stale.data["v"] = (value + "-2").encode()
    await enc_client.update(stale)
    stale.data["v"] = (value + "-3").encode()
    with pytest.raises(errors.Conflict):
        await enc_client.update(stale)  # based on the first version
    await enc_client.patch(
        Secret, "s", {"stringData": {"w": value}}, namespace=namespace, patch_type="merge"
    )
    with pytest.raises(errors.StatusError):  # invalid: a key no file may have
        await enc_client.patch(
            Secret,
            "s",
            {"stringData": {"bad key/": value}},
            namespace=namespace,
            patch_type="merge",
        )
    unknown_key = b"k8s:enc:aesgcm:v1:gone:" + made.SerializeToString()
    await etcd_client.put(encrypted.key(namespace, "lost"), unknown_key)
    with pytest.raises(errors.Internal):  # the error names the object, never its bytes
        await enc_client.get(Secret, "lost", namespace=namespace)
    with pytest.raises(errors.Internal):
        await enc_client.list(Secret, namespace=namespace)
    await etcd_client.delete(encrypted.key(namespace, "lost"))
    await enc_client.delete(Secret, "s", namespace=namespace)

    log = encrypted.server.log_path.read_text()
    assert value not in log, "a Secret's value is in the API server's log"
    events = await enc_client.list(Event, namespace=namespace)
    assert all(value not in str(codec.to_dict(e)) for e in events.items)


def kpy(*words: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = str(Path(sys.executable).parent / words[0])
    return subprocess.run(
        [command, *words[1:]], capture_output=True, text=True, timeout=180, check=False, env=env
    )


async def raw_from(endpoint: str, key: bytes, tls: ClientTLS | None = None) -> bytes:
    client = new_client(endpoint, tls=tls)
    try:
        await client.connect()
        return await raw(client, key)
    finally:
        await client.close()


@pytest.mark.timeout(300)
@pytest.mark.cluster
def test_kpy_up_encrypts_secrets_and_rotate_encryption_key_rewrites_them(tmp_path: Path) -> None:
    """As a user: `kpy up` (two API servers) writes the key file and Secrets
    are sealed in etcd; `kpy rotate-encryption-key` puts a new key first,
    restarts both servers through the supervisor and rewrites every Secret."""
    directory = tmp_path / "cluster"
    port = str(two_free_ports())
    started = kpy(
        "kpy", "up", "--dir", str(directory), "--runtime", "simulated",
        "--nodes", "1", "--apiservers", "2", "--port", port,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        key_file = directory / "encryption-config.yaml"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        state = ClusterState.load(directory)
        assert state is not None
        etcd = next(m.address for m in state.members if m.name.startswith("etcd"))
        env = {**os.environ, "KPY_CONFIG": str(directory / "config")}
        for i in range(3):
            made = kpy("kpyctl", "create", "secret", "generic", f"s{i}",
                       f"--from-literal=password=plain-{i}-{port}", env=env)  # fmt: skip
            assert made.returncode == 0, made.stderr
        # etcd serves TLS to the API servers' client certificate (kpy.cluster.etcd_certs)
        tls = etcd_certs.EtcdPKI(directory / etcd_certs.ETCD_DIR).client_tls()
        stored = anyio.run(raw_from, etcd, etcd_key("/registry", "default", "s0"), tls)
        assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:"), stored[:30]
        assert f"plain-0-{port}".encode() not in stored

        rotated = kpy("kpy", "rotate-encryption-key", "--dir", str(directory))
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        out = rotated.stdout
        assert "added key key2 for reading" in out, "two servers: the new key is read first"
        assert "kpy-apiserver-2 serves again" in out
        assert "rewrote 3/3 secrets (3 needed it)" in out
        for i in range(3):
            stored = anyio.run(raw_from, etcd, etcd_key("/registry", "default", f"s{i}"), tls)
            assert stored.startswith(b"k8s:enc:aesgcm:v1:key2:"), f"s{i}: {stored[:30]!r}"
        got = kpy("kpyctl", "get", "secret", "s2", "-o", "jsonpath={.data.password}", env=env)
        assert base64.b64decode(got.stdout) == f"plain-2-{port}".encode(), got.stderr
    finally:
        stopped = kpy("kpy", "down", "--dir", str(directory))
    assert stopped.returncode == 0, stopped.stderr

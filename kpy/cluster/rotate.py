"""`kpy rotate-encryption-key`: a new key for Secrets at rest, and every
Secret rewritten with it.

Kubernetes' procedure (https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/#rotating-a-decryption-key),
made one command for a `kpy up` cluster:
1. with more than one API server, the new key is added *second* (every
   server can read it, none writes with it yet) and the servers are
   restarted one at a time; without this step a server restarted first
   would write Secrets a server not yet restarted cannot read;
2. the new key is put *first* (the old ones stay, to read) and the servers
   are restarted one at a time again; from here every write uses it;
3. every Secret still sealed with another key is rewritten directly in
   etcd (`Store.reseal`: the same object, sealed with the first key, a
   compare-and-swap on its version, so a concurrent write through the API
   is never overwritten). Not through the API: an update that changes
   nothing is not written there, and the object must not change.
A restart is a SIGTERM to the API server's process; kpy-supervisor starts
it again with the same command line, which reads the config file anew.
The old keys stay in the file (reading only): remove one by hand, with a
restart, once nothing sealed with it remains (etcd's history and backups
included). `--rewrite-only` runs step 3 alone, to finish a rewrite that
failed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from kpy.api.core.v1 import Namespace
from kpy.api.errors import StatusError
from kpy.api.scheme import scheme
from kpy.client import Client
from kpy.cluster.local import ClusterError, ClusterState, Member, client_config, running
from kpy.storage import ClientTLS, EtcdTLSError, Store, etcd_tls, new_client
from kpy.storage.codec import meta
from kpy.storage.encryption import (
    ConfigError,
    Key,
    config_keys,
    load_config,
    render_config,
    write_private,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.client.config import ClientConfig
    from kpy.cluster.local import Progress

_PAGE = 500
_REPORT_EVERY = 100  # secrets between progress lines


@dataclass(frozen=True, slots=True)
class APIServers:
    """What the rotation needs of a cluster's API servers, read from their
    command lines: the config file they share, etcd, the key prefix, and
    the files they reach etcd over TLS with (--etcd-cafile, ...)."""

    members: tuple[Member, ...]
    config: Path
    etcd: str
    prefix: str = "/registry"
    etcd_tls: ClientTLS | None = None


def api_servers(state: ClusterState) -> APIServers:
    """The cluster's API servers; ClusterError when they run without an
    encryption config (a cluster started by a kpy that did not encrypt)."""
    members = tuple(m for m in state.members if m.name.startswith("kpy-apiserver"))
    if not members:
        raise ClusterError(f"no API server is recorded in {state.directory}/cluster.json")
    flags = _flags(members[0].argv)
    config = flags.get("--encryption-provider-config")
    if not config:
        raise ClusterError(
            "the API servers run without --encryption-provider-config, so Secrets are not "
            "encrypted; restart the cluster (`kpy down && kpy up`) to start encrypting"
        )
    try:
        tls = ClientTLS.load(
            *(flags.get(f) for f in ("--etcd-cafile", "--etcd-certfile", "--etcd-keyfile"))
        )
    except EtcdTLSError as e:
        raise ClusterError(f"cannot reach etcd as {members[0].name} does: {e}") from None
    return APIServers(
        members,
        Path(config),
        flags["--etcd-servers"],
        flags.get("--etcd-prefix", "/registry"),
        tls,
    )


def _flags(argv: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, word in enumerate(argv):
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if eq:
                out[name] = value
            elif i + 1 < len(argv):
                out[name] = argv[i + 1]
    return out


def next_key_name(keys: list[Key]) -> str:
    """`keyN`, N one past the highest number among the names `keyN`."""
    numbers = [int(m.group(1)) for k in keys if (m := re.fullmatch(r"key(\d+)", k.name))]
    return f"key{max(numbers, default=0) + 1}"


def add_key(config: Path, *, servers: int, restart: Callable[[], None], progress: Progress) -> Key:
    """Steps 1 and 2 of the module docstring: a new key, first in `config`,
    with `restart()` restarting every API server after each change."""
    try:
        keys, resources = config_keys(config.read_text())
    except (OSError, ConfigError) as e:
        raise ClusterError(f"cannot rotate with {config}: {e}") from None
    new = Key.generate(next_key_name(keys))
    if servers > 1:
        write_private(config, render_config([*keys, new], resources))
        progress(f"added key {new.name} for reading; restarting the API servers")
        restart()
    write_private(config, render_config([new, *keys], resources))
    progress(f"key {new.name} now encrypts new writes; restarting the API servers")
    restart()
    return new


@dataclass(frozen=True, slots=True)
class Rewritten:
    total: int
    rewritten: int


async def rewrite(servers: APIServers, progress: Progress) -> Rewritten:
    """Step 3 of the module docstring for every resource the config lists;
    ClusterError naming the object that failed, how far it got and what to
    run next."""
    try:
        config = load_config(servers.config)
        _, resources = config_keys(servers.config.read_text())
    except (OSError, ConfigError) as e:
        raise ClusterError(f"cannot rewrite with {servers.config}: {e}") from None
    try:
        await anyio.to_thread.run_sync(etcd_tls.check, servers.etcd.split(","), servers.etcd_tls)
    except EtcdTLSError as e:
        raise ClusterError(f"cannot rewrite: {e}") from None
    client = new_client(servers.etcd, tls=servers.etcd_tls)
    total = rewritten = 0
    try:
        store = Store(client, prefix=servers.prefix, encryption=config)
        for resource in resources:
            info = scheme.resolve(resource)
            done = await _rewrite_resource(store, info.group_resource, progress)
            total, rewritten = total + done.total, rewritten + done.rewritten
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()
    return Rewritten(total, rewritten)


async def _rewrite_resource(store: Store, resource: str, progress: Progress) -> Rewritten:
    info = scheme.resolve(resource)
    token: str | None = None
    done = rewritten = total = 0
    while True:
        try:
            page = await store.list(info, limit=_PAGE, continue_token=token)
        except StatusError as e:
            raise _failed(resource, done, total, str(e)) from None
        if token is None:
            total = len(page.items) + page.remaining
        for obj in page.items:
            m = meta(obj)
            try:
                rewritten += await store.reseal(info, m.namespace, m.name)
            except StatusError as e:
                raise _failed(resource, done, total, f"{m.namespace}/{m.name}: {e}") from None
            done += 1
            if done % _REPORT_EVERY == 0:
                progress(f"rewrote {done}/{total} {resource}")
        token = page.continue_token
        if token is None:
            progress(f"rewrote {done}/{total} {resource} ({rewritten} needed it)")
            return Rewritten(done, rewritten)


def _failed(resource: str, done: int, total: int, why: str) -> ClusterError:
    return ClusterError(
        f"rewrote {done}/{total} {resource}, then failed: {why}. The new key is in place "
        "and the API servers use it; once the cause is fixed, finish with "
        "`kpy rotate-encryption-key --rewrite-only`"
    )


def rotate(
    directory: Path,
    *,
    rewrite_only: bool = False,
    progress: Progress = print,
    restart_timeout: float = 90.0,
) -> Rewritten:
    """The command: see the module docstring."""
    state = ClusterState.load(directory)
    if state is None:
        raise ClusterError(f"no kpy cluster in {directory}; start one with `kpy up`")
    servers = api_servers(state)
    if not rewrite_only:
        if state.supervisor is None or not running(state.supervisor):
            raise ClusterError(
                "kpy-supervisor is not running, so nothing would start the API servers again; "
                "restart the cluster (`kpy down && kpy up`) first"
            )
        down = [m.name for m in servers.members if not running(m)]
        if down:
            raise ClusterError(
                f"{', '.join(down)} is not running; wait until `kpy status` shows it running"
            )

        def restart() -> None:
            for member in servers.members:
                restart_api_server(directory, member.name, restart_timeout, progress)

        add_key(servers.config, servers=len(servers.members), restart=restart, progress=progress)
    return anyio.run(rewrite, servers, progress)


def restart_api_server(directory: Path, name: str, timeout: float, progress: Progress) -> None:
    """SIGTERM to the API server `name`, then waits until kpy-supervisor has
    started it again and it answers; ClusterError after `timeout` seconds."""
    state = ClusterState.load(directory)
    assert state is not None
    old = state.member(name)
    if running(old):
        with contextlib.suppress(ProcessLookupError):
            os.kill(old.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        state = ClusterState.load(directory)
        assert state is not None
        new = state.member(name)
        if (new.pid, new.started) != (old.pid, old.started) and running(new):
            break
        if time.monotonic() > deadline:
            raise _not_back(name, old, timeout)
        time.sleep(0.2)
    port = _flags(new.argv).get("--port", "6443")
    config = client_config(directory, f"127.0.0.1:{port}")
    if not anyio.run(_serves, config, deadline - time.monotonic()):
        raise _not_back(name, old, timeout)
    progress(f"{name} serves again (pid {new.pid})")


def _not_back(name: str, member: Member, timeout: float) -> ClusterError:
    return ClusterError(
        f"{name} did not serve again within {timeout:.0f} s; see {member.log}. Once "
        "`kpy status` shows it running, run `kpy rotate-encryption-key --rewrite-only`"
    )


async def _serves(config: ClientConfig, seconds: float) -> bool:
    with anyio.move_on_after(max(seconds, 1.0)):
        async with Client(config, retry_timeout=seconds) as client:
            await client.list(Namespace, limit=1)
            return True
    return False

"""The userspace backend of kpy-proxy (kube-proxy's old userspace mode), for
a node where iptables cannot be used.

For every TCP service port with ready endpoints the proxy listens on
`cluster IP:port` (and `node IP:node port`) in its own process and relays
each connection to a ready endpoint picked at random (the same one for a
client IP within the affinity timeout, with ClientIP session affinity). A
port with no ready endpoint has no listener, so a connection to it is
refused at once, as kube-proxy's REJECT does. Endpoint changes apply to new
connections; connections already relayed go on.

Binding works for loopback service addresses (Linux routes all of
127.0.0.0/8 to `lo`); an address this machine does not have (a Docker
service range) cannot be bound, and `unavailable` says so per port. UDP is
not relayed (said the same way).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.abc

if TYPE_CHECKING:
    from anyio.abc import SocketStream

    from kpy.proxy.rules import ServicePortRule

log = logging.getLogger("kpy.proxy.userspace")

_CHUNK = 65536


@dataclass(slots=True)
class _Port:
    rule: ServicePortRule
    scopes: list[anyio.CancelScope] = field(default_factory=list)
    affinity: dict[str, tuple[str, float]] = field(default_factory=dict)  # client -> (ep, when)


class UserspaceProxy:
    """Listeners by service port; `sync(rules)` makes them match `rules`.
    Runs inside `run()`, until cancelled."""

    def __init__(self) -> None:
        self._ports: dict[tuple[str, int], _Port] = {}  # (ip, port) -> what it serves
        #: service port key -> why it is not served here (bind errors, UDP)
        self.unavailable: dict[str, str] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._ready = anyio.Event()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._group = tg
            self._ready.set()
            try:
                await anyio.sleep_forever()
            finally:
                self._group = None
                for port in self._ports.values():
                    for scope in port.scopes:
                        scope.cancel()

    async def sync(self, rules: list[ServicePortRule]) -> None:
        """Listens on exactly the addresses of the ports of `rules` that
        have ready endpoints, and relays to their current endpoints."""
        await self._ready.wait()
        wanted: dict[tuple[str, int], ServicePortRule] = {}
        unavailable: dict[str, str] = {}
        for rule in rules:
            if rule.protocol != "TCP":
                unavailable[rule.key] = f"{rule.protocol} is not relayed by the userspace proxy"
                continue
            if not rule.endpoints:
                continue
            wanted[(rule.cluster_ip, rule.port)] = rule
            if rule.node_port:
                wanted[(rule.node_ip, rule.node_port)] = rule
        for address in [a for a in self._ports if a not in wanted]:
            for scope in self._ports.pop(address).scopes:
                scope.cancel()
        for address, rule in wanted.items():
            existing = self._ports.get(address)
            if existing is not None:
                existing.rule = rule
                continue
            try:
                listener = await anyio.create_tcp_listener(
                    local_host=address[0], local_port=address[1]
                )
            except OSError as e:
                unavailable[rule.key] = (
                    f"cannot listen on {address[0]}:{address[1]}: {e.strerror or e} "
                    "(the userspace proxy serves only addresses this machine has, such as "
                    "loopback service IPs)"
                )
                continue
            port = _Port(rule)
            self._ports[address] = port
            assert self._group is not None
            port.scopes.append(await self._group.start(self._serve, listener, port))
        self.unavailable = unavailable

    async def _serve(
        self,
        listener: anyio.abc.Listener[SocketStream],
        port: _Port,
        *,
        task_status: anyio.abc.TaskStatus[anyio.CancelScope],
    ) -> None:
        with anyio.CancelScope() as scope:
            task_status.started(scope)
            async with listener:
                await listener.serve(lambda client: self._relay(client, port))

    async def _relay(self, client: SocketStream, port: _Port) -> None:
        async with client:
            endpoint = _pick(port, _peer(client))
            if endpoint is None:
                return
            host, _, number = endpoint.rpartition(":")
            try:
                upstream = await anyio.connect_tcp(host, int(number))
            except OSError as e:
                log.warning("cannot reach endpoint %s of %s: %s", endpoint, port.rule.key, e)
                return
            async with upstream, anyio.create_task_group() as tg:
                tg.start_soon(_pump, client, upstream)
                tg.start_soon(_pump, upstream, client)


def _peer(stream: SocketStream) -> str:
    with contextlib.suppress(Exception):
        return str(stream.extra(anyio.abc.SocketAttribute.remote_address)[0])
    return ""


def _pick(port: _Port, client: str) -> str | None:
    rule = port.rule
    if not rule.endpoints:
        return None
    now = time.monotonic()
    if rule.affinity_seconds is not None:
        held = port.affinity.get(client)
        if held is not None and held[0] in rule.endpoints and now - held[1] < rule.affinity_seconds:
            port.affinity[client] = (held[0], now)
            return held[0]
    endpoint = random.choice(rule.endpoints)  # spreading, not security
    if rule.affinity_seconds is not None:
        port.affinity[client] = (endpoint, now)
    return endpoint


async def _pump(source: SocketStream, sink: SocketStream) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
        with contextlib.suppress(Exception):
            await sink.send_eof()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass

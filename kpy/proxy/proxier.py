"""kpy-proxy's loop: informers on Services and EndpointSlices, the rule set
(kpy.proxy.rules) handed to one backend, kept in step.

- The mode is `iptables` when asked for, or with `auto` when iptables
  works here (kpy.proxy.iptables.unavailable); else `userspace`. It is
  logged, and written with its reason to the status file (`kpy status`
  shows it), with the service ports the mode cannot serve.
- A change of a Service or an EndpointSlice starts a sync after
  `coalesce` seconds (0.1), so a burst of changes costs one sync, and at
  most `coalesce` plus one sync's time after the change; every
  `resync_period` seconds a sync runs anyway (rules someone deleted come
  back).
- On stop (cancellation: SIGTERM), the iptables mode removes this
  cluster's jumps and chains by name before returning.
- With Docker endpoints, the iptables mode also puts the ports of kpy's
  Docker bridge in hairpin mode (kpy.proxy.hairpin).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.to_thread

from kpy.api import errors
from kpy.api.core.v1 import Node, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.cache.informer import EventHandler, SharedInformerFactory
from kpy.proxy import hairpin, iptables
from kpy.proxy.rules import ServicePortRule, desired
from kpy.proxy.userspace import UserspaceProxy

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.client import ClientProtocol

log = logging.getLogger("kpy.proxy")

MODES = ("auto", "iptables", "userspace")


class Proxier:
    def __init__(
        self,
        client: ClientProtocol,
        *,
        node_name: str,
        cluster_uid: str,
        mode: str = "auto",
        node_ip: str = "",
        status_file: Path | None = None,
        resync_period: float = 30.0,
        coalesce: float = 0.1,
        bridge: str = hairpin.BRIDGE,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.client = client
        self.node_name = node_name
        self.prefix = iptables.chain_prefix(cluster_uid)
        self.cluster_uid = cluster_uid
        self.requested_mode = mode
        self.mode = ""
        self.why = ""  # why this mode (when not asked for)
        self.node_ip = node_ip
        self.status_file = status_file
        self.resync_period = resync_period
        self.coalesce = coalesce
        self.bridge = bridge
        self.syncs = 0
        self._changed = anyio.Event()
        self._userspace = UserspaceProxy()
        self._last: list[ServicePortRule] | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Proxies until cancelled; reports the mode once the first sync is done."""
        await self._choose_mode()
        if not self.node_ip:
            self.node_ip = await self._lookup_node_ip()
        factory = SharedInformerFactory(self.client)
        services = factory.informer(Service)
        slices = factory.informer(EndpointSlice)
        services.add_event_handler(
            EventHandler(
                on_add=lambda _o, _i: self._changed.set(),
                on_update=lambda _o, _n: self._changed.set(),
                on_delete=lambda _o: self._changed.set(),
            )
        )
        slices.add_event_handler(
            EventHandler(
                on_add=lambda _o, _i: self._changed.set(),
                on_update=lambda _o, _n: self._changed.set(),
                on_delete=lambda _o: self._changed.set(),
            )
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(factory.run)
                if self.mode == "userspace":
                    tg.start_soon(self._userspace.run)
                await factory.wait_for_cache_sync()
                await self._sync(services.lister().list(), slices.lister().list())
                task_status.started(self.mode)
                while True:
                    with anyio.move_on_after(self.resync_period):
                        await self._changed.wait()
                        await anyio.sleep(self.coalesce)
                    self._changed = anyio.Event()
                    await self._sync(services.lister().list(), slices.lister().list())
        finally:
            if self.mode == "iptables":
                with anyio.CancelScope(shield=True):
                    await self._cleanup()

    async def _choose_mode(self) -> None:
        if self.requested_mode == "userspace":
            self.mode, self.why = "userspace", "asked for (--proxy-mode userspace)"
        else:
            reason = await anyio.to_thread.run_sync(iptables.unavailable)
            if not reason:
                self.mode, self.why = "iptables", "iptables works on this node"
            elif self.requested_mode == "iptables":
                raise iptables.IptablesError(f"--proxy-mode iptables, but {reason}")
            else:
                self.mode, self.why = "userspace", f"iptables cannot be used: {reason}"
        log.info("proxy mode %s (%s)", self.mode, self.why, extra={"node": self.node_name})

    async def _lookup_node_ip(self) -> str:
        """The node's InternalIP (for node ports); 127.0.0.1 if none yet."""
        try:
            node = await self.client.get(Node, self.node_name)
        except errors.StatusError as e:
            log.warning("cannot read node %s (%s); node ports on 127.0.0.1", self.node_name, e)
            return "127.0.0.1"
        for address in node.status.addresses:
            if address.type == "InternalIP" and address.address:
                return str(address.address)
        return "127.0.0.1"

    async def _sync(self, services: list[Service], slices: list[EndpointSlice]) -> None:
        rules = desired(services, slices, self.node_ip)
        self.syncs += 1
        try:
            if self.mode == "iptables":
                await anyio.to_thread.run_sync(self._apply_iptables, rules)
            else:
                await self._userspace.sync(rules)
        except iptables.IptablesError as e:
            log.error("sync failed: %s; retrying at the next change or resync", e)
            return
        if rules != self._last:
            log.info("synced %d service ports", len(rules), extra={"mode": self.mode})
            self._last = rules
        self._write_status()

    def _apply_iptables(self, rules: list[ServicePortRule]) -> None:
        current = iptables.parse_save(iptables.save(), self.prefix)
        iptables.restore(iptables.render(rules, self.prefix, current))
        if any(not e.startswith("127.") for rule in rules for e in rule.endpoints):
            hairpin.enable(self.bridge)  # a Docker pod may reach itself through its Service

    async def _cleanup(self) -> None:
        try:
            removed = await anyio.to_thread.run_sync(iptables.cleanup, self.cluster_uid)
        except iptables.IptablesError as e:
            log.error("cannot remove the chains %s*: %s", self.prefix, e)
            return
        if removed:
            log.info("removed the chains %s*", self.prefix)

    def status_line(self) -> str:
        """`MODE (why)`, then a line per service port this mode cannot serve."""
        lines = [f"{self.mode} ({self.why})"]
        lines += [f"  {key}: {why}" for key, why in sorted(self._userspace.unavailable.items())]
        return "\n".join(lines)

    def _write_status(self) -> None:
        if self.status_file is None:
            return
        try:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.status_file.with_name(self.status_file.name + f".{os.getpid()}")
            tmp.write_text(self.status_line() + "\n")
            tmp.replace(self.status_file)
        except OSError as e:
            log.warning("cannot write the status file %s: %s", self.status_file, e)

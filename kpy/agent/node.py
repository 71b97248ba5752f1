"""The agent's Node: registration, the heartbeat Lease and node status.

- `register` creates the Node, or takes over an existing one of the same
  name (a restarted agent): its labels and taints from configuration are
  merged in, its status replaced.
- The Lease `kube-node-lease/<node>` is renewed every `heartbeat` seconds
  (10 s, duration 40 s, as Kubernetes' kubelet does); it is the liveness
  signal. Node status (conditions, addresses, capacity) is written when it
  changes and at least every `status_report` seconds (5 minutes), so a
  quiet node costs one small write per heartbeat.
- Conditions: Ready, and MemoryPressure, DiskPressure and PIDPressure as
  the eviction manager holds them (`pressure`: the conditions now True; see
  `kpy.agent.eviction`), with the kubelet's reasons.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from kpy.agent.status import timestamp
from kpy.api import errors
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Node, NodeAddress, NodeCondition, Taint
from kpy.api.validation import validate

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from google.protobuf.timestamp_pb2 import Timestamp

    from kpy.client import Client

log = logging.getLogger("kpy.agent")

LEASE_NAMESPACE = "kube-node-lease"
VERSION = "kpy-agent/0.1.0"
#: condition -> (reason when False, reason when True, what it is about)
PRESSURE_CONDITIONS = {
    "MemoryPressure": ("KubeletHasSufficientMemory", "KubeletHasInsufficientMemory", "memory"),
    "DiskPressure": ("KubeletHasNoDiskPressure", "KubeletHasDiskPressure", "disk"),
    "PIDPressure": ("KubeletHasSufficientPID", "KubeletHasInsufficientPID", "PID"),
}


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    address: str = "127.0.0.1"
    port: int = 0  # the agent's gRPC port, published in daemonEndpoints
    cpu: str = ""  # capacity; "" measures the machine
    memory: str = ""
    max_pods: int = 110
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ()  # key=value:Effect
    runtime_version: str = ""
    root_dir: str = "/"
    heartbeat: float = 10.0
    lease_duration: int = 40
    status_report: float = 300.0


def parse_taint(word: str) -> Taint:
    """`key[=value]:Effect`; the effect is checked by the Node's validation."""
    spec, _, effect = word.partition(":")
    key, _, value = spec.partition("=")
    taint = Taint(key=key, effect=effect)
    if value:
        taint.value = value
    return taint


def desired_node(config: NodeConfig) -> Node:
    """The Node this agent publishes; Invalid when labels or taints are bad."""
    node = Node()
    node.metadata.name = config.name
    node.metadata.labels.update(
        {
            "kubernetes.io/hostname": config.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": _arch(),
            **config.labels,
        }
    )
    node.spec.taints.extend(parse_taint(t) for t in config.taints)
    cpu = config.cpu or str(os.cpu_count() or 1)
    memory = config.memory or str(_meminfo().get("MemTotal", 0))
    for key, value in (("cpu", cpu), ("memory", memory), ("pods", str(config.max_pods))):
        node.status.capacity[key].string = value
        node.status.allocatable[key].string = value
    node.status.addresses.append(NodeAddress(type="InternalIP", address=config.address))
    node.status.addresses.append(NodeAddress(type="Hostname", address=config.name))
    node.status.daemon_endpoints.kubelet_endpoint.port = config.port
    info = node.status.node_info
    info.kubelet_version = VERSION
    info.container_runtime_version = config.runtime_version
    info.operating_system = "linux"
    info.architecture = _arch()
    info.kernel_version = platform.release()
    info.os_image = _os_image()
    info.machine_id = _read("/etc/machine-id")
    info.boot_id = _read("/proc/sys/kernel/random/boot_id")
    problems = validate(node)
    if problems:
        raise errors.Invalid(list(problems), kind="Node", name=config.name)
    return node


class NodeAgent:
    """Keeps the Node, its Lease and its conditions current; `node` is the
    last Node the API returned."""

    def __init__(
        self,
        client: Client,
        config: NodeConfig,
        *,
        pressure: Callable[[], Collection[str]] = frozenset,
        stored: Callable[[str], Node | None] | None = None,
    ) -> None:
        """`pressure`: the pressure conditions True now (default: none).
        `stored(name)`: the Node as a Node informer holds it, read each
        heartbeat in place of a get (default: the get)."""
        self._client = client
        self.config = config
        self._pressure = pressure
        self._stored = stored
        self.node: Node = desired_node(config)
        self._reported: tuple[object, ...] = ()
        self._reported_at = 0.0
        self._lease: Lease | None = None  # the Lease as this agent last wrote it

    async def register(self) -> Node:
        want = desired_node(self.config)
        try:
            self.node = await self._client.create(want)
            log.info("registered node", extra={"node": self.config.name})
        except errors.AlreadyExists:
            current = await self._client.get(Node, self.config.name)
            current.metadata.labels.update(want.metadata.labels)
            keys = {(t.key, t.effect) for t in want.spec.taints}
            kept = [t for t in current.spec.taints if (t.key, t.effect) not in keys]
            del current.spec.taints[:]
            current.spec.taints.extend([*kept, *want.spec.taints])
            self.node = await self._client.update(current)
        await self.report_status(force=True)
        return self.node

    async def run(self) -> None:
        """Heartbeats until cancelled."""
        while True:
            try:
                await self.renew_lease()
                await self.report_status()
            except errors.StatusError as e:
                log.warning("heartbeat failed; retrying", extra={"error": str(e)})
            await anyio.sleep(self.config.heartbeat)

    async def renew_lease(self) -> None:
        """Renews the Lease with one write, of the Lease this agent last
        wrote (as the kubelet keeps its latest lease); it reads the Lease
        first only when it holds none or the one held went stale (someone
        else wrote it, or it was deleted)."""
        now = timestamp(time.time())
        if self._lease is not None and await self._update_lease(self._lease, now):
            return
        try:
            current = await self._client.get(Lease, self.config.name, namespace=LEASE_NAMESPACE)
        except errors.NotFound:
            await self._create_lease(now)
            return
        await self._update_lease(current, now)

    async def _update_lease(self, held: Lease, now: Timestamp) -> bool:
        """False when `held` is stale: a conflict, or the Lease is gone."""
        lease = Lease()
        lease.CopyFrom(held)
        lease.spec.renew_time.CopyFrom(now)
        try:
            self._lease = await self._client.update(lease)
        except (errors.Conflict, errors.NotFound):
            self._lease = None
            return False
        return True

    async def _create_lease(self, now: Timestamp) -> None:
        lease = Lease()
        lease.metadata.name = self.config.name
        lease.metadata.namespace = LEASE_NAMESPACE
        owner = lease.metadata.owner_references.add()
        owner.api_version, owner.kind = "v1", "Node"
        owner.name, owner.uid = self.node.metadata.name, self.node.metadata.uid
        lease.spec.holder_identity = self.config.name
        lease.spec.lease_duration_seconds = self.config.lease_duration
        lease.spec.renew_time.CopyFrom(now)
        with contextlib.suppress(errors.AlreadyExists):
            self._lease = await self._client.create(lease, namespace=LEASE_NAMESPACE)

    async def report_status(self, *, force: bool = False) -> None:
        conditions = node_conditions(self._pressure())
        key = tuple((c.type, c.status, c.reason) for c in conditions)
        due = time.monotonic() - self._reported_at >= self.config.status_report
        if (
            not force
            and key == self._reported
            and not due
            and not await self._overwritten(conditions)
        ):
            return
        want = desired_node(self.config)
        previous = {c.type: c for c in self.node.status.conditions}
        now = timestamp(time.time())
        for c in conditions:
            c.last_heartbeat_time.CopyFrom(now)
            before = previous.get(c.type)
            if before is not None and before.status == c.status:
                c.last_transition_time.CopyFrom(before.last_transition_time)
            else:
                c.last_transition_time.CopyFrom(now)
        want.status.conditions.extend(conditions)
        for attempt in range(5):
            current = self.node if attempt == 0 else await self._client.get(Node, self.config.name)
            current.status.CopyFrom(want.status)
            try:
                self.node = await self._client.update_status(current)
                break
            except errors.Conflict:
                continue
        self._reported, self._reported_at = key, time.monotonic()

    async def _overwritten(self, conditions: list[NodeCondition]) -> bool:
        """Whether the stored conditions differ from those last reported: the
        node lifecycle controller sets them Unknown while this agent is
        silent, and a returning agent must say Ready again at once (as the
        kubelet compares with the Node it reads each status period)."""
        if self._stored is not None:
            found = self._stored(self.config.name)
            if found is None:
                return False
            stored = found
        else:
            try:
                stored = await self._client.get(Node, self.config.name)
            except errors.NotFound:
                return False  # gone: nothing to correct (registering is not this loop's job)
        said = {(c.type, c.status) for c in stored.status.conditions}
        return not {(c.type, c.status) for c in conditions} <= said


def node_conditions(pressure: Collection[str]) -> list[NodeCondition]:
    """The agent's conditions: the pressure ones (True for those in
    `pressure`) and Ready, worded as the kubelet words them."""
    out = []
    for kind, (ok_reason, bad_reason, what) in PRESSURE_CONDITIONS.items():
        under = kind in pressure
        if kind == "DiskPressure":
            message = "kpy-agent has disk pressure" if under else "kpy-agent has no disk pressure"
        else:
            amount = "insufficient" if under else "sufficient"
            message = f"kpy-agent has {amount} {what} available"
        out.append(
            NodeCondition(
                type=kind,
                status="True" if under else "False",
                reason=bad_reason if under else ok_reason,
                message=message,
            )
        )
    out.append(
        NodeCondition(
            type="Ready",
            status="True",
            reason="KubeletReady",
            message="kpy-agent is posting ready status",
        )
    )
    return out


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[name] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return "Linux"

"""The node lifecycle controller (Kubernetes' pkg/controller/nodelifecycle).

It watches each node's heartbeat and turns a silent node into conditions
and taints that the scheduler and the taint eviction controller act on:

- `monitor()` runs every `node_monitor_period` (5 s). A node's heartbeat is
  its Lease `kube-node-lease/<node>` being renewed or its Ready condition's
  lastHeartbeatTime moving; the controller notes when it last *saw* either
  change on its own clock (the agent's clock may be skewed). A node silent
  for longer than `node_monitor_grace_period` (50 s, Kubernetes' default
  since 1.32; 40 s before) gets Ready, MemoryPressure, DiskPressure and
  PIDPressure `Unknown` ("Kubelet stopped posting node status."); a node
  that never posted a Ready condition gets it after
  `node_startup_grace_period` (60 s). A node whose agent says NotReady keeps
  its `False`.
- While a node is not Ready its pods get Ready=False (MarkPodsNotReady), so
  Services stop sending them traffic.
- NoExecute taints (TaintBasedEvictions): a node not Ready joins its zone's
  queue; `tainting_pass()` (every 100 ms) takes nodes off each queue as the
  zone's token bucket allows and gives them `node.kubernetes.io/not-ready`
  (Ready False) or `node.kubernetes.io/unreachable` (Unknown) NoExecute,
  which the taint eviction controller turns into evictions. A node that is
  Ready again loses both at once.
- Rate limits per zone (`topology.kubernetes.io/region` and `zone`): a zone
  is fully disrupted when none of its nodes is Ready, partially when more
  than two are not Ready and they are at least `unhealthy_zone_threshold`
  (55%) of it. A normal or fully disrupted zone is tainted at
  `node_eviction_rate` (0.1 nodes/s), a partially disrupted one at
  `secondary_node_eviction_rate` (0.01/s) when it has more than
  `large_cluster_size_threshold` (50) nodes and not at all otherwise. When
  every zone is fully disrupted the fault is most likely the control
  plane's own network: no node is tainted and the NoExecute taints are
  taken off; when that ends every node gets a fresh grace period.
- NoSchedule taints follow the conditions at once through the work queue
  (`sync(node name)`): not-ready, unreachable, memory-pressure,
  disk-pressure, pid-pressure, network-unavailable, and unschedulable for a
  cordoned node.

State per node (when it was last heard from) lives only in this process: a
new leader gives every node a fresh grace period, as Kubernetes' does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import anyio

from kpy.api import errors
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Node, NodeCondition, Pod, Taint
from kpy.cache.events import NORMAL, WARNING
from kpy.cache.informer import EventHandler
from kpy.controllers.base import Controller, key_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from google.protobuf.timestamp_pb2 import Timestamp

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.nodelifecycle")

__all__ = [
    "NOT_READY_TAINT",
    "POD_NODE_INDEX",
    "UNREACHABLE_TAINT",
    "NodeLifecycleController",
    "NodeLifecycleOptions",
    "TokenBucket",
    "ZoneState",
    "compute_zone_state",
    "new_node_lifecycle_controller",
]

NOT_READY_TAINT: Final = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT: Final = "node.kubernetes.io/unreachable"
LEASE_NAMESPACE: Final = "kube-node-lease"
POD_NODE_INDEX: Final = "spec.nodeName"
ZONE_LABEL: Final = "topology.kubernetes.io/zone"
REGION_LABEL: Final = "topology.kubernetes.io/region"

#: conditions the agent keeps and this controller sets Unknown with Ready.
NODE_CONDITIONS: Final = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
#: (condition, status) -> the NoSchedule taint it brings
#: (Kubernetes' nodeConditionToTaintKeyStatusMap).
CONDITION_TAINTS: Final = {
    ("Ready", "False"): NOT_READY_TAINT,
    ("Ready", "Unknown"): UNREACHABLE_TAINT,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
UNSCHEDULABLE_TAINT: Final = "node.kubernetes.io/unschedulable"
_NO_SCHEDULE_KEYS: Final = frozenset({*CONDITION_TAINTS.values(), UNSCHEDULABLE_TAINT})


@dataclass(frozen=True, slots=True)
class NodeLifecycleOptions:
    """kube-controller-manager's flags of the same names (seconds, nodes/s)."""

    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 50.0
    node_startup_grace_period: float = 60.0
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50
    #: how often the NoExecute tainting pass runs (Kubernetes' nodeEvictionPeriod).
    tainting_period: float = 0.1

    def check(self) -> None:
        """ValueError naming the flag whose value cannot work."""
        positive = {
            "--node-monitor-period": self.node_monitor_period,
            "--node-monitor-grace-period": self.node_monitor_grace_period,
            "--node-startup-grace-period": self.node_startup_grace_period,
        }
        for flag, value in positive.items():
            if not value > 0:
                raise ValueError(f"{flag} must be positive, got {value}")
        for flag, rate in (
            ("--node-eviction-rate", self.node_eviction_rate),
            ("--secondary-node-eviction-rate", self.secondary_node_eviction_rate),
        ):
            if rate < 0:
                raise ValueError(f"{flag} must not be negative, got {rate}")
        if not 0 < self.unhealthy_zone_threshold <= 1:
            raise ValueError(
                f"--unhealthy-zone-threshold must be in (0, 1], got {self.unhealthy_zone_threshold}"
            )


class ZoneState:
    INITIAL: Final = "Initial"
    NORMAL: Final = "Normal"
    FULL_DISRUPTION: Final = "FullDisruption"
    PARTIAL_DISRUPTION: Final = "PartialDisruption"


def compute_zone_state(ready: Iterable[str], unhealthy_threshold: float) -> str:
    """A zone's state from its nodes' Ready statuses (Kubernetes' ComputeZoneState)."""
    statuses = list(ready)
    not_ready = sum(1 for s in statuses if s != "True")
    ready_count = len(statuses) - not_ready
    if ready_count == 0 and not_ready > 0:
        return ZoneState.FULL_DISRUPTION
    if not_ready > 2 and not_ready / len(statuses) >= unhealthy_threshold:
        return ZoneState.PARTIAL_DISRUPTION
    return ZoneState.NORMAL


class TokenBucket:
    """`qps` tokens a second, at most `burst` saved; a new bucket is full.
    A rate of 0 never accepts (Kubernetes' never-rate-limiter)."""

    def __init__(self, qps: float, now: float, *, burst: int = 1) -> None:
        self.qps = qps
        self._burst = burst
        self._tokens = float(burst)
        self._last = now

    def try_accept(self, now: float) -> bool:
        if self.qps <= 0:
            return False
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self.qps)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass(slots=True)
class _Health:
    """When this controller last heard from a node, on its own clock."""

    probe: float
    heartbeat: float = -1.0  # the Ready condition's lastHeartbeatTime last seen
    renewed: float = -1.0  # the Lease's renewTime last seen


@dataclass(slots=True)
class _Zone:
    state: str
    limiter: TokenBucket
    #: nodes waiting for a NoExecute taint, in arrival order.
    waiting: OrderedDict[str, None] = field(default_factory=OrderedDict)


def pod_node_index(pod: Pod) -> list[str]:
    return [pod.spec.node_name] if pod.spec.node_name else []


def zone_of(node: Node) -> str:
    """Kubernetes' GetZoneKey: region and zone labels ("" when unlabelled)."""
    labels = node.metadata.labels
    region, zone = labels.get(REGION_LABEL, ""), labels.get(ZONE_LABEL, "")
    return f"{region}:\x00:{zone}" if region or zone else ""


def condition(node: Node, kind: str) -> NodeCondition | None:
    for c in node.status.conditions:
        if c.type == kind:
            return c
    return None


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


class NodeLifecycleController(Controller):
    """See the module docstring; the queue's keys are node names."""

    name = "nodelifecycle"

    def __init__(
        self,
        client: ClientProtocol,
        nodes: SharedInformer[Node],
        leases: SharedInformer[Lease],
        pods: SharedInformer[Pod],
        *,
        options: NodeLifecycleOptions | None = None,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`now`: seconds, for heartbeats seen and the timestamps written."""
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self.options = options or NodeLifecycleOptions()
        self._nodes: Lister[Node] = nodes.lister()
        self._leases: Lister[Lease] = leases.lister()
        self._pods = pods
        if POD_NODE_INDEX not in pods.indexer.get_indexers():
            pods.add_indexers({POD_NODE_INDEX: pod_node_index})
        self._now = now
        self._health: dict[str, _Health] = {}
        self.zones: dict[str, _Zone] = {}
        nodes.add_event_handler(
            EventHandler(
                on_add=lambda node, _initial: self.enqueue_key(node.metadata.name),
                on_update=lambda _old, new: self.enqueue_key(new.metadata.name),
                on_delete=lambda obj: self._forget(key_of(obj)),
            )
        )

    def _forget(self, name: str) -> None:
        """Drops what is known of a node that is gone (per-key state goes with the key)."""
        self._health.pop(name, None)
        for zone in self.zones.values():
            zone.waiting.pop(name, None)

    # -- running ----------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        """The NoSchedule workers, the monitor and the tainting pass, until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(super().run, workers)
            tg.start_soon(self._every, self.options.node_monitor_period, self.monitor)
            tg.start_soon(self._every, self.options.tainting_period, self.tainting_pass)

    async def _every(self, period: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                log.exception("node lifecycle pass failed; next one in one period")
            await anyio.sleep(period)

    # -- the monitor ------------------------------------------------------------------

    async def monitor(self) -> None:
        """One pass over every node: health, pods, NoExecute queues, zone states."""
        nodes = self._nodes.list()
        seen = {n.metadata.name for n in nodes}
        for gone in set(self._health) - seen:
            self._forget(gone)
        readiness: dict[str, list[str]] = {}
        for node in nodes:
            try:
                status = await self._monitor_one(node)
            except errors.StatusError as e:
                # A conflict with another writer of the node, or the API
                # being away: the next pass (one period on) tries again.
                log.warning(
                    "could not update node; next pass retries",
                    extra={"node": node.metadata.name, "error": str(e)},
                )
                ready = condition(node, "Ready")
                status = ready.status if ready is not None else "Unknown"
            readiness.setdefault(zone_of(node), []).append(status)
        await self._handle_disruption(readiness, nodes)

    async def _monitor_one(self, node: Node) -> str:
        """Health, NoExecute queueing and pods of one node; its Ready status."""
        node = await self._update_health(node)
        ready = condition(node, "Ready")
        status = ready.status if ready is not None else "Unknown"
        await self._taint_or_untaint(node, status)
        if status != "True":
            await self._mark_pods_not_ready(node)
        return status

    async def _update_health(self, node: Node) -> Node:
        """Sets the conditions Unknown when the node has been silent past its
        grace period; returns the node as it now stands."""
        name, now, opts = node.metadata.name, self._now(), self.options
        ready = condition(node, "Ready")
        health = self._health.get(name)
        if health is None:
            start = now if ready is not None else _seconds(node.metadata.creation_timestamp)
            health = self._health[name] = _Health(probe=start)
        if ready is not None:
            beat = _seconds(ready.last_heartbeat_time)
            if beat != health.heartbeat:
                health.heartbeat, health.probe = beat, now
        lease = self._leases.get(LEASE_NAMESPACE, name)
        if lease is not None and lease.spec.HasField("renew_time"):
            renewed = _seconds(lease.spec.renew_time)
            if renewed > health.renewed:
                health.renewed, health.probe = renewed, now
        grace = (
            opts.node_monitor_grace_period if ready is not None else opts.node_startup_grace_period
        )
        if now <= health.probe + grace:
            return node
        stale = Node()
        stale.CopyFrom(node)
        if not _set_unknown(stale, now):
            return node
        log.info("node stopped posting status", extra={"node": name})
        if ready is not None and ready.status == "True":
            self.record(node, NORMAL, "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        return await self._client.update_status(stale)

    async def _mark_pods_not_ready(self, node: Node) -> None:
        """Kubernetes' MarkPodsNotReady: Ready=False on every pod of the node
        that still says True."""
        name = node.metadata.name
        for pod in self._pods.indexer.by_index(POD_NODE_INDEX, name):
            ready = next((c for c in pod.status.conditions if c.type == "Ready"), None)
            if ready is None or ready.status != "True":
                continue
            changed = Pod()
            changed.CopyFrom(pod)
            for c in changed.status.conditions:
                if c.type == "Ready":
                    c.status = "False"
                    c.last_transition_time.FromSeconds(int(self._now()))  # metav1.Time
            try:
                await self._client.update_status(changed)
            except (errors.NotFound, errors.Conflict):
                continue  # gone, or changed: the next pass looks again
            self.record(pod, WARNING, "NodeNotReady", "Node is not ready")

    # -- NoExecute taints -------------------------------------------------------------

    def _zone(self, name: str) -> _Zone:
        zone = self.zones.get(name)
        if zone is None:
            rate = self.options.node_eviction_rate
            zone = self.zones[name] = _Zone(ZoneState.INITIAL, TokenBucket(rate, self._now()))
        return zone

    async def _taint_or_untaint(self, node: Node, status: str) -> None:
        name = node.metadata.name
        zone = self._zone(zone_of(node))
        if status == "True":
            zone.waiting.pop(name, None)
            await self._set_no_execute(node, None)
            return
        want = NOT_READY_TAINT if status == "False" else UNREACHABLE_TAINT
        other = UNREACHABLE_TAINT if want == NOT_READY_TAINT else NOT_READY_TAINT
        keys = {t.key for t in node.spec.taints if t.effect == "NoExecute"}
        if other in keys:
            # Already tainted the other way: swap at once, as Kubernetes does.
            await self._set_no_execute(node, want)
        elif want not in keys:
            zone.waiting.setdefault(name, None)

    async def tainting_pass(self) -> None:
        """Taints the waiting nodes, each zone as fast as its limiter allows."""
        now = self._now()
        for zone in self.zones.values():
            while zone.waiting and zone.limiter.try_accept(now):
                name, _ = zone.waiting.popitem(last=False)
                node = self._nodes.get("", name)
                ready = condition(node, "Ready") if node is not None else None
                if node is None or ready is None or ready.status == "True":
                    continue
                want = NOT_READY_TAINT if ready.status == "False" else UNREACHABLE_TAINT
                try:
                    await self._set_no_execute(node, want)
                except errors.StatusError as e:
                    log.warning(
                        "could not taint node; will retry",
                        extra={"node": name, "error": str(e)},
                    )
                    zone.waiting.setdefault(name, None)
                    break

    async def _set_no_execute(self, node: Node, want: str | None) -> None:
        """Leaves `want` (or neither) of the two NoExecute taints on the node."""
        taints = _without(
            node.spec.taints, {NOT_READY_TAINT, UNREACHABLE_TAINT} - {want}, "NoExecute"
        )
        if want is not None and not any(t.key == want and t.effect == "NoExecute" for t in taints):
            taint = Taint(key=want, effect="NoExecute")
            taint.time_added.FromSeconds(int(self._now()))  # metav1.Time
            taints.append(taint)
        await self._write_taints(node, taints)

    async def _write_taints(self, node: Node, taints: list[Taint]) -> None:
        if list(node.spec.taints) == taints:
            return
        changed = Node()
        changed.CopyFrom(node)
        del changed.spec.taints[:]
        changed.spec.taints.extend(taints)
        await self._client.update(changed)
        log.info(
            "node taints changed",
            extra={"node": node.metadata.name, "taints": [f"{t.key}:{t.effect}" for t in taints]},
        )

    # -- zones ------------------------------------------------------------------------

    async def _handle_disruption(self, readiness: dict[str, list[str]], nodes: list[Node]) -> None:
        """Kubernetes' handleDisruption: zone states and their rate limits."""
        opts = self.options
        states = {
            z: compute_zone_state(r, opts.unhealthy_zone_threshold) for z, r in readiness.items()
        }
        for name in set(self.zones) - set(states):
            del self.zones[name]
        previous = {z: self._zone(z).state for z in states}
        was_full = bool(previous) and all(s == ZoneState.FULL_DISRUPTION for s in previous.values())
        is_full = bool(states) and all(s == ZoneState.FULL_DISRUPTION for s in states.values())
        if is_full and not was_full:
            log.warning("every zone is fully disrupted: no taints, no evictions")
            for zone in self.zones.values():
                zone.limiter = TokenBucket(0, self._now())
                zone.waiting.clear()
            for node in nodes:
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    current = self._nodes.get("", node.metadata.name) or node
                    await self._set_no_execute(current, None)
        elif was_full and not is_full:
            log.info("the full disruption is over: every node gets a fresh grace period")
            now = self._now()
            for health in self._health.values():
                health.probe = now
            for z, state in states.items():
                self._set_limiter(z, state, len(readiness[z]))
        elif not is_full:
            for z, state in states.items():
                if state != previous[z]:
                    self._set_limiter(z, state, len(readiness[z]))
        for z, state in states.items():
            self._zone(z).state = state

    def _set_limiter(self, name: str, state: str, size: int) -> None:
        opts = self.options
        if state == ZoneState.PARTIAL_DISRUPTION:
            large = size > opts.large_cluster_size_threshold
            qps = opts.secondary_node_eviction_rate if large else 0.0
        else:
            qps = opts.node_eviction_rate
        self._zone(name).limiter = TokenBucket(qps, self._now())

    # -- NoSchedule taints (the work queue) -------------------------------------------

    async def sync(self, key: str) -> None:
        """Keeps the node's NoSchedule taints in step with its conditions."""
        node = self._nodes.get("", key)
        if node is None:
            return
        want = {
            key_
            for c in node.status.conditions
            if (key_ := CONDITION_TAINTS.get((c.type, c.status))) is not None
        }
        if node.spec.unschedulable:
            want.add(UNSCHEDULABLE_TAINT)
        taints = _without(node.spec.taints, _NO_SCHEDULE_KEYS - want, "NoSchedule")
        have = {t.key for t in taints if t.effect == "NoSchedule"}
        for missing in sorted(want - have):
            taint = Taint(key=missing, effect="NoSchedule")
            taint.time_added.FromSeconds(int(self._now()))  # metav1.Time
            taints.append(taint)
        await self._write_taints(node, taints)


def _without(taints: Iterable[Taint], keys: set[str] | frozenset[str], effect: str) -> list[Taint]:
    return [t for t in taints if not (t.effect == effect and t.key in keys)]


def _set_unknown(node: Node, now: float) -> bool:
    """Sets the agent's conditions Unknown (adding missing ones); whether any changed."""
    changed = False
    for kind in NODE_CONDITIONS:
        c = condition(node, kind)
        if c is None:
            c = node.status.conditions.add(type=kind)
            c.reason, c.message = "NodeStatusNeverUpdated", "Kubelet never posted node status."
        elif c.status == "Unknown":
            continue
        else:
            c.reason, c.message = "NodeStatusUnknown", "Kubelet stopped posting node status."
        c.status = "Unknown"
        c.last_transition_time.FromSeconds(int(now))  # metav1.Time: whole seconds
        changed = True
    return changed


def new_node_lifecycle_controller(
    ctx: ControllerContext, options: NodeLifecycleOptions | None = None
) -> NodeLifecycleController:
    return NodeLifecycleController(
        ctx.client,
        ctx.cluster_informers.informer(Node),
        ctx.cluster_informers.informer(Lease),
        ctx.informers.informer(Pod),
        options=options,
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("node-controller"),
    )

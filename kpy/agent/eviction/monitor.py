"""The agent's eviction loop: every `housekeeping_interval` it measures the
node (`observe.observe_node`), lets the `EvictionManager` decide, and, when
a threshold is acted on, evicts one pod through the pod workers.

The pressure conditions the manager holds are what the Node reports
(`node.NodeAgent` reads `manager.conditions`). An eviction records
`EvictionThresholdMet` ("Attempting to reclaim memory") on the Node and
`Evicted` with the message on the pod; the pod worker kills the pod's
containers within the grace period and writes phase Failed, reason
Evicted. While an evicted pod is still stopping no other is chosen (the
kubelet waits for it too), so one pass never evicts two pods.

Pod figures are gathered only when a pod is to be chosen: memory from the
runtime's stats of each running container, disk from the containers' log
directories and the pod's emptyDir volumes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from kpy.agent.eviction.manager import PodStats, choose
from kpy.agent.eviction.observe import disk_usage, observe_node
from kpy.agent.eviction.thresholds import SIGNALS
from kpy.agent.runtime import ContainerState, RuntimeError_
from kpy.agent.volumes import EMPTY_DIR_PLUGIN

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from kpy.agent.eviction.manager import Eviction, EvictionManager
    from kpy.agent.pods import PodRecord, PodWorkers
    from kpy.agent.runtime import Runtime
    from kpy.agent.volumes import VolumeManager
    from kpy.api.core.v1 import Node
    from kpy.cache.events import EventRecorder

log = logging.getLogger("kpy.agent.eviction")

__all__ = ["EvictionMonitor"]


class EvictionMonitor:
    def __init__(
        self,
        manager: EvictionManager,
        *,
        root_dir: Path,
        workers: PodWorkers,
        runtime: Runtime,
        volumes: VolumeManager,
        events: EventRecorder,
        node: Callable[[], Node],
    ) -> None:
        self.manager = manager
        self._root = root_dir
        self._workers = workers
        self._runtime = runtime
        self._volumes = volumes
        self._events = events
        self._node = node

    async def run(self) -> None:
        """Housekeeping passes until cancelled; a failed pass is logged and
        the next one comes one interval later."""
        while True:
            try:
                await self.housekeeping()
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                log.exception("eviction pass failed; next one in one housekeeping interval")
            await anyio.sleep(self.manager.config.housekeeping_interval)

    async def measure(self) -> None:
        """Observes the node and updates the pressure conditions, evicting nothing."""
        self.manager.observe(await anyio.to_thread.run_sync(observe_node, self._root))

    async def housekeeping(self) -> Eviction | None:
        """One pass; returns the eviction it started, if any."""
        step = self.manager.observe(await anyio.to_thread.run_sync(observe_node, self._root))
        threshold = step.to_reclaim
        if threshold is None:
            return None
        resource = SIGNALS[threshold.signal].resource
        records = self._workers.records()
        stopping = [r.key for r in records if r.evicted is not None and not r.finished]
        if stopping:
            log.info("threshold met; waiting for an evicted pod to stop", extra={"pods": stopping})
            return None
        log.info("threshold met: attempting to reclaim", extra={"threshold": str(threshold)})
        self._events.event(
            self._node(), "Warning", "EvictionThresholdMet", f"Attempting to reclaim {resource}"
        )
        active = [r for r in records if _active(r)]
        stats = {r.uid: await self._stats(r, resource) for r in active}
        victim = choose(self.manager, step, [r.pod for r in active], stats)
        if victim is None:
            log.warning("threshold met, but no pod can be evicted", extra={"resource": resource})
            return None
        pod = victim.pod
        log.warning(
            "evicting pod",
            extra={
                "pod": f"{pod.metadata.namespace}/{pod.metadata.name}",
                "grace": victim.grace_period,
                "reason": victim.message,
            },
        )
        self._events.event(pod, "Warning", "Evicted", victim.message)
        self._workers.evict(pod.metadata.uid, victim.grace_period, victim.message)
        return victim

    async def _stats(self, rec: PodRecord, resource: str) -> PodStats:
        assert rec.sandbox is not None
        containers: dict[str, dict[str, int]] = {}
        volumes: dict[str, int] = {}
        if resource == "memory":
            for i in await self._runtime.list_containers(rec.sandbox.id):
                if i.state is not ContainerState.RUNNING:
                    continue
                try:
                    figures = await self._runtime.stats(i.id)
                except RuntimeError_:
                    continue  # exited meanwhile
                containers[i.name] = {"memory": figures.memory_bytes}
        elif resource in ("ephemeral-storage", "inodes"):
            m = rec.pod.metadata
            logs = self._volumes.log_dir(m.namespace, m.name, rec.uid)
            for c in rec.pod.spec.containers:
                used, inodes = await anyio.to_thread.run_sync(disk_usage, [logs / c.name])
                containers[c.name] = {"ephemeral-storage": used, "inodes": inodes}
            empty = self._volumes.pod_dir(rec.uid) / "volumes" / EMPTY_DIR_PLUGIN
            used, inodes = await anyio.to_thread.run_sync(disk_usage, [empty])
            volumes = {"ephemeral-storage": used, "inodes": inodes}
        return PodStats(containers, volumes)


def _active(rec: PodRecord) -> bool:
    """A pod with something running that is not already going."""
    return (
        rec.sandbox is not None and not rec.finished and not rec.must_stop() and rec.evicted is None
    )

"""Many simulated nodes in one process, as kwok runs them.

    SimulatedNodes(client, config, count).run()

`kpy-agent --simulated-nodes N --node-name P` runs nodes `P-1` ... `P-N`,
each what an agent of the simulated runtime is, at the cost of a few
objects rather than a process:

- each node registers its Node and renews its Lease with the agent's own
  `node.NodeAgent` (first renewals spread over one heartbeat, so that N
  nodes do not all write at once), and runs its pods with the agent's own
  `pods.PodWorkers` on a `SimulatedRuntime` of its own (state file under
  `<root>/<node>/runtime/`, so a restarted process finds its containers
  again), with its own probe manager and event recorder (events name their
  node as `source.host`);
- the nodes share one client connection, one event loop and one informer
  of each kind: a single pod watch (`spec.nodeName!=`, every bound pod)
  whose handler hands each pod to its node's workers and ignores pods of
  other nodes, and the Service informer an agent has. One watch costs the
  API server one watcher rather than N filtered ones, and the process
  decodes each pod event once. The ConfigMaps, Secrets, claims and volumes
  the pods use come from one `objects.ObjectManager` for all the nodes:
  one watch per object by name, however many nodes' pods use it.
- the pods' writes (status, events) go at most `API_IN_FLIGHT` at once,
  the role client-go's QPS and burst play for the kubelet: thousands of
  pod workers writing together would otherwise queue thousands of calls in
  the API server, ahead of every other client's (the scheduler's and the
  controller manager's Lease renewals among them). The nodes' heartbeats
  are not held by that limit: a Lease renewed late makes a node NotReady.

What a simulated node does not do: serve logs, exec or port-forward (no
gRPC server; the Node publishes port 0), run static pods, or measure
eviction thresholds (its conditions say no pressure, always).
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc

from kpy.agent.agent import COMPONENT, AgentConfig, _probe_decider
from kpy.agent.backoff import Backoff
from kpy.agent.dns import PodDNS
from kpy.agent.node import NodeAgent
from kpy.agent.objects import ObjectManager
from kpy.agent.pods import NodeView, PodWorkers
from kpy.agent.probes import ProbeManager
from kpy.agent.runtime import LABEL_POD_UID
from kpy.agent.runtime.simulated import SimulatedRuntime
from kpy.agent.volumes import VolumeManager
from kpy.api.core.v1 import Node, Pod, Service
from kpy.api.quantity import Quantity
from kpy.cache import EventHandler, SharedInformer
from kpy.cache.events import EventBroadcaster
from kpy.cache.informer import deleted_object

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from kpy.client import Client

log = logging.getLogger("kpy.agent")

REGISTER_IN_FLIGHT = 32  # nodes registering at once: a burst the API server takes
API_IN_FLIGHT = 32  # the pods' calls in flight at once (see the module docstring)


class LimitedClient:
    """`client` with at most `limit` of its calls (coroutine methods) in
    flight at once, the others waiting their turn in this process; watches
    and every other attribute pass through unchanged."""

    def __init__(self, client: Client, limit: int) -> None:
        self._client = client
        self._limiter = anyio.CapacityLimiter(limit)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        async def limited(*args: Any, **kwargs: Any) -> Any:
            async with self._limiter:
                return await attr(*args, **kwargs)

        return limited


def node_names(prefix: str, count: int) -> list[str]:
    """The names of `count` simulated nodes: `prefix-1` ... `prefix-count`."""
    return [f"{prefix}-{i}" for i in range(1, count + 1)]


class SimulatedNode:
    """One simulated node: its Node and Lease, its runtime and pod workers."""

    def __init__(
        self,
        client: Client,
        pods_client: Client,
        config: AgentConfig,
        name: str,
        stored: Callable[[str], Node | None],
    ) -> None:
        """`config` is the process's; the node takes its name, and its
        root dir becomes `config.root_dir / name`. The Node and its Lease
        are written with `client`, the pods' status and events with
        `pods_client`. `stored(name)`: the Node as the process's Node
        informer holds it."""
        root = config.root_dir / name
        self.name = name
        self.runtime = SimulatedRuntime(
            node_name=name, state_file=root / "runtime" / "simulated.json"
        )
        node_config = replace(
            config.node,
            name=name,
            root_dir=str(root),
            port=0,
            runtime_version=f"{self.runtime.name}://0.1.0",
        )
        self.node_agent = NodeAgent(client, node_config, stored=stored)
        self.broadcaster = EventBroadcaster(pods_client, host=name)
        self.probes = ProbeManager(
            self.runtime, time_scale=config.probe_time_scale, decide=_probe_decider(self.runtime)
        )
        self.root = root
        self.workers: PodWorkers | None = None

    def start_workers(
        self,
        client: Client,
        config: AgentConfig,
        objects: ObjectManager,
        services: Callable[[], Iterable[Service]],
    ) -> PodWorkers:
        recorder = self.broadcaster.new_recorder(COMPONENT)
        dns = PodDNS(
            config.dns,
            services,
            warn=lambda pod, message: recorder.event(pod, "Warning", "DNSConfigForming", message),
        )
        self.workers = PodWorkers(
            client=client,
            runtime=self.runtime,
            node=NodeView(self.name, config.node.address, self._allocatable),
            volumes=VolumeManager(self.root),
            probes=self.probes,
            objects=objects,
            events=recorder,
            backoff=Backoff(config.backoff_base, config.backoff_max, 2 * config.backoff_max),
            dns=dns,
        )
        return self.workers

    def _allocatable(self) -> Mapping[str, Quantity]:
        node = self.node_agent.node
        return {k: Quantity(v.string) for k, v in node.status.allocatable.items()}

    async def runtime_events(self) -> None:
        async for event in self.runtime.events():
            uid = event.labels.get(LABEL_POD_UID, "")
            if uid and self.workers is not None:
                self.workers.wake(uid)

    async def heartbeats(self, delay: float) -> None:
        """The node's heartbeats, the first after `delay` seconds."""
        await anyio.sleep(delay)
        await self.node_agent.run()


class SimulatedNodes:
    """`count` simulated nodes named after `config.node.name`; see the
    module docstring."""

    def __init__(self, client: Client, config: AgentConfig, count: int) -> None:
        if count < 1:
            raise ValueError(f"--simulated-nodes must be at least 1, got {count}")
        self._client = client
        # What the pods write, through the limit (see the module docstring).
        self._pods_client = cast("Client", LimitedClient(client, API_IN_FLIGHT))
        self.config = config
        # The heartbeats compare with the stored Node (a returning process
        # says Ready again at once): from this informer, not a get each.
        self._node_informer: SharedInformer[Node] = SharedInformer(client, Node)
        stored = self._node_informer.indexer.get_by_key
        self.nodes = {
            name: SimulatedNode(client, self._pods_client, config, name, stored)
            for name in node_names(config.node.name, count)
        }
        self._node_of: dict[str, SimulatedNode] = {}  # pod uid -> its node
        self._objects = ObjectManager(client, self._wake_for_object)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[list[str]] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Registers every node, runs their pods and heartbeats until
        cancelled; `task_status` gets the node names once all are
        registered and the pods they had are known."""
        nodes = list(self.nodes.values())
        for node in nodes:
            await node.runtime.start()
        try:
            async with anyio.create_task_group() as tg:
                await _bounded(REGISTER_IN_FLIGHT, [n.node_agent.register for n in nodes])
                log.info("registered simulated nodes", extra={"nodes": len(nodes)})
                services: SharedInformer[Service] = SharedInformer(self._client, Service)
                objects = self._objects
                await tg.start(objects.run)
                lister = services.indexer.list
                for node in nodes:
                    tg.start_soon(node.broadcaster.run)
                    tg.start_soon(node.probes.run)
                    await tg.start(
                        node.start_workers(self._pods_client, self.config, objects, lister).run
                    )
                    tg.start_soon(node.runtime_events)
                tg.start_soon(services.run)
                # As the kubelet: no container starts before the Services
                # are known, or its service link variables would miss some.
                await services.wait_for_sync()
                pods = self._pod_informer()
                every: list[SharedInformer[Any]] = [pods, self._node_informer]
                for informer in every:
                    tg.start_soon(informer.run)
                for informer in every:
                    await informer.wait_for_sync()
                for node in nodes:
                    assert node.workers is not None
                    await node.workers.adopt_orphans()
                heartbeat = self.config.node.heartbeat
                for node in nodes:
                    # Spread over one period: N nodes renew at an even pace.
                    tg.start_soon(node.heartbeats, random.uniform(0, heartbeat))
                log.info("simulated nodes ready", extra={"nodes": len(nodes)})
                task_status.started([n.name for n in nodes])
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                for node in nodes:
                    await node.runtime.close()

    def _pod_informer(self) -> SharedInformer[Pod]:
        pods: SharedInformer[Pod] = SharedInformer(
            self._client, Pod, field_selector="spec.nodeName!="
        )
        pods.add_event_handler(
            EventHandler(
                on_add=lambda pod, _: self._pod_changed(pod),
                on_update=lambda _, pod: self._pod_changed(pod),
                on_delete=self._pod_deleted,
            )
        )
        return pods

    def _pod_changed(self, pod: Pod) -> None:
        node = self.nodes.get(pod.spec.node_name)
        if node is None or node.workers is None:
            return  # bound to a node of another process
        self._node_of[pod.metadata.uid] = node
        self._objects.track(pod)
        node.workers.update(pod)

    def _pod_deleted(self, obj: Any) -> None:
        pod = deleted_object(obj)
        node = self._node_of.pop(pod.metadata.uid, None)
        if node is None or node.workers is None:
            return
        self._objects.untrack(pod.metadata.uid)
        node.workers.remove(pod.metadata.uid)

    def _wake_for_object(self, uid: str) -> None:
        node = self._node_of.get(uid)
        if node is not None and node.workers is not None:
            node.workers.wake(uid, refresh_volumes=True)


async def _bounded(limit: int, calls: list[Any]) -> None:
    """Awaits every `call()`, at most `limit` at once; the first failure
    cancels the rest and is raised."""
    todo = iter(calls)

    async def worker() -> None:
        for call in todo:
            await call()

    async with anyio.create_task_group() as tg:
        for _ in range(min(limit, len(calls))):
            tg.start_soon(worker)

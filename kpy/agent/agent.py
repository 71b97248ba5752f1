"""The node agent: one process per node, wiring the parts together.

    Agent(client, config).run()

- registers the Node and keeps its Lease and status (`node.NodeAgent`);
- watches only the pods bound to it (field selector spec.nodeName=<node>),
  each ConfigMap, Secret and volume claim those pods use, one watch per
  object by name, and the volumes of those claims (`objects`: nothing
  cluster-wide, which the node authorizer would refuse), and Services for
  their link variables (`env.service_env`);
- gives every pod a resolv.conf naming the cluster DNS (`dns`, from
  `--cluster-dns` and `--cluster-domain`);
- reads static pods from `pod_manifest_path` and publishes a mirror pod for
  each (`static_pods`); a mirror that someone deletes, or that stops
  matching its static pod, is deleted and created again, as the kubelet
  does, while the static pod's containers run on;
- hands every pod to `pods.PodWorkers`, and wakes a pod's worker on every
  change that concerns it: the pod, a container event from the runtime, a
  probe result, a ConfigMap, Secret or claim it uses (or the volume bound
  to that claim);
- serves logs, exec and usage to the API server (`server.AgentService`) on
  the address the Node publishes: with `config.tls`, over TLS behind a door
  (`kpy.door`) that answers only `config.authorized_clients` and members of
  system:masters, else in plaintext to anyone;
- measures the node every housekeeping interval against its eviction
  thresholds (`eviction`): the Node's MemoryPressure, DiskPressure and
  PIDPressure conditions, and one pod evicted at a time under pressure.

On start it first lets the runtime recover what a previous agent left
running; pods still wanted keep their containers, and sandboxes of pods
that went meanwhile are stopped once the sources have synced.

The objects pods use are watched one by one (`objects.ObjectManager`),
the same way in `simulated_nodes`, which runs many simulated nodes in one
process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
import grpc
import grpc.aio

from kpy import door
from kpy.agent import static_pods
from kpy.agent.backoff import Backoff
from kpy.agent.dns import DNSSettings, PodDNS
from kpy.agent.eviction import EvictionConfig, EvictionManager
from kpy.agent.eviction.monitor import EvictionMonitor
from kpy.agent.eviction.observe import observe_node
from kpy.agent.node import NodeAgent, NodeConfig
from kpy.agent.objects import ObjectManager
from kpy.agent.pods import NodeView, PodWorkers
from kpy.agent.probes import ProbeDecider, ProbeManager
from kpy.agent.runtime import LABEL_POD_UID
from kpy.agent.runtime.simulated import SimulatedRuntime
from kpy.agent.server import AgentService, add_to_server
from kpy.agent.volumes import VolumeManager
from kpy.api import errors
from kpy.api.core.v1 import Pod, Service
from kpy.api.meta.v1 import Preconditions
from kpy.api.quantity import Quantity
from kpy.cache import EventHandler, SharedInformer
from kpy.cache.events import EventBroadcaster
from kpy.cache.informer import deleted_object

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from kpy.agent.runtime import Runtime
    from kpy.client import Client
    from kpy.door import ServingTLS

log = logging.getLogger("kpy.agent")

COMPONENT = "kpy-agent"
#: Who the agent's TLS door answers by default: the API server's
#: --kubelet-client-certificate, by kubeadm's name for it.
DEFAULT_AUTHORIZED_CLIENTS = "kube-apiserver-kubelet-client"


def _probe_decider(runtime: Runtime) -> ProbeDecider | None:
    """Who answers probes in place of running them: the simulated runtime,
    whose containers run nothing; nobody for the others."""
    return runtime.probe if isinstance(runtime, SimulatedRuntime) else None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    node: NodeConfig
    root_dir: Path
    address: str = "127.0.0.1"
    port: int = 10250  # 0: any free port
    pod_manifest_path: Path | None = None
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    probe_time_scale: float = 1.0
    eviction: EvictionConfig = field(default_factory=EvictionConfig.default)
    # --cluster-dns / --cluster-domain: what pods' resolv.conf names.
    dns: DNSSettings = field(default_factory=DNSSettings)
    #: --tls-cert-file, --tls-private-key-file, --client-ca-file (None: plaintext to anyone)
    tls: ServingTLS | None = None
    #: --authorized-clients: the users the TLS door answers (and system:masters)
    authorized_clients: frozenset[str] = frozenset({DEFAULT_AUTHORIZED_CLIENTS})


def _reachable_dns(settings: DNSSettings, runtime: Runtime) -> DNSSettings:
    """The cluster DNS servers a pod of `runtime` can reach. A loopback
    address is the host's own only for pods that share the host's network
    (the process runtime); from a container's network namespace it leads
    nowhere, so such pods fall back to the host's resolv.conf (dnsPolicy
    Default), as the kubelet's pods do when it has no cluster DNS."""
    if runtime.name != "docker":
        return settings
    reachable = tuple(ip for ip in settings.cluster_dns if not ipaddress.ip_address(ip).is_loopback)
    if reachable != settings.cluster_dns:
        log.warning(
            "--cluster-dns %s: a loopback address is unreachable from Docker containers; "
            "their pods get the host's resolv.conf. Run kpy-dns on an address containers "
            "reach (the kpy bridge's 172.30.0.1) and pass that (see deploy/README.md)",
            ",".join(settings.cluster_dns),
        )
    return replace(settings, cluster_dns=reachable)


class Agent:
    def __init__(self, client: Client, config: AgentConfig, runtime: Runtime) -> None:
        self._client = client
        self.config = config
        self.runtime = runtime
        self.port = 0
        self._node_agent: NodeAgent | None = None
        self._workers: PodWorkers | None = None
        self._static: dict[str, Pod] = {}  # full name -> static pod
        self._mirrors: dict[str, Pod] = {}  # full name -> mirror pod in the API
        self._objects = ObjectManager(client, self._wake_for_object)
        self._tg: anyio.abc.TaskGroup | None = None

    @property
    def node_name(self) -> str:
        return self.config.node.name

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        cfg = self.config
        await self.runtime.start()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                server = self._grpc_server()
                self.port = door.listen(server, cfg.address, cfg.port, cfg.tls)
                if not self.port:
                    raise OSError(f"cannot listen on {cfg.address}:{cfg.port}; is the port taken?")
                node_config = replace(
                    cfg.node, port=self.port, runtime_version=f"{self.runtime.name}://0.1.0"
                )
                evictions = EvictionManager(cfg.eviction)
                # The first status reported already says whether the node is under pressure.
                evictions.observe(await anyio.to_thread.run_sync(observe_node, cfg.root_dir))
                node_agent = self._node_agent = NodeAgent(
                    self._client, node_config, pressure=lambda: evictions.conditions
                )
                await node_agent.register()
                broadcaster = EventBroadcaster(self._client, host=self.node_name)
                tg.start_soon(broadcaster.run)
                pods = self._pod_informer()
                probes = ProbeManager(
                    self.runtime,
                    time_scale=cfg.probe_time_scale,
                    decide=_probe_decider(self.runtime),
                )
                volumes = VolumeManager(cfg.root_dir)
                recorder = broadcaster.new_recorder(COMPONENT)
                services: SharedInformer[Service] = SharedInformer(self._client, Service)
                dns = PodDNS(
                    _reachable_dns(cfg.dns, self.runtime),
                    services.indexer.list,
                    warn=lambda pod, message: recorder.event(
                        pod, "Warning", "DNSConfigForming", message
                    ),
                )
                workers = self._workers = PodWorkers(
                    client=self._client,
                    runtime=self.runtime,
                    node=NodeView(self.node_name, cfg.node.address, self._allocatable),
                    volumes=volumes,
                    probes=probes,
                    objects=self._objects,
                    events=recorder,
                    backoff=Backoff(cfg.backoff_base, cfg.backoff_max, 2 * cfg.backoff_max),
                    dns=dns,
                )
                await tg.start(workers.run)
                await tg.start(self._objects.run)
                tg.start_soon(probes.run)
                service = AgentService(workers, self.runtime, lambda: node_agent.node)
                add_to_server(service, server)
                await server.start()
                try:
                    tg.start_soon(self._runtime_events)
                    tg.start_soon(services.run)
                    # As the kubelet: no container starts before the Services
                    # are known, or its service link variables would miss some.
                    await services.wait_for_sync()
                    tg.start_soon(pods.run)
                    if cfg.pod_manifest_path is not None:
                        source = static_pods.ManifestSource(
                            cfg.pod_manifest_path,
                            self.node_name,
                            on_change=self._static_changed,
                            on_error=self._static_error,
                        )
                        tg.start_soon(source.run)
                    await pods.wait_for_sync()
                    await workers.adopt_orphans()
                    tg.start_soon(node_agent.run)
                    monitor = EvictionMonitor(
                        evictions,
                        root_dir=cfg.root_dir,
                        workers=workers,
                        runtime=self.runtime,
                        volumes=volumes,
                        events=recorder,
                        node=lambda: node_agent.node,
                    )
                    tg.start_soon(monitor.run)
                    log.info("agent ready", extra={"node": self.node_name, "port": self.port})
                    task_status.started(self.port)
                    await anyio.sleep_forever()
                finally:
                    with anyio.CancelScope(shield=True):
                        await server.stop(grace=1.0)
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.runtime.close()

    def _grpc_server(self) -> grpc.aio.Server:
        """The server of the agent's service: behind its door (`kpy.door`)
        when it serves TLS, open to anyone in plaintext otherwise."""
        cfg = self.config
        if cfg.tls is None:
            return grpc.aio.server()
        guard = door.Door(f'the agent of node "{self.node_name}"', cfg.authorized_clients)
        return grpc.aio.server(interceptors=[door.DoorInterceptor(guard)])

    def _allocatable(self) -> Mapping[str, Quantity]:
        node = self._node_agent.node if self._node_agent else None
        if node is None:
            return {}
        return {k: Quantity(v.string) for k, v in node.status.allocatable.items()}

    # -- API sources -----------------------------------------------------------------

    def _pod_informer(self) -> SharedInformer[Pod]:
        pods: SharedInformer[Pod] = SharedInformer(
            self._client, Pod, field_selector=f"spec.nodeName={self.node_name}"
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
        assert self._workers is not None
        if static_pods.is_mirror_pod(pod):
            self._mirror_changed(pod)
            return
        self._objects.track(pod)
        self._workers.update(pod)

    def _pod_deleted(self, obj: Any) -> None:
        assert self._workers is not None
        pod = deleted_object(obj)
        if static_pods.is_mirror_pod(pod):
            full = f"{pod.metadata.namespace}/{pod.metadata.name}"
            self._mirrors.pop(full, None)
            static = self._static.get(full)
            if static is not None:
                self._workers.mirror_changed(static.metadata.uid, None)
                self._ensure_mirror(static)
            return
        self._objects.untrack(pod.metadata.uid)
        self._workers.remove(pod.metadata.uid)

    def _wake_for_object(self, uid: str) -> None:
        assert self._workers is not None
        self._workers.wake(uid, refresh_volumes=True)

    async def _runtime_events(self) -> None:
        assert self._workers is not None
        async for event in self.runtime.events():
            uid = event.labels.get(LABEL_POD_UID, "")
            if uid:
                self._workers.wake(uid)

    # -- static pods -----------------------------------------------------------------

    def _static_changed(self, pods: dict[str, Pod]) -> None:
        assert self._workers is not None
        before, self._static = self._static, dict(pods)
        for full, pod in before.items():
            if pods.get(full) is None or pods[full].metadata.uid != pod.metadata.uid:
                self._objects.untrack(pod.metadata.uid)
                self._workers.remove(pod.metadata.uid)
        for pod in pods.values():
            self._objects.track(pod)
            self._workers.update(pod, static=True)
            self._ensure_mirror(pod)

    def _static_error(self, path: Path, message: str) -> None:
        log.warning("static pod manifest refused", extra={"file": str(path), "error": message})

    def _mirror_changed(self, mirror: Pod) -> None:
        """The worker of the mirror's static pod keeps the mirror's status;
        a mirror being deleted, or of another config, is replaced."""
        assert self._workers is not None
        full = f"{mirror.metadata.namespace}/{mirror.metadata.name}"
        self._mirrors[full] = mirror
        static = self._static.get(full)
        if static is None:
            return
        if static_pods.mirror_matches(mirror, static):
            self._workers.mirror_changed(static.metadata.uid, mirror)
        else:
            self._workers.mirror_changed(static.metadata.uid, None)
            self._ensure_mirror(static)

    def _ensure_mirror(self, static: Pod) -> None:
        """Creates the static pod's mirror, replacing one of another config
        or one being deleted."""
        assert self._workers is not None
        full = f"{static.metadata.namespace}/{static.metadata.name}"
        mirror = self._mirrors.get(full)
        if mirror is not None and static_pods.mirror_matches(mirror, static):
            self._workers.mirror_changed(static.metadata.uid, mirror)
            return
        if self._tg is not None:
            self._tg.start_soon(self._replace_mirror, static, mirror)

    async def _replace_mirror(self, static: Pod, old: Pod | None) -> None:
        assert self._node_agent is not None
        m = static.metadata
        if old is not None:
            # Only that mirror (a new one may be there already), at once.
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self._client.delete(
                    Pod,
                    m.name,
                    namespace=m.namespace,
                    grace_period_seconds=0,
                    preconditions=Preconditions(uid=old.metadata.uid),
                    as_node=self.node_name,
                )
        mirror = static_pods.mirror_pod(static, self._node_agent.node)
        try:
            await self._client.create(mirror, namespace=m.namespace)
        except errors.AlreadyExists:
            return  # the informer will tell us which config it has
        except errors.StatusError as e:
            log.warning(
                "cannot create mirror pod",
                extra={"pod": f"{m.namespace}/{m.name}", "error": str(e)},
            )

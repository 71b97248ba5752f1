"""The controller manager: runs the chosen controllers in one process, with
one shared informer factory, behind leader election.

`ControllerManager.run()` serves metrics at once (every replica does, so a
standby can be watched too), then, with leader election on, waits for the
Lease; while it leads it starts the informers, waits for their caches to
sync and runs each controller with its worker count. Losing the Lease ends
`run` with `LeadershipLost`: the process exits (as Kubernetes' does) and its
supervisor restarts it as a candidate, so no controller ever runs on a
stale view after another replica took over.

Controllers are named as Kubernetes names them (`replicaset`, `deployment`,
`garbagecollector`, `namespace`, `nodelifecycle`, `taint-eviction-controller`,
`daemonset`, `statefulset`, `job`, `cronjob`, `ttl-after-finished`,
`persistentvolume-binder`, `pvc-protection`, `serviceaccount`,
`root-ca-cert-publisher`, ...; and
`customresourcedefinition`, which Kubernetes runs in its API server);
`select_controllers` reads `--controllers` the same way: `*` for all, `name`
to add, `-name` to leave out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import anyio
import anyio.abc

from kpy.cache.events import EventBroadcaster
from kpy.cache.informer import SharedInformerFactory
from kpy.component import ElectionOptions, LeadershipLost, run_elected
from kpy.controllers import (
    crd,
    deployment,
    disruption,
    endpoints,
    endpointslice,
    garbagecollector,
    namespace,
    node_lifecycle,
    replicaset,
    root_ca_publisher,
    serviceaccount,
    taint_eviction,
    ttl_after_finished,
)
from kpy.controllers.base import ControllerContext
from kpy.controllers.cronjob.controller import new_cronjob_controller
from kpy.controllers.daemonset import new_daemonset_controller
from kpy.controllers.job.controller import new_job_controller
from kpy.controllers.node_lifecycle import NodeLifecycleOptions
from kpy.controllers.podautoscaler import HPAOptions, new_hpa_controller
from kpy.controllers.statefulset import new_statefulset_controller
from kpy.controllers.volume import DEFAULT_LOCAL_PATH_DIR
from kpy.controllers.volume.binder import new_persistent_volume_controller
from kpy.controllers.volume.local_path import new_local_path_provisioner
from kpy.controllers.volume.protection import (
    new_pv_protection_controller,
    new_pvc_protection_controller,
)
from kpy.metrics import Metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from kpy.client import Client

log = logging.getLogger("kpy.controller_manager")

COMPONENT: Final = "kpy-controller-manager"
LEASE_NAME: Final = "kpy-controller-manager"

__all__ = [
    "ControllerContext",
    "ControllerManager",
    "ControllerSpec",
    "LeadershipLost",
    "ManagerConfig",
    "RunnableController",
    "known_controllers",
    "select_controllers",
]


class RunnableController(Protocol):
    name: str

    async def run(self, workers: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ControllerSpec:
    name: str
    new: Callable[[ControllerContext], RunnableController]
    workers: int


def known_controllers(
    *,
    node_lifecycle_options: NodeLifecycleOptions | None = None,
    hpa_options: HPAOptions | None = None,
    local_path_dir: Path = Path(DEFAULT_LOCAL_PATH_DIR),
    root_ca_file: Path | None = None,
) -> dict[str, ControllerSpec]:
    """Every controller this manager can run, with Kubernetes' default
    worker counts (--concurrent-*-syncs)."""
    options = node_lifecycle_options or NodeLifecycleOptions()
    specs = [
        ControllerSpec("replicaset", replicaset.new_replicaset_controller, 5),
        ControllerSpec("replicationcontroller", replicaset.new_replication_controller, 5),
        ControllerSpec("deployment", deployment.new_deployment_controller, 5),
        ControllerSpec("endpoint", endpoints.new_endpoints_controller, 5),
        ControllerSpec("endpointslice", endpointslice.new_endpointslice_controller, 5),
        ControllerSpec("daemonset", new_daemonset_controller, 2),
        ControllerSpec("statefulset", new_statefulset_controller, 5),
        ControllerSpec("garbagecollector", garbagecollector.new_garbage_collector, 20),
        ControllerSpec("namespace", namespace.new_namespace_controller, 10),
        ControllerSpec(
            "nodelifecycle",
            lambda ctx: node_lifecycle.new_node_lifecycle_controller(ctx, options),
            8,
        ),
        ControllerSpec(
            "taint-eviction-controller", taint_eviction.new_taint_eviction_controller, 8
        ),
        ControllerSpec("disruption", disruption.new_disruption_controller, 1),
        ControllerSpec("persistentvolume-binder", new_persistent_volume_controller, 1),
        ControllerSpec(
            "local-path-provisioner",
            lambda ctx: new_local_path_provisioner(ctx, local_path_dir),
            2,
        ),
        ControllerSpec("pvc-protection", new_pvc_protection_controller, 1),
        ControllerSpec("pv-protection", new_pv_protection_controller, 1),
        ControllerSpec("job", new_job_controller, 5),
        ControllerSpec("cronjob", new_cronjob_controller, 5),
        ControllerSpec(
            "horizontalpodautoscaling", lambda ctx: new_hpa_controller(ctx, hpa_options), 5
        ),
        ControllerSpec(
            "ttl-after-finished", ttl_after_finished.new_ttl_after_finished_controller, 5
        ),
        ControllerSpec("customresourcedefinition", crd.new_crd_controller, 5),
        ControllerSpec("serviceaccount", serviceaccount.new_serviceaccount_controller, 1),
        ControllerSpec(
            "root-ca-cert-publisher",
            lambda ctx: root_ca_publisher.new_root_ca_cert_publisher(ctx, root_ca_file),
            1,
        ),
    ]
    return {s.name: s for s in specs}


def select_controllers(requested: list[str], known: Mapping[str, ControllerSpec]) -> list[str]:
    """Kubernetes' --controllers: `*` turns on all, `foo` one, `-foo` leaves
    one out. ValueError naming an unknown controller."""
    chosen: set[str] = set()
    for item in requested:
        name = item.strip()
        if not name:
            continue
        if name == "*":
            chosen |= set(known)
            continue
        bare = name.removeprefix("-")
        if bare not in known:
            raise ValueError(
                f"--controllers: unknown controller {bare!r}; known: {', '.join(sorted(known))}"
            )
    for item in requested:
        name = item.strip()
        if name.startswith("-"):
            chosen.discard(name[1:])
        elif name and name != "*":
            chosen.add(name)
    return sorted(chosen)


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    controllers: tuple[str, ...] = ("*",)
    #: workers per controller; a controller not named keeps its default.
    workers: Mapping[str, int] = field(default_factory=dict)
    #: watch namespaced objects in this namespace only (tests); None: all.
    namespace: str | None = None
    election: ElectionOptions = field(default_factory=lambda: ElectionOptions(name=LEASE_NAME))
    metrics_host: str = "127.0.0.1"
    #: 0 picks a free port; None serves no metrics.
    metrics_port: int | None = 10257
    #: --node-monitor-grace-period and the node lifecycle controller's other flags.
    node_monitor: NodeLifecycleOptions = field(default_factory=NodeLifecycleOptions)
    #: --horizontal-pod-autoscaler-sync-period and the HPA controller's other flags.
    hpa: HPAOptions = field(default_factory=HPAOptions)
    #: --local-path-dir: where the local-path provisioner puts volumes on nodes.
    local_path_dir: Path = Path(DEFAULT_LOCAL_PATH_DIR)
    #: --root-ca-file: the CA published as ConfigMap kube-root-ca.crt in every
    #: namespace (None: nothing is published)
    root_ca_file: Path | None = None


class ControllerManager:
    def __init__(self, client: Client, config: ManagerConfig | None = None) -> None:
        self.client = client
        self.config = config or ManagerConfig()
        self.metrics = Metrics()
        known = known_controllers(
            node_lifecycle_options=self.config.node_monitor,
            hpa_options=self.config.hpa,
            local_path_dir=self.config.local_path_dir,
            root_ca_file=self.config.root_ca_file,
        )
        self.controllers = [
            known[n] for n in select_controllers(list(self.config.controllers), known)
        ]
        self.leading = anyio.Event()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[int | None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Runs until cancelled (or LeadershipLost); reports the metrics port."""
        cfg = self.config
        await run_elected(
            COMPONENT,
            self.client,
            self.metrics,
            cfg.election,
            self.run_controllers,
            metrics_host=cfg.metrics_host,
            metrics_port=cfg.metrics_port,
            task_status=task_status,
        )

    async def run_controllers(self) -> None:
        """Starts informers and controllers; runs until cancelled."""
        cfg = self.config
        informers = SharedInformerFactory(self.client, namespace=cfg.namespace)
        cluster = informers if cfg.namespace is None else SharedInformerFactory(self.client)
        events = EventBroadcaster(self.client)
        ctx = ControllerContext(self.client, informers, self.metrics, cluster, events)
        running = [
            (spec.new(ctx), cfg.workers.get(spec.name, spec.workers)) for spec in self.controllers
        ]
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run)
            tg.start_soon(informers.run)
            if cluster is not informers:
                tg.start_soon(cluster.run)
            await informers.wait_for_cache_sync()
            await cluster.wait_for_cache_sync()
            for controller, workers in running:
                tg.start_soon(controller.run, workers)
            log.info("controllers running", extra={"controllers": [c.name for c, _ in running]})
            self.leading.set()

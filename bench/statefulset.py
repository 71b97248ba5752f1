"""statefulset: a StatefulSet of 100 replicas with a volumeClaimTemplate,
and a DaemonSet on 1,000 nodes, each timed to all pods Ready next to the
same number of pods created directly in the same run. The ratios are the
controllers' overhead (and, for the StatefulSet, the claims' binding).

Both parts share one `kpy-scheduler` process and one
`kpy-controller-manager` process running the statefulset, daemonset and
persistentvolume-binder controllers alone (leading before any clock starts,
running for both sides, so their informers cost the baseline what they
cost the workload). Each side runs in a namespace of its own; the sides
alternate (baseline first).

- StatefulSet: `Sizes.agents` `kpy-agent` processes (simulated runtime,
  Ready before the clock starts). The set is `podManagementPolicy:
  Parallel`, 100 replicas, with a claim template `data` of a StorageClass of
  the run (`kubernetes.io/no-provisioner`, `Immediate`) for which the
  benchmark made 100 hostPath PersistentVolumes beforehand (each its own
  directory): the PV controller binds each claim `data-bench-N` to one,
  the scheduler's VolumeBinding plugin waits for it, and the agent uses the
  volume's directory in place (the simulated runtime runs nothing, so
  nothing is mounted; the agent's volume step still resolves the claim
  and its volume). Clock from the set's create until a pod watch (opened
  before) has seen all 100 pods Ready. Baseline: the same 100 pods, without
  the claim, created directly (32 in flight) through the same scheduler and
  agents, timed the same way.
- DaemonSet: 1,000 nodes are Node objects of this run, labelled
  `bench.kpy.io/hollow`, with a "hollow kubelet" in the benchmark process
  (as Kubernetes' kubemark does): one pod watch that writes each pod bound
  to a hollow node Running and Ready (a status patch, 32 in flight). 1,000
  `kpy-agent` processes would not fit the machine, and the agent's own
  path is the `agent` benchmark's. The DaemonSet selects the hollow nodes
  (nodeSelector); the DaemonSet controller makes one pod per node with the
  required node affinity on `metadata.name` and the scheduler places them.
  Baseline: the same 1,000 pods (the nodeSelector and that affinity, one
  pod per node) created directly, 32 in flight, through the same scheduler
  and hollow kubelet. Each side is timed from its first create to the last
  pod Ready seen on a pod watch opened before.

Nodes are never deleted by the run (a Node outside a namespace outlives it):
they carry the run id in their names, so runs never meet.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from bench._context import create_namespace, leading
from bench._load import concurrent
from bench._report import Result, Row
from kpy.agent.process import AgentProcess
from kpy.api.apps.v1 import DaemonSet, StatefulSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Node, PersistentVolume, PersistentVolumeClaim, Pod
from kpy.api.storage.v1 import StorageClass
from kpy.client import Client
from kpy.controllers.process import ControllerManagerProcess
from kpy.scheduler.process import SchedulerProcess

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench._context import Context

NAME = "statefulset"
IN_FLIGHT = 32
HOLLOW = "bench.kpy.io/hollow"
CONTROLLERS = "statefulset,daemonset,persistentvolume-binder"


@dataclass(frozen=True, slots=True)
class Sizes:
    agents: int
    replicas: int  # of the StatefulSet
    nodes: int  # hollow nodes, one daemon pod each
    seconds: float  # a bound on each side, so a broken controller fails the run


NORMAL = Sizes(agents=5, replicas=100, nodes=1_000, seconds=300.0)
QUICK = Sizes(agents=2, replicas=20, nodes=100, seconds=120.0)


def pod_spec() -> dict[str, Any]:
    """The spec of every pod of the run: one small container that the
    simulated runtime keeps running."""
    return {
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "c",
                "image": "registry.local/app:1",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ],
    }


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    with tempfile.TemporaryDirectory(prefix="kpy-bench-sts-") as root:
        names = [f"bench-{ctx.run_id}-sts-agent-{i:02d}" for i in range(sizes.agents)]
        agents = [
            AgentProcess(
                ctx.api_address,
                name,
                Path(root) / name,
                runtime="simulated",
                extra_args=ctx.security.node_args(name),
            )
            for name in names
        ]
        ctx.progress.phase(NAME, f"starting {sizes.agents} agents")
        try:
            # Started from this thread, not a worker thread (see bench/job.py).
            for agent in agents:
                agent.start()
            async with Client(ctx.api_address, retry_timeout=10.0) as client:
                await _nodes_ready(client, [a.node_name for a in agents])
                manager = ControllerManagerProcess(
                    ctx.api_address,
                    extra_args=(
                        f"--controllers={CONTROLLERS}",
                        *ctx.security.component_args("controller-manager"),
                    ),
                )
                scheduler = SchedulerProcess(
                    ctx.api_address, extra_args=ctx.security.component_args("scheduler")
                )
                ctx.progress.phase(NAME, "starting kpy-scheduler and kpy-controller-manager")
                async with leading(scheduler), leading(manager):
                    sts_direct = await _sts_direct(ctx, sizes, client)
                    bare, bare_scheduled, _ = await _statefulset(ctx, sizes, client, "")
                    storage_class = await _volumes(ctx, sizes, client, Path(root))
                    sts, sts_scheduled, sts_bound = await _statefulset(
                        ctx, sizes, client, storage_class
                    )
                    nodes = await _hollow_nodes(ctx, sizes, client)
                    async with anyio.create_task_group() as kubelet:
                        kubelet.start_soon(_hollow_kubelet, client, set(nodes))
                        ds_direct = await _ds_direct(ctx, sizes, client, nodes)
                        ds, ds_scheduled, _ = await _daemonset(ctx, sizes, client)
                        kubelet.cancel_scope.cancel()
        finally:
            for agent in agents:
                agent.stop()
    rows = [
        Row(NAME, f"StatefulSet, {sizes.replicas} Parallel, to Ready", "s", bare, sts_direct),
        Row(
            NAME, f"StatefulSet, {sizes.replicas} Parallel + claims, to Ready", "s", sts, sts_direct
        ),
        Row(NAME, f"DaemonSet on {sizes.nodes} nodes, to Ready", "s", ds, ds_direct),
    ]
    return Result(
        rows=rows,
        aims=[],
        details={
            "agents": sizes.agents,
            "replicas": sizes.replicas,
            "hollow_nodes": sizes.nodes,
            "statefulset_no_claims_s": round(bare, 2),
            "statefulset_no_claims_all_scheduled_s": round(bare_scheduled, 2),
            "statefulset_all_claims_bound_s": round(sts_bound, 2),
            "statefulset_all_scheduled_s": round(sts_scheduled, 2),
            "daemonset_all_scheduled_s": round(ds_scheduled, 2),
            "statefulset_s": round(sts, 2),
            "statefulset_direct_s": round(sts_direct, 2),
            "statefulset_ratio": round(sts / sts_direct, 2),
            "daemonset_s": round(ds, 2),
            "daemonset_direct_s": round(ds_direct, 2),
            "daemonset_ratio": round(ds / ds_direct, 2),
            "baseline": "the same pods created directly (32 in flight), same scheduler and nodes",
        },
    )


async def _nodes_ready(client: Client, names: list[str], seconds: float = 60.0) -> None:
    with anyio.fail_after(seconds):
        while True:
            ready = {n.metadata.name for n in (await client.list(Node)).items if _ready(n)}
            if ready.issuperset(names):
                return
            await anyio.sleep(0.2)


def _ready(obj: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in obj.status.conditions)


async def _until_ready(
    events: Any, count: int, seconds: float, seen: Callable[[Pod], None] = lambda _: None
) -> None:
    """Returns once `count` distinct pods were seen Ready on `events`;
    `seen` is shown every pod event."""
    ready: set[str] = set()
    with anyio.fail_after(seconds):
        async for event in events:
            pod = event.object
            seen(pod)
            if pod.status.phase == "Failed":
                raise RuntimeError(f"pod {pod.metadata.name} failed: {pod.status.message}")
            if _ready(pod):
                ready.add(pod.metadata.name)
                if len(ready) == count:
                    return


async def _create_timed(client: Client, namespace: str, pods: list[Pod], seconds: float) -> float:
    """Creates `pods` (IN_FLIGHT at once); seconds from the first create
    until a pod watch, opened before, saw every one Ready."""
    todo = iter(pods)

    async def create() -> None:
        await client.create(next(todo))

    async with client.watch(Pod, namespace=namespace) as events:
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: concurrent(create, count=len(pods), seconds=seconds, in_flight=IN_FLIGHT)
            )
            await _until_ready(events, len(pods), seconds)
        return time.perf_counter() - started


async def _create_one_timed(
    client: Client, namespace: str, obj: Any, count: int, seconds: float
) -> tuple[float, float, float]:
    """Creates `obj` (a workload); seconds until watches opened before saw
    `count` of its pods Ready, all of them bound to a node, and `count`
    claims Bound (NaN if the namespace has no claims)."""
    scheduled: set[str] = set()
    bound: set[str] = set()
    at = {"scheduled": float("nan"), "bound": float("nan")}

    async def watch_claims(events: Any) -> None:
        async for event in events:
            if event.object.status.phase == "Bound":
                bound.add(event.object.metadata.name)
                if len(bound) == count:
                    at["bound"] = time.perf_counter() - started
                    return

    def seen(pod: Pod) -> None:
        if pod.spec.node_name:
            scheduled.add(pod.metadata.name)
            if len(scheduled) == count and at["scheduled"] != at["scheduled"]:  # still NaN
                at["scheduled"] = time.perf_counter() - started

    async with (
        client.watch(Pod, namespace=namespace) as events,
        client.watch(PersistentVolumeClaim, namespace=namespace) as claims,
        anyio.create_task_group() as tg,
    ):
        started = time.perf_counter()
        tg.start_soon(watch_claims, claims)
        await client.create(obj)
        await _until_ready(events, count, seconds, seen)
        ready = time.perf_counter() - started
        tg.cancel_scope.cancel()
    return ready, at["scheduled"], at["bound"]


def _pod(namespace: str, name: str, labels: dict[str, str], **spec: Any) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {**pod_spec(), **spec},
        },
    )


async def _sts_direct(ctx: Context, sizes: Sizes, client: Client) -> float:
    namespace = ctx.namespace(f"{NAME}-direct")
    await create_namespace(client, namespace)
    ctx.progress.phase(NAME, f"baseline: {sizes.replicas} pods created directly")
    pods = [_pod(namespace, f"bench-{i}", {"app": "bench-sts"}) for i in range(sizes.replicas)]
    return await _create_timed(client, namespace, pods, sizes.seconds)


async def _volumes(ctx: Context, sizes: Sizes, client: Client, root: Path) -> str:
    """A StorageClass of the run (no provisioner, Immediate) and
    `sizes.replicas` hostPath volumes of it, each its own directory under
    `root`; the class's name."""
    storage_class = f"bench-{ctx.run_id}-manual"
    ctx.progress.phase(NAME, f"StorageClass {storage_class} and {sizes.replicas} volumes")
    await client.create(
        from_dict(
            StorageClass,
            {
                "metadata": {"name": storage_class},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "Immediate",
                "reclaimPolicy": "Retain",
            },
        )
    )
    names = itertools.count()

    async def volume() -> None:
        i = next(names)
        path = root / "volumes" / f"pv-{i:03d}"
        path.mkdir(parents=True)
        await client.create(
            from_dict(
                PersistentVolume,
                {
                    "metadata": {"name": f"{storage_class}-{i:03d}"},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": storage_class,
                        "hostPath": {"path": str(path)},
                    },
                },
            )
        )

    await concurrent(volume, count=sizes.replicas, seconds=sizes.seconds, in_flight=IN_FLIGHT)
    return storage_class


async def _statefulset(
    ctx: Context, sizes: Sizes, client: Client, storage_class: str
) -> tuple[float, float, float]:
    """A Parallel StatefulSet of `sizes.replicas`, with a claim template of
    `storage_class` unless that is empty; seconds to all its pods Ready."""
    namespace = ctx.namespace(f"{NAME}-claims" if storage_class else NAME)
    await create_namespace(client, namespace)
    labels = {"app": "bench-sts"}
    spec: dict[str, Any] = {
        "replicas": sizes.replicas,
        "podManagementPolicy": "Parallel",
        "serviceName": "bench",
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec()},
    }
    if storage_class:
        container = spec["template"]["spec"]["containers"][0]
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": storage_class,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ]
    statefulset = from_dict(
        StatefulSet, {"metadata": {"name": "bench", "namespace": namespace}, "spec": spec}
    )
    what = "with claims" if storage_class else "without claims"
    ctx.progress.phase(NAME, f"a StatefulSet of {sizes.replicas} replicas (Parallel, {what})")
    return await _create_one_timed(client, namespace, statefulset, sizes.replicas, sizes.seconds)


async def _hollow_nodes(ctx: Context, sizes: Sizes, client: Client) -> list[str]:
    names = [f"bench-{ctx.run_id}-hollow-{i:04d}" for i in range(sizes.nodes)]
    ctx.progress.phase(NAME, f"creating {sizes.nodes} hollow nodes")
    todo = iter(names)

    async def create() -> None:
        name = next(todo)
        status = {
            "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Hollow"}],
        }
        node = from_dict(Node, {"metadata": {"name": name, "labels": {HOLLOW: "true"}}})
        await client.create(node)
        # A node's status is written through its status subresource, as an agent does.
        await client.patch(Node, name, {"status": status}, patch_type="merge", subresource="status")

    await concurrent(create, count=len(names), seconds=sizes.seconds, in_flight=IN_FLIGHT)
    return names


async def _hollow_kubelet(client: Client, nodes: set[str]) -> None:
    """Writes every pod bound to one of `nodes` Running and Ready."""
    done: set[str] = set()
    send, receive = anyio.create_memory_object_stream[Pod](max_buffer_size=100_000)

    async def writer() -> None:
        async for pod in receive:
            await client.patch(
                Pod,
                pod.metadata.name,
                {
                    "status": {
                        "phase": "Running",
                        "podIP": "10.0.0.1",
                        "conditions": [
                            {"type": "PodScheduled", "status": "True"},
                            {"type": "Initialized", "status": "True"},
                            {"type": "ContainersReady", "status": "True"},
                            {"type": "Ready", "status": "True"},
                        ],
                        "containerStatuses": [
                            {
                                "name": "c",
                                "ready": True,
                                "started": True,
                                "image": "app",
                                "imageID": "app",
                                "state": {"running": {}},
                            }
                        ],
                    }
                },
                namespace=pod.metadata.namespace,
                patch_type="merge",
                subresource="status",
            )

    async with client.watch(Pod) as events, anyio.create_task_group() as tg:
        for _ in range(IN_FLIGHT):
            tg.start_soon(writer)
        async for event in events:
            pod = event.object
            if pod.spec.node_name in nodes and pod.metadata.uid not in done:
                done.add(pod.metadata.uid)
                await send.send(pod)


def _daemon_template() -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "bench-ds"}},
        "spec": {**pod_spec(), "nodeSelector": {HOLLOW: "true"}},
    }


def _pinned(node: str) -> dict[str, Any]:
    """The required node affinity the DaemonSet controller gives its pod for `node`."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


async def _ds_direct(ctx: Context, sizes: Sizes, client: Client, nodes: list[str]) -> float:
    namespace = ctx.namespace(f"{NAME}-ds-direct")
    await create_namespace(client, namespace)
    ctx.progress.phase(NAME, f"baseline: {len(nodes)} pods, one per hollow node, created directly")
    template = _daemon_template()
    pods = [
        _pod(
            namespace,
            f"daemon-{i:04d}",
            template["metadata"]["labels"],
            nodeSelector=template["spec"]["nodeSelector"],
            affinity=_pinned(node),
        )
        for i, node in enumerate(nodes)
    ]
    return await _create_timed(client, namespace, pods, sizes.seconds)


async def _daemonset(ctx: Context, sizes: Sizes, client: Client) -> tuple[float, float, float]:
    namespace = ctx.namespace(f"{NAME}-ds")
    await create_namespace(client, namespace)
    labels = {"app": "bench-ds"}
    daemonset = from_dict(
        DaemonSet,
        {
            "metadata": {"name": "bench", "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}, "template": _daemon_template()},
        },
    )
    ctx.progress.phase(NAME, f"a DaemonSet on {sizes.nodes} hollow nodes")
    return await _create_one_timed(client, namespace, daemonset, sizes.nodes, sizes.seconds)

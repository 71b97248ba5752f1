"""scheduler: 1,000 nodes and 10,000 pending pods (objects only, no agents),
bound by one `kpy-scheduler` process; and the scheduling decision alone.

- end to end: the pods and nodes exist before the scheduler starts; the
  clock runs from its "leading" line (caches loaded) until a pod watch,
  opened before, has seen every pod get a node. Pods bound per second.
- baseline: the same API server binding pods directly (`Client.bind` to
  random nodes, 64 in flight, the scheduler's own bind concurrency), on
  `Sizes.direct` pods of their own: what the API allows at most.
- decision alone: kpy's framework with the default profile, in this
  process, over the same 1,000 nodes held in a scheduler cache; each pod
  is decided and then assumed on its node (as the scheduler does), so
  nodes fill up as they would. Per-pod latency p50/p99 and decisions/s.
  No baseline exists in the same run (kube-scheduler is Go); the aim row
  compares with kube-scheduler's published figure for a basic workload,
  "hundreds of pods per second".

Pods request 100m cpu and 128Mi; nodes offer 32 cpu, 64Gi and 110 pods, so
everything fits and the load is the same as kube-scheduler's
SchedulingBasic. Pods carry a scheduler name of this run, so nothing else
in the cluster is scheduled.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass

import anyio

from bench._context import Context, create_namespace, leading
from bench._load import concurrent, percentile
from bench._report import Aim, Result, Row
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Node, Pod
from kpy.client import Client
from kpy.scheduler.cache import Cache
from kpy.scheduler.framework import Framework
from kpy.scheduler.process import SchedulerProcess
from kpy.scheduler.profiles import default_profile

NAME = "scheduler"
IN_FLIGHT = 32
AIM_PODS_PER_SECOND = 300.0  # "hundreds of pods per second": at least the middle of that


@dataclass(frozen=True, slots=True)
class Sizes:
    nodes: int
    pods: int
    direct: int
    decisions: int
    seconds: float  # bound on each phase


NORMAL = Sizes(nodes=1_000, pods=10_000, direct=3_000, decisions=2_000, seconds=300.0)
QUICK = Sizes(nodes=100, pods=1_000, direct=300, decisions=300, seconds=120.0)


def node(name: str) -> Node:
    return from_dict(
        Node,
        {
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            },
        },
    )


def pod(namespace: str, name: str, scheduler: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name, "namespace": namespace, "uid": name},
            "spec": {
                "schedulerName": scheduler,
                "containers": [
                    {
                        "name": "c",
                        "image": "registry.example.com/app:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    }
                ],
            },
        },
    )


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    scheduler_name = f"bench-{ctx.run_id}"
    namespace = ctx.namespace(NAME)
    node_names = [f"bench-{ctx.run_id}-node-{i:04d}" for i in range(sizes.nodes)]
    decision = _decisions(ctx, sizes, node_names, namespace, scheduler_name)
    async with Client(ctx.api_address, retry_timeout=10.0) as client:
        await create_namespace(client, namespace)
        await _create_nodes(ctx, client, node_names, sizes)
        direct = await _direct_binds(ctx, client, namespace, node_names, sizes)
        e2e = await _end_to_end(ctx, client, namespace, scheduler_name, sizes)
    per_pod, per_second = decision
    rows = [
        Row(NAME, f"{sizes.pods} pods bound, pods/s", "ops/s", e2e, direct, "higher"),
        Row(NAME, "decision p50", "ms", percentile(per_pod, 50) * 1e3),
        Row(NAME, "decision p99", "ms", percentile(per_pod, 99) * 1e3),
        Row(NAME, "decisions/s (one core)", "ops/s", per_second),
    ]
    aims = [
        Aim(
            f"scheduler: >= {AIM_PODS_PER_SECOND:.0f} pods/s end to end over {sizes.nodes} nodes",
            e2e >= AIM_PODS_PER_SECOND,
            f"{e2e:,.0f} pods/s (direct binds through the API: {direct:,.0f}/s)",
        )
    ]
    return Result(
        rows=rows,
        aims=aims if not ctx.quick else [],
        details={"nodes": sizes.nodes, "pods": sizes.pods, "direct_binds": sizes.direct},
    )


async def _create_nodes(ctx: Context, client: Client, names: list[str], sizes: Sizes) -> None:
    ctx.progress.phase(NAME, f"creating {len(names)} nodes")
    todo = iter(names)

    async def create() -> None:
        made = node(next(todo))
        created = await client.create(made)
        created.status.CopyFrom(made.status)
        await client.update_status(created)

    await concurrent(create, count=len(names), seconds=sizes.seconds, in_flight=IN_FLIGHT)


async def _create_pods(
    client: Client, namespace: str, prefix: str, count: int, scheduler: str, sizes: Sizes
) -> list[str]:
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    todo = iter(names)

    async def create() -> None:
        name = next(todo)
        made = pod(namespace, name, scheduler)
        made.metadata.ClearField("uid")
        await client.create(made)

    done = await concurrent(create, count=count, seconds=sizes.seconds, in_flight=IN_FLIGHT)
    if done.ops != count:
        raise RuntimeError(f"created only {done.ops} of {count} pods within the bound")
    return names


async def _direct_binds(
    ctx: Context, client: Client, namespace: str, nodes: list[str], sizes: Sizes
) -> float:
    ctx.progress.phase(NAME, f"baseline: {sizes.direct} pods bound directly")
    names = await _create_pods(client, namespace, "direct", sizes.direct, "nobody", sizes)
    todo = iter(names)
    rng = random.Random(1)

    async def bind() -> None:
        await client.bind(next(todo), rng.choice(nodes), namespace=namespace)

    done = await concurrent(bind, count=len(names), seconds=sizes.seconds, in_flight=64)
    return done.per_second


async def _end_to_end(
    ctx: Context, client: Client, namespace: str, scheduler_name: str, sizes: Sizes
) -> float:
    ctx.progress.phase(NAME, f"creating {sizes.pods} pending pods")
    await _create_pods(client, namespace, "pod", sizes.pods, scheduler_name, sizes)
    process = SchedulerProcess(ctx.api_address, extra_args=(f"--scheduler-name={scheduler_name}",))
    ctx.progress.phase(NAME, f"kpy-scheduler binding {sizes.pods} pods to {sizes.nodes} nodes")
    bound: set[str] = set()
    async with client.watch(Pod, namespace=namespace) as events, leading(process):
        started = time.perf_counter()
        with anyio.fail_after(sizes.seconds):
            async for event in events:
                obj = event.object
                if obj.spec.node_name and obj.spec.scheduler_name == scheduler_name:
                    bound.add(obj.metadata.name)
                    if len(bound) == sizes.pods:
                        break
        elapsed = time.perf_counter() - started
    return sizes.pods / elapsed


def _decisions(
    ctx: Context, sizes: Sizes, node_names: list[str], namespace: str, scheduler_name: str
) -> tuple[list[float], float]:
    """The framework alone: decide, then assume, pod after pod."""
    ctx.progress.phase(NAME, f"decision alone: {sizes.decisions} pods over {sizes.nodes} nodes")
    cache = Cache()
    for name in node_names:
        cache.add_node(node(name))
    framework = Framework(default_profile(scheduler_name))
    rng = random.Random(7)
    nodes = cache.node_infos()
    latencies: list[float] = []
    begin = time.perf_counter()
    for i in itertools.islice(itertools.count(), sizes.decisions):
        candidate = pod(namespace, f"decide-{i:05d}", scheduler_name)
        started = time.perf_counter()
        result = framework.schedule_pod(candidate, nodes, rng)
        latencies.append(time.perf_counter() - started)
        assert result.node_info is not None
        candidate.spec.node_name = result.node_info.name
        cache.assume_pod(candidate)
    return latencies, sizes.decisions / (time.perf_counter() - begin)

"""scheduler: 1,000 nodes and 10,000 pending pods (objects only, no agents),
bound by one `kpy-scheduler` process; and the scheduling decision alone.

- end to end: the pods and nodes exist before the scheduler starts; the
  clock runs from its "leading" line (caches loaded) until a pod watch,
  opened before, has seen every pod get a node. Pods bound per second.
- baseline: the same API server binding pods directly (`Client.bind` to
  random nodes, 64 in flight, the scheduler's own bind concurrency), on
  `Sizes.direct` pods of their own: what the API allows at most.
- decision alone: kpy's framework with the default profile, in this
  process, over nodes held in a scheduler cache (1,000, as end to end, and
  5,000, in three zones); each pod is decided and then assumed on its
  node (as the scheduler does), so nodes fill up as they would;
  decisions/s counts the decision and the assume. The pods are
  Deployments' (100 replicas each, owned by a ReplicaSet), so
  PodTopologySpread spreads them by the system default constraints
  (hostname maxSkew 3, zone maxSkew 5), as the scheduler would. The scheduler's path is
  `Framework.schedule_table` over the cache's NodeTable (filters and
  scores over numpy columns); its same-run baseline is the per-node path
  (`Framework.schedule_pod` over `Cache.node_infos()`) on the same pods,
  which decides exactly the same (tests/unit/scheduler/test_node_table.py).
  Per-pod latency p50/p99 at 5,000 nodes. Aims: >= 3,000 decisions/s at
  5,000 nodes; end to end >= 0.9x the direct binds of the same run.

Pods request 100m cpu and 128Mi; nodes offer 32 cpu, 64Gi and 110 pods, so
everything fits and the load is the same as kube-scheduler's
SchedulingBasic. Pods carry a scheduler name of this run, so nothing else
in the cluster is scheduled.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import anyio

from bench._context import Context, create_namespace, leading
from bench._load import concurrent, percentile
from bench._report import Aim, Result, Row
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Node, Pod
from kpy.api.labels import Selector, selector_from_set
from kpy.client import Client
from kpy.scheduler.cache import Cache
from kpy.scheduler.framework import Framework
from kpy.scheduler.process import SchedulerProcess
from kpy.scheduler.profiles import default_profile

NAME = "scheduler"
IN_FLIGHT = 32
AIM_DECISIONS_PER_SECOND = 3_000.0  # at Sizes.decision_nodes (issue 22)
AIM_END_TO_END_RATIO = 0.9  # of the direct binds through the API, same run
ZONES = 3  # nodes' topology.kubernetes.io/zone values, round robin
REPLICAS = 100  # the decision alone's pods come in Deployments of this many


@dataclass(frozen=True, slots=True)
class Sizes:
    nodes: int
    pods: int
    direct: int
    decisions: int
    decision_nodes: int  # the larger cluster the decision alone is measured over
    seconds: float  # bound on each phase


NORMAL = Sizes(
    nodes=1_000, pods=10_000, direct=3_000, decisions=2_000, decision_nodes=5_000, seconds=300.0
)
QUICK = Sizes(nodes=100, pods=1_000, direct=300, decisions=300, decision_nodes=500, seconds=120.0)


@dataclass(frozen=True, slots=True)
class Decisions:
    """The decision alone over one cluster size, both paths."""

    nodes: int
    latencies: list[float]  # the table path's, per pod
    per_second: float  # the table path
    per_node_per_second: float  # the per-node path, same pods
    per_cpu_second: float  # the table path, per second of this process's CPU


def node(name: str) -> Node:
    zone = f"zone-{int(name.rsplit('-', 1)[1]) % ZONES}"
    labels = {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}
    return from_dict(
        Node,
        {
            "metadata": {"name": name, "labels": labels},
            "status": {
                "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            },
        },
    )


def pod(namespace: str, name: str, scheduler: str, replica_set: str = "") -> Pod:
    """A pod; with `replica_set`, one of that ReplicaSet's (a Deployment's)."""
    meta: dict[str, object] = {"name": name, "namespace": namespace, "uid": name}
    if replica_set:
        meta["labels"] = {"app": replica_set}
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": replica_set,
                "uid": replica_set,
                "controller": True,
            }
        ]
    return from_dict(
        Pod,
        {
            "metadata": meta,
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
    decisions = [
        _decisions(ctx, sizes, n, namespace, scheduler_name)
        for n in (sizes.nodes, sizes.decision_nodes)
    ]
    async with Client(ctx.api_address, retry_timeout=10.0) as client:
        await create_namespace(client, namespace)
        await _create_nodes(ctx, client, node_names, sizes)
        direct = await _direct_binds(ctx, client, namespace, node_names, sizes)
        e2e = await _end_to_end(ctx, client, namespace, scheduler_name, sizes)
    rows = [Row(NAME, f"{sizes.pods} pods bound, pods/s", "ops/s", e2e, direct, "higher")]
    for d in decisions:
        rows.append(
            Row(
                NAME,
                f"decisions/s over {d.nodes} nodes (vs per-node path)",
                "ops/s",
                d.per_second,
                d.per_node_per_second,
                "higher",
            )
        )
    large = decisions[-1]
    rows.append(
        Row(NAME, f"decisions per CPU second, {large.nodes} nodes", "ops/s", large.per_cpu_second)
    )
    rows += [
        Row(
            NAME, f"decision p50, {large.nodes} nodes", "ms", percentile(large.latencies, 50) * 1e3
        ),
        Row(
            NAME, f"decision p99, {large.nodes} nodes", "ms", percentile(large.latencies, 99) * 1e3
        ),
    ]
    ratio = e2e / direct if direct else 0.0
    aims = [
        Aim(
            f"scheduler: decision >= {AIM_DECISIONS_PER_SECOND:,.0f} pods/s at "
            f"{large.nodes:,} nodes",
            large.per_second >= AIM_DECISIONS_PER_SECOND,
            f"{large.per_second:,.0f} decisions/s, {large.per_cpu_second:,.0f} per CPU second "
            f"(per-node path: {large.per_node_per_second:,.0f}/s)",
        ),
        Aim(
            f"scheduler: end to end >= {AIM_END_TO_END_RATIO}x direct binds "
            f"over {sizes.nodes} nodes",
            ratio >= AIM_END_TO_END_RATIO,
            f"{ratio:.2f}x: {e2e:,.0f} pods/s (direct binds through the API: {direct:,.0f}/s)",
        ),
    ]
    return Result(
        rows=rows,
        aims=aims if not ctx.quick else [],
        details={
            "nodes": sizes.nodes,
            "pods": sizes.pods,
            "direct_binds": sizes.direct,
            "decision_nodes": [d.nodes for d in decisions],
            "end_to_end_ratio": round(ratio, 4),
        },
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
    process = SchedulerProcess(
        ctx.api_address,
        extra_args=(
            f"--scheduler-name={scheduler_name}",
            *ctx.security.component_args("scheduler"),
        ),
    )
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
    ctx: Context, sizes: Sizes, node_count: int, namespace: str, scheduler_name: str
) -> Decisions:
    """The framework alone, both paths on the same pods: decide, then
    assume, pod after pod, each path on a cache of its own."""
    ctx.progress.phase(NAME, f"decision alone: {sizes.decisions} pods over {node_count} nodes")
    pods = [
        pod(namespace, f"decide-{i:05d}", scheduler_name, f"deploy-{i // REPLICAS}")
        for i in range(sizes.decisions)
    ]
    names = [f"bench-{ctx.run_id}-node-{i:05d}" for i in range(node_count)]
    table_latencies, table_rate, table_cpu_rate = _decide_all(
        pods, names, scheduler_name, table=True
    )
    _, per_node_rate, _ = _decide_all(pods, names, scheduler_name, table=False)
    return Decisions(node_count, table_latencies, table_rate, per_node_rate, table_cpu_rate)


def _decide_all(
    pods: list[Pod], node_names: list[str], scheduler_name: str, *, table: bool
) -> tuple[list[float], float, float]:
    """Per-pod latencies, decisions per second, and decisions per second of
    this process's CPU (what the machine's other load does not move)."""
    cache = Cache()
    for name in node_names:
        cache.add_node(node(name))
    cache.table()  # built once, as the scheduler's first cycle does
    framework = Framework(
        default_profile(scheduler_name, default_spread_selector=_replica_set_selector)
    )
    rng = random.Random(7)
    latencies: list[float] = []
    begin, cpu_begin = time.perf_counter(), time.process_time()
    for template in pods:
        candidate = Pod()
        candidate.CopyFrom(template)
        started = time.perf_counter()
        if table:
            result = framework.schedule_table(candidate, cache.table(), rng)
        else:
            result = framework.schedule_pod(candidate, cache.node_infos(), rng)
        assert result.node_info is not None
        candidate.spec.node_name = result.node_info.name
        cache.assume_pod(candidate)
        latencies.append(time.perf_counter() - started)
    elapsed, cpu = time.perf_counter() - begin, time.process_time() - cpu_begin
    return latencies, len(pods) / elapsed, len(pods) / cpu


def _replica_set_selector(p: Pod) -> Selector | None:
    """The default topology spread selector (kpy.scheduler.spreading) of a
    pod whose ReplicaSet selects `app`: the scheduler's answer, without the
    informers it reads the ReplicaSet from."""
    app = p.metadata.labels.get("app")
    return selector_from_set({"app": app}) if app else None

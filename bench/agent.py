"""agent: 10 `kpy-agent` processes (simulated runtime) start 2,000 pods.

- kpy: pods are created already bound (spec.nodeName, round robin over the
  agents; 32 creates in flight), so the figure is the agent's path alone:
  its watch sees the pod, a worker makes the sandbox and containers, and
  writes the status. Latency per pod runs from just before its create call
  to the moment a pod watch, opened before, sees it Running; throughput is
  pods Running per second from the first create to the last Running.
- baseline: the least the API allows for the same outcome: the benchmark
  creates `Sizes.direct` pods and writes each one's Running status itself
  (a create, then a status patch), measured the same way in the same run.

Kubernetes' own SLO for stateless pod start-up is p99 under 5 s (at 100
pods per node); the aim is well under that.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from bench._context import create_namespace
from bench._load import concurrent, percentile
from bench._report import Aim, Result, Row
from kpy.agent.process import AgentProcess
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.client import Client

if TYPE_CHECKING:
    from bench._context import Context

NAME = "agent"
IN_FLIGHT = 32
AIM_P99_SECONDS = 5.0  # Kubernetes' pod start-up SLO


@dataclass(frozen=True, slots=True)
class Sizes:
    agents: int
    pods: int
    direct: int
    seconds: float  # bound on each phase


NORMAL = Sizes(agents=10, pods=2_000, direct=1_000, seconds=300.0)
QUICK = Sizes(agents=2, pods=200, direct=100, seconds=120.0)


def pod(namespace: str, name: str, node: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "app",
                        "image": "registry.local/app:1",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }
                ],
            },
        },
    )


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    namespace = ctx.namespace(NAME)
    with tempfile.TemporaryDirectory(prefix="kpy-bench-agents-") as root:
        names = [f"bench-{ctx.run_id}-agent-{i:02d}" for i in range(sizes.agents)]
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
        async with Client(ctx.api_address, retry_timeout=10.0) as client:
            await create_namespace(client, namespace)
            ctx.progress.phase(NAME, f"baseline: {sizes.direct} pods created and set Running")
            direct = await _measure(client, namespace, "direct", sizes.direct, [], sizes)
            ctx.progress.phase(NAME, f"starting {sizes.agents} agents")
            try:
                async with anyio.create_task_group() as tg:
                    for agent in agents:
                        tg.start_soon(anyio.to_thread.run_sync, agent.start)
                nodes = [a.node_name for a in agents]
                ctx.progress.phase(NAME, f"{sizes.pods} pods started by {sizes.agents} agents")
                kpy = await _measure(client, namespace, "pod", sizes.pods, nodes, sizes)
            finally:
                for agent in agents:
                    agent.stop()
    latencies, per_second = kpy
    direct_latencies, direct_per_second = direct
    p99 = percentile(latencies, 99)
    rows = [
        Row(NAME, "create to Running p50", "ms", percentile(latencies, 50) * 1e3,
            percentile(direct_latencies, 50) * 1e3),
        Row(NAME, "create to Running p99", "ms", p99 * 1e3, percentile(direct_latencies, 99) * 1e3),
        Row(NAME, f"{sizes.pods} pods started, pods/s", "ops/s", per_second, direct_per_second,
            "higher"),
    ]  # fmt: skip
    aims = [
        Aim(
            f"agent: create to Running p99 well under {AIM_P99_SECONDS:.0f} s "
            f"({sizes.pods} pods, {sizes.agents} agents)",
            p99 < AIM_P99_SECONDS / 2,
            f"p99 {p99:.2f} s, {per_second:,.0f} pods/s (direct: {direct_per_second:,.0f}/s)",
        )
    ]
    return Result(
        rows=rows,
        aims=aims if not ctx.quick else [],
        details={"agents": sizes.agents, "pods": sizes.pods, "direct": sizes.direct},
    )


async def _measure(
    client: Client, namespace: str, prefix: str, count: int, nodes: list[str], sizes: Sizes
) -> tuple[list[float], float]:
    """Creates `count` pods (bound to `nodes` round robin; with no nodes the
    benchmark sets each Running itself) and times each to Running."""
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    sent: dict[str, float] = {}
    running: dict[str, float] = {}
    todo = iter(enumerate(names))

    async def create() -> None:
        i, name = next(todo)
        node = nodes[i % len(nodes)] if nodes else f"nowhere-{i % 10}"
        sent[name] = time.perf_counter()
        await client.create(pod(namespace, name, node))
        if not nodes:
            await client.patch(
                Pod,
                name,
                {"status": {"phase": "Running"}},
                namespace=namespace,
                patch_type="merge",
                subresource="status",
            )

    async with client.watch(Pod, namespace=namespace) as events, anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: concurrent(create, count=count, seconds=sizes.seconds, in_flight=IN_FLIGHT)
        )
        with anyio.fail_after(sizes.seconds):
            async for event in events:
                obj = event.object
                name = obj.metadata.name
                if obj.status.phase == "Running" and name in sent and name not in running:
                    running[name] = time.perf_counter()
                    if len(running) == count:
                        break
    latencies = [running[n] - sent[n] for n in names]
    elapsed = max(running.values()) - min(sent.values())
    return latencies, count / elapsed

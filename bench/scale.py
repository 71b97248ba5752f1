"""scale: 1,000 simulated nodes and 30,000 pods made through Deployments.

- One `kpy-agent --simulated-nodes 1000` process runs every node (kwok's
  way: each node registers, renews its Lease every 10 s and runs its pods
  on the simulated runtime); a `kpy-scheduler` and a
  `kpy-controller-manager` (deployment and replicaset controllers) lead
  before the clock starts.
- 300 Deployments of 100 replicas are created at once (32 calls in
  flight); the clock runs from the first create until a pod watch, opened
  before, has seen all 30,000 pods Running. The pods select the run's
  nodes (a nodeSelector on their label), so nodes other benchmarks left
  behind take none.
- Memory: VmRSS of etcd, the API server, the controller manager, the
  scheduler and the agent process, sampled every second; the figure is
  the highest sum seen (all components at once), with each component's
  VmRSS at that moment and its VmHWM (own peak) at the end. Aim: under
  4 GiB together.
- Where the time went: CPU seconds (utime + stime from /proc/<pid>/stat)
  each process used while the pods were made, so the busiest shows.

Bounded: nodes Ready within `Sizes.ready_seconds`, pods Running within
`Sizes.seconds`; past a bound it stops with an error that says how far it
got (created, bound, Running). There is no same-run baseline: the aim is
an absolute size. `--quick`: 50 nodes, 10 Deployments of 100 (1,000 pods).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from bench._context import create_namespace, leading
from bench._load import concurrent, percentile
from bench._report import Aim, Result, Row
from kpy.agent.process import SimulatedNodesProcess
from kpy.api import errors
from kpy.api.apps.v1 import Deployment
from kpy.api.codec import from_dict
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Namespace, Node, Pod
from kpy.client import Client
from kpy.controllers.process import ControllerManagerProcess
from kpy.scheduler.process import SchedulerProcess

if TYPE_CHECKING:
    from bench._context import Context
    from kpy._process import ChildProcess

NAME = "scale"
IN_FLIGHT = 32
AIM_BYTES = 4 * 1024**3
LABEL = "bench.kpy.io/scale"
SAMPLE_EVERY = 1.0  # seconds between memory samples (and latency probes)
# The saturated API server answers a Lease renewal after more than the
# default 10 s renew deadline (it gives leases no priority, as Kubernetes'
# API Priority and Fairness would), and an elected component that cannot
# renew exits. The run measures throughput, not that: longer deadlines.
ELECTION = (
    "--leader-elect-lease-duration=120",
    "--leader-elect-renew-deadline=100",
    "--leader-elect-retry-period=2",
)
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Sizes:
    nodes: int
    deployments: int
    replicas: int
    ready_seconds: float  # bound: every node Ready
    seconds: float  # bound: every pod Running

    @property
    def pods(self) -> int:
        return self.deployments * self.replicas


NORMAL = Sizes(nodes=1_000, deployments=300, replicas=100, ready_seconds=300.0, seconds=1_800.0)
QUICK = Sizes(nodes=50, deployments=10, replicas=100, ready_seconds=120.0, seconds=300.0)


def deployment(namespace: str, name: str, replicas: int, run_id: str) -> Deployment:
    return from_dict(
        Deployment,
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "nodeSelector": {LABEL: run_id},
                        "containers": [
                            {
                                "name": "app",
                                "image": "registry.local/app:1",
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                            }
                        ],
                    },
                },
            },
        },
    )


@dataclass(frozen=True, slots=True)
class Memory:
    """Bytes resident: VmRSS now and VmHWM (the process's own peak)."""

    rss: int
    hwm: int


def memory(pid: int) -> Memory:
    """From /proc/<pid>/status."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0]) * 1024  # kB
    return Memory(fields.get("VmRSS", 0), fields.get("VmHWM", 0))


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        # The command may hold spaces and parentheses: fields start after the last ')'.
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14 and 15 of stat


class Sampler:
    """Samples the components' memory; `peak` is the sample with the
    highest sum (bytes by component)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, int] = {}

    def sample(self) -> None:
        now = {name: memory(pid).rss for name, pid in self.pids.items()}
        if sum(now.values()) > sum(self.peak.values()):
            self.peak = now

    async def run(self) -> None:
        while True:
            self.sample()
            await anyio.sleep(SAMPLE_EVERY)


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    namespace = ctx.namespace(NAME)
    prefix = f"scale-{ctx.run_id}"
    with tempfile.TemporaryDirectory(prefix="kpy-bench-scale-") as root:
        agent = SimulatedNodesProcess(
            ctx.api_address,
            prefix,
            sizes.nodes,
            Path(root),
            log_path=Path(root) / "agent.log",
            extra_args=("--node-labels", f"{LABEL}={ctx.run_id}", "--cpu", "32",
                        "--memory", "256Gi", "--max-pods", "110",
                        *ctx.security.simulated_nodes_args()),
        )  # fmt: skip
        async with Client(ctx.api_address, retry_timeout=10.0) as client:
            await create_namespace(client, namespace)
            ctx.progress.phase(NAME, f"starting {sizes.nodes} simulated nodes in one agent")
            try:
                # Started from this thread, not a worker thread (see bench/job.py).
                agent.start(timeout=sizes.ready_seconds)
                await _nodes_ready(client, agent.node_names, sizes.ready_seconds)
                manager = ControllerManagerProcess(
                    ctx.api_address,
                    extra_args=(
                        "--controllers=replicaset,deployment",
                        *ELECTION,
                        *ctx.security.component_args("controller-manager"),
                    ),
                )
                scheduler = SchedulerProcess(
                    ctx.api_address,
                    extra_args=(*ELECTION, *ctx.security.component_args("scheduler")),
                )
                ctx.progress.phase(NAME, "starting kpy-scheduler and kpy-controller-manager")
                async with leading(scheduler), leading(manager):
                    children = {
                        "controller-manager": manager,
                        "scheduler": scheduler,
                        "agent": agent,
                    }
                    pids = {
                        "etcd": ctx.etcd_pid,
                        "apiserver": ctx.api_pid,
                        **{name: child.pid for name, child in children.items()},
                    }
                    ctx.progress.phase(
                        NAME,
                        f"{sizes.deployments} Deployments x {sizes.replicas} replicas "
                        f"on {sizes.nodes} nodes",
                    )
                    measured = await _measure(ctx, client, namespace, sizes, pids, children)
                    hwm = {name: memory(pid).hwm for name, pid in pids.items()}
            except BaseException:
                print(f"kpy bench: the simulated nodes' log:\n{agent.tail()}")
                raise
            finally:
                agent.stop()
            result = _result(sizes, measured, hwm)
            ctx.progress.phase(NAME, "clean-up")
            try:
                await _clean_up(client, namespace, ctx.run_id, sizes)
            except errors.StatusError as e:
                # The figures stand; what is left only weighs on later benchmarks.
                ctx.progress.done(f"incomplete: {e}")
    return result


@dataclass(frozen=True, slots=True)
class Measured:
    seconds: float  # first create to all Running
    bound_seconds: float  # first create to all bound
    peak: dict[str, int]  # bytes resident by component at the highest total
    cpu: dict[str, float]  # CPU seconds by process while the pods were made
    probes: list[float]  # seconds a get of the namespace took, once a second


async def _measure(
    ctx: Context,
    client: Client,
    namespace: str,
    sizes: Sizes,
    pids: dict[str, int],
    children: dict[str, ChildProcess],
) -> Measured:
    sampler = Sampler(pids)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    bench_before = _own_cpu()
    names = iter(f"web-{i:03d}" for i in range(sizes.deployments))
    bound: set[str] = set()
    running: set[str] = set()
    seen: set[str] = set()
    started = time.monotonic()
    all_bound = 0.0
    probes: list[float] = []

    async def create() -> None:
        await client.create(deployment(namespace, next(names), sizes.replicas, ctx.run_id))

    async with client.watch(Pod, namespace=namespace) as events, anyio.create_task_group() as tg:
        tg.start_soon(sampler.run)
        tg.start_soon(_watch_over, children)
        tg.start_soon(_probe, client, namespace, probes)
        tg.start_soon(
            lambda: concurrent(
                create, count=sizes.deployments, seconds=sizes.seconds, in_flight=IN_FLIGHT
            )
        )
        with anyio.move_on_after(sizes.seconds) as bound_scope:
            async for event in events:
                pod = event.object
                name = pod.metadata.name
                seen.add(name)
                if pod.spec.node_name and name not in bound:
                    bound.add(name)
                    if len(bound) == sizes.pods:
                        all_bound = time.monotonic() - started
                if pod.status.phase == "Running":
                    running.add(name)
                    if len(running) == sizes.pods:
                        break
        elapsed = time.monotonic() - started
        sampler.sample()
        tg.cancel_scope.cancel()
    if bound_scope.cancelled_caught:
        raise TimeoutError(
            f"scale: {len(running):,} of {sizes.pods:,} pods Running after "
            f"{sizes.seconds:.0f} s (the bound); {len(seen):,} created, {len(bound):,} bound. "
            "Look at the CPU of each component (top) to see which one lags"
        )
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    cpu["benchmark"] = _own_cpu() - bench_before
    return Measured(elapsed, all_bound, sampler.peak, cpu, probes)


async def _watch_over(children: dict[str, ChildProcess]) -> None:
    """Raises as soon as one of `children` has exited: the pods would
    never all run, and the bound is long."""
    while True:
        for name, child in children.items():
            if not child.running:
                raise RuntimeError(
                    f"scale: the {name} exited while the pods were being made; "
                    f"the end of its log:\n{child.tail()}"
                )
        await anyio.sleep(1.0)


async def _probe(client: Client, namespace: str, out: list[float]) -> None:
    """Times a get of the namespace every second: how long any call waits
    in the API server meanwhile."""
    while True:
        begin = time.perf_counter()
        await client.get(Namespace, namespace)
        out.append(time.perf_counter() - begin)
        await anyio.sleep(SAMPLE_EVERY)


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _nodes_ready(client: Client, names: list[str], seconds: float) -> None:
    want = set(names)
    ready: set[str] = set()
    with anyio.move_on_after(seconds) as scope:
        while True:
            ready = {
                n.metadata.name
                for n in (await client.list(Node)).items
                if n.metadata.name in want
                and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
            }
            if ready == want:
                return
            await anyio.sleep(1.0)
    if scope.cancelled_caught:
        raise TimeoutError(
            f"scale: {len(ready):,} of {len(want):,} simulated nodes Ready after {seconds:.0f} s "
            "(the bound); see the simulated nodes' log above"
        )


async def _clean_up(client: Client, namespace: str, run_id: str, sizes: Sizes) -> None:
    """Removes what the run made, so that a later benchmark's scheduler
    and watches do not carry it: pods at once (no agent runs them now),
    their Deployments and ReplicaSets, the nodes and their Leases."""
    from kpy.api.apps.v1 import ReplicaSet

    with anyio.move_on_after(sizes.seconds / 4):
        for kind in (Deployment, ReplicaSet):
            await client.delete_collection(kind, namespace=namespace)
        await client.delete_collection(Pod, namespace=namespace, grace_period_seconds=0)
        nodes = await client.delete_collection(Node, label_selector=f"{LABEL}={run_id}")
        names = {n.metadata.name for n in nodes}
        for lease in (await client.list(Lease, namespace="kube-node-lease")).items:
            if lease.metadata.name in names:
                await client.delete(Lease, lease.metadata.name, namespace="kube-node-lease")


def _result(sizes: Sizes, m: Measured, hwm: dict[str, int]) -> Result:
    mib = 1024**2
    total = sum(m.peak.values())
    rows = [
        Row(NAME, f"{sizes.pods:,} pods on {sizes.nodes:,} nodes: all Running", "s", m.seconds),
        Row(NAME, "all bound to a node", "s", m.bound_seconds),
        Row(NAME, "pods Running per second", "ops/s", sizes.pods / m.seconds, None, "higher"),
        Row(NAME, "resident, all components (peak of the sum)", "MiB", total / mib),
    ]
    if m.probes:
        rows += [
            Row(NAME, f"a get meanwhile p{q}", "ms", percentile(m.probes, q) * 1e3)
            for q in (50, 99)
        ]
    rows += [Row(NAME, f"resident: {name}", "MiB", rss / mib) for name, rss in m.peak.items()]
    busiest = max((n for n in m.cpu if n != "benchmark"), key=lambda n: m.cpu[n])
    cpu_text = ", ".join(f"{n} {s:.0f} s" for n, s in sorted(m.cpu.items(), key=lambda i: -i[1]))
    aims = [
        Aim(
            f"scale: {sizes.nodes:,} nodes and {sizes.pods:,} pods Running, all components "
            f"together < {AIM_BYTES // 1024**3} GiB resident",
            total < AIM_BYTES,
            f"{total / 1024**3:.2f} GiB at the peak; Running after {m.seconds:.0f} s; "
            f"CPU: {cpu_text} (busiest: {busiest})",
        )
    ]
    details: dict[str, Any] = {
        "nodes": sizes.nodes,
        "deployments": sizes.deployments,
        "replicas": sizes.replicas,
        "seconds_to_running": round(m.seconds, 1),
        "seconds_to_bound": round(m.bound_seconds, 1),
        "resident_mib_at_peak": {n: round(b / mib) for n, b in m.peak.items()},
        "hwm_mib": {n: round(b / mib) for n, b in hwm.items()},
        "cpu_seconds": {n: round(s, 1) for n, s in m.cpu.items()},
        "get_probe_max_ms": round(max(m.probes, default=0.0) * 1e3),
    }
    return Result(rows=rows, aims=aims, details=details)

"""events: what a Scheduled Event costs a bound pod (issue 22 item 6).

Three rounds over the same API server, each binding `Sizes.pods` pending
pods of its own directly (`Client.bind` to one of a few nodes,
`Sizes.in_flight` at once, as the scheduler binds):

- baseline: the binds alone, what the API allows at most;
- one create per event: each bind followed by `Client.create` of its
  Scheduled Event, the recorder kpy had before (two writes per pod);
- batched: each bind followed by `recorder.event(...)` of an
  `EventBroadcaster` (kpy.cache.events), which writes a tick's Events in
  one `CreateEvents` call; the round ends once every bind is done and every
  Event written.

Pods per second of each round, the API server's and this process's CPU
per pod (utime + stime), each a ratio against the binds alone of the same
run, and the API calls each pod cost (binds + event calls) / pods.
After an uncounted warm-up of each, the rounds run twice in alternating
order (a b c c b a), so that a slow patch of a noisy machine falls on all
of them. Aim: with batched Events the API server spends at most 1.25x
the CPU per pod of the binds alone (the second write per pod is what
capped the scheduler's end-to-end rate at about half the direct binds).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from bench._context import Context, create_namespace
from bench._load import concurrent
from bench._report import Aim, Result, Row
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Event, Node, Pod
from kpy.cache.events import NORMAL, EventBroadcaster
from kpy.client import Client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

NAME = "events"
# Batched Events: the API server's CPU per bound pod at most 1.25x that of
# the binds alone (an Event costs at most a quarter of a bind). CPU rather
# than pods/s: on a shared 2-core machine the wall clock of a round swings
# with everything else running, the server's CPU seconds per pod do not.
AIM_CPU_RATIO = 1.25
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Sizes:
    pods: int  # per round and repetition
    nodes: int = 4
    in_flight: int = 32
    seconds: float = 120.0  # bound on each phase


NORMAL_SIZES = Sizes(pods=1_000)
QUICK_SIZES = Sizes(pods=200)


@dataclass(frozen=True, slots=True)
class Round:
    pods: int
    elapsed: float
    calls: int  # API writes: binds and event calls
    server_cpu: float = 0.0  # the API server's CPU seconds during the round
    client_cpu: float = 0.0  # this process's (binds, recorder, broadcaster)

    @property
    def per_second(self) -> float:
        return self.pods / self.elapsed if self.elapsed > 0 else 0.0

    def __add__(self, other: Round) -> Round:
        return Round(
            self.pods + other.pods,
            self.elapsed + other.elapsed,
            self.calls + other.calls,
            self.server_cpu + other.server_cpu,
            self.client_cpu + other.client_cpu,
        )


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def _measured(ctx: Context, work: Awaitable[Round]) -> Round:
    """`work`'s round with the CPU the API server and this process spent on it."""
    server, client = cpu_seconds(ctx.api_pid), time.process_time()
    done = await work
    return dataclasses.replace(
        done,
        server_cpu=cpu_seconds(ctx.api_pid) - server,
        client_cpu=time.process_time() - client,
    )


async def run(ctx: Context) -> Result:
    sizes = QUICK_SIZES if ctx.quick else NORMAL_SIZES
    namespace = ctx.namespace(NAME)
    async with Client(ctx.api_address, retry_timeout=10.0) as client:
        await create_namespace(client, namespace)
        nodes = [f"{namespace}-n{i}" for i in range(sizes.nodes)]
        for name in nodes:
            await client.create(_node(name))
        ctx.progress.phase(NAME, "warm-up (binds and events, not counted)")
        warm = dataclasses.replace(sizes, pods=max(50, sizes.pods // 5))
        for name in ROUNDS:
            pods = await _pending_pods(client, namespace, f"warm-{name}", warm)
            await ROUNDS[name](client, namespace, pods, nodes, warm)
        rounds: dict[str, Round] = {}
        order = ["binds", "creates", "batched"]
        for repetition, names in enumerate((order, order[::-1])):
            for name in names:
                ctx.progress.phase(NAME, f"{name}, {sizes.pods} pods (pass {repetition + 1})")
                pods = await _pending_pods(client, namespace, f"{name}{repetition}", sizes)
                done = await _measured(ctx, ROUNDS[name](client, namespace, pods, nodes, sizes))
                rounds[name] = rounds[name] + done if name in rounds else done
    return _report(rounds, sizes)


def _report(rounds: dict[str, Round], sizes: Sizes) -> Result:
    base = rounds["binds"]
    result = Result()
    for name, label in (
        ("binds", "pods bound, no events"),
        ("creates", "pods bound + 1 Event create each"),
        ("batched", "pods bound + batched Events"),
    ):
        r = rounds[name]
        result.rows.append(Row(NAME, label, "pods/s", r.per_second, base.per_second, "higher"))
        result.rows.append(
            Row(NAME, f"{label}: API writes per pod", "calls", r.calls / r.pods, None, "lower")
        )
        result.rows.append(
            Row(
                NAME,
                f"{label}: API server CPU per pod",
                "ms",
                r.server_cpu / r.pods * 1e3,
                base.server_cpu / base.pods * 1e3,
                "lower",
            )
        )
        result.rows.append(
            Row(
                NAME,
                f"{label}: client CPU per pod",
                "ms",
                r.client_cpu / r.pods * 1e3,
                base.client_cpu / base.pods * 1e3,
                "lower",
            )
        )
    batched, old = rounds["batched"], rounds["creates"]
    cpu = _cpu_ratio(batched, base)
    result.aims.append(
        Aim(
            f"API server CPU per pod bound with batched Events <= {AIM_CPU_RATIO:g}x binds alone",
            cpu <= AIM_CPU_RATIO,
            f"{cpu:.2f}x (one create per Event: {_cpu_ratio(old, base):.2f}x; "
            f"{batched.calls / batched.pods:.2f} writes per pod; pods/s "
            f"{batched.per_second / base.per_second:.2f}x of the binds alone)",
        )
    )
    result.details = {"pods_per_round": sizes.pods * 2, "in_flight": sizes.in_flight}
    return result


def _cpu_ratio(r: Round, base: Round) -> float:
    if not base.server_cpu or not r.pods:
        return math.inf
    return (r.server_cpu / r.pods) / (base.server_cpu / base.pods)


def _node(name: str) -> Node:
    return from_dict(
        Node,
        {
            "metadata": {"name": name},
            "status": {
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "5000"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "5000"},
            },
        },
    )


async def _pending_pods(client: Client, namespace: str, prefix: str, sizes: Sizes) -> list[Pod]:
    todo = iter(range(sizes.pods))
    made: list[Pod] = []

    async def create() -> None:
        pod = from_dict(
            Pod,
            {
                "metadata": {"name": f"{prefix}-{next(todo):05d}", "namespace": namespace},
                "spec": {"containers": [{"name": "c", "image": "registry.example.com/app:1"}]},
            },
        )
        made.append(await client.create(pod))

    done = await concurrent(create, count=sizes.pods, seconds=sizes.seconds, in_flight=32)
    if done.ops != sizes.pods:
        raise RuntimeError(f"created only {done.ops} of {sizes.pods} pods within the bound")
    return made


def _scheduled(pod: Pod, node: str) -> Event:
    """The Scheduled Event the old recorder created, one call per pod."""
    key = f"{pod.metadata.namespace}/{pod.metadata.name}"
    return from_dict(
        Event,
        {
            "metadata": {
                "name": f"{pod.metadata.name}.{time.time_ns():x}",
                "namespace": pod.metadata.namespace,
            },
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": pod.metadata.namespace,
                "name": pod.metadata.name,
                "uid": pod.metadata.uid,
            },
            "reason": "Scheduled",
            "message": f"Successfully assigned {key} to {node}",
            "type": NORMAL,
            "count": 1,
            "source": {"component": "bench-scheduler"},
        },
    )


async def _bind_all(
    client: Client,
    pods: list[Pod],
    nodes: list[str],
    sizes: Sizes,
    after: Callable[[Pod, str], Awaitable[None] | None],
) -> float:
    """Binds every pod, calling `after(pod, node)` once each is bound;
    the seconds it took."""
    todo = iter(enumerate(pods))

    async def bind() -> None:
        i, pod = next(todo)
        node = nodes[i % len(nodes)]
        await client.bind(pod.metadata.name, node, namespace=pod.metadata.namespace)
        then = after(pod, node)
        if then is not None:
            await then

    begin = time.perf_counter()
    done = await concurrent(bind, count=len(pods), seconds=sizes.seconds, in_flight=sizes.in_flight)
    if done.ops != len(pods):
        raise RuntimeError(f"bound only {done.ops} of {len(pods)} pods within the bound")
    return time.perf_counter() - begin


async def _binds(
    client: Client, namespace: str, pods: list[Pod], nodes: list[str], sizes: Sizes
) -> Round:
    elapsed = await _bind_all(client, pods, nodes, sizes, lambda pod, node: None)
    return Round(len(pods), elapsed, len(pods))


async def _creates(
    client: Client, namespace: str, pods: list[Pod], nodes: list[str], sizes: Sizes
) -> Round:
    async def create(pod: Pod, node: str) -> None:
        await client.create(_scheduled(pod, node))

    elapsed = await _bind_all(client, pods, nodes, sizes, create)
    return Round(len(pods), elapsed, 2 * len(pods))


async def _batched(
    client: Client, namespace: str, pods: list[Pod], nodes: list[str], sizes: Sizes
) -> Round:
    broadcaster = EventBroadcaster(client, queue_size=len(pods) + 1)
    recorder = broadcaster.new_recorder("bench-scheduler")

    def record(pod: Pod, node: str) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        recorder.event(pod, NORMAL, "Scheduled", f"Successfully assigned {key} to {node}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(broadcaster.run)
        begin = time.perf_counter()
        await _bind_all(client, pods, nodes, sizes, record)
        with anyio.fail_after(sizes.seconds):
            while True:  # the last tick's batch
                if broadcaster.written + broadcaster.statistics().failed >= len(pods):
                    break
                await anyio.sleep(0.005)
        elapsed = time.perf_counter() - begin
        tg.cancel_scope.cancel()
    stats = broadcaster.statistics()
    if stats.created != len(pods):
        raise RuntimeError(f"the broadcaster wrote {stats.created} of {len(pods)} Events: {stats}")
    return Round(len(pods), elapsed, len(pods) + stats.batches)


ROUNDS: dict[str, Callable[..., Awaitable[Round]]] = {
    "binds": _binds,
    "creates": _creates,
    "batched": _batched,
}


if __name__ == "__main__":
    raise SystemExit("run it through the suite: python -m bench.run --only events")

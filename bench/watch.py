"""watch: fan-out of pod events to many SDK watchers vs one raw etcd watch.

Setup: `Sizes.watchers` SDK watches of the pods of one namespace, spread
over `Sizes.clients` Clients (so over several connections), each opened
with bookmarks and counted as ready once its initial-events-end bookmark
arrives. Then a writer *process* creates pods at `Sizes.rate` per second
(at most `Sizes.rate * Sizes.seconds` pods, for at most `Sizes.seconds`,
at most 32 calls in flight), stamping `bench/sent-at` = time.time() into
each pod just before its create call.

Measured:
- delivery latency = time.time() when a watcher receives the ADDED event
  minus the pod's sent-at, pooled over every watcher; p50/p99. It includes
  the create call itself, so it is also reported apart:
- write call = the writer's create latency (sent-at to the answer), and
  added over raw etcd watch = when each SDK watcher got a pod minus when
  the raw etcd watch got it: what the API server's cache and fan-out add;
- lost = events the writer's successful creates should have produced at
  every watcher but did not arrive by the end of the drain; duplicates =
  events for a pod a watcher had already seen. Both must be 0;
- the write rate achieved, and the CPU (in cores) that the API server and
  this process used while writing and draining;
- the API server's CPU per delivered event: its CPU while writing and
  draining, less what the creates cost it (the same writer, at the same
  target rate for `Sizes.solo_seconds`, run first with no watch open:
  its CPU per create), divided by the events delivered: the cost of fanning
  one event out to one watcher (following etcd is priced with the creates:
  the server follows the lone writer's creates too). Issue 22 measured
  70-95 us before shared frames, and 6-9 us for a bare grpc.aio server
  writing one pre-serialised frame per tick. A difference of two noisy
  figures: with `--quick`'s 20 watchers it is within the noise (it may even
  come out below 0).

Baseline: the same writes seen by ONE raw etcd watch of the namespace's
keys (a `raw-watch` worker process, decoding Pods as the SDK does). The
ratio of p99s says what the API server's cache and fan-out to N watchers
cost over etcd's own watch; the kpy p99 itself is the issue's aim
(< 100 ms at 100 watchers).

Why a writer process: the 100 watchers' decoding keeps this process busy
(about a core), so a writer in the same event loop would slip its pace and
stamp late. The raw watcher runs apart for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench._context import SENT_AT, Context, create_namespace
from bench._load import percentile
from bench._report import Aim, Result, Row, latency_rows
from kpy.api.core.v1 import Pod
from kpy.client import Client

if TYPE_CHECKING:
    import subprocess

NAME = "watch"
P99_AIM_MS = 100.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Sizes:
    watchers: int
    rate: float
    seconds: float
    clients: int = 4
    in_flight: int = 32
    drain: float = 15.0
    solo_seconds: float = 4.0  # the writer alone, to price a create


NORMAL = Sizes(watchers=100, rate=500.0, seconds=10.0)
QUICK = Sizes(watchers=20, rate=200.0, seconds=3.0, drain=5.0, solo_seconds=2.0)


@dataclass(slots=True)
class _Watcher:
    """What one SDK watcher saw."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    latencies: list[float] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)  # name -> time.time() received
    duplicates: int = 0
    reconnects: int = 0


async def run(ctx: Context) -> Result:
    sizes = QUICK if ctx.quick else NORMAL
    namespace = ctx.namespace(NAME)
    clients = [Client(ctx.api_address, retry_timeout=10.0) for _ in range(sizes.clients)]
    writer = raw = None
    try:
        await create_namespace(clients[0], namespace)
        solo = await _create_cost(ctx, sizes, clients[0])
        ctx.progress.phase(NAME, "starting the writer and raw-watch processes")
        writer = ctx.children.spawn(_writer_args(ctx, sizes, namespace))
        raw = ctx.children.spawn(_raw_args(ctx, sizes, namespace))
        await _expect_ready(writer, "writer")
        await _expect_ready(raw, "raw watcher")
        result = await _measure(ctx, sizes, namespace, clients, writer, raw)
        _add_fanout_cost(result, solo)
        return result
    finally:
        for process in (writer, raw):
            if process is not None:
                ctx.children.stop(process)
        for client in clients:
            await client.close()


async def _measure(
    ctx: Context,
    sizes: Sizes,
    namespace: str,
    clients: list[Client],
    writer: subprocess.Popen[str],
    raw: subprocess.Popen[str],
) -> Result:
    fanout = _Fanout(sizes.watchers)
    async with asyncio.TaskGroup() as tg:
        tasks = [
            tg.create_task(_watch(clients[i % len(clients)], namespace, w, fanout))
            for i, w in enumerate(fanout.watchers)
        ]
        try:
            ctx.progress.phase(NAME, f"opening {sizes.watchers} SDK watches")
            async with asyncio.timeout(60.0):
                for w in fanout.watchers:
                    await w.ready.wait()
            ctx.progress.phase(
                NAME,
                f"writing {sizes.rate:g} pods/s for <= {sizes.seconds:g}s "
                f"to {sizes.watchers} watchers + 1 raw etcd watch",
            )
            cpu = _CpuMeter(ctx)
            _send(writer, "go")
            written = await _read_json(writer, "writer", sizes.seconds + 60.0)
            expected = set(written["written"])
            ctx.progress.phase(NAME, f"draining (<= {sizes.drain:g}s)")
            fanout.expect(len(expected))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sizes.drain):
                    await fanout.complete.wait()
            used = cpu.read()
            server_seconds = cpu.seconds("apiserver")
            _send(raw, "stop")
            baseline = await _read_json(raw, "raw watcher", 30.0)
        finally:
            for task in tasks:
                task.cancel()
    ctx.progress.done()
    result = _report(sizes, fanout.watchers, expected, written, baseline, used)
    result.details["apiserver_cpu_seconds"] = server_seconds
    return result


class _Fanout:
    """Every SDK watcher; `complete` is set once each has seen the number of
    pods given to `expect` (the writer's successful creates)."""

    def __init__(self, count: int) -> None:
        self.watchers = [_Watcher() for _ in range(count)]
        self.complete = asyncio.Event()
        self._expected: int | None = None
        self._done = 0

    def expect(self, count: int) -> None:
        self._expected = count
        self._done = sum(len(w.seen) >= count for w in self.watchers)
        self._check()

    def saw(self, w: _Watcher) -> None:
        if len(w.seen) == self._expected:
            self._done += 1
            self._check()

    def _check(self) -> None:
        if self._done >= len(self.watchers):
            self.complete.set()


async def _watch(client: Client, namespace: str, w: _Watcher, fanout: _Fanout) -> None:
    async with client.watch(Pod, namespace=namespace, bookmarks=True) as events:
        try:
            async for event in events:
                received = time.time()
                if event.type == "BOOKMARK":
                    w.ready.set()  # the first one ends the (empty) initial events
                    continue
                sent = event.object.metadata.annotations.get(SENT_AT)
                if event.type != "ADDED" or sent is None:
                    continue
                name = event.object.metadata.name
                if name in w.seen:
                    w.duplicates += 1
                    continue
                w.seen[name] = received
                w.latencies.append(received - float(sent))
                fanout.saw(w)
        finally:
            w.reconnects = events.reconnects  # resumed streams, e.g. after "fell behind"


async def _create_cost(ctx: Context, sizes: Sizes, client: Client) -> float:
    """The API server's CPU seconds per create with no watch open: the
    writer alone, at the target rate for `sizes.solo_seconds`, in a
    namespace of its own."""
    namespace = ctx.namespace(NAME + "-solo")
    await create_namespace(client, namespace)
    ctx.progress.phase(NAME, f"pricing a create: the writer alone for {sizes.solo_seconds:g}s")
    solo = dataclasses.replace(sizes, seconds=sizes.solo_seconds)
    writer = ctx.children.spawn(_writer_args(ctx, solo, namespace))
    try:
        await _expect_ready(writer, "solo writer")
        before = _cpu_seconds(ctx.api_pid)
        _send(writer, "go")
        written = await _read_json(writer, "solo writer", solo.seconds + 60.0)
        used = _cpu_seconds(ctx.api_pid) - before
    finally:
        ctx.children.stop(writer)
    return used / max(1, len(written["written"]))


def _add_fanout_cost(result: Result, create_cpu: float) -> None:
    """The API server's CPU per delivered event, creates' CPU subtracted."""
    details = result.details
    server = details["apiserver_cpu_seconds"] - details["writes"] * create_cpu
    per_event = server / max(1, details["events_received"])
    result.rows.append(Row(NAME, "API server CPU per delivered event", "us", per_event * 1e6))
    details["create_cpu_us"] = round(create_cpu * 1e6, 1)


def _report(
    sizes: Sizes,
    watchers: list[_Watcher],
    expected: set[str],
    written: dict[str, Any],
    baseline: dict[str, Any],
    used: dict[str, float],
) -> Result:
    latencies = [x for w in watchers for x in w.latencies]
    raw_received: dict[str, float] = baseline["received"]
    added = [
        at - raw_received[name]
        for w in watchers
        for name, at in w.seen.items()
        if name in raw_received
    ]
    lost = sum(len(expected - w.seen.keys()) for w in watchers)
    duplicates = sum(w.duplicates for w in watchers)
    raw_lost = len(expected - raw_received.keys())
    rate = len(expected) / written["elapsed"] if written["elapsed"] else 0.0
    result = Result()
    result.rows += latency_rows(
        NAME, f"delivery x{sizes.watchers}", latencies, baseline["latencies"]
    )
    result.rows += latency_rows(NAME, "added over raw etcd watch", added, None)
    result.rows += latency_rows(NAME, "write call", written["latencies"], None)
    result.rows += [
        Row(NAME, "events lost", "events", lost, raw_lost, "lower"),
        Row(NAME, "duplicate events", "events", duplicates, baseline["duplicates"], "lower"),
        Row(NAME, "writes achieved (baseline: target)", "ops/s", rate, sizes.rate, "higher"),
        Row(NAME, "API server CPU", "cores", used["apiserver"]),
        Row(NAME, "watcher process CPU", "cores", used["watchers"]),
        Row(NAME, "watch streams resumed", "streams", sum(w.reconnects for w in watchers)),
    ]
    p99 = percentile(latencies, 99) * 1e3
    result.aims.append(
        Aim(
            f"watch delivery p99 < {P99_AIM_MS:g} ms at {sizes.watchers} watchers, none lost",
            p99 < P99_AIM_MS and lost == 0 and duplicates == 0,
            f"p99 {p99:.1f} ms, {lost} lost, {duplicates} duplicates, "
            f"at {rate:,.0f} of {sizes.rate:g} writes/s",
        )
    )
    result.details = {
        "watchers": sizes.watchers,
        "clients": sizes.clients,
        "target_rate": sizes.rate,
        "writes": len(expected),
        "write_failures": written["failed"],
        "write_failure_examples": written["failures"],
        "events_received": len(latencies),
        "cpu_cores": {
            name: round(cores, 3)
            for name, cores in {**used, "writer": written["cpu"] / written["elapsed"]}.items()
        },
        "writer": "separate process (see bench/watch.py)",
    }
    return result


class _CpuMeter:
    """CPU time of the API server, etcd and this process since creation, in cores."""

    def __init__(self, ctx: Context) -> None:
        self._pids = {"apiserver": ctx.api_pid, "etcd": ctx.etcd_pid}
        self._start = time.monotonic()
        self._self = time.process_time()
        self._children = {name: _cpu_seconds(pid) for name, pid in self._pids.items()}

    def seconds(self, name: str) -> float:
        """CPU seconds process `name` used since creation."""
        return _cpu_seconds(self._pids[name]) - self._children[name]

    def read(self) -> dict[str, float]:
        wall = time.monotonic() - self._start
        used = {
            name: (_cpu_seconds(pid) - self._children[name]) / wall
            for name, pid in self._pids.items()
        }
        used["watchers"] = (time.process_time() - self._self) / wall
        return used


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _writer_args(ctx: Context, sizes: Sizes, namespace: str) -> list[str]:
    count = int(sizes.rate * sizes.seconds)
    return [
        "-m", "bench._worker", "write",
        "--address", ctx.api_address,
        "--namespace", namespace,
        "--rate", str(sizes.rate),
        "--count", str(count),
        "--seconds", str(sizes.seconds),
        "--in-flight", str(sizes.in_flight),
    ]  # fmt: skip


def _raw_args(ctx: Context, sizes: Sizes, namespace: str) -> list[str]:
    return [
        "-m", "bench._worker", "raw-watch",
        "--endpoint", ctx.etcd_endpoint,
        "--namespace", namespace,
        "--seconds", str(sizes.seconds + sizes.drain + 120.0),
    ]  # fmt: skip


def _send(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


async def _read_json(process: subprocess.Popen[str], who: str, within: float) -> dict[str, Any]:
    """The next JSON line of a worker; RuntimeError if it exits or stays silent."""
    assert process.stdout is not None
    try:
        async with asyncio.timeout(within):
            line = await asyncio.to_thread(process.stdout.readline)
    except TimeoutError:
        raise RuntimeError(f"the {who} process said nothing within {within:g}s") from None
    if not line:
        code = process.wait()
        raise RuntimeError(f"the {who} process exited with code {code} (its stderr is above)")
    message: dict[str, Any] = json.loads(line)
    return message


async def _expect_ready(process: subprocess.Popen[str], who: str) -> None:
    message = await _read_json(process, who, 60.0)
    if not message.get("ready"):
        raise RuntimeError(f"the {who} process did not report ready: {message}")

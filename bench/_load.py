"""Bounded load loops and the statistics the benchmarks report.

Every loop stops by itself: after `count` operations or `seconds` of wall
time, whichever comes first. `LoadWorkers` runs a loop in child processes,
for throughput the client itself must not limit. Operations are zero-argument coroutine
functions; each draws whatever it needs (a name, a key) from its own
closure, so the loops know nothing about what they drive. An operation that
raises ends the loop with that error: a benchmark never reports figures
over failed calls.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

    from bench._context import Children

Op = Callable[[], Awaitable[object]]


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest
    ranks (numpy's default); NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Throughput:
    """What a concurrent loop achieved: `ops` completed in `elapsed` seconds,
    and the latency of each (seconds)."""

    ops: int
    elapsed: float
    latencies: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else 0.0

    def __add__(self, other: Throughput) -> Throughput:
        return Throughput(
            self.ops + other.ops, self.elapsed + other.elapsed, self.latencies + other.latencies
        )


async def interleaved(ops: Sequence[Op], *, count: int, seconds: float) -> list[list[float]]:
    """Latencies (seconds) of each op, run one call at a time in turn (a, b,
    a, b, ...) so that every op sees the same moments of a noisy machine.
    Stops after `count` rounds or `seconds`."""
    samples: list[list[float]] = [[] for _ in ops]
    deadline = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() >= deadline:
            break
        for op, out in zip(ops, samples, strict=True):
            start = time.perf_counter()
            await op()
            out.append(time.perf_counter() - start)
    return samples


async def concurrent(op: Op, *, count: int, seconds: float, in_flight: int) -> Throughput:
    """Runs `op` from `in_flight` tasks at once until `count` calls have been
    started or `seconds` have passed; returns once the started calls end."""
    started = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal started
        while started < count and time.monotonic() < deadline:
            started += 1
            begin = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - begin)

    begin = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(in_flight):
            tg.create_task(worker())
    return Throughput(len(latencies), time.perf_counter() - begin, tuple(latencies))


async def alternating(
    ops: Sequence[Op], *, rounds: int, count: int, seconds: float, in_flight: int
) -> list[Throughput]:
    """`concurrent` for each op in turn, `rounds` times (a, b, a, b), each
    round with an equal share of `count` and `seconds`, so that a slow
    patch of a noisy machine falls on both sides. Returns each op's rounds
    added up."""
    totals: list[Throughput | None] = [None] * len(ops)
    for _ in range(rounds):
        for i, op in enumerate(ops):
            result = await concurrent(
                op, count=count // rounds, seconds=seconds / rounds, in_flight=in_flight
            )
            previous = totals[i]
            totals[i] = result if previous is None else previous + result
    return [t for t in totals if t is not None]


_UNBOUNDED = 10**9  # calls: a round bounded by its time only


class LoadWorkers:
    """`processes` child processes (`python -m bench._worker load`) that run
    one operation together, so that the client side is never what limits
    a throughput figure (one Python process sends only so many calls a
    second). Started by `start`, each stopped by its pid in `stop` (also
    through `Children.stop_all` if the run ends first).

    A round (`run`) splits `count` and `in_flight` evenly over the first
    `using` processes, starts them together and adds up what they did:
    ops over the span from the first start to the last end, latencies of
    all."""

    def __init__(self, children: Children, worker_args: list[str], processes: int) -> None:
        self._children = children
        self._args = worker_args  # after `load`, but for --in-flight
        self.processes = processes
        self._running: list[subprocess.Popen[str]] = []
        self._in_flight = 0
        self.cpu = 0.0  # seconds the workers' rounds used, all added up

    async def start(self, in_flight: int) -> None:
        """Starts the processes, each with `in_flight` / processes calls in
        flight (at least 1); returns once every one has its op ready."""
        self._in_flight = in_flight
        each = max(1, math.ceil(in_flight / self.processes))
        for _ in range(self.processes):
            self._running.append(
                self._children.spawn(
                    ["-m", "bench._worker", "load", *self._args, "--in-flight", str(each)]
                )
            )
        for process in self._running:
            message = await _read_message(process)
            if not message.get("ready"):
                raise RuntimeError(f"load worker {process.pid} did not get ready: {message}")

    async def run(self, *, count: int, seconds: float, using: int | None = None) -> Throughput:
        """One round on the first `using` processes (all by default)."""
        chosen = self._running[: using or len(self._running)]
        share = math.ceil(count / len(chosen))
        for process in chosen:
            assert process.stdin is not None
            process.stdin.write(f"go {share} {seconds}\n")
            process.stdin.flush()
        reports = [await _read_message(p) for p in chosen]
        failed = [r["error"] for r in reports if "error" in r]
        if failed:
            raise RuntimeError(f"load workers failed: {failed[0]}")
        self.cpu += sum(r["cpu"] for r in reports)
        begin = min(r["start"] for r in reports)
        end = max(r["end"] for r in reports)
        latencies = tuple(latency for r in reports for latency in r["latencies"])
        return Throughput(sum(r["ops"] for r in reports), end - begin, latencies)

    def stop(self) -> None:
        for process in self._running:
            self._children.stop(process)
        self._running = []


async def _read_message(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The next JSON line of a worker (read on a thread: it blocks)."""
    assert process.stdout is not None
    stdout = process.stdout
    line = await asyncio.to_thread(stdout.readline)
    if not line:
        raise RuntimeError(f"load worker {process.pid} exited (code {process.poll()})")
    message: dict[str, Any] = json.loads(line)
    return message


async def saturating(
    workers: LoadWorkers, *, seconds: float, gain: float = 1.1
) -> tuple[int, dict[int, float]]:
    """How many of `workers`' processes it takes to saturate what they
    load: rounds of `seconds` (however many calls fit) on 1, 2, 4, ...
    processes until one more doubling gains less than `gain` (or none are
    left). Returns the count with the best rate and every rate measured
    (calls/s by processes)."""
    rates: dict[int, float] = {}
    using = 1
    while using <= workers.processes:
        done = await workers.run(count=_UNBOUNDED, seconds=seconds, using=using)
        rates[using] = done.per_second
        previous = rates.get(using // 2)
        if previous is not None and rates[using] < previous * gain:
            break
        using *= 2
    best = max(rates, key=lambda n: rates[n])
    return best, rates


def round_count(total: int, seconds: float, rate: float, rounds: int) -> int:
    """Calls per round for a side measured at `rate` calls/s: `total` over
    the rounds, or more if that would end a round well before its share of
    `seconds`. A short round is mostly the moments its processes start and
    stop apart, so a fast side (raw etcd) gets enough calls to fill its time."""
    return max(total // rounds, int(rate * seconds / rounds))

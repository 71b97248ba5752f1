"""Bounded load loops and the statistics the benchmarks report.

Every loop stops by itself: after `count` operations or `seconds` of wall
time, whichever comes first. Operations are zero-argument coroutine
functions; each draws whatever it needs (a name, a key) from its own
closure, so the loops know nothing about what they drive. An operation that
raises ends the loop with that error: a benchmark never reports figures
over failed calls.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

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

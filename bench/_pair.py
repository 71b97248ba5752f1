"""The measurement create and get share: the same operation through kpy and
straight on etcd, first one call at a time (interleaved, for latency), then
with many calls in flight (alternating rounds, for throughput).

Throughput is loaded from child processes (`_load.LoadWorkers`, the ops of
`PROCESS_OPS`), so that it measures the server, not the client: one Python
process sends only a few thousand calls a second, fewer than etcd answers.
Each side first finds how many processes (1, 2, 4) it takes to saturate
what it loads (`_load.saturating`: a doubling that adds under 10% stops),
then runs its rounds with that many; `in_flight` is the total over them.
A round runs `total` / 2 calls, or more for a fast side, enough to fill
its `seconds` / 2 at the rate the side showed (`_load.round_count`).
A benchmark without process ops is loaded from its own process, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bench._load import LoadWorkers, alternating, interleaved, round_count, saturating
from bench._report import Result, Row, latency_rows, throughput_row

if TYPE_CHECKING:
    from bench._context import Context
    from bench._load import Op, Throughput


PROCESS_OPS: dict[str, tuple[str, str]] = {"create": ("create", "put"), "get": ("get", "raw-get")}
"""(kpy op, raw op) of `bench._worker load` by benchmark name."""
MAX_CLIENT_PROCESSES = 4


@dataclass(frozen=True, slots=True)
class Pair:
    """What `measure_pair` measured; `result` already holds its rows."""

    result: Result
    sequential: tuple[list[float], list[float]]
    kpy: Throughput
    raw: Throughput


class PairSizes(Protocol):
    """How much to measure (each benchmark's `Sizes` has these)."""

    @property
    def sequential(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def in_flight(self) -> int: ...


async def measure_pair(ctx: Context, name: str, kpy_op: Op, raw_op: Op, sizes: PairSizes) -> Pair:
    sequential, total, seconds = sizes.sequential, sizes.total, sizes.seconds
    in_flight = sizes.in_flight
    ctx.progress.phase(name, f"sequential latency ({sequential} calls each, interleaved)")
    kpy_seq, raw_seq = await interleaved([kpy_op, raw_op], count=sequential, seconds=seconds)
    result = Result()
    if name in PROCESS_OPS:
        kpy_tp, raw_tp, processes = await _from_processes(ctx, name, sizes)
    else:
        ctx.progress.phase(
            name,
            f"throughput ({in_flight} in flight, <= {total} calls or "
            f"{seconds:g}s per side, 2 alternating rounds)",
        )
        kpy_tp, raw_tp = await alternating(
            [kpy_op, raw_op], rounds=2, count=total, seconds=seconds, in_flight=in_flight
        )
        processes = (1, 1)
    ctx.progress.done(f"kpy {kpy_tp.per_second:,.0f}/s, raw {raw_tp.per_second:,.0f}/s")
    result.rows += latency_rows(name, "sequential", kpy_seq, raw_seq)
    result.rows.append(throughput_row(name, f"throughput x{in_flight}", kpy_tp, raw_tp))
    # how many load processes each side needed (no ratio: not a figure of merit)
    metric = f"throughput client processes, kpy (raw: {processes[1]})"
    result.rows.append(Row(name, metric, "procs", processes[0]))
    result.rows += latency_rows(name, f"latency x{in_flight}", kpy_tp.latencies, raw_tp.latencies)
    return Pair(result, (kpy_seq, raw_seq), kpy_tp, raw_tp)


async def _from_processes(
    ctx: Context, name: str, sizes: PairSizes
) -> tuple[Throughput, Throughput, tuple[int, int]]:
    """Both sides' throughput from child processes (see the module
    docstring), and how many processes each used."""
    kpy_name, raw_name = PROCESS_OPS[name]
    common = ["--servers", ctx.api_address, "--endpoint", ctx.etcd_endpoint]
    common += ["--namespace", ctx.namespace(name)]
    sides = [
        LoadWorkers(ctx.children, ["--op", op, *common], MAX_CLIENT_PROCESSES)
        for op in (kpy_name, raw_name)
    ]
    try:
        ctx.progress.phase(name, f"throughput: starting {2 * MAX_CLIENT_PROCESSES} load processes")
        for side in sides:
            await side.start(sizes.in_flight)
        ctx.progress.phase(name, "throughput: client processes each side needs (1, 2, 4)")
        probe_seconds = sizes.seconds / 8
        using, ramps, counts = [], [], []
        for side in sides:
            best, rates = await saturating(side, seconds=probe_seconds)
            using.append(best)
            counts.append(round_count(sizes.total, sizes.seconds, rates[best], rounds=2))
            ramps.append(", ".join(f"{n}: {r:,.0f}/s" for n, r in rates.items()))
        ctx.progress.done(f"kpy {using[0]} ({ramps[0]}); raw {using[1]} ({ramps[1]})")
        ctx.progress.phase(
            name,
            f"throughput ({sizes.in_flight} in flight, >= {sizes.total} calls and "
            f"<= {sizes.seconds:g}s per side, 2 alternating rounds)",
        )
        totals: list[Throughput | None] = [None, None]
        for _ in range(2):
            for i, side in enumerate(sides):
                done = await side.run(count=counts[i], seconds=sizes.seconds / 2, using=using[i])
                previous = totals[i]
                totals[i] = done if previous is None else previous + done
        kpy_tp, raw_tp = totals
        assert kpy_tp is not None
        assert raw_tp is not None
        return kpy_tp, raw_tp, (using[0], using[1])
    finally:
        for side in sides:
            side.stop()

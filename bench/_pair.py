"""The measurement create and get share: the same operation through kpy and
straight on etcd, first one call at a time (interleaved, for latency), then
with many calls in flight (alternating rounds, for throughput)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bench._load import alternating, interleaved
from bench._report import Result, latency_rows, throughput_row

if TYPE_CHECKING:
    from bench._context import Context
    from bench._load import Op, Throughput


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
    ctx.progress.phase(
        name,
        f"throughput ({in_flight} in flight, <= {total} calls or "
        f"{seconds:g}s per side, 2 alternating rounds)",
    )
    kpy_tp, raw_tp = await alternating(
        [kpy_op, raw_op], rounds=2, count=total, seconds=seconds, in_flight=in_flight
    )
    ctx.progress.done(f"kpy {kpy_tp.per_second:,.0f}/s, raw {raw_tp.per_second:,.0f}/s")
    result = Result()
    result.rows += latency_rows(name, "sequential", kpy_seq, raw_seq)
    result.rows.append(throughput_row(name, f"throughput x{in_flight}", kpy_tp, raw_tp))
    result.rows += latency_rows(name, f"latency x{in_flight}", kpy_tp.latencies, raw_tp.latencies)
    return Pair(result, (kpy_seq, raw_seq), kpy_tp, raw_tp)

"""Rows of figures, the table printed at the end, and the JSON written.

A `Row` is one metric of one benchmark: kpy's figure, the baseline's figure
measured in the same run, and their ratio, always kpy ÷ baseline. Whether a
ratio above 1 is good depends on the metric (`better`): for ops/s higher is
better, for latencies lower is better.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bench._load import Throughput, percentile

if TYPE_CHECKING:
    from collections.abc import Sequence

Better = Literal["higher", "lower"]
COUNTS = frozenset({"events", "streams"})  # units printed as whole numbers


@dataclass(frozen=True, slots=True)
class Row:
    benchmark: str
    metric: str
    unit: str
    kpy: float
    baseline: float | None = None
    better: Better = "lower"

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline or math.isnan(self.baseline):
            return None
        return self.kpy / self.baseline

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = _rounded(self.ratio)
        out["kpy"] = _rounded(self.kpy)
        out["baseline"] = _rounded(self.baseline)
        return out


@dataclass(frozen=True, slots=True)
class Aim:
    """A target the issue set, checked against this run's figures."""

    name: str
    met: bool
    detail: str


@dataclass(slots=True)
class Result:
    """What one benchmark reports: its rows, the aims it checks, and small
    details (counts, settings) for the JSON."""

    rows: list[Row] = field(default_factory=list)
    aims: list[Aim] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def latency_rows(
    benchmark: str,
    label: str,
    kpy: Sequence[float],
    baseline: Sequence[float] | None,
) -> list[Row]:
    """p50 and p99 in milliseconds of two samples given in seconds."""
    rows = []
    for q in (50, 99):
        base = percentile(baseline, q) * 1e3 if baseline is not None else None
        metric = f"{label} p{q}"
        rows.append(Row(benchmark, metric, "ms", percentile(kpy, q) * 1e3, base, "lower"))
    return rows


def throughput_row(benchmark: str, label: str, kpy: Throughput, baseline: Throughput) -> Row:
    return Row(benchmark, label, "ops/s", kpy.per_second, baseline.per_second, "higher")


def _rounded(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(f"{value:.4g}")


def _number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit in COUNTS or unit == "ops/s" or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table: benchmark, metric, kpy, baseline, ratio."""
    header = ("benchmark", "metric", "kpy", "baseline", "ratio")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        ratio = row.ratio
        ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
        if ratio is not None:
            ratio_text += " (higher is better)" if row.better == "higher" else ""
        metric = f"{row.metric} ({row.unit})" if row.unit else row.metric
        lines.append(
            (
                row.benchmark,
                metric,
                _number(row.kpy, row.unit),
                _number(row.baseline, row.unit),
                ratio_text,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 3}
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_aims(aims: Sequence[Aim]) -> str:
    return "\n".join(f"[{'met ' if a.met else 'MISS'}] {a.name}: {a.detail}" for a in aims)

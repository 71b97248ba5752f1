"""`python -m bench.compare FILE...`: result files side by side, TLS against
insecure.

The files (bench/results JSON) are grouped by `setup.tls` (a file written
before that key existed ran insecure). For every row of the TLS files it
prints (`-` for the insecure side of a row only TLS runs have, such as the
floor's no-op gRPC over TLS), as a Markdown table, each group's kpy figure and ratio to
its own same-run baseline (the mean over the group's files), and the TLS
ratio over the insecure one: below 1 where higher is better, or above 1
where lower is better, TLS costs that much. Rows without a baseline
(CPU, counts) show their kpy figures only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Compared:
    """One row of both groups: means over each group's runs."""

    benchmark: str
    metric: str
    unit: str
    better: str
    insecure_kpy: float | None  # None: a row only TLS runs have
    tls_kpy: float
    insecure_ratio: float | None  # None: the row has no baseline
    tls_ratio: float | None

    @property
    def tls_over_insecure(self) -> float | None:
        if not self.insecure_ratio or self.tls_ratio is None:
            return None
        return self.tls_ratio / self.insecure_ratio


def _rows(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["benchmark"], r["metric"]): r for r in report["rows"]}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def compare(reports: list[dict[str, Any]]) -> list[Compared]:
    """Every row of the TLS reports, in the first TLS report's order, with
    the insecure reports' figures where they have the row; ValueError if
    either group is empty."""
    insecure = [_rows(r) for r in reports if not r.get("setup", {}).get("tls", False)]
    tls = [_rows(r) for r in reports if r.get("setup", {}).get("tls", False)]
    if not insecure or not tls:
        raise ValueError(
            f"need at least one TLS and one --insecure result file, got {len(tls)} TLS "
            f"and {len(insecure)} insecure"
        )
    out = []
    for key, first in tls[0].items():
        a = [rows[key] for rows in insecure if key in rows]
        b = [rows[key] for rows in tls if key in rows]
        out.append(
            Compared(
                benchmark=key[0],
                metric=key[1],
                unit=first["unit"],
                better=first["better"],
                insecure_kpy=statistics.fmean(r["kpy"] for r in a) if a else None,
                tls_kpy=statistics.fmean(r["kpy"] for r in b),
                insecure_ratio=_mean([r.get("ratio") for r in a]),
                tls_ratio=_mean([r.get("ratio") for r in b]),
            )
        )
    return out


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(rows: list[Compared]) -> str:
    lines = [
        "| benchmark | metric | insecure kpy | insecure ratio | TLS kpy | TLS ratio "
        "| TLS ratio / insecure ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        better = f", {r.better} is better" if r.tls_ratio is not None else ""
        lines.append(
            f"| {r.benchmark} | {r.metric} ({r.unit}{better}) "
            f"| {_figure(r.insecure_kpy)} | {_ratio(r.insecure_ratio)} "
            f"| {_figure(r.tls_kpy)} | {_ratio(r.tls_ratio)} | {_ratio(r.tls_over_insecure)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="bench/results JSON files")
    args = parser.parse_args(argv)
    try:
        reports = [json.loads(path.read_text()) for path in args.files]
        rows = compare(reports)
    except (OSError, ValueError, KeyError) as e:
        print(f"bench.compare: {e}", file=sys.stderr)
        return 2
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

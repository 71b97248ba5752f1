"""bench.compare: TLS result files against insecure ones, row by row."""

from __future__ import annotations

from typing import Any

import pytest

from bench.compare import compare, markdown


def _report(tls: bool | None, rows: list[tuple[str, float, float | None]]) -> dict[str, Any]:
    setup = {} if tls is None else {"tls": tls}
    return {
        "setup": setup,
        "rows": [
            {
                "benchmark": "create",
                "metric": metric,
                "unit": "ops/s",
                "kpy": kpy,
                "baseline": None,
                "better": "higher",
                "ratio": ratio,
            }
            for metric, kpy, ratio in rows
        ],
    }


def test_rows_are_averaged_per_group_and_compared() -> None:
    reports = [
        _report(False, [("throughput", 1000.0, 0.20), ("cpu", 1.0, None)]),
        _report(None, [("throughput", 800.0, 0.10)]),  # before setup.tls: insecure
        _report(True, [("throughput", 700.0, 0.12), ("cpu", 1.2, None), ("tls only", 1.0, 1.0)]),
        _report(True, [("throughput", 500.0, 0.06)]),
    ]
    rows = {r.metric: r for r in compare(reports)}
    cases = [
        # (name, metric, insecure kpy, TLS kpy, insecure ratio, TLS ratio, TLS / insecure)
        ("means of each group", "throughput", 900.0, 600.0, 0.15, 0.09, 0.6),
        ("a row without a baseline", "cpu", 1.0, 1.2, None, None, None),
        ("a row only TLS runs have", "tls only", None, 1.0, None, 1.0, None),
    ]
    for name, metric, a_kpy, b_kpy, a_ratio, b_ratio, over in cases:
        row = rows[metric]
        assert row.insecure_kpy == (None if a_kpy is None else pytest.approx(a_kpy)), name
        assert row.tls_kpy == pytest.approx(b_kpy), name
        assert row.insecure_ratio == (None if a_ratio is None else pytest.approx(a_ratio)), name
        assert row.tls_ratio == (None if b_ratio is None else pytest.approx(b_ratio)), name
        assert row.tls_over_insecure == (None if over is None else pytest.approx(over)), name
    table = markdown(list(rows.values()))
    assert (
        "| create | throughput (ops/s, higher is better) | 900 | 0.15x | 600 | 0.09x | 0.60x |"
        in table
    )
    assert "| create | cpu (ops/s) | 1 | - | 1.2 | - | - |" in table
    assert "| create | tls only (ops/s, higher is better) | - | - | 1 | 1.00x | - |" in table


def test_both_groups_are_needed() -> None:
    cases = [
        ("only TLS", [_report(True, [])], "0 insecure"),
        ("only insecure", [_report(False, [])], "got 0 TLS"),
    ]
    for name, reports, message in cases:
        error = ""
        try:
            compare(reports)
        except ValueError as e:
            error = str(e)
        assert message in error, f"{name}: {error or 'no error'}"

"""The one `Backoff` type: each of kpy's back-offs is a set of parameters,
and the waits it hands out are the ones that back-off had before it moved
here. Time is a `FakeClock` the tests step."""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.backoff import Backoff
from kpy.clock import FakeClock, RealClock, WallClock


class _Edge(random.Random):
    """Draws the low or the high end of every jitter range."""

    def __init__(self, high: bool) -> None:
        super().__init__()
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@dataclass
class SeriesCase:
    name: str
    params: dict[str, Any]
    waits: list[float]  # un-jittered, or at the low end of the jitter
    ran_for: list[float] = field(default_factory=list)  # per wait, default 0
    high: list[float] | None = None  # at the high end of the jitter


SERIES = [
    SeriesCase(
        "client: 0.1 s doubling to 5 s, half to all of it",
        {"base": 0.1, "cap": 5.0, "jitter": (0.5, 1.0)},
        [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5],
        high=[0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0],
    ),
    SeriesCase(
        "watch cache: 0.1 s doubling to 5 s, +-20%",
        {"base": 0.1, "cap": 5.0, "jitter": (0.8, 1.2)},
        [0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 4.0, 4.0],
        high=[0.12, 0.24, 0.48, 0.96, 1.92, 3.84, 6.0, 6.0],
    ),
    SeriesCase(
        "reflector: 0.8 s doubling to 30 s, up to +50%, reset after a minute",
        {"base": 0.8, "cap": 30.0, "jitter": (1.0, 1.5), "reset_after": 60.0},
        [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 0.8, 1.6],
        ran_for=[1, 1, 1, 1, 1, 1, 1, 61, 59],
        high=[1.2, 2.4, 4.8, 9.6, 19.2, 38.4, 45.0, 1.2, 2.4],
    ),
    SeriesCase(
        "namespace controller: 0.5 s doubling to 5 s, no jitter",
        {"base": 0.5, "cap": 5.0},
        [0.5, 1.0, 2.0, 4.0, 5.0, 5.0],
    ),
    SeriesCase(
        "agent crash loop: at once, then 10 s doubling to 300 s, reset after 10 min",
        {"base": 10.0, "cap": 300.0, "reset_after": 600.0, "immediate_first": True},
        [0, 10, 20, 40, 80, 160, 300, 300, 0, 10],
        ran_for=[0, 5, 5, 5, 5, 5, 5, 5, 600, 599],
    ),
    SeriesCase(
        "factor 3",
        {"base": 1.0, "cap": 20.0, "factor": 3.0},
        [1, 3, 9, 20],
    ),
]


@pytest.mark.parametrize("case", SERIES, ids=lambda c: c.name)
def test_series(case: SeriesCase) -> None:
    for high, want in ((False, case.waits), (True, case.high or case.waits)):
        backoff = Backoff(**case.params, rng=_Edge(high), clock=FakeClock())
        ran_for = case.ran_for or [0.0] * len(want)
        got = [backoff.next(ran_for=ran) for ran in ran_for]
        assert got == pytest.approx(want), f"{case.name} (high={high})"


def test_jitter_stays_in_its_range() -> None:
    backoff = Backoff(base=1.0, cap=1.0, jitter=(0.8, 1.2), rng=random.Random(7))
    waits = [backoff.next() for _ in range(200)]
    assert all(0.8 <= w <= 1.2 for w in waits)
    assert len(set(waits)) > 100, "every wait is drawn anew"


def test_reset_starts_the_series_again() -> None:
    backoff = Backoff(base=1.0, cap=8.0, immediate_first=True)
    assert [backoff.next() for _ in range(3)] == [0.0, 1.0, 2.0]
    assert backoff.attempts == 3
    backoff.reset()
    assert backoff.attempts == 0
    assert [backoff.next() for _ in range(2)] == [0.0, 1.0]


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("no base", {"base": 0.0, "cap": 1.0}),
    ("cap below base", {"base": 2.0, "cap": 1.0}),
    ("shrinking", {"base": 1.0, "cap": 2.0, "factor": 0.5}),
    ("jitter upside down", {"base": 1.0, "cap": 2.0, "jitter": (1.2, 0.8)}),
]


@pytest.mark.parametrize(("name", "params"), INVALID, ids=[name for name, _ in INVALID])
def test_rejects_numbers_that_are_no_back_off(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Backoff: "):
        Backoff(**params)


async def test_sleep_waits_on_the_clock_within_the_budget() -> None:
    clock = FakeClock()
    backoff = Backoff(base=1.0, cap=4.0, budget=6.0, clock=clock)
    slept: list[float] = []
    for _ in range(4):
        task = asyncio.create_task(backoff.sleep())
        await asyncio.sleep(0)
        started = clock.now()
        while not task.done():
            clock.advance(0.5)
            await asyncio.sleep(0)
        if not task.result():
            assert clock.now() == started, "a wait past the budget is not slept"
            break
        slept.append(clock.now() - started)
    # 1 + 2 = 3 s slept; 4 more would end at 7 s, past the 6 s budget.
    assert slept == [1.0, 2.0]
    backoff.reset()
    assert await _sleeps(backoff, clock) is True, "reset gives the budget again"


async def _sleeps(backoff: Backoff, clock: FakeClock) -> bool:
    task = asyncio.create_task(backoff.sleep())
    await asyncio.sleep(0)
    while not task.done():
        clock.advance(0.5)
        await asyncio.sleep(0)
    return task.result()


async def test_real_and_wall_clocks_sleep() -> None:
    for clock in (RealClock(), WallClock()):
        before = clock.now()
        await clock.sleep(0.02)
        assert clock.now() - before >= 0.015, type(clock).__name__
    fired = asyncio.Event()
    WallClock().call_at(time.time() + 0.02, fired.set)
    await asyncio.wait_for(fired.wait(), 5)
    wall = WallClock().now()
    assert abs(wall - time.time()) < 5, "a WallClock reads the wall"
    assert not math.isclose(wall, RealClock().now())

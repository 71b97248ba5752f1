"""The SDK honours a server's retry-after hint (HTTP 429 TooManyRequests):
never sooner than asked, jittered upwards, within the retry budget. Time is
a FakeClock."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import grpc
import pytest

from kpy.api import errors
from kpy.backoff import Backoff
from kpy.client.client import _classify, _retry_after
from kpy.clock import FakeClock


@dataclass(frozen=True)
class HintCase:
    name: str
    error: errors.StatusError
    low: float
    high: float


HINT_CASES = [
    HintCase("shed with a hint", errors.TooManyRequests("x", retry_after_seconds=2), 2.0, 2.5),
    HintCase("shed without a hint", errors.TooManyRequests("x"), 0.0, 0.0),
    HintCase("not a shed call", errors.Unavailable("x"), 0.0, 0.0),
    HintCase(
        "a budget's refusal is the caller's to retry",
        errors.EvictionRefused("x"),
        0.0,
        0.0,
    ),
]


@pytest.mark.parametrize("case", HINT_CASES, ids=lambda c: c.name)
def test_retry_after(case: HintCase) -> None:
    for _ in range(50):
        wait = _retry_after(case.error)
        assert case.low <= wait <= case.high, f"{case.name}: {wait}"


def test_shed_call_is_never_sent() -> None:
    """A create refused for lack of seats may be sent again: it never ran."""
    shed = errors.TooManyRequests("too many requests", retry_after_seconds=1)
    assert _classify(grpc.StatusCode.RESOURCE_EXHAUSTED, "", shed) == "not sent"


@dataclass(frozen=True)
class SleepCase:
    name: str
    budget: float
    at_least: float
    slept: bool
    min_wait: float  # clock time that must pass (when slept)


SLEEP_CASES = [
    SleepCase("the hint is longer than the back-off", 10.0, 1.2, True, 1.2),
    SleepCase("no hint: the back-off's own wait", 10.0, 0.0, True, 0.05),
    SleepCase("the hint would pass the budget", 1.0, 1.2, False, 0.0),
]


@pytest.mark.parametrize("case", SLEEP_CASES, ids=lambda c: c.name)
async def test_backoff_sleeps_at_least_the_hint(case: SleepCase) -> None:
    clock = FakeClock()
    backoff = Backoff(
        base=0.1, cap=5.0, jitter=(0.5, 1.0), budget=case.budget, clock=clock, rng=random.Random(1)
    )
    sleeping = asyncio.create_task(backoff.sleep(at_least=case.at_least))
    await asyncio.sleep(0)
    if case.slept:
        clock.advance(case.min_wait - 0.01)
        await asyncio.sleep(0)
        assert not sleeping.done(), f"{case.name}: woke before {case.min_wait}s"
        clock.advance(5.0)
    assert await asyncio.wait_for(sleeping, 1) == case.slept, case.name

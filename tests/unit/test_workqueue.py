"""Work queues, after client-go's util/workqueue queue_test.go, delaying_queue_test.go,
default_rate_limiters_test.go and rate_limiting_queue_test.go. Time is a FakeClock."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.cache.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    Queue,
    RateLimiter,
    RateLimitingQueue,
    ShutDown,
    default_controller_rate_limiter,
)
from kpy.clock import FakeClock, RealClock

if TYPE_CHECKING:
    from collections.abc import Hashable


async def settle() -> None:
    """Let every runnable task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


async def take_all(q: Queue[str] | DelayingQueue[str] | RateLimitingQueue[str]) -> list[str]:
    out: list[str] = []
    while len(q):
        item = await q.get()
        q.done(item)
        out.append(item)
    return out


# --- Queue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCase:
    name: str
    adds: list[str]
    want: list[str]


ADD_CASES = [
    AddCase("distinct keys keep FIFO order", ["c", "a", "b"], ["c", "a", "b"]),
    AddCase("duplicate while queued is a no-op", ["a", "b", "a", "a"], ["a", "b"]),
    AddCase("every key a duplicate", ["x", "x", "x"], ["x"]),
    AddCase("nothing added", [], []),
]


@pytest.mark.parametrize("case", ADD_CASES, ids=lambda c: c.name)
async def test_add_dedups_queued_keys(case: AddCase) -> None:
    q: Queue[str] = Queue()
    for key in case.adds:
        q.add(key)
    assert len(q) == len(case.want), case.name
    assert await take_all(q) == case.want, case.name
    assert q.statistics().adds == len(case.want), case.name


async def test_key_added_during_processing_is_processed_exactly_once_more() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    assert await q.get() == "a"
    for _ in range(3):
        q.add("a")  # dirty while processing: not queued, not handed to another worker
    assert len(q) == 0
    assert q.statistics().processing == 1
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0
    assert q.statistics() == dataclasses.replace(
        q.statistics(), depth=0, processing=0, adds=2, gets=2
    )


async def test_no_key_is_processed_by_two_workers_at_once() -> None:
    q: Queue[str] = Queue()
    in_flight: set[str] = set()
    processed: list[str] = []
    clashes: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except ShutDown:
                return
            if key in in_flight:
                clashes.append(key)
            in_flight.add(key)
            await settle()  # hold the key while producers keep adding it
            in_flight.discard(key)
            processed.append(key)
            q.done(key)

    async def producer() -> None:
        for round_ in range(20):
            for key in ("a", "b", "c"):
                q.add(key)
            if round_ % 3 == 0:
                await asyncio.sleep(0)
        await settle()
        await q.shut_down_with_drain()

    async with asyncio.TaskGroup() as tg:
        for _ in range(5):
            tg.create_task(worker())
        tg.create_task(producer())

    assert clashes == []
    assert set(processed) == {"a", "b", "c"}
    assert q.statistics().processing == 0


async def test_shut_down_wakes_every_waiting_getter() -> None:
    q: Queue[str] = Queue()

    async def getter() -> str:
        try:
            return await q.get()
        except ShutDown:
            return "shut down"

    async with asyncio.TaskGroup() as tg:
        getters = [tg.create_task(getter()) for _ in range(3)]
        await settle()
        assert not any(g.done() for g in getters)
        q.shut_down()
    assert [g.result() for g in getters] == ["shut down"] * 3


async def test_shut_down_hands_out_queued_keys_then_raises_and_drops_adds() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.add("b")
    q.shut_down()
    q.add("c")  # dropped
    assert q.shutting_down
    assert await q.get() == "a"
    assert await q.get() == "b"
    with pytest.raises(ShutDown):
        await q.get()
    q.done("a")
    q.done("b")
    assert q.statistics().processing == 0


async def test_shut_down_with_drain_waits_for_keys_in_processing() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    key = await q.get()
    async with asyncio.TaskGroup() as tg:
        drain = tg.create_task(q.shut_down_with_drain())
        await settle()
        assert not drain.done(), "drain returned while a key was still processing"
        q.done(key)
    assert drain.done()


async def test_cancelled_getter_does_not_strand_a_key() -> None:
    q: Queue[str] = Queue()
    async with asyncio.TaskGroup() as tg:
        first = tg.create_task(q.get())
        second = tg.create_task(q.get())
        await settle()
        q.add("a")  # wakes `first` ...
        first.cancel()  # ... which is cancelled before it runs, so `second` must wake
        await settle()
        assert second.done()
        assert second.result() == "a"
    assert first.cancelled()


def test_statistics_is_a_frozen_snapshot() -> None:
    q: Queue[str] = Queue()
    stats = q.statistics()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.depth = 3  # type: ignore[misc]


# --- DelayingQueue ----------------------------------------------------------------------


@dataclass(frozen=True)
class DelayCase:
    name: str
    adds: list[tuple[str, float]]  # (key, delay) in call order
    steps: list[tuple[float, list[str]]]  # (advance by, keys ready afterwards, in order)


DELAY_CASES = [
    DelayCase(
        "ready in order of ready time, not of call",
        [("c", 3.0), ("a", 1.0), ("b", 2.0)],
        [(0.5, []), (0.5, ["a"]), (1.0, ["b"]), (1.0, ["c"])],
    ),
    DelayCase(
        "one step past several ready times releases them in order",
        [("b", 2.0), ("a", 1.0)],
        [(5.0, ["a", "b"])],
    ),
    DelayCase(
        "duplicate: an earlier ready time wins",
        [("a", 10.0), ("a", 1.0)],
        [(1.0, ["a"]), (20.0, [])],
    ),
    DelayCase(
        "duplicate: a later ready time is ignored",
        [("a", 1.0), ("a", 10.0)],
        [(1.0, ["a"]), (20.0, [])],
    ),
    DelayCase(
        "zero or negative delay adds at once",
        [("a", 0.0), ("b", -1.0), ("c", 1.0)],
        [(0.0, ["a", "b"]), (1.0, ["c"])],
    ),
]


@pytest.mark.parametrize("case", DELAY_CASES, ids=lambda c: c.name)
async def test_add_after(case: DelayCase) -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    for key, delay in case.adds:
        q.add_after(key, delay)
    assert clock.pending_timers <= 1, f"{case.name}: the queue owns one timer at most"
    for i, (advance, want) in enumerate(case.steps):
        clock.advance(advance)
        assert await take_all(q) == want, f"{case.name}: step {i}"
    assert q.statistics().waiting == 0, case.name
    assert clock.pending_timers == 0, case.name


async def test_add_after_wakes_a_waiting_getter() -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("a", 1.0)
    async with asyncio.TaskGroup() as tg:
        getter = tg.create_task(q.get())
        await settle()
        assert not getter.done()
        clock.advance(1.0)
        await settle()
        assert getter.done()
    assert getter.result() == "a"


async def test_delaying_shut_down_cancels_its_timer_and_drops_waiting_keys() -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("a", 1.0)
    assert q.statistics().waiting == 1
    q.shut_down()
    assert clock.pending_timers == 0
    q.add_after("b", 1.0)
    clock.advance(5.0)
    assert len(q) == 0
    assert q.statistics().waiting == 0


async def test_add_after_with_the_real_clock() -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=RealClock())
    q.add_after("a", 0.002)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), timeout=1.0) == "a"
    q.done("a")


# --- Rate limiters ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExpCase:
    name: str
    base: float
    cap: float
    want: list[float]


EXP_CASES = [
    ExpCase(
        "client-go defaults double from 5 ms",
        0.005,
        1000.0,
        [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56],
    ),
    ExpCase("capped at max", 0.001, 0.004, [0.001, 0.002, 0.004, 0.004, 0.004]),
    ExpCase("base equal to max", 1.0, 1.0, [1.0, 1.0, 1.0]),
]


@pytest.mark.parametrize("case", EXP_CASES, ids=lambda c: c.name)
def test_exponential_backoff_sequence(case: ExpCase) -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(
        base_delay=case.base, max_delay=case.cap
    )
    got = [limiter.when("one") for _ in case.want]
    assert got == pytest.approx(case.want), case.name
    assert limiter.num_requeues("one") == len(case.want), case.name
    assert limiter.when("two") == pytest.approx(case.base), f"{case.name}: keys are separate"
    limiter.forget("one")
    assert limiter.num_requeues("one") == 0, case.name
    assert limiter.when("one") == pytest.approx(case.base), f"{case.name}: forget resets"


def test_exponential_backoff_never_overflows() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter()
    for _ in range(2000):
        delay = limiter.when("k")
    assert delay == 1000.0


def test_bucket_limiter_allows_burst_then_spaces_by_one_over_qps() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=100, clock=clock)
    assert [limiter.when(i) for i in range(100)] == [0.0] * 100
    assert [limiter.when(i) for i in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    clock.advance(0.3)  # pays back the three reservations
    assert limiter.when("x") == pytest.approx(0.1)
    clock.advance(60.0)  # refills, but never past the burst
    assert [limiter.when(i) for i in range(100)] == [0.0] * 100
    assert limiter.when("y") == pytest.approx(0.1)
    assert limiter.num_requeues("y") == 0


@pytest.mark.parametrize(
    ("qps", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)], ids=["zero qps", "negative qps", "no burst"]
)
def test_bucket_limiter_rejects_bad_settings(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="BucketRateLimiter"):
        BucketRateLimiter(qps=qps, burst=burst, clock=FakeClock())


def test_max_of_takes_the_longest_delay_and_forgets_in_all() -> None:
    fast: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(
        base_delay=0.001, max_delay=1.0
    )
    slow: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(
        base_delay=0.003, max_delay=0.005
    )
    limiter = MaxOfRateLimiter(fast, slow)
    got = [limiter.when("k") for _ in range(5)]
    assert got == pytest.approx([0.003, 0.005, 0.005, 0.008, 0.016])
    assert limiter.num_requeues("k") == 5
    limiter.forget("k")
    assert fast.num_requeues("k") == slow.num_requeues("k") == 0
    with pytest.raises(ValueError, match="at least one"):
        MaxOfRateLimiter[str]()


def test_default_controller_rate_limiter_is_exponential_then_bucket() -> None:
    clock = FakeClock()
    limiter: RateLimiter[str] = default_controller_rate_limiter(burst=2, clock=clock)
    # Per-key back-off while the bucket has tokens, then the bucket's spacing dominates.
    assert limiter.when("a") == pytest.approx(0.005)
    assert limiter.when("a") == pytest.approx(0.01)
    assert limiter.when("b") == pytest.approx(0.1)
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0


# --- RateLimitingQueue ------------------------------------------------------------------


async def test_rate_limited_adds_back_off_and_forget_resets() -> None:
    clock = FakeClock()
    # Binary-exact delays, so stepping the clock lands exactly on each ready time.
    limiter: ItemExponentialFailureRateLimiter[Hashable] = ItemExponentialFailureRateLimiter(
        base_delay=0.5
    )
    q: RateLimitingQueue[str] = RateLimitingQueue(rate_limiter=limiter, clock=clock)
    for i, delay in enumerate([0.5, 1.0, 2.0]):
        q.add_rate_limited("a")
        assert q.num_requeues("a") == i + 1
        clock.advance(delay - 0.25)
        assert len(q) == 0, f"attempt {i}: ready too early"
        clock.advance(0.25)
        assert await take_all(q) == ["a"], f"attempt {i}"
    q.forget("a")
    assert q.num_requeues("a") == 0
    q.add_rate_limited("a")
    clock.advance(0.5)
    assert await take_all(q) == ["a"]
    stats = q.statistics()
    assert (stats.retries, stats.gets, stats.waiting) == (4, 4, 0)


async def test_rate_limiting_queue_defaults_and_shut_down() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    q.add("now")
    q.add_after("later", 1.0)
    q.add_rate_limited("retry")
    clock.advance(0.005)
    assert await take_all(q) == ["now", "retry"]
    q.shut_down()
    assert clock.pending_timers == 0
    q.add_rate_limited("dropped")
    assert q.num_requeues("dropped") == 0
    with pytest.raises(ShutDown):
        await q.get()

"""EventBroadcaster (kpy/cache/events.py): events go in batches, one tick
at a time (or as soon as `max_batch` wait); repeats fold into what is
queued or patch what was written; a batch whose call fails is retried a
bounded number of times and then dropped; a busy owner holds batches back
and loses none. Time is a FakeClock: nothing here depends on how fast the
machine is (the polling below only lets the writer's task run)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Event
from kpy.cache.events import NORMAL, EventBroadcaster, EventStatistics
from kpy.client.fake import Action, FakeClient
from kpy.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

TICK = 0.05


async def settle() -> None:
    """Lets the writer's task run until it waits again (on the clock or the queue)."""
    for _ in range(50):
        await anyio.sleep(0.001)


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(2_000):  # 10 s at most
        if check():
            return
        await anyio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


def batches(client: FakeClient) -> list[list[str]]:
    """The messages of every create-events call, in order."""
    return [[e.message for e in a.object] for a in client.actions if a.verb == "create-events"]


async def stored(client: FakeClient) -> dict[str, int]:
    """Message -> count of the Events stored."""
    return {e.message: e.count for e in (await client.list(Event, namespace="ns")).items}


@dataclass
class Rig:
    client: FakeClient
    clock: FakeClock
    broadcaster: EventBroadcaster
    subject: ConfigMap

    async def tick(self, seconds: float = TICK) -> None:
        """Moves the clock once the writer waits on it (a timer armed after
        an advance would wait for the next one)."""
        await settle()
        self.clock.advance(seconds)

    def record(self, *messages: str, reason: str = "Tick") -> None:
        recorder = self.broadcaster.new_recorder("test")
        for message in messages:
            recorder.event(self.subject, NORMAL, reason, message)


@contextlib.asynccontextmanager
async def running(client: FakeClient | Any = None, **options: Any) -> AsyncIterator[Rig]:
    fake = FakeClient() if client is None else client
    base = fake if isinstance(fake, FakeClient) else fake.inner
    subject = await base.create(
        from_dict(ConfigMap, {"metadata": {"name": "subject", "namespace": "ns"}})
    )
    clock = FakeClock()
    broadcaster = EventBroadcaster(fake, host="h", clock=clock, tick=TICK, **options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(broadcaster.run)
        yield Rig(base, clock, broadcaster, subject)
        tg.cancel_scope.cancel()


# -- batching ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchCase:
    name: str
    recorded: int
    max_batch: int
    before_tick: list[int]  # batch sizes written before the tick passes
    after_tick: list[int]  # all batch sizes once it has


BATCH_CASES = [
    BatchCase("nothing goes before the tick", 5, 100, [], [5]),
    BatchCase("a full batch goes at once", 7, 3, [3, 3], [3, 3, 1]),
    BatchCase("exactly a full batch", 4, 4, [4], [4]),
    BatchCase("one event waits a tick", 1, 100, [], [1]),
]


@pytest.mark.parametrize("case", BATCH_CASES, ids=lambda c: c.name)
async def test_events_go_in_batches_per_tick(case: BatchCase) -> None:
    async with running(max_batch=case.max_batch) as r:
        r.record(*(f"tick {i}" for i in range(case.recorded)))
        await settle()
        assert [len(b) for b in batches(r.client)] == case.before_tick, case.name
        await r.tick()
        await until(lambda: r.broadcaster.written == case.recorded, case.name)
        assert [len(b) for b in batches(r.client)] == case.after_tick, case.name
        # Order is kept, across batches too.
        assert [m for b in batches(r.client) for m in b] == [
            f"tick {i}" for i in range(case.recorded)
        ], case.name


# -- repeats ---------------------------------------------------------------------------


async def test_repeats_merge_while_queued_and_patch_once_written() -> None:
    async with running() as r:
        r.record("same", "same", "same")
        await r.tick()
        await until(lambda: r.broadcaster.written == 1, "the first batch")
        assert await stored(r.client) == {"same": 3}
        r.record("same", "same")
        await r.tick()
        await until(lambda: r.broadcaster.statistics().patched == 1, "the patch")
        assert await stored(r.client) == {"same": 5}
        stats = r.broadcaster.statistics()
        assert (stats.recorded, stats.created, stats.merged, stats.patched) == (5, 1, 3, 1)
        patches = [a for a in r.client.actions if a.verb == "patch"]
        assert len(patches) == 1


async def test_a_patch_of_an_event_gone_creates_it_again() -> None:
    async with running() as r:
        r.record("same")
        await r.tick()
        await until(lambda: r.broadcaster.written == 1, "the create")
        [made] = (await r.client.list(Event, namespace="ns")).items
        await r.client.delete(Event, made.metadata.name, namespace="ns")
        r.record("same")
        await r.tick()
        await until(lambda: r.broadcaster.written == 2, "the second create")
        assert await stored(r.client) == {"same": 2}


async def test_similar_events_are_combined_and_spam_is_dropped_and_counted() -> None:
    async with running() as r:
        # 10 distinct messages of one reason: the 10th is combined (client-go).
        r.record(*(f"m{i}" for i in range(10)), reason="Similar")
        # 15 more about the same object: the spam filter's burst of 25 is
        # spent; the 10th to 15th combine too, into one Event counted 6 times.
        r.record(*(f"other {i}" for i in range(15)), reason="Other")
        r.record("one too many", reason="Spam")
        await r.tick()
        await until(lambda: r.broadcaster.queued == 0, "the batch")
        stats = r.broadcaster.statistics()
        assert (stats.recorded, stats.combined, stats.merged, stats.spam_filtered) == (26, 2, 5, 1)
        messages = await stored(r.client)
        assert messages["(combined from similar events): m9"] == 1
        assert messages["(combined from similar events): other 14"] == 6
        assert "one too many" not in messages


# -- failures ----------------------------------------------------------------------------


@dataclass
class Flaky:
    """Fails the first `failures` create-events calls as a whole."""

    failures: int
    calls: int = 0

    def __call__(self, action: Action) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise errors.Unavailable("etcd is down")
        return None


@dataclass(frozen=True)
class RetryCase:
    name: str
    failures: int
    want_written: int
    want_failed: int


RETRY_CASES = [
    RetryCase("a failed call is sent again", 2, 3, 0),
    RetryCase("after the last retry the batch is dropped", 4, 0, 3),
]


@pytest.mark.parametrize("case", RETRY_CASES, ids=lambda c: c.name)
async def test_a_failing_batch_is_retried_then_dropped(case: RetryCase) -> None:
    client = FakeClient()
    flaky = Flaky(case.failures)
    client.prepend_reactor("create-events", "*", flaky)
    async with running(client, retries=3, retry_delay=1.0) as r:
        r.record("a", "b", "c")
        await r.tick()
        for delay in (1.0, 2.0, 4.0):  # the back-off, on the fake clock
            await r.tick(delay)
        await until(lambda: r.broadcaster.statistics().batches == 1, case.name)
        stats = r.broadcaster.statistics()
        assert (stats.created, stats.failed) == (case.want_written, case.want_failed), case.name
        assert flaky.calls == min(case.failures + 1, 4), case.name
        # The writer goes on: the next tick's events are written.
        r.record("later")
        await r.tick()
        await until(lambda: r.broadcaster.written == case.want_written + 1, case.name)


async def test_one_refused_event_fails_alone() -> None:
    client = FakeClient()

    def refuse_second(action: Action) -> Any:
        sent: list[Event] = action.object
        return [sent[0], errors.Invalid([], kind="Event", name=sent[1].metadata.name), sent[2]]

    client.prepend_reactor("create-events", "*", refuse_second)
    async with running(client) as r:
        r.record("a", "b", "c")
        await r.tick()
        await until(lambda: r.broadcaster.statistics().batches == 1, "the batch")
        stats = r.broadcaster.statistics()
        assert (stats.created, stats.failed) == (2, 1)


@dataclass
class OneByOne:
    """A client that cannot batch: only create and patch (an older SDK)."""

    inner: FakeClient = field(default_factory=FakeClient)

    async def create(self, obj: Any, **kw: Any) -> Any:
        return await self.inner.create(obj, **kw)

    async def patch(self, *args: Any, **kw: Any) -> Any:
        return await self.inner.patch(*args, **kw)


async def test_without_batches_events_are_created_one_by_one() -> None:
    async with running(OneByOne()) as r:
        r.record("a", "b")
        await r.tick()
        await until(lambda: r.broadcaster.written == 2, "two creates")
        assert sorted(await stored(r.client)) == ["a", "b"]


async def test_a_server_without_the_batch_call_gets_creates() -> None:
    client = FakeClient()

    def unimplemented(action: Action) -> Any:
        raise errors.MethodNotAllowed("unknown method CreateEvents")

    client.prepend_reactor("create-events", "*", unimplemented)
    async with running(client) as r:
        r.record("a", "b")
        await r.tick()
        await until(lambda: r.broadcaster.written == 2, "two creates")
        r.record("c")
        await r.tick()
        await until(lambda: r.broadcaster.written == 3, "a third create")
        assert len(batches(r.client)) == 1, "asked once, then never again"


# -- never blocking, and a busy owner -------------------------------------------------------


async def test_a_full_queue_drops_events_instead_of_blocking() -> None:
    client = FakeClient()
    subject = await client.create(
        from_dict(ConfigMap, {"metadata": {"name": "noisy", "namespace": "ns"}})
    )
    broadcaster = EventBroadcaster(client, queue_size=2, clock=FakeClock())
    recorder = broadcaster.new_recorder("test")
    for i in range(5):  # nothing runs the broadcaster: the queue fills
        recorder.event(subject, NORMAL, "Tick", f"tick {i}")
    assert (broadcaster.dropped, broadcaster.queued) == (3, 2)
    assert broadcaster.statistics() == EventStatistics(recorded=5, dropped=3, queued=2)


async def test_busy_owner_holds_batches_back_and_loses_none() -> None:
    async with running(busy_rate=1.0, max_batch=2) as r:
        r.broadcaster.set_busy(True)
        r.record("a", "b", "c", "d", "e")
        await until(lambda: len(batches(r.client)) == 1, "the first batch")
        await r.tick(0.5)
        await settle()
        assert len(batches(r.client)) == 1, "a second batch within 1/busy_rate"
        await r.tick(0.5)
        await until(lambda: len(batches(r.client)) == 2, "the second batch")
        r.broadcaster.set_busy(False)
        await r.tick()
        await until(lambda: r.broadcaster.written == 5, "the rest once calm")
        assert [m for b in batches(r.client) for m in b] == ["a", "b", "c", "d", "e"]


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="busy_rate must be positive"):
        EventBroadcaster(FakeClient(), busy_rate=0)
    with pytest.raises(ValueError, match="max_batch must be positive"):
        EventBroadcaster(FakeClient(), max_batch=0)

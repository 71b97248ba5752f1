"""Injected time for queues, back-offs, leases and probes: the one `Clock` of kpy.

Contract: a :class:`Clock` gives ``now()`` in seconds, awaitable ``sleep(seconds)``
and ``sleep_until(deadline)``, and a cancellable one-shot timer ``call_at(deadline,
callback)``. Components take a clock instead of reading the loop, so tests step a
:class:`FakeClock` instead of sleeping.

This module sits below every layer of kpy (it imports nothing of kpy), so the API
server, the client machinery, the controllers and the node agent share it.

- :class:`RealClock` is the event loop's monotonic clock; ``call_at``, ``sleep`` and
  ``sleep_until`` need a running loop, and callbacks run on the loop.
- :class:`WallClock` is the same with ``now()`` read from the wall (``time.time``),
  for what is written into objects as a timestamp; only its ``now()`` differs.
- :class:`FakeClock` stands still until a test calls ``advance(seconds)``, which runs
  every timer that has come due, earliest first, inside that call. Sleepers woken that
  way resume the next time the test yields to the loop (``await asyncio.sleep(0)``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Clock", "FakeClock", "RealClock", "TimerHandle", "WallClock"]


class TimerHandle(Protocol):
    """A pending ``call_at``; cancelling a timer that already ran is a no-op."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """What a time-dependent component needs: the time, a sleep, and a timer."""

    def now(self) -> float:
        """Seconds; only differences are meaningful (unless the clock is a `WallClock`)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock (at once if <= 0)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline`` (at once if it already is)."""
        ...

    def call_at(self, deadline: float, callback: Callable[[], object]) -> TimerHandle:
        """Run ``callback`` once ``now() >= deadline``, unless cancelled first."""
        ...


class RealClock:
    """The running event loop's clock (``time.monotonic`` outside a loop)."""

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.now()))

    def call_at(self, deadline: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_at(deadline, callback)


class WallClock(RealClock):
    """Wall-clock seconds since the epoch (``time.time``), for timestamps.

    Deadlines given to ``sleep_until`` and ``call_at`` are wall times too; they
    are converted to the loop's clock when armed, so a wall clock stepped
    later does not move a timer already armed.
    """

    def now(self) -> float:
        return time.time()

    def call_at(self, deadline: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, deadline - self.now()), callback)


class _FakeTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, *, start: float = 0.0) -> None:
        self._now = start
        self._seq = itertools.count()
        self._timers: list[tuple[float, int, _FakeTimer]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + seconds)

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = self.call_at(deadline, wake)
        try:
            await waiter
        finally:
            timer.cancel()

    def call_at(self, deadline: float, callback: Callable[[], object]) -> TimerHandle:
        timer = _FakeTimer(callback)
        heapq.heappush(self._timers, (deadline, next(self._seq), timer))
        return timer

    @property
    def pending_timers(self) -> int:
        """Timers (including sleepers) not yet run or cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward and run, earliest first, every timer now due."""
        if seconds < 0:
            raise ValueError(f"FakeClock.advance: seconds must be >= 0, got {seconds}")
        self._now += seconds
        # Timers scheduled by a callback that are already due run in this same call.
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()

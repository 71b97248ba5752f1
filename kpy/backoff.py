"""The one back-off of kpy: how long to wait before trying again.

A :class:`Backoff` is one series of retries. Every back-off of kpy (the
client's, the watch cache's, the reflector's, the namespace controller's and
the node agent's crash loop) is this type with its own numbers:

- `base`: the first wait of a series (the second, when `immediate_first`);
- `factor`: each later wait is the one before times `factor`, up to `cap`;
- `jitter`: a ``(low, high)`` range each wait is multiplied by, drawn
  uniformly every time (``(1.0, 1.0)``, the default, draws nothing), so that
  many clients that failed together do not retry together;
- `reset_after`: a try that ran at least this long before it failed starts a
  new series (`next(ran_for=...)`): a long healthy run forgives old failures;
- `immediate_first`: the first retry of a series does not wait (the kubelet
  restarts a crashed container at once, then backs off);
- `budget`: `sleep` gives up once a wait would end more than `budget`
  seconds after the series began (or was last reset).

Contract: `next()` is bookkeeping (and the jitter draw) only; it never reads
the clock, so a caller that schedules instead of sleeping (a work queue, the
agent's per-container restarts) uses it with its own notion of time.
`sleep()` waits on the injected :class:`kpy.clock.Clock`, so tests step a
`FakeClock`. One series belongs to one retry loop; it is not shared between
tasks.

This module sits below every layer of kpy (it imports only `kpy.clock`).
"""

from __future__ import annotations

import math
import random

from kpy.clock import Clock, RealClock

__all__ = ["Backoff"]


class Backoff:
    """One series of retries; see the module docstring."""

    def __init__(
        self,
        *,
        base: float,
        cap: float,
        factor: float = 2.0,
        jitter: tuple[float, float] = (1.0, 1.0),
        reset_after: float = math.inf,
        immediate_first: bool = False,
        budget: float = math.inf,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"Backoff: need 0 < base <= cap, got base={base}, cap={cap}")
        if factor < 1:
            raise ValueError(f"Backoff: factor must be >= 1, got {factor}")
        low, high = jitter
        if not 0 <= low <= high:
            raise ValueError(
                f"Backoff: jitter must be (low, high) with 0 <= low <= high, got {jitter}"
            )
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.reset_after = reset_after
        self.immediate_first = immediate_first
        self.budget = budget
        self._clock: Clock = clock if clock is not None else RealClock()
        self._rng = rng
        self._raw: float | None = None  # the last un-jittered wait; None: series not begun
        self._attempts = 0
        self._began = self._clock.now()

    @property
    def attempts(self) -> int:
        """Waits handed out since the series began (or was reset)."""
        return self._attempts

    def reset(self) -> None:
        """Starts a new series: the next wait is the first one again."""
        self._raw = None
        self._attempts = 0
        self._began = self._clock.now()

    def next(self, *, ran_for: float = 0.0) -> float:
        """The wait before the next try, moving the series on. `ran_for` is
        how long the try that just failed ran; at least `reset_after` starts a
        new series first."""
        if ran_for >= self.reset_after:
            self.reset()
        self._attempts += 1
        if self._attempts == 1 and self.immediate_first:
            return 0.0
        self._raw = self.base if self._raw is None else min(self._raw * self.factor, self.cap)
        low, high = self.jitter
        if low == high == 1.0:
            return self._raw
        draw = self._rng.uniform(low, high) if self._rng is not None else random.uniform(low, high)
        return self._raw * draw

    async def sleep(self, *, ran_for: float = 0.0, at_least: float = 0.0) -> bool:
        """Sleeps the next wait (never less than `at_least`: a server's
        retry-after hint) on the clock and returns True; returns False at
        once, without sleeping, when that wait would end past the budget."""
        delay = max(self.next(ran_for=ran_for), at_least)
        if self._clock.now() + delay > self._began + self.budget:
            return False
        await self._clock.sleep(delay)
        return True

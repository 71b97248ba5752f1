"""Work queues for controllers, after client-go's ``util/workqueue``.

Three layers, each adding one behaviour to the one below by composition:

``Queue`` (:class:`WorkQueue` protocol)
    A FIFO of hashable keys. Guarantees: a key is queued at most once (adding a key
    already queued is a no-op); a key handed out by ``get()`` is not handed out again
    until the worker calls ``done(key)``, so two workers never process one key at
    once; a key added while it is being processed is queued again by ``done(key)``
    and so processed exactly once more. ``get()`` waits for a key. After
    ``shut_down()`` adds are dropped, getters still receive the keys already queued,
    and once the queue is empty every ``get()`` raises :class:`ShutDown`.
    Callers must call ``done(key)`` exactly once for every key they ``get()``, and
    must not mutate a key (keys are hashed).

``DelayingQueue`` (:class:`DelayingWorkQueue` protocol)
    Adds ``add_after(key, delay)``: the key is added once ``delay`` seconds have
    passed on the injected clock. A key waiting twice keeps the earlier ready time.
    The queue owns a single timer handle (``Clock.call_at``) armed for the earliest
    ready time; there is no polling and no background task. ``shut_down()`` cancels
    the timer and drops the waiting keys. Must be used from the event loop's thread.

``RateLimitingQueue`` (:class:`RateLimitingWorkQueue` protocol)
    Adds ``add_rate_limited(key)`` (``add_after`` with the delay a
    :class:`RateLimiter` chooses), ``forget(key)`` (the key succeeded: drop its
    failure history, which callers must do or the limiter keeps per-key state) and
    ``num_requeues(key)``.

Rate limiters: :class:`ItemExponentialFailureRateLimiter` (per-key 2**n back-off),
:class:`BucketRateLimiter` (overall token bucket), :class:`MaxOfRateLimiter` and
:func:`default_controller_rate_limiter`, the usual pairing of the two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from kpy.clock import Clock, RealClock

if TYPE_CHECKING:
    from kpy.clock import TimerHandle

__all__ = [
    "BucketRateLimiter",
    "DelayingQueue",
    "DelayingWorkQueue",
    "ItemExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "Queue",
    "QueueStatistics",
    "RateLimiter",
    "RateLimitingQueue",
    "RateLimitingWorkQueue",
    "ShutDown",
    "WorkQueue",
    "default_controller_rate_limiter",
]

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class ShutDown(Exception):
    """Raised by ``get()`` once the queue is shut down and empty: the worker should exit."""


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """A snapshot of a queue, for metrics."""

    depth: int  # keys queued, ready for a worker
    processing: int  # keys handed out and not yet done
    waiting: int  # keys in add_after, not yet ready (delaying layer and up)
    adds: int  # adds that queued or re-marked a key (duplicates not counted)
    gets: int  # keys handed to workers
    retries: int  # add_rate_limited calls (rate-limiting layer)
    shutting_down: bool


# --- Protocols, shaped by their consumers (controllers) ---------------------------------


class WorkQueue(Protocol[T]):
    def add(self, item: T) -> None: ...
    def __len__(self) -> int: ...
    async def get(self) -> T: ...
    def done(self, item: T) -> None: ...
    def shut_down(self) -> None: ...
    async def shut_down_with_drain(self) -> None: ...
    @property
    def shutting_down(self) -> bool: ...
    def statistics(self) -> QueueStatistics: ...


class DelayingWorkQueue(WorkQueue[T], Protocol[T]):
    def add_after(self, item: T, delay: float) -> None: ...


class RateLimitingWorkQueue(DelayingWorkQueue[T], Protocol[T]):
    def add_rate_limited(self, item: T) -> None: ...
    def forget(self, item: T) -> None: ...
    def num_requeues(self, item: T) -> int: ...


class RateLimiter(Protocol[T_contra]):
    """Chooses how long a key waits before it is retried."""

    def when(self, item: T_contra) -> float:
        """Seconds to wait before retrying ``item``; records one more attempt."""
        ...

    def forget(self, item: T_contra) -> None:
        """Drop ``item``'s history (it succeeded or is gone)."""
        ...

    def num_requeues(self, item: T_contra) -> int:
        """How many times ``item`` has been retried since it was last forgotten."""
        ...


# --- Layer 1: the queue -------------------------------------------------------------------


class Queue(Generic[T]):
    """FIFO with per-key dedup and exclusive processing; see the module docstring."""

    def __init__(self) -> None:
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()  # queued, or re-added while processing
        self._processing: set[T] = set()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._idle = asyncio.Event()  # set whenever nothing is processing
        self._idle.set()
        self._adds = 0
        self._gets = 0

    def add(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._adds += 1
        self._dirty.add(item)
        if item in self._processing:
            return  # done() queues it again
        self._queue.append(item)
        self._wake_one()

    def __len__(self) -> int:
        return len(self._queue)

    async def get(self) -> T:
        while not self._queue:
            if self._shutting_down:
                raise ShutDown("work queue is shut down")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Woken and cancelled at once: pass the wake-up on so no key is stranded.
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()
                raise
            finally:
                if waiter in self._getters:
                    self._getters.remove(waiter)
        item = self._queue.popleft()
        self._dirty.discard(item)
        self._processing.add(item)
        self._idle.clear()
        self._gets += 1
        return item

    def done(self, item: T) -> None:
        """Mark ``item`` processed; if it was added meanwhile, queue it again."""
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.append(item)
            self._wake_one()
        if not self._processing:
            self._idle.set()

    def shut_down(self) -> None:
        """Drop further adds; getters drain the queue, then get :class:`ShutDown`."""
        self._shutting_down = True
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def shut_down_with_drain(self) -> None:
        """``shut_down()``, then wait until every key handed out has been ``done()``."""
        self.shut_down()
        await self._idle.wait()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            depth=len(self._queue),
            processing=len(self._processing),
            waiting=0,
            adds=self._adds,
            gets=self._gets,
            retries=0,
            shutting_down=self._shutting_down,
        )

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


# --- Layer 2: delays ----------------------------------------------------------------------


class _Layer(Generic[T]):
    """A queue layer: what it does not add, it hands to the queue it wraps."""

    _queue: WorkQueue[T]

    def add(self, item: T) -> None:
        self._queue.add(item)

    def __len__(self) -> int:
        return len(self._queue)

    async def get(self) -> T:
        return await self._queue.get()

    def done(self, item: T) -> None:
        self._queue.done(item)

    def shut_down(self) -> None:
        self._queue.shut_down()

    async def shut_down_with_drain(self) -> None:
        await self._queue.shut_down_with_drain()

    @property
    def shutting_down(self) -> bool:
        return self._queue.shutting_down


class DelayingQueue(_Layer[T]):
    """A :class:`WorkQueue` plus ``add_after``; see the module docstring.

    Ownership: the queue owns one ``TimerHandle`` at a time, armed for the earliest
    ready time and re-armed by the timer's own callback; ``shut_down()`` cancels it.
    """

    def __init__(self, *, queue: WorkQueue[T] | None = None, clock: Clock | None = None) -> None:
        self._queue: WorkQueue[T] = queue if queue is not None else Queue()
        self._clock: Clock = clock if clock is not None else RealClock()
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, T]] = []  # may hold stale entries
        self._ready_at: dict[T, tuple[float, int]] = {}  # the live entry per key
        self._timer: TimerHandle | None = None
        self._timer_at = math.inf

    def add_after(self, item: T, delay: float) -> None:
        if self._queue.shutting_down:
            return
        if delay <= 0:
            self._queue.add(item)
            return
        ready_at = self._clock.now() + delay
        current = self._ready_at.get(item)
        if current is not None and current[0] <= ready_at:
            return  # the earlier ready time wins
        entry = (ready_at, next(self._seq))
        self._ready_at[item] = entry
        heapq.heappush(self._heap, (*entry, item))
        self._arm()

    def shut_down(self) -> None:
        self._stop_timer()
        self._queue.shut_down()

    async def shut_down_with_drain(self) -> None:
        self._stop_timer()
        await self._queue.shut_down_with_drain()

    def statistics(self) -> QueueStatistics:
        return dataclasses.replace(self._queue.statistics(), waiting=len(self._ready_at))

    def _arm(self) -> None:
        self._drop_stale()
        if not self._heap:
            return
        ready_at = self._heap[0][0]
        if ready_at >= self._timer_at:
            return  # the armed timer fires first anyway
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._clock.call_at(ready_at, self._fire)
        self._timer_at = ready_at

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self._clock.now()
        self._drop_stale()
        while self._heap and self._heap[0][0] <= now:
            _, _, item = heapq.heappop(self._heap)
            del self._ready_at[item]
            self._queue.add(item)
            self._drop_stale()
        self._arm()

    def _drop_stale(self) -> None:
        while self._heap and self._ready_at.get(self._heap[0][2]) != self._heap[0][:2]:
            heapq.heappop(self._heap)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        self._heap.clear()
        self._ready_at.clear()


# --- Rate limiters ------------------------------------------------------------------------


class ItemExponentialFailureRateLimiter(Generic[T]):
    """Per key: ``base_delay * 2**failures``, capped at ``max_delay``."""

    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError(
                "ItemExponentialFailureRateLimiter: need 0 < base_delay <= max_delay, "
                f"got base_delay={base_delay}, max_delay={max_delay}"
            )
        self._base = base_delay
        self._max = max_delay
        self._failures: dict[T, int] = {}

    def when(self, item: T) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp >= 1024:  # 2**exp would overflow a float; long past any sane cap
            return self._max
        return min(self._base * 2.0**exp, self._max)

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket: ``burst`` retries at once, then one per ``1/qps`` seconds.

    Each ``when()`` reserves a token, so the delays it returns are spaced ``1/qps`` apart
    once the burst is spent. Keys are not tracked (``num_requeues`` is always 0).
    """

    def __init__(self, *, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(
                f"BucketRateLimiter: need qps > 0 and burst >= 1, got qps={qps}, burst={burst}"
            )
        self._qps = qps
        self._burst = burst
        self._clock: Clock = clock if clock is not None else RealClock()
        self._tokens = float(burst)
        self._last = self._clock.now()

    def when(self, item: object) -> float:
        now = self._clock.now()
        self._tokens = min(float(self._burst), self._tokens + (now - self._last) * self._qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    def forget(self, item: object) -> None:
        pass

    def num_requeues(self, item: object) -> int:
        return 0


class MaxOfRateLimiter(Generic[T]):
    """The longest delay of several limiters (each records every attempt)."""

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter: need at least one limiter")
        self._limiters = limiters

    def when(self, item: T) -> float:
        return max([limiter.when(item) for limiter in self._limiters])

    def forget(self, item: T) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return max(limiter.num_requeues(item) for limiter in self._limiters)


def default_controller_rate_limiter(
    *,
    base_delay: float = 0.005,
    max_delay: float = 1000.0,
    qps: float = 10.0,
    burst: int = 100,
    clock: Clock | None = None,
) -> MaxOfRateLimiter[Hashable]:
    """Per-key exponential back-off (5 ms to 1000 s) and an overall 10/s bucket, burst 100."""
    return MaxOfRateLimiter[Hashable](
        ItemExponentialFailureRateLimiter[Hashable](base_delay=base_delay, max_delay=max_delay),
        BucketRateLimiter(qps=qps, burst=burst, clock=clock),
    )


# --- Layer 3: rate limiting ---------------------------------------------------------------


class RateLimitingQueue(_Layer[T]):
    """A :class:`DelayingWorkQueue` plus rate-limited re-adds; see the module docstring."""

    def __init__(
        self,
        *,
        rate_limiter: RateLimiter[T] | None = None,
        queue: DelayingWorkQueue[T] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if queue is None:
            queue = DelayingQueue(clock=clock)
        if rate_limiter is None:
            rate_limiter = default_controller_rate_limiter(clock=clock)
        self._queue: DelayingWorkQueue[T] = queue
        self._limiter: RateLimiter[T] = rate_limiter
        self._retries = 0

    def add_rate_limited(self, item: T) -> None:
        if self._queue.shutting_down:
            return
        self._retries += 1
        self._queue.add_after(item, self._limiter.when(item))

    def forget(self, item: T) -> None:
        self._limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self._limiter.num_requeues(item)

    def add_after(self, item: T, delay: float) -> None:
        self._queue.add_after(item, delay)

    def statistics(self) -> QueueStatistics:
        return dataclasses.replace(self._queue.statistics(), retries=self._retries)

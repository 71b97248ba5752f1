"""The scheduling queue (kube-scheduler's internal/queue.PriorityQueue).

Three places a pending pod can be:

- **active**: ready to be tried, ordered by priority (higher first), then by
  when it was queued (earlier first); `pop()` waits for one.
- **backoff**: tried and failed; it waits `1 s * 2**(attempts-1)`, at most
  10 s, then moves to active by itself (one timer, owned by the queue, armed
  for the earliest expiry; nothing polls).
- **unschedulable**: fits no node as the cluster is. It stays until
  something that could change that happens (`move_all_to_active_or_backoff`:
  a node added or changed, a pod deleted or finished), then goes to active
  at once (kube-scheduler would wait out the rest of its back-off first;
  kpy binds within a second of the change). As a safety net it is retried
  after `max_unschedulable` (5 minutes) anyway.

A pod that fails while a move request arrived during its own scheduling
cycle goes to backoff, not unschedulable: the change it may have needed
has already happened (kube-scheduler's moveRequestCycle).

Keys are "namespace/name". A pod is in at most one place at a time; `update`
replaces the stored pod wherever it is (and an unschedulable pod whose spec
changed is tried again); `delete` drops it from everywhere. `pop()` hands a
pod out; the scheduler reports the outcome with `done(key)` (success or
bound elsewhere), `add_unschedulable(info, cycle)` (fits nowhere) or
`add_backoff(info)` (an error: retried after its back-off only).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import anyio

from kpy.clock import Clock, RealClock

if TYPE_CHECKING:
    from kpy.api.core.v1 import Pod
    from kpy.clock import TimerHandle

__all__ = [
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "MAX_UNSCHEDULABLE",
    "QueueClosedError",
    "QueuedPodInfo",
    "SchedulingQueue",
]

INITIAL_BACKOFF: Final = 1.0
MAX_BACKOFF: Final = 10.0
MAX_UNSCHEDULABLE: Final = 300.0


class QueueClosedError(Exception):
    """`pop()` on a closed queue: the scheduler is stopping."""


@dataclass(slots=True)
class QueuedPodInfo:
    pod: Pod
    key: str
    #: when it was (re)queued: the tie-breaker inside one priority.
    timestamp: float
    #: when it was first queued: for the scheduling latency metric.
    initial_timestamp: float
    attempts: int = 0
    #: plugins that rejected it last time (for a future smarter requeue).
    unschedulable_plugins: set[str] = field(default_factory=set)


def priority_of(pod: Pod) -> int:
    return pod.spec.priority if pod.spec.HasField("priority") else 0


class SchedulingQueue:
    """See the module docstring. Must be used from the event loop's thread."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        max_unschedulable: float = MAX_UNSCHEDULABLE,
    ) -> None:
        self._clock = clock or RealClock()
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_unschedulable = max_unschedulable
        self._seq = itertools.count()
        # key -> info; the heaps hold (sort key..., seq, key) and skip stale entries.
        self._active: dict[str, QueuedPodInfo] = {}
        self._active_heap: list[tuple[int, float, int, str]] = []
        self._backoff: dict[str, QueuedPodInfo] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, QueuedPodInfo] = {}
        self._timer: TimerHandle | None = None
        self._timer_at = float("inf")
        self._wake = anyio.Event()
        self._closed = False
        self.scheduling_cycle = 0
        self._move_request_cycle = -1

    # -- feeding ----------------------------------------------------------------------

    def add(self, pod: Pod, key: str) -> None:
        """A new pending pod (or one seen again after a restart)."""
        if key in self._in_flight or self._find(key) is not None:
            self.update(pod, key)
            return
        now = self._clock.now()
        self._push_active(QueuedPodInfo(pod, key, now, now))

    def update(self, pod: Pod, key: str) -> None:
        if key in self._in_flight:
            self._in_flight[key].pod = pod
            return
        info = self._find(key)
        if info is None:
            self.add(pod, key)
            return
        spec_changed = info.pod.spec != pod.spec or info.pod.metadata.labels != pod.metadata.labels
        info.pod = pod
        if key in self._unschedulable and spec_changed:
            del self._unschedulable[key]
            self._requeue(info)

    def delete(self, key: str) -> None:
        self._active.pop(key, None)
        self._backoff.pop(key, None)
        self._unschedulable.pop(key, None)
        self._in_flight.pop(key, None)

    def move_all_to_active_or_backoff(self, event: str = "") -> None:
        """The cluster changed in a way that may let unschedulable pods fit."""
        del event  # every event moves every pod; a per-plugin filter could come later
        self._move_request_cycle = self.scheduling_cycle
        moved = list(self._unschedulable.values())
        self._unschedulable.clear()
        for info in moved:
            # Straight to active, not through what is left of its back-off
            # (as kube-scheduler would): the change may be the one it waited
            # for, and users expect it bound within a second. A burst of
            # events cannot make it spin: failing while a move happened during
            # its own cycle sends it to back-off (below, add_unschedulable).
            self._push_active(info)

    # -- the scheduler's side ---------------------------------------------------------

    async def pop(self) -> QueuedPodInfo:
        """The next pod to try; waits for one. QueueClosedError once closed."""
        while True:
            if self._closed:
                raise QueueClosedError
            while self._active_heap:
                _, _, _, key = heapq.heappop(self._active_heap)
                info = self._active.pop(key, None)
                if info is not None:
                    info.attempts += 1
                    self.scheduling_cycle += 1
                    self._in_flight[key] = info
                    return info
            await self._wake.wait()
            self._wake = anyio.Event()

    def done(self, key: str) -> None:
        """The pod was bound (or is gone): the queue forgets it."""
        self._in_flight.pop(key, None)

    def add_unschedulable(self, info: QueuedPodInfo, pod_cycle: int) -> None:
        """The pod failed in the cycle `pod_cycle` (the queue's
        scheduling_cycle when it was popped)."""
        if self._in_flight.pop(info.key, None) is None:
            return  # deleted meanwhile
        info.timestamp = self._clock.now()
        if self._move_request_cycle >= pod_cycle:
            self._push_backoff(info)
        else:
            self._unschedulable[info.key] = info
            self._arm(info.timestamp + self._max_unschedulable)

    def add_backoff(self, info: QueuedPodInfo) -> None:
        """The pod failed for a reason no cluster event fixes (it cannot be
        parsed, a binding failed): it is tried again once its back-off ends."""
        if self._in_flight.pop(info.key, None) is None:
            return  # deleted meanwhile
        info.timestamp = self._clock.now()
        self._push_backoff(info)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._wake.set()

    def now(self) -> float:
        """The queue's clock, on which QueuedPodInfo times are measured."""
        return self._clock.now()

    # -- statistics ---------------------------------------------------------------------

    def pending(self) -> dict[str, int]:
        """Pods per place, for metrics (kube-scheduler's pending_pods{queue})."""
        return {
            "active": len(self._active),
            "backoff": len(self._backoff),
            "unschedulable": len(self._unschedulable),
        }

    def has_active(self) -> bool:
        """Whether a pod is ready to be popped now."""
        return bool(self._active)

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    def __contains__(self, key: str) -> bool:
        return key in self._in_flight or self._find(key) is not None

    # -- internals ----------------------------------------------------------------------

    def _find(self, key: str) -> QueuedPodInfo | None:
        return self._active.get(key) or self._backoff.get(key) or self._unschedulable.get(key)

    def backoff_duration(self, attempts: int) -> float:
        if attempts <= 0:
            return 0.0
        return float(min(self._initial_backoff * 2 ** (attempts - 1), self._max_backoff))

    def _requeue(self, info: QueuedPodInfo) -> None:
        if self._clock.now() < info.timestamp + self.backoff_duration(info.attempts):
            self._push_backoff(info)
        else:
            self._push_active(info)

    def _push_active(self, info: QueuedPodInfo) -> None:
        self._active[info.key] = info
        heapq.heappush(
            self._active_heap, (-priority_of(info.pod), info.timestamp, next(self._seq), info.key)
        )
        self._wake.set()

    def _push_backoff(self, info: QueuedPodInfo) -> None:
        ready = info.timestamp + self.backoff_duration(info.attempts)
        self._backoff[info.key] = info
        heapq.heappush(self._backoff_heap, (ready, next(self._seq), info.key))
        self._arm(ready)

    def _arm(self, at: float) -> None:
        if at >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._clock.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self._clock.now()
        while self._backoff_heap and self._backoff_heap[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff_heap)
            info = self._backoff.pop(key, None)
            if info is not None:
                self._push_active(info)
        self._flush_expired()
        # Skip entries of pods that left backoff another way.
        while self._backoff_heap and self._backoff_heap[0][2] not in self._backoff:
            heapq.heappop(self._backoff_heap)
        if self._backoff_heap:
            self._arm(self._backoff_heap[0][0])
        if self._unschedulable:
            oldest = min(i.timestamp for i in self._unschedulable.values())
            self._arm(oldest + self._max_unschedulable)

    def _flush_expired(self) -> None:
        """Unschedulable pods waiting longer than max_unschedulable go back."""
        if not self._unschedulable:
            return
        limit = self._clock.now() - self._max_unschedulable
        for key, info in list(self._unschedulable.items()):
            if info.timestamp <= limit:
                del self._unschedulable[key]
                self._push_active(info)

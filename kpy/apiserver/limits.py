"""Limits against abuse: how many calls the API server works on at once.

The smallest faithful form of Kubernetes' `--max-requests-inflight`,
`--max-mutating-requests-inflight` and API Priority and Fairness (APF):

- Every short call (not a watch, logs, exec or port-forward: those are
  long-running, and watches have a limit of their own, `WatchLimit`) takes
  one *seat* of one *priority level* for as long as its handler runs. The
  levels are `SYSTEM`, `READ_ONLY` (get, list, discovery, stats: at most
  `max_requests_inflight` at once) and `MUTATING` (every write: at most
  `max_mutating_requests_inflight`); 0 means no limit, as in Kubernetes.
- A call that finds its level full waits in that level's FIFO queue, at most
  `queue_length` calls deep and for at most `queue_wait` seconds (APF's
  queuing), taking the first seat that frees. A call that finds the queue
  full, or whose wait runs out, is refused with `TooManyRequests` ("too many
  requests, please try again later", HTTP 429) carrying a retry-after hint
  of `retry_after` seconds, before its handler ran: nothing was done, so any
  client may send it again, a create included.
- `SYSTEM` has `system_requests_inflight` seats of its own, so that a flood
  of one client's lists cannot starve kpy's own components. kpy has no
  authentication yet, so a priority the client names (a header) could not be
  trusted; the level is chosen by the *kind* of request instead (`classify`):
  the heartbeats and status writes that keep a cluster alive — any call on
  a Lease but list, reads and writes of Nodes, writes of a pod's status and
  bindings. A system call takes one of its own seats, else (at once, without
  queuing) a free seat of the level it would have had, else queues for its
  own. The price of choosing by kind: a client flooding Lease updates competes
  with the agents' heartbeats. Once calls are authenticated, the level (and
  the queue, APF's shuffle-sharded "flow") should be keyed by the user and a
  FlowSchema/PriorityLevelConfiguration instead: `classify` is the one place
  that changes; the pools and their queues stay as they are.

A batched create (`CreateEvents`) is one call: it takes one `MUTATING` seat
however many events it carries, and carries at most `MAX_BATCH` of them
(`check_batch`: more is refused with RequestEntityTooLarge before anything
is written, naming the limit).

Contract: `RequestLimiter.try_acquire` is the hot path (no await, a few
comparisons); a caller that got a `Seat` from it or from `acquire` must
`release` it when its handler ends, however it ends (a second `release` is
a no-op). Time is the injected `Clock` (`kpy.clock`), so tests step a
`FakeClock`. The limiter is per API server process and not thread-safe: it
belongs to the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from kpy.api import errors
from kpy.clock import Clock, RealClock

if TYPE_CHECKING:
    from kpy.clock import TimerHandle

log = logging.getLogger("kpy.apiserver")

SYSTEM: Final = "system"
READ_ONLY: Final = "read-only"
MUTATING: Final = "mutating"

TOO_MANY_REQUESTS: Final = "too many requests, please try again later"

# Calls that hold no seat: streams that live as long as their client wants.
LONG_RUNNING: Final = frozenset({"Watch", "Logs", "Exec", "PortForward"})
# Calls that change nothing: the reviews answer questions about the caller
# (whoami, can-i), as reads do, though Kubernetes spells them as creates.
_READS: Final = frozenset(
    {
        "Get",
        "List",
        "Resources",
        "Stats",
        "SelfSubjectReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
    }
)
_FLAGS: Final = {
    READ_ONLY: "--max-requests-inflight",
    MUTATING: "--max-mutating-requests-inflight",
    SYSTEM: "the seats reserved for kpy's components",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """The API server's limits (flags in parentheses); 0 turns a limit off."""

    max_requests_inflight: int = 400  # (--max-requests-inflight)
    max_mutating_requests_inflight: int = 200  # (--max-mutating-requests-inflight)
    system_requests_inflight: int = 50  # seats only system calls (see `classify`) take
    max_watches: int = 10_000  # open watches per API server (--max-watches)
    queue_length: int = 100  # calls that may wait for a seat, per level
    queue_wait: float = 1.0  # seconds a call may wait for a seat
    retry_after: int = 1  # seconds, the hint sent with TooManyRequests (Retry-After)

    def __post_init__(self) -> None:
        for name in (
            "max_requests_inflight",
            "max_mutating_requests_inflight",
            "system_requests_inflight",
            "max_watches",
            "queue_length",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"Limits.{name} must not be negative, got {getattr(self, name)}")
        if self.queue_wait < 0 or self.retry_after < 1:
            raise ValueError(
                f"Limits: queue_wait must be >= 0 and retry_after >= 1, "
                f"got {self.queue_wait} and {self.retry_after}"
            )


DEFAULT_LIMITS: Final = Limits()
UNLIMITED: Final = Limits(
    max_requests_inflight=0,
    max_mutating_requests_inflight=0,
    system_requests_inflight=0,
    max_watches=0,
)


@dataclass(frozen=True, slots=True)
class Kind:
    """Where a call sits: its `level`, and for a system call the level it
    may borrow a free seat from (`fallback`, else None)."""

    level: str
    fallback: str | None = None


_READ: Final = Kind(READ_ONLY)
_WRITE: Final = Kind(MUTATING)
_SYSTEM_READ: Final = Kind(SYSTEM, READ_ONLY)
_SYSTEM_WRITE: Final = Kind(SYSTEM, MUTATING)


def classify(method: str, ref: Any) -> Kind | None:
    """The kind of a call to `method` about `ref` (a ResourceRef, or None for
    calls without one); None for long-running calls, which take no seat.

    System calls are chosen by what they touch, never by what the client
    says about itself (see the module docstring)."""
    if method in LONG_RUNNING:
        return None
    read = method in _READS
    if ref is not None and _is_system(method, ref.group, ref.resource, ref.subresource):
        return _SYSTEM_READ if read else _SYSTEM_WRITE
    return _READ if read else _WRITE


def _is_system(method: str, group: str, resource: str, subresource: str) -> bool:
    if method in ("List", "DeleteCollection"):
        return False
    if resource == "leases" and group == "coordination.k8s.io":
        return True  # heartbeats and leader election
    if group:
        return False
    if resource == "nodes":
        return method != "Delete"  # an agent registers, reads and reports its node
    if resource == "pods":
        return subresource in ("status", "binding") and method != "Get"
    return False


class Seat:
    """One seat held in one level; `release` gives it back (once)."""

    __slots__ = ("_pool",)

    def __init__(self, pool: _Pool) -> None:
        self._pool: _Pool | None = pool

    def release(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.release()


class _Pool:
    """The seats of one level and its FIFO queue of waiting calls."""

    def __init__(self, level: str, seats: int, queue_length: int) -> None:
        self.level = level
        self.seats = seats  # 0: no limit
        self.queue_length = queue_length
        self.in_use = 0
        self.rejected = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_take(self) -> bool:
        # No check for waiters: `release` hands a seat to the first waiter
        # directly, so while anyone waits every seat is taken.
        if self.seats and self.in_use >= self.seats:
            return False
        self.in_use += 1
        return True

    async def wait(self, clock: Clock, patience: float) -> bool:
        """Queues for a seat; True once one is handed over, False when the
        queue is full or `patience` seconds pass first (on `clock`: an
        injected clock times the wait, not the event loop)."""
        if len(self._waiters) >= self.queue_length or patience <= 0:
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)

        def expire() -> None:
            if not waiter.done():
                waiter.set_result(False)
                self._waiters.remove(waiter)

        timer: TimerHandle = clock.call_at(clock.now() + patience, expire)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # handed a seat just as the caller gave up
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Hands the seat to the first waiter, else frees it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return  # the seat changes hands: in_use stays
        self.in_use -= 1


class RequestLimiter:
    """Seats per priority level for short calls; see the module docstring."""

    def __init__(self, limits: Limits, *, clock: Clock | None = None) -> None:
        self.limits = limits
        self._clock: Clock = clock if clock is not None else RealClock()
        self._pools = {
            READ_ONLY: _Pool(READ_ONLY, limits.max_requests_inflight, limits.queue_length),
            MUTATING: _Pool(MUTATING, limits.max_mutating_requests_inflight, limits.queue_length),
            SYSTEM: _Pool(SYSTEM, limits.system_requests_inflight, limits.queue_length),
        }

    def try_acquire(self, kind: Kind) -> Seat | None:
        """A seat for `kind` if one is free now (its own level's, else its
        fallback's), else None: then `acquire` queues for one."""
        pool = self._pools[kind.level]
        if pool.try_take():
            return Seat(pool)
        if kind.fallback is not None:
            fallback = self._pools[kind.fallback]
            if fallback.try_take():
                return Seat(fallback)
        return None

    async def acquire(self, kind: Kind) -> Seat:
        """A seat for `kind`, waiting in its level's queue if need be;
        raises `TooManyRequests` (with the retry-after hint) when the queue
        is full or the wait runs out."""
        seat = self.try_acquire(kind)
        if seat is not None:
            return seat
        pool = self._pools[kind.level]
        if await pool.wait(self._clock, self.limits.queue_wait):
            return Seat(pool)
        pool.rejected += 1
        if _is_power_of_ten(pool.rejected):  # a flood logs a few lines, not one per call
            log.warning(
                "requests refused: too many in flight",
                extra={"level": pool.level, "limit": pool.seats, "refused": pool.rejected},
            )
        raise too_many_requests(
            f"the API server is at its limit of {pool.seats} concurrent {pool.level} "
            f"requests ({_FLAGS[pool.level]})",
            self.limits.retry_after,
        )

    def statistics(self) -> dict[str, dict[str, int]]:
        """Per level: seats (0: no limit), in use, waiting, refused so far."""
        return {
            name: {
                "seats": p.seats,
                "in_use": p.in_use,
                "waiting": p.waiting,
                "rejected": p.rejected,
            }
            for name, p in self._pools.items()
        }


class WatchLimit:
    """At most `limit` open watches (0: no limit); a watch over it is refused
    with TooManyRequests, without queuing: its client resumes after the hint."""

    def __init__(self, limit: int, *, retry_after: int = 1) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.open = 0

    def enter(self) -> None:
        """Counts one more open watch; raises TooManyRequests at the limit.
        Every successful `enter` is matched by one `leave`."""
        if self.limit and self.open >= self.limit:
            raise too_many_requests(
                f"the API server is at its limit of {self.limit} open watches (--max-watches)",
                self.retry_after,
            )
        self.open += 1

    def leave(self) -> None:
        self.open -= 1


#: Objects one batched create (`CreateEvents`) may carry: what one event
#: recorder's tick gathers, with room; a bigger batch would hold its seat,
#: and the etcd transactions it needs, for longer than a call should.
MAX_BATCH: Final = 500


def check_batch(method: str, count: int, limit: int = MAX_BATCH) -> None:
    """Raises TooLarge (413) when a batch of `count` objects is over `limit`."""
    if count > limit:
        raise errors.TooLarge(
            f"the {method} request holds {count} objects; the API server accepts at most "
            f"{limit} per call: send them in batches of {limit} or fewer"
        )


def too_many_requests(why: str, retry_after: int) -> errors.TooManyRequests:
    """The refusal of a call the server did not start (HTTP 429)."""
    return errors.TooManyRequests(
        f"{TOO_MANY_REQUESTS}: {why}; retry after {retry_after}s",
        retry_after_seconds=retry_after,
    )


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1

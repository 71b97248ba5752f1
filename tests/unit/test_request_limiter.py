"""The API server's in-flight and watch limits (kpy.apiserver.limits): which
calls take which seats, who waits, who is refused. Time is a FakeClock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc
import pytest

from kpy.api import errors
from kpy.apiserver.limits import (
    MAX_BATCH,
    MUTATING,
    READ_ONLY,
    SYSTEM,
    TOO_MANY_REQUESTS,
    Kind,
    Limits,
    RequestLimiter,
    Seat,
    WatchLimit,
    check_batch,
    classify,
)
from kpy.clock import FakeClock
from kpy.rpc import status
from kpy.rpc.apiserver import v1 as api


async def settle() -> None:
    """Let every runnable task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


# --- classify ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KindCase:
    name: str
    method: str
    ref: api.ResourceRef | None
    want: Kind | None


def ref(resource: str, group: str = "", subresource: str = "") -> api.ResourceRef:
    return api.ResourceRef(
        group=group, version="v1", resource=resource, subresource=subresource, name="x"
    )


LEASES = "coordination.k8s.io"
KIND_CASES = [
    KindCase("watch is long-running", "Watch", ref("pods"), None),
    KindCase("logs are long-running", "Logs", ref("pods", subresource="log"), None),
    KindCase("exec is long-running", "Exec", ref("pods", subresource="exec"), None),
    KindCase("port-forward is long-running", "PortForward", ref("pods"), None),
    KindCase("get is read-only", "Get", ref("pods"), Kind(READ_ONLY)),
    KindCase("list is read-only", "List", ref("configmaps"), Kind(READ_ONLY)),
    KindCase("discovery is read-only", "Resources", None, Kind(READ_ONLY)),
    KindCase("stats are read-only", "Stats", None, Kind(READ_ONLY)),
    KindCase("whoami is read-only", "SelfSubjectReview", None, Kind(READ_ONLY)),
    KindCase("can-i is read-only", "SelfSubjectAccessReview", None, Kind(READ_ONLY)),
    KindCase("create is mutating", "Create", ref("pods"), Kind(MUTATING)),
    KindCase("a batch of events is one mutating call", "CreateEvents", None, Kind(MUTATING)),
    KindCase("delete collection is mutating", "DeleteCollection", ref("pods"), Kind(MUTATING)),
    KindCase("lease update is system", "Update", ref("leases", LEASES), Kind(SYSTEM, MUTATING)),
    KindCase("lease get is system", "Get", ref("leases", LEASES), Kind(SYSTEM, READ_ONLY)),
    KindCase("lease list is not", "List", ref("leases", LEASES), Kind(READ_ONLY)),
    KindCase("a 'leases' of another group is not", "Update", ref("leases", "x.io"), Kind(MUTATING)),
    KindCase(
        "node status is system",
        "Update",
        ref("nodes", subresource="status"),
        Kind(SYSTEM, MUTATING),
    ),
    KindCase("node registration is system", "Create", ref("nodes"), Kind(SYSTEM, MUTATING)),
    KindCase("node delete is not", "Delete", ref("nodes"), Kind(MUTATING)),
    KindCase(
        "pod status is system", "Patch", ref("pods", subresource="status"), Kind(SYSTEM, MUTATING)
    ),
    KindCase(
        "binding is system", "Create", ref("pods", subresource="binding"), Kind(SYSTEM, MUTATING)
    ),
    KindCase("pod update is not", "Update", ref("pods"), Kind(MUTATING)),
    KindCase("pod status get is not", "Get", ref("pods", subresource="status"), Kind(READ_ONLY)),
]


@pytest.mark.parametrize("case", KIND_CASES, ids=lambda c: c.name)
def test_classify(case: KindCase) -> None:
    assert classify(case.method, case.ref) == case.want, case.name


@pytest.mark.parametrize(
    ("count", "refused"), [(0, False), (MAX_BATCH, False), (MAX_BATCH + 1, True)]
)
def test_a_batch_over_the_limit_is_too_large(count: int, refused: bool) -> None:
    if not refused:
        check_batch("CreateEvents", count)
        return
    with pytest.raises(errors.TooLarge, match=f"at most {MAX_BATCH} per call"):
        check_batch("CreateEvents", count)


# --- RequestLimiter ----------------------------------------------------------------------

READ, WRITE = Kind(READ_ONLY), Kind(MUTATING)
SYS = Kind(SYSTEM, MUTATING)


@dataclass(frozen=True)
class Step:
    """One action: `call` (a new call named `id` of `kind`), `release` (call
    `id` ends), `advance` (seconds pass), `cancel` (call `id`'s client gives up)."""

    action: str
    id: str = ""
    kind: Kind = READ
    seconds: float = 0.0


def call(id: str, kind: Kind = READ) -> Step:
    return Step("call", id, kind)


def release(id: str) -> Step:
    return Step("release", id)


def advance(seconds: float) -> Step:
    return Step("advance", seconds=seconds)


def cancel(id: str) -> Step:
    return Step("cancel", id)


@dataclass(frozen=True)
class LimitCase:
    name: str
    limits: Limits
    steps: list[Step]
    # each call's state at the end: "served", "waiting", "refused", "cancelled"
    want: dict[str, str]
    # seats in use per level at the end
    in_use: dict[str, int] = field(default_factory=dict)


def small(reads: int = 1, writes: int = 1, system: int = 1, queue: int = 2) -> Limits:
    return Limits(
        max_requests_inflight=reads,
        max_mutating_requests_inflight=writes,
        system_requests_inflight=system,
        queue_length=queue,
        queue_wait=1.0,
        retry_after=3,
    )


LIMIT_CASES = [
    LimitCase("under the limit: served at once", small(reads=2), [call("a"), call("b")],
              {"a": "served", "b": "served"}, {READ_ONLY: 2}),
    LimitCase("over the limit: waits", small(), [call("a"), call("b"), advance(0.5)],
              {"a": "served", "b": "waiting"}, {READ_ONLY: 1}),
    LimitCase("a freed seat goes to the waiter", small(),
              [call("a"), call("b"), release("a")], {"a": "done", "b": "served"}, {READ_ONLY: 1}),
    LimitCase("the wait runs out: refused", small(), [call("a"), call("b"), advance(1.0)],
              {"a": "served", "b": "refused"}, {READ_ONLY: 1}),
    LimitCase("queue full: refused at once", small(queue=1), [call("a"), call("b"), call("c")],
              {"a": "served", "b": "waiting", "c": "refused"}),
    LimitCase("waiters are served first come, first served", small(),
              [call("a"), call("b"), call("c"), release("a")],
              {"b": "served", "c": "waiting"}),
    LimitCase("a new call does not jump the queue", small(),
              [call("a"), call("b"), release("a"), call("c")], {"b": "served", "c": "waiting"}),
    LimitCase("a client that gives up leaves the queue", small(),
              [call("a"), call("b"), call("c"), cancel("b"), release("a")],
              {"b": "cancelled", "c": "served"}, {READ_ONLY: 1}),
    LimitCase("the last seat freed with nobody waiting", small(),
              [call("a"), release("a")], {"a": "done"}, {READ_ONLY: 0}),
    LimitCase("reads and writes have separate seats", small(),
              [call("r"), call("w", WRITE)], {"r": "served", "w": "served"},
              {READ_ONLY: 1, MUTATING: 1}),
    LimitCase("0 is no limit", small(reads=0), [call(str(i)) for i in range(50)],
              {str(i): "served" for i in range(50)}),
    LimitCase("system calls have reserved seats", small(writes=1),
              [call("w", WRITE), call("w2", WRITE), call("lease", SYS)],
              {"w": "served", "w2": "waiting", "lease": "served"}, {SYSTEM: 1, MUTATING: 1}),
    LimitCase("a system call borrows a free seat of its level", small(system=1, writes=2),
              [call("l1", SYS), call("l2", SYS)], {"l1": "served", "l2": "served"},
              {SYSTEM: 1, MUTATING: 1}),
    LimitCase("a system call queues for its own seats", small(system=1, writes=1),
              [call("w", WRITE), call("l1", SYS), call("l2", SYS), release("l1")],
              {"w": "served", "l2": "served"}, {SYSTEM: 1}),
]  # fmt: skip


@pytest.mark.parametrize("case", LIMIT_CASES, ids=lambda c: c.name)
async def test_request_limiter(case: LimitCase) -> None:
    clock = FakeClock()
    limiter = RequestLimiter(case.limits, clock=clock)
    tasks: dict[str, asyncio.Task[Seat]] = {}
    state: dict[str, str] = {}
    for step in case.steps:
        if step.action == "call":
            tasks[step.id] = asyncio.create_task(limiter.acquire(step.kind))
        elif step.action == "release":
            tasks[step.id].result().release()
            state[step.id] = "done"
        elif step.action == "cancel":
            tasks[step.id].cancel()
        else:
            clock.advance(step.seconds)
        await settle()
    for id, task in tasks.items():
        if id in state:
            continue
        if not task.done():
            state[id] = "waiting"
        elif task.cancelled():
            state[id] = "cancelled"
        elif isinstance(task.exception(), errors.TooManyRequests):
            state[id] = "refused"
        else:
            state[id] = "served"
    got = {id: state[id] for id in case.want}
    assert got == case.want, case.name
    stats = limiter.statistics()
    for level, n in case.in_use.items():
        assert stats[level]["in_use"] == n, f"{case.name}: {level} {stats[level]}"
    for task in tasks.values():
        task.cancel()
    await settle()


async def test_refusal_says_what_and_when() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(small(queue=0), clock=clock)
    held = await limiter.acquire(WRITE)
    with pytest.raises(errors.TooManyRequests) as refused:
        await limiter.acquire(WRITE)
    held.release()
    e = refused.value
    assert e.message.startswith(TOO_MANY_REQUESTS), e.message
    assert "--max-mutating-requests-inflight" in e.message, e.message
    assert e.retry_after_seconds == 3
    assert e.code == 429
    assert limiter.statistics()[MUTATING] == {
        "seats": 1,
        "in_use": 0,
        "waiting": 0,
        "rejected": 1,
    }


async def test_seat_released_twice_counts_once() -> None:
    limiter = RequestLimiter(small(reads=2), clock=FakeClock())
    a = await limiter.acquire(READ)
    await limiter.acquire(READ)
    a.release()
    a.release()
    assert limiter.statistics()[READ_ONLY]["in_use"] == 1


# --- WatchLimit --------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchCase:
    name: str
    limit: int
    opens: int
    leaves: int
    then_open: bool  # whether one more watch is let in


WATCH_CASES = [
    WatchCase("under the limit", 3, 2, 0, True),
    WatchCase("at the limit", 3, 3, 0, False),
    WatchCase("a closed watch frees its place", 3, 3, 1, True),
    WatchCase("0 is no limit", 0, 100, 0, True),
]


@pytest.mark.parametrize("case", WATCH_CASES, ids=lambda c: c.name)
def test_watch_limit(case: WatchCase) -> None:
    watches = WatchLimit(case.limit, retry_after=2)
    for _ in range(case.opens):
        watches.enter()
    for _ in range(case.leaves):
        watches.leave()
    refused: errors.TooManyRequests | None = None
    try:
        watches.enter()
    except errors.TooManyRequests as e:
        refused = e
    assert (refused is None) == case.then_open, case.name
    if refused is not None:
        assert refused.message.startswith(TOO_MANY_REQUESTS), case.name
        assert "--max-watches" in refused.message, case.name
        assert refused.retry_after_seconds == 2, case.name


@pytest.mark.parametrize(
    "bad",
    [{"max_requests_inflight": -1}, {"queue_wait": -1.0}, {"retry_after": 0}],
    ids=str,
)
def test_limits_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Limits"):
        Limits(**bad)  # type: ignore[arg-type]


# --- on the wire -------------------------------------------------------------------------


def test_refusal_on_the_wire_keeps_its_hint() -> None:
    """RESOURCE_EXHAUSTED with the Status (reason TooManyRequests, 429, the
    hint in details.retry_after_seconds) and a plain `retry-after` entry."""
    refused = WatchLimit(1, retry_after=5)
    refused.enter()
    with pytest.raises(errors.TooManyRequests) as caught:
        refused.enter()
    error = caught.value
    metadata = status.trailing_metadata(error)
    assert status.code_for(error) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (status.RETRY_AFTER_KEY, "5") in metadata
    sent = status.to_status(error)
    assert (sent.reason, sent.code, sent.details.retry_after_seconds) == ("TooManyRequests", 429, 5)
    back = status.from_grpc(grpc.StatusCode.RESOURCE_EXHAUSTED, "", metadata)
    assert isinstance(back, errors.TooManyRequests)
    assert (back.message, back.retry_after_seconds) == (error.message, 5)

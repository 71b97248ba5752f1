"""Events: what controllers, the scheduler and agents did, for `describe`
(client-go's tools/record: EventBroadcaster and EventRecorder; what happens
to an event before it is written is `kpy.cache.event_correlator`).

- `EventBroadcaster(client)` owns one bounded queue and the task that writes
  it (`run()`, until cancelled). `new_recorder(component)` hands out
  recorders that stamp their component as the event's source.
- `recorder.event(obj, type, reason, message)` never blocks and never
  raises: recording is best effort and must not slow a sync. The event goes
  through the correlator at once: similar events are combined, a repeat
  becomes a count on the Event already made, and a source that floods one
  object is cut by the spam filter (counted `spam_filtered`). When the
  queue is full the event is dropped and counted (`dropped`), as client-go
  drops events under pressure.
- A repeat of an event still waiting in the queue is merged into it (its
  count and lastTimestamp): no write at all (`merged`). A repeat of an
  Event written already is a merge patch of its count, lastTimestamp and
  message (a patch that finds the Event gone creates it again).
- Writes go in batches, one short tick at a time: the writer waits `tick`
  seconds (50 ms) after an event arrives, or until `max_batch` wait, then
  sends every new Event of the tick in one `create_events` call (one API
  call, written by the API server in one etcd transaction or a few), then
  the tick's patches. A client without `create_events`, or a server that
  does not serve it (MethodNotAllowed), gets one create per event instead.
- Fire and forget: a batch whose call fails as a whole is sent again at
  most `retries` times, `retry_delay` seconds apart and doubling, then
  logged and dropped (counted `failed`); an event refused alone is logged
  and counted alone. Nothing the writer does ever waits on a recorder or
  makes one wait.
- Writes stay off their owner's hot path: `set_busy(True)` (a scheduler
  with pods waiting, say, whose own writes are the ones that matter) holds
  the writer to at most `busy_rate` batches per second; events wait in the
  queue meanwhile (merging repeats) and go at full speed once
  `set_busy(False)`. Nothing recorded is lost to this that the queue can
  hold; events are reordered only in time, never among themselves.
- Time is the injected clock's (`kpy.clock`): ticks, busy pacing,
  retries and the correlator's windows, so tests step a `FakeClock`. The
  timestamps written into Events are the wall clock's.
- An Event lives in its object's namespace ("default" for cluster-scoped
  objects) and is named `<object name>.<hex nanoseconds>`, as client-go names it.
- `statistics()` counts what became of every recorded event; `counts()`
  is the same as a mapping, for a metrics counter source.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import anyio
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import errors
from kpy.api.core.v1 import Event, ObjectReference
from kpy.api.scheme import scheme
from kpy.cache.event_correlator import CorrelatorOptions, EventCorrelator
from kpy.clock import RealClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from kpy.client import ClientProtocol
    from kpy.clock import Clock

log = logging.getLogger("kpy.events")

__all__ = ["NORMAL", "WARNING", "EventBroadcaster", "EventRecorder", "EventStatistics"]

NORMAL: Final = "Normal"
WARNING: Final = "Warning"


@dataclass(frozen=True, slots=True)
class EventStatistics:
    """What became of the events recorded so far (see the module docstring)."""

    recorded: int = 0  # events handed to a recorder
    created: int = 0  # new Events written
    patched: int = 0  # repeats written as a count on an Event made before
    merged: int = 0  # repeats folded into an event still queued: no write
    combined: int = 0  # events written as "(combined from similar events)"
    spam_filtered: int = 0  # dropped by the spam filter
    dropped: int = 0  # dropped because the queue was full
    failed: int = 0  # refused by the server, or lost with a batch that kept failing
    batches: int = 0  # ticks written
    queued: int = 0  # waiting to be written now


_COUNTED: Final = tuple(f for f in EventStatistics.__dataclass_fields__ if f != "queued")


class _EventBatches(Protocol):
    """A client that creates Events in batches (`kpy.client.Client`, `FakeClient`)."""

    async def create_events(
        self, events: Sequence[Event]
    ) -> Sequence[Event | errors.StatusError]: ...


@dataclass(slots=True)
class _Pending:
    key: tuple[str, ...]
    event: Event
    repeat: bool  # a patch of an Event made before, else a create


class EventBroadcaster:
    """See the module docstring."""

    def __init__(
        self,
        client: ClientProtocol,
        *,
        queue_size: int = 1000,
        host: str | None = None,
        busy_rate: float = 10.0,
        tick: float = 0.05,
        max_batch: int = 100,
        retries: int = 3,
        retry_delay: float = 0.5,
        clock: Clock | None = None,
        correlation: CorrelatorOptions | None = None,
    ) -> None:
        if busy_rate <= 0:
            raise ValueError(f"EventBroadcaster: busy_rate must be positive, got {busy_rate}")
        if max_batch < 1 or tick < 0 or retries < 0:
            raise ValueError(
                "EventBroadcaster: max_batch must be positive, tick and retries not negative; "
                f"got {max_batch}, {tick}, {retries}"
            )
        self._client = client
        self._clock: Clock = clock if clock is not None else RealClock()
        self._correlator = EventCorrelator(self._clock, correlation)
        self._queue: deque[_Pending] = deque()
        self._writing = 0  # events of the batch being written
        self._waiting: dict[tuple[str, ...], _Pending] = {}  # queued, by correlation key
        self._queue_size = queue_size
        self._tick = tick
        self._max_batch = max_batch
        self._retries = retries
        self._retry_delay = retry_delay
        self._wake = anyio.Event()  # set when the queue becomes non-empty
        self._nudge = anyio.Event()  # set when max_batch wait, or the owner calms down
        self.host = socket.gethostname() if host is None else host
        self._busy_interval = 1.0 / busy_rate
        self._calm = anyio.Event()  # set while not busy
        self._calm.set()
        self._last_batch = -math.inf
        self._batched = hasattr(client, "create_events")
        self._counts = dict.fromkeys(_COUNTED, 0)

    # -- state -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return not self._calm.is_set()

    @property
    def queued(self) -> int:
        """Events recorded and not written yet (waiting, or being written)."""
        return len(self._queue) + self._writing

    @property
    def written(self) -> int:
        """New Events written so far."""
        return self._counts["created"]

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full."""
        return self._counts["dropped"]

    def statistics(self) -> EventStatistics:
        return EventStatistics(**self._counts, queued=self.queued)

    def counts(self) -> dict[str, float]:
        """`statistics()` by outcome, without `queued` (for a counter source)."""
        return {name: float(value) for name, value in self._counts.items()}

    def set_busy(self, busy: bool) -> None:
        """Whether the owner's own writes come first now (see the module
        docstring). Cheap: call it as often as the owner's state changes."""
        if busy and self._calm.is_set():
            self._calm = anyio.Event()
        elif not busy and not self._calm.is_set():
            self._calm.set()
            self._nudge.set()

    def new_recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self, component)

    # -- recording (never blocks) -----------------------------------------------------------

    def _offer(self, event: Event) -> None:
        counts = self._counts
        counts["recorded"] += 1
        found = self._correlator.correlate(event)
        if found is None:
            counts["spam_filtered"] += 1
            _loudly("events dropped by the spam filter", counts["spam_filtered"], event)
            return
        waiting = self._waiting.get(found.key)
        if waiting is not None:
            counts["merged"] += 1
            queued = waiting.event
            queued.count = found.event.count
            queued.last_timestamp.CopyFrom(found.event.last_timestamp)
            queued.message = found.event.message
            return
        if len(self._queue) >= self._queue_size:
            counts["dropped"] += 1
            if not found.repeat:
                self._correlator.forget(found.key)  # never made: the next one creates it
            _loudly("event queue full; dropping events", counts["dropped"], event)
            return
        if found.combined:
            counts["combined"] += 1
        pending = _Pending(found.key, found.event, found.repeat)
        self._queue.append(pending)
        self._waiting[found.key] = pending
        self._wake.set()
        if len(self._queue) == self._max_batch:
            self._nudge.set()

    # -- writing ------------------------------------------------------------------------

    async def run(self) -> None:
        """Writes recorded events, a tick's batch at a time, until cancelled."""
        while True:
            await self._gather()
            batch = self._take()
            self._writing = len(batch)
            try:
                await self._write(batch)
            finally:
                self._writing = 0
            self._last_batch = self._clock.now()
            self._counts["batches"] += 1

    async def _gather(self) -> None:
        """Returns once a batch should go: `tick` after the first event
        waits, or as soon as `max_batch` wait; while busy, also no sooner
        than `1 / busy_rate` after the last batch (or the owner calming)."""
        while not self._queue:
            await self._wake.wait()
            self._wake = anyio.Event()
        if len(self._queue) < self._max_batch:
            await self._until(self._clock.now() + self._tick)
        while self.busy:
            not_before = self._last_batch + self._busy_interval
            if self._clock.now() >= not_before:
                return
            await self._until(not_before)

    async def _until(self, deadline: float) -> None:
        """Waits until `deadline` on the clock or a nudge, whichever first."""
        self._nudge = nudge = anyio.Event()
        timer = self._clock.call_at(deadline, nudge.set)
        try:
            await nudge.wait()
        finally:
            timer.cancel()

    def _take(self) -> list[_Pending]:
        batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
        for pending in batch:
            self._waiting.pop(pending.key, None)
        return batch

    async def _write(self, batch: list[_Pending]) -> None:
        creates = [p for p in batch if not p.repeat]
        if creates:
            await self._create(creates)
        for pending in batch:
            if pending.repeat:
                await self._patch(pending)

    async def _create(self, items: Sequence[_Pending]) -> None:
        events = [p.event for p in items]
        results = await self._retrying(lambda: self._create_all(events), len(events))
        counts = self._counts
        if results is None:  # logged: the batch is dropped
            counts["failed"] += len(items)
            for pending in items:
                self._correlator.forget(pending.key)
            return
        for pending, outcome in zip(items, results, strict=True):
            # AlreadyExists: our own write, answered again after a lost answer.
            if isinstance(outcome, errors.StatusError) and not isinstance(
                outcome, errors.AlreadyExists
            ):
                counts["failed"] += 1
                self._correlator.forget(pending.key)
                log.info(
                    "could not record an event",
                    extra={"event": pending.event.metadata.name, "error": str(outcome)},
                )
            else:
                counts["created"] += 1

    async def _create_all(self, events: list[Event]) -> Sequence[Event | errors.StatusError]:
        """One batched call; one create per event where that is not served."""
        if self._batched:
            try:
                found = await cast("_EventBatches", self._client).create_events(events)
            except errors.MethodNotAllowed:
                self._batched = False
                log.warning("the API server does not batch events; writing them one by one")
            else:
                return found
        out: list[Event | errors.StatusError] = []
        for event in events:
            try:
                out.append(await self._client.create(event))
            except errors.StatusError as e:
                out.append(e)
        return out

    async def _retrying(
        self, call: Callable[[], Awaitable[Sequence[Event | errors.StatusError]]], size: int
    ) -> Sequence[Event | errors.StatusError] | None:
        """`call()`, sent again after a failure of the whole call at most
        `retries` times; None when every attempt failed (logged)."""
        delay = self._retry_delay
        for attempt in range(self._retries + 1):
            try:
                return await call()
            except errors.StatusError as e:
                if attempt == self._retries:
                    log.warning(
                        "dropping a batch of events after %d attempts",
                        attempt + 1,
                        extra={"events": size, "error": str(e)},
                    )
                    return None
                await self._clock.sleep(delay)
                delay *= 2
        return None

    async def _patch(self, pending: _Pending) -> None:
        event = pending.event
        patch = {
            "count": event.count,
            "lastTimestamp": event.last_timestamp.ToJsonString(),
            "message": event.message,
        }
        try:
            await self._client.patch(
                Event,
                event.metadata.name,
                patch,
                namespace=event.metadata.namespace,
                patch_type="merge",
            )
        except errors.NotFound:
            # Expired or deleted: write it anew, count and all (as client-go).
            await self._create([_Pending(pending.key, event, repeat=False)])
        except errors.StatusError as e:
            self._counts["failed"] += 1
            log.info(
                "could not record an event",
                extra={"event": event.metadata.name, "error": str(e)},
            )
        else:
            self._counts["patched"] += 1


class EventRecorder:
    """Records events of one component; see the module docstring."""

    def __init__(self, broadcaster: EventBroadcaster, component: str) -> None:
        self._broadcaster = broadcaster
        self.component = component

    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        """Queues an event about `obj` (any API object); never blocks or raises."""
        try:
            event = self._build(obj, eventtype, reason, message)
            self._broadcaster._offer(event)
        except Exception:
            log.exception("could not record an event", extra={"reason": reason})

    def _build(self, obj: Any, eventtype: str, reason: str, message: str) -> Event:
        info = scheme.for_message(type(obj))
        m = obj.metadata
        now = _now()
        broadcaster = self._broadcaster
        event = Event(
            involved_object=ObjectReference(
                kind=info.kind,
                namespace=m.namespace,
                name=m.name,
                uid=m.uid,
                api_version=info.api_version,
                resource_version=m.resource_version,
            ),
            reason=reason,
            message=message,
            type=eventtype,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            reporting_component=self.component,
            reporting_instance=broadcaster.host,
        )
        event.source.component = self.component
        event.source.host = broadcaster.host
        event.metadata.namespace = m.namespace or "default"
        event.metadata.name = broadcaster._correlator.names(m.name)
        return event


def _loudly(what: str, count: int, event: Event) -> None:
    """Logs the 1st, 2nd, 4th, 8th... occurrence: loud, not flooding."""
    if math.log2(count).is_integer():
        log.warning(what, extra={"dropped": count, "reason": event.reason})


def _now() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts

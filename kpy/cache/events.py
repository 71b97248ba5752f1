"""Events: what controllers, the scheduler and agents did, for `describe`
(client-go's tools/record: EventBroadcaster, EventRecorder, and the
correlator's counting of repeats).

- `EventBroadcaster(client)` owns one bounded queue and the task that writes
  it (`run()`, until cancelled). `new_recorder(component)` hands out
  recorders that stamp their component as the event's source.
- `recorder.event(obj, type, reason, message)` never blocks and never
  raises: recording is best effort and must not slow a sync. When the queue
  is full the event is dropped and counted (`dropped`), as client-go drops
  events under pressure.
- A repeat of an event already written (same object, type, reason, message
  and source) updates that Event's count and lastTimestamp instead of
  creating another, as Kubernetes does; the memory of written events is an
  LRU of `cache_size` entries, so it never grows without bound.
- Writes stay off their owner's hot path: `set_busy(True)` (a scheduler
  with pods waiting, say, whose own writes are the ones that matter) holds
  the writer to at most `busy_rate` writes per second; the rest wait in the
  queue and are written at full speed once `set_busy(False)`. Nothing
  recorded is lost to this that the queue can hold (size it for the
  bursts its owner expects); events are reordered only in time, never
  among themselves. This is how an Event per scheduled pod stops
  competing with the bindings for the API server during a burst, with no
  server change (client-go writes events through its client's QPS limit
  for the same reason).
- An Event lives in its object's namespace ("default" for cluster-scoped
  objects) and is named `<object name>.<hex nanoseconds>`, as client-go names it.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import errors
from kpy.api.core.v1 import Event, ObjectReference
from kpy.api.scheme import scheme

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.client import ClientProtocol

log = logging.getLogger("kpy.events")

__all__ = ["NORMAL", "WARNING", "EventBroadcaster", "EventRecorder"]

NORMAL: Final = "Normal"
WARNING: Final = "Warning"


@dataclass(frozen=True, slots=True)
class _Key:
    uid: str
    kind: str
    namespace: str
    name: str
    type: str
    reason: str
    message: str
    component: str


@dataclass(frozen=True, slots=True)
class _Pending:
    key: _Key
    event: Event


class EventBroadcaster:
    """See the module docstring."""

    def __init__(
        self,
        client: ClientProtocol,
        *,
        queue_size: int = 1000,
        cache_size: int = 4096,
        host: str | None = None,
        busy_rate: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if busy_rate <= 0:
            raise ValueError(f"EventBroadcaster: busy_rate must be positive, got {busy_rate}")
        self._client = client
        self._queue: deque[_Pending] = deque()
        self._queue_size = queue_size
        self._wake = anyio.Event()
        self._written: OrderedDict[_Key, tuple[str, int]] = OrderedDict()
        self._cache_size = cache_size
        self.host = socket.gethostname() if host is None else host
        self.dropped = 0
        self.written = 0
        self._busy_interval = 1.0 / busy_rate
        self._clock = clock
        self._calm = anyio.Event()  # set while not busy
        self._calm.set()
        self._last_write = -math.inf

    @property
    def busy(self) -> bool:
        return not self._calm.is_set()

    @property
    def queued(self) -> int:
        """Events recorded and not written yet."""
        return len(self._queue)

    def set_busy(self, busy: bool) -> None:
        """Whether the owner's own writes come first now (see the module
        docstring). Cheap: call it as often as the owner's state changes."""
        if busy and self._calm.is_set():
            self._calm = anyio.Event()
        elif not busy:
            self._calm.set()

    def new_recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self, component)

    def _offer(self, pending: _Pending) -> None:
        if len(self._queue) >= self._queue_size:
            self.dropped += 1
            if math.log2(self.dropped).is_integer():  # 1, 2, 4, ...: loud, not flooding
                log.warning("event queue full; dropping events", extra={"dropped": self.dropped})
            return
        self._queue.append(pending)
        self._wake.set()

    async def run(self) -> None:
        """Writes recorded events until cancelled."""
        while True:
            if not self._queue:
                await self._wake.wait()
                self._wake = anyio.Event()
                continue
            await self._pace()
            pending = self._queue.popleft()
            self._last_write = self._clock()
            try:
                await self._write(pending)
            except errors.StatusError as e:
                log.info(
                    "could not record an event",
                    extra={"reason": pending.event.reason, "error": str(e)},
                )

    async def _pace(self) -> None:
        """While busy, wait until `1 / busy_rate` has passed since the last
        write, or until the owner is no longer busy."""
        while not self._calm.is_set():
            wait = self._last_write + self._busy_interval - self._clock()
            if wait <= 0:
                return
            with anyio.move_on_after(wait):
                await self._calm.wait()

    async def _write(self, pending: _Pending) -> None:
        event = pending.event
        seen = self._written.get(pending.key)
        if seen is not None:
            name, count = seen
            patch = {"count": count + 1, "lastTimestamp": _rfc3339(event.last_timestamp)}
            try:
                await self._client.patch(
                    Event, name, patch, namespace=event.metadata.namespace, patch_type="merge"
                )
            except errors.NotFound:
                pass  # expired or deleted: write it anew
            else:
                self._remember(pending.key, name, count + 1)
                return
        created = await self._client.create(event)
        self.written += 1
        self._remember(pending.key, created.metadata.name, event.count)

    def _remember(self, key: _Key, name: str, count: int) -> None:
        self._written[key] = (name, count)
        self._written.move_to_end(key)
        while len(self._written) > self._cache_size:
            self._written.popitem(last=False)


class EventRecorder:
    """Records events of one component; see the module docstring."""

    def __init__(self, broadcaster: EventBroadcaster, component: str) -> None:
        self._broadcaster = broadcaster
        self.component = component

    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        """Queues an event about `obj` (any API object); never blocks or raises."""
        try:
            pending = self._build(obj, eventtype, reason, message)
        except Exception:
            log.exception("could not build an event", extra={"reason": reason})
            return
        self._broadcaster._offer(pending)

    def _build(self, obj: Any, eventtype: str, reason: str, message: str) -> _Pending:
        info = scheme.for_message(type(obj))
        m = obj.metadata
        now = _now()
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
            reporting_instance=self._broadcaster.host,
        )
        event.source.component = self.component
        event.source.host = self._broadcaster.host
        event.metadata.namespace = m.namespace or "default"
        event.metadata.name = f"{m.name}.{time.time_ns():x}"
        key = _Key(
            m.uid, info.kind, m.namespace, m.name, eventtype, reason, message, self.component
        )
        return _Pending(key, event)


def _rfc3339(ts: Timestamp) -> str:
    return ts.ToJsonString()


def _now() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts

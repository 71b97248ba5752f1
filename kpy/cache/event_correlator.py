"""The event correlator: what an event recorder does to an event before it
writes anything (client-go's tools/record/events_cache.go).

`EventCorrelator.correlate(event)` runs three steps, in client-go's order,
and never does I/O:

1. Aggregation (`_Aggregator`): events alike but for their message (same
   source, object, type and reason) are counted by distinct message over a
   sliding window. From the `max_events`-th distinct message within
   `max_interval` seconds of the previous one (client-go: 10 in 10 minutes)
   on, they are combined into one Event whose message is
   `(combined from similar events): <latest message>`.
2. Counting (`_Log`): an event seen before under the same key (for
   combined events, the aggregate key) is the same Event again: the result
   names the Event already made, with `count` one higher and the first
   timestamp kept, so the writer patches it (count, lastTimestamp, message)
   instead of creating another.
3. Spam filter (`_SpamFilter`): a token bucket per source and object,
   `spam_burst` events at once refilled at `spam_qps` a second (client-go: 25,
   then one every 5 minutes). An event over it is skipped: `correlate`
   returns None and the caller counts it.

Contract: the correlator's memory is three LRU maps of `cache_size`
entries each, so it never grows without bound; time is the injected clock's
(`kpy.clock`), so tests step a `FakeClock`. `forget(key)` drops what was
learnt of one Event (its create failed, or it is gone), so the next
occurrence creates it anew. It is not thread-safe: it belongs to one
event loop. The Event passed in is not changed; a result's is a new one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api.core.v1 import Event

if TYPE_CHECKING:
    from kpy.clock import Clock

__all__ = ["COMBINED_PREFIX", "Correlated", "CorrelatorOptions", "EventCorrelator", "EventNames"]

COMBINED_PREFIX: Final = "(combined from similar events): "

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CorrelatorOptions:
    """client-go's defaults (NewEventCorrelator)."""

    cache_size: int = 4096
    max_events: int = 10  # distinct messages before similar events are combined
    max_interval: float = 600.0  # seconds since the last similar event that restart the count
    spam_burst: int = 25
    spam_qps: float = 1.0 / 300.0

    def __post_init__(self) -> None:
        if self.cache_size < 1 or self.max_events < 1 or self.spam_burst < 1:
            raise ValueError(
                "CorrelatorOptions: cache_size, max_events and spam_burst must be positive, "
                f"got {self.cache_size}, {self.max_events}, {self.spam_burst}"
            )
        if self.max_interval < 0 or self.spam_qps < 0:
            raise ValueError(
                "CorrelatorOptions: max_interval and spam_qps must not be negative, "
                f"got {self.max_interval}, {self.spam_qps}"
            )


@dataclass(frozen=True, slots=True)
class Correlated:
    """What to write for one recorded event: `event` under `key` (the
    correlation key, for `forget` and for merging with a write still
    queued), created when `repeat` is False, else a patch of the Event
    `event.metadata.name` (already made) to `event.count`."""

    event: Event
    key: tuple[str, ...]
    repeat: bool
    combined: bool = False


class _LRU(Generic[K, V]):
    """A map holding the `size` entries used last."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class _SpamFilter:
    """A token bucket per source and object (client-go's
    EventSourceObjectSpamFilter)."""

    def __init__(self, options: CorrelatorOptions, clock: Clock) -> None:
        self._burst = float(options.spam_burst)
        self._qps = options.spam_qps
        self._clock = clock
        self._buckets: _LRU[tuple[str, ...], _Bucket] = _LRU(options.cache_size)

    def allows(self, event: Event) -> bool:
        now = self._clock.now()
        key = _spam_key(event)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        else:
            refill = (now - bucket.updated) * self._qps
            bucket.tokens = min(self._burst, bucket.tokens + refill)
            bucket.updated = now
        self._buckets.put(key, bucket)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True


@dataclass(slots=True)
class _Similar:
    messages: set[str] = field(default_factory=set)
    last: float = 0.0


class _Aggregator:
    """Combines similar events (client-go's EventAggregator)."""

    def __init__(self, options: CorrelatorOptions, clock: Clock, names: EventNames) -> None:
        self._names = names
        self._max_events = options.max_events
        self._max_interval = options.max_interval
        self._clock = clock
        self._records: _LRU[tuple[str, ...], _Similar] = _LRU(options.cache_size)

    def aggregate(self, event: Event) -> tuple[Event, tuple[str, ...], bool]:
        """The event to go on with, its key, and whether it is combined."""
        now = self._clock.now()
        key = _aggregate_key(event)
        record = self._records.get(key)
        if record is None or now - record.last > self._max_interval:
            record = _Similar()
        record.messages.add(event.message)
        record.last = now
        self._records.put(key, record)
        if len(record.messages) < self._max_events:
            return event, _event_key(event), False
        record.messages.pop()  # the set never grows past the threshold
        combined = Event()
        combined.CopyFrom(event)
        combined.message = COMBINED_PREFIX + event.message
        combined.count = 1
        combined.metadata.name = self._names(event.involved_object.name)
        return combined, key, True


@dataclass(frozen=True, slots=True)
class _Seen:
    name: str
    count: int
    first_timestamp: Timestamp  # a copy, never mutated


class _Log:
    """What Events were made, by key (client-go's eventLogger)."""

    def __init__(self, options: CorrelatorOptions) -> None:
        self._seen: _LRU[tuple[str, ...], _Seen] = _LRU(options.cache_size)

    def observe(self, event: Event, key: tuple[str, ...]) -> tuple[Event, bool]:
        seen = self._seen.get(key)
        out = event
        repeat = seen is not None
        if seen is not None:
            out = Event()
            out.CopyFrom(event)
            out.metadata.name = seen.name
            out.count = seen.count + 1
            out.first_timestamp.CopyFrom(seen.first_timestamp)
        first = Timestamp()
        first.CopyFrom(out.first_timestamp)
        self._seen.put(key, _Seen(out.metadata.name, out.count, first))
        return out, repeat

    def forget(self, key: tuple[str, ...]) -> None:
        self._seen.pop(key)


class EventCorrelator:
    """See the module docstring."""

    def __init__(self, clock: Clock, options: CorrelatorOptions | None = None) -> None:
        options = options or CorrelatorOptions()
        self.options = options
        #: names new Events (the recorder's and the combined ones)
        self.names = EventNames()
        self._aggregator = _Aggregator(options, clock, self.names)
        self._log = _Log(options)
        self._spam = _SpamFilter(options, clock)

    def correlate(self, event: Event) -> Correlated | None:
        """What to write for `event`, or None when the spam filter drops it."""
        aggregated, key, combined = self._aggregator.aggregate(event)
        observed, repeat = self._log.observe(aggregated, key)
        if not self._spam.allows(observed):
            return None
        return Correlated(observed, key, repeat, combined)

    def forget(self, key: tuple[str, ...]) -> None:
        """Forgets the Event made under `key`: its next occurrence is created anew."""
        self._log.forget(key)


class EventNames:
    """Names Events `<object name>.<hex nanoseconds>`, as client-go does;
    the nanoseconds strictly increase, so two events named in the same
    nanosecond by one namer do not collide."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self, object_name: str) -> str:
        self._last = max(time.time_ns(), self._last + 1)
        return f"{object_name}.{self._last:x}"


def _spam_key(event: Event) -> tuple[str, ...]:
    ref = event.involved_object
    return (
        event.source.component,
        event.source.host,
        ref.kind,
        ref.namespace,
        ref.name,
        ref.uid,
        ref.api_version,
    )


def _aggregate_key(event: Event) -> tuple[str, ...]:
    return (
        *_spam_key(event),
        event.type,
        event.reason,
        event.reporting_component,
        event.reporting_instance,
    )


def _event_key(event: Event) -> tuple[str, ...]:
    return (
        *_spam_key(event),
        event.involved_object.field_path,
        event.type,
        event.reason,
        event.message,
    )

"""The event correlator (kpy/cache/event_correlator.py), after client-go's
tools/record events_cache_test.go: repeats counted on one Event, similar
events combined past the threshold, and the spam filter's token bucket per
source and object. Time is a FakeClock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kpy.api.core.v1 import Event, ObjectReference
from kpy.cache.event_correlator import COMBINED_PREFIX, CorrelatorOptions, EventCorrelator
from kpy.clock import FakeClock


def event(message: str = "it broke", *, obj: str = "web", reason: str = "Broken") -> Event:
    e = Event(
        involved_object=ObjectReference(kind="Pod", namespace="ns", name=obj, uid=f"uid-{obj}"),
        reason=reason,
        message=message,
        type="Warning",
        count=1,
        reporting_component="test",
    )
    e.source.component = "test"
    e.metadata.namespace = "ns"
    e.metadata.name = f"{obj}.{message}"
    return e


@dataclass(frozen=True)
class Step:
    """Record `event` after `advance` seconds; what the correlator should say."""

    event: Event
    advance: float = 0.0
    want_repeat: bool = False
    want_count: int = 1
    want_combined: bool = False
    want_dropped: bool = False
    want_name_of: int | None = None  # the index of the step whose Event this one is


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[Step]
    options: CorrelatorOptions = field(default_factory=CorrelatorOptions)


def repeats(n: int) -> list[Step]:
    return [Step(event(), want_repeat=i > 0, want_count=i + 1, want_name_of=0) for i in range(n)]


CASES = [
    Case("a new event is created", [Step(event())]),
    Case("an exact repeat counts on the first Event", repeats(3)),
    Case(
        "another object is another Event",
        [Step(event(obj="a")), Step(event(obj="b"))],
    ),
    Case(
        "another message below the threshold is another Event",
        [
            Step(event("one")),
            Step(event("two")),
            Step(event("one"), want_repeat=True, want_count=2, want_name_of=0),
        ],
    ),
    Case(
        "the 3rd distinct message is combined (threshold 3), later ones count on it",
        [
            Step(event("m1")),
            Step(event("m2")),
            Step(event("m3"), want_combined=True),
            Step(event("m4"), want_combined=True, want_repeat=True, want_count=2, want_name_of=2),
        ],
        CorrelatorOptions(max_events=3),
    ),
    Case(
        "similar events spaced beyond the interval are never combined",
        [
            Step(event("m1")),
            Step(event("m2"), advance=601),
            Step(event("m3"), advance=601),
        ],
        CorrelatorOptions(max_events=3),
    ),
    Case(
        "the spam filter passes a burst, drops the rest, refills with time",
        [
            Step(event("a")),
            Step(event("b")),
            Step(event("c"), want_dropped=True),
            Step(event("d"), advance=299, want_dropped=True),
            Step(event("e"), advance=1),
            Step(event("f"), want_dropped=True),
        ],
        CorrelatorOptions(spam_burst=2, spam_qps=1 / 300),
    ),
    Case(
        "the spam filter counts per object",
        [Step(event(obj="a")), Step(event(obj="a"), want_dropped=True), Step(event(obj="b"))],
        CorrelatorOptions(spam_burst=1),
    ),
    Case(
        "client-go's defaults: the 25th event about an object passes, the 26th does not",
        [Step(event(f"m{i}", reason=f"R{i}")) for i in range(25)]
        + [Step(event("m25", reason="R25"), want_dropped=True)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_correlate(case: Case) -> None:
    clock = FakeClock()
    correlator = EventCorrelator(clock, case.options)
    names: list[str] = []
    for i, step in enumerate(case.steps):
        clock.advance(step.advance)
        got = correlator.correlate(step.event)
        where = f"{case.name}: step {i}"
        if step.want_dropped:
            assert got is None, where
            names.append("")
            continue
        assert got is not None, where
        names.append(got.event.metadata.name)
        assert (got.repeat, got.event.count, got.combined) == (
            step.want_repeat,
            step.want_count,
            step.want_combined,
        ), where
        if step.want_combined:
            assert got.event.message == COMBINED_PREFIX + step.event.message, where
        else:
            assert got.event.message == step.event.message, where
        if step.want_name_of is not None:
            assert got.event.metadata.name == names[step.want_name_of], where
        assert step.event.count == 1, f"{where}: the event passed in was changed"


def test_a_forgotten_event_is_created_again() -> None:
    correlator = EventCorrelator(FakeClock())
    first = correlator.correlate(event())
    assert first is not None
    correlator.forget(first.key)
    again = correlator.correlate(event())
    assert again is not None
    assert (again.repeat, again.event.count) == (False, 1)


def test_the_first_timestamp_of_a_repeat_is_the_first_events() -> None:
    correlator = EventCorrelator(FakeClock())
    first, later = event(), event()
    first.first_timestamp.FromSeconds(100)
    later.first_timestamp.FromSeconds(200)
    later.last_timestamp.FromSeconds(200)
    correlator.correlate(first)
    got = correlator.correlate(later)
    assert got is not None
    assert (got.event.first_timestamp.seconds, got.event.last_timestamp.seconds) == (100, 200)


def test_memory_is_bounded() -> None:
    correlator = EventCorrelator(FakeClock(), CorrelatorOptions(cache_size=2))
    for obj in ("a", "b", "c"):
        correlator.correlate(event(obj=obj))
    again = correlator.correlate(event(obj="a"))  # evicted: made anew
    assert again is not None
    assert again.repeat is False


@pytest.mark.parametrize(
    ("field_name", "value"),
    [("cache_size", 0), ("max_events", 0), ("spam_burst", 0), ("max_interval", -1.0)],
)
def test_options_are_checked(field_name: str, value: float) -> None:
    with pytest.raises(ValueError, match=field_name):
        CorrelatorOptions(**{field_name: value})  # type: ignore[arg-type]

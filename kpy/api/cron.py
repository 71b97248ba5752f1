"""Cron schedules, as a CronJob's `spec.schedule` writes them.

`parse(text)` accepts what Kubernetes accepts (robfig/cron's ParseStandard)
and returns a `Schedule`; malformed text raises `CronError` whose message
names the field and the rule it breaks. Accepted:

- the standard five fields (minute, hour, day of month, month, day of
  week); each field is a comma-separated list of `*` (or `?`), a value, or a
  range `a-b`, each optionally followed by a step `/n` (`5/15` means
  `5-59/15`); months take JAN-DEC and days of week SUN-SAT (any case); day
  of week 7 is Sunday;
- the macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
  (`@midnight`), `@hourly`, and `@every <duration>` in Go's duration syntax
  (`@every 1h30m`: every so long after the previous run, at least 1 s,
  whole seconds);
- a leading `TZ=<zone>` or `CRON_TZ=<zone>`: the fields are read in that
  IANA zone. (CronJob validation refuses it on new objects and asks for
  `spec.timeZone` instead, as Kubernetes does; old objects may carry it.)

The grammar is checked here, because croniter accepts more than Kubernetes
does (seconds and year fields, `L`, `#`, `H`); the fields are expanded and
the next times computed by croniter. As in Kubernetes, when both day fields
are restricted a day matches if either does; when one of them is `*`
(without a step) both must.

`Schedule.next_after(t)` is the first scheduled time after `t`, counted in
the schedule's zone if it has one, else in t's wall-clock time (its tzinfo,
or naive), and returned in t's zone. Wall-clock times that a DST gap skips
are skipped too, as robfig/cron does. A schedule that matches no real date
(`0 0 30 2 *`) parses but has no next time.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterError, croniter  # type: ignore[import-untyped]

__all__ = ["MACROS", "CronError", "Schedule", "parse"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_EVERY = "@every "
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# A DST gap or a run of impossible dates never needs more tries than this.
_MAX_SKIPS = 1000


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    aliases: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    _Field("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)


class CronError(ValueError):
    """A schedule that cannot be parsed; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """The set of allowed values of each field; days of week 0-6, Sunday 0.

    An `@every` schedule has `every` set and every field full: it fires
    `every` after each previous time, whatever the clock says."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    # Whether the day field was unrestricted (`*` or `?` without a step).
    any_day_of_month: bool = False
    any_day_of_week: bool = False
    #: the five fields as croniter reads them ("" for @every).
    expression: str = ""
    #: the zone of a `TZ=`/`CRON_TZ=` prefix.
    location: tzinfo | None = None
    #: the interval of an `@every` schedule.
    every: timedelta | None = None

    def matches(self, t: datetime) -> bool:
        """Whether the minute of `t` (its wall-clock fields) is scheduled."""
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and t.month in self.months
            and self._day_matches(t)
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days_of_month
        dow = (t.weekday() + 1) % 7 in self.days_of_week
        if self.any_day_of_month or self.any_day_of_week:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime) -> datetime | None:
        """The first scheduled time strictly after `t` (see the module
        docstring for zones); None if the schedule never fires."""
        if self.every is not None:
            return t.replace(microsecond=0) + self.every
        zone = t.tzinfo
        start = t
        if self.location is not None:
            start = (t if zone is not None else t.replace(tzinfo=UTC)).astimezone(self.location)
        try:
            times = croniter(self.expression, start)
            for _ in range(_MAX_SKIPS):
                found: datetime = times.get_next(datetime)
                # croniter moves a time that a DST gap skips to after the gap;
                # robfig/cron (and so Kubernetes) skips it.
                if self.matches(found) and (found.tzinfo is None or _exists(found)):
                    break
            else:
                return None
        except CroniterError:
            return None
        if self.location is not None:
            return (
                found.astimezone(zone)
                if zone is not None
                else found.astimezone(UTC).replace(tzinfo=None)
            )
        return found


def _exists(t: datetime) -> bool:
    """Whether the aware wall-clock time `t` happens in its zone."""
    wall = t.replace(tzinfo=None)
    return t.astimezone(UTC).astimezone(t.tzinfo).replace(tzinfo=None) == wall


def parse(text: str) -> Schedule:
    """The Schedule that `text` describes; raises CronError when it is malformed."""
    spec = text.strip()
    if not spec:
        raise CronError("empty spec string")
    location: tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        location, spec = _location(spec)
    if spec.startswith("@"):
        if spec.startswith(_EVERY):
            return _every(spec.removeprefix(_EVERY))
        if spec.lower() not in MACROS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = MACROS[spec.lower()]
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {spec}")
    stars = [_check_field(f, field) for f, field in zip(fields, _FIELDS, strict=True)]
    expression = " ".join(_for_croniter(f) for f in fields)
    try:
        expanded, _ = croniter.expand(expression)
    except CroniterError as exc:
        raise CronError(f"{spec}: {exc}") from exc
    minutes, hours, dom, months, dow = (
        _values(values, field) for values, field in zip(expanded, _FIELDS, strict=True)
    )
    return Schedule(
        minutes=minutes,
        hours=hours,
        days_of_month=dom,
        months=months,
        days_of_week=frozenset(d % 7 for d in dow),
        any_day_of_month=stars[2],
        any_day_of_week=stars[4],
        expression=expression,
        location=location,
    )


def _location(spec: str) -> tuple[tzinfo, str]:
    prefix, _, rest = spec.partition(" ")
    name = prefix.partition("=")[2]
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"provided bad location {name}: unknown time zone {name}") from exc
    return zone, rest.strip()


def _values(values: list[int | str], field: _Field) -> frozenset[int]:
    if values == ["*"]:
        return frozenset(range(field.low, field.high + (0 if field.high == 7 else 1)))
    return frozenset(int(v) for v in values)


def _for_croniter(text: str) -> str:
    """`?` is `*` in Kubernetes' cron; croniter only knows the latter in
    some positions."""
    return text.replace("?", "*")


# -- @every -------------------------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def _every(text: str) -> Schedule:
    """robfig's Every: the Go duration, at least 1 s, cut to whole seconds."""
    seconds = _go_duration(text.strip())
    whole = max(1, int(seconds))
    full = _FIELDS
    return Schedule(
        minutes=frozenset(range(full[0].low, full[0].high + 1)),
        hours=frozenset(range(full[1].low, full[1].high + 1)),
        days_of_month=frozenset(range(full[2].low, full[2].high + 1)),
        months=frozenset(range(full[3].low, full[3].high + 1)),
        days_of_week=frozenset(range(7)),
        any_day_of_month=True,
        any_day_of_week=True,
        every=timedelta(seconds=whole),
    )


def _go_duration(text: str) -> float:
    """Seconds in a Go duration string such as "1h30m" or "-1.5s"."""
    body = text.lstrip("+-")
    negative = text.startswith("-")
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise CronError(
                f'failed to parse duration @every {text}: time: invalid duration "{text}"'
            )
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise CronError(f'failed to parse duration @every {text}: time: invalid duration "{text}"')
    return -total if negative else total


# -- the grammar Kubernetes accepts ---------------------------------------------------------


def _check_field(text: str, field: _Field) -> bool:
    """Raises CronError when `text` is not a valid field; whether it is
    unrestricted (`*` or `?` without a step)."""
    unrestricted = False
    for item in text.split(","):
        unrestricted = _check_item(item, field) or unrestricted
    return unrestricted


def _check_item(item: str, field: _Field) -> bool:
    where = f"{item} (in the {field.name} field)"
    range_text, slash, step_text = item.partition("/")
    if "/" in step_text:
        raise CronError(f"too many slashes: {where}")
    step = _number(step_text, field, where, aliases=False) if slash else 1
    if step <= 0:
        raise CronError(f"step of range should be a positive number: {where}")
    if range_text in ("*", "?"):
        return step == 1
    low_text, dash, high_text = range_text.partition("-")
    if "-" in high_text:
        raise CronError(f"too many hyphens: {where}")
    low = _number(low_text, field, where)
    high = _number(high_text, field, where) if dash else (field.high if slash else low)
    if low < field.low:
        raise CronError(f"beginning of range ({low}) below minimum ({field.low}): {where}")
    if high > field.high:
        raise CronError(f"end of range ({high}) above maximum ({field.high}): {where}")
    if low > high:
        raise CronError(f"beginning of range ({low}) beyond end of range ({high}): {where}")
    return False


def _number(text: str, field: _Field, where: str, *, aliases: bool = True) -> int:
    if aliases and text.lower() in field.aliases:
        return field.aliases[text.lower()]
    if not text.isascii() or not text.isdigit():
        raise CronError(f"failed to parse number from {text!r}: {where}")
    return int(text)

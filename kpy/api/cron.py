"""Cron schedules, as a CronJob's `spec.schedule` writes them.

`parse(text)` reads the standard five fields (minute, hour, day of month,
month, day of week) or one of the macros `@yearly` (`@annually`),
`@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`, and returns a
`Schedule`; malformed text raises `CronError` whose message names the field
and the rule it breaks. Each field is a comma-separated list of `*` (or `?`),
a value, or a range `a-b`, each optionally followed by a step `/n` (`5/15`
means `5-59/15`). Months take JAN-DEC and days of week SUN-SAT (any case);
day of week 7 is Sunday, as in Vixie cron.

As in Kubernetes (robfig/cron), when both day fields are restricted a day
matches if either does; when one of them is `*` (without a step) both must.

`Schedule.next_after(t)` is the first matching minute after `t`, counted in
t's wall-clock time (its tzinfo, or naive). A schedule that matches no real
date (`0 0 30 2 *`) parses but has no next time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

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

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


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

# Searching further than this finds nothing new: every field repeats yearly,
# and leap days come back within 8 years.
_SEARCH_YEARS = 8


class CronError(ValueError):
    """A schedule that cannot be parsed; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """The set of allowed values of each field; days of week 0-6, Sunday 0."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    # Whether the day field was unrestricted (`*` or `?` without a step).
    any_day_of_month: bool = False
    any_day_of_week: bool = False

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
        """The first scheduled minute strictly after `t`, in t's time zone;
        None if the schedule never fires. Wall-clock times that a DST gap
        skips are skipped too."""
        zone = t.tzinfo
        wall = t.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        last_year = wall.year + _SEARCH_YEARS
        while wall.year <= last_year:
            if wall.month not in self.months:
                wall = _first_of_next_month(wall)
            elif not self._day_matches(wall):
                wall = wall.replace(hour=0, minute=0) + timedelta(days=1)
            elif wall.hour not in self.hours:
                wall = wall.replace(minute=0) + timedelta(hours=1)
            elif wall.minute not in self.minutes or (zone is not None and not _exists(wall, zone)):
                wall += timedelta(minutes=1)
            else:
                return wall.replace(tzinfo=zone)
        return None


def _first_of_next_month(t: datetime) -> datetime:
    if t.month == 12:
        return datetime(t.year + 1, 1, 1)
    return datetime(t.year, t.month + 1, 1)


def _exists(wall: datetime, zone: tzinfo) -> bool:
    """Whether the naive wall-clock time `wall` happens in `zone` (a DST gap
    skips some)."""
    local = wall.replace(tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def parse(text: str) -> Schedule:
    """The Schedule that `text` describes; raises CronError when it is malformed."""
    spec = text.strip()
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith("@"):
        if spec.lower() not in MACROS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = MACROS[spec.lower()]
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {spec}")
    parsed = [_parse_field(f, field) for f, field in zip(fields, _FIELDS, strict=True)]
    (minutes, _), (hours, _), (dom, any_dom), (months, _), (dow, any_dow) = parsed
    return Schedule(
        minutes=frozenset(minutes),
        hours=frozenset(hours),
        days_of_month=frozenset(dom),
        months=frozenset(months),
        days_of_week=frozenset(d % 7 for d in dow),
        any_day_of_month=any_dom,
        any_day_of_week=any_dow,
    )


def _parse_field(text: str, field: _Field) -> tuple[set[int], bool]:
    """The values a field allows, and whether it is unrestricted."""
    values: set[int] = set()
    unrestricted = False
    for item in text.split(","):
        item_values, star = _parse_item(item, field)
        values |= item_values
        unrestricted = unrestricted or star
    return values, unrestricted


def _parse_item(item: str, field: _Field) -> tuple[set[int], bool]:
    where = f"{item} (in the {field.name} field)"
    range_text, slash, step_text = item.partition("/")
    if "/" in step_text:
        raise CronError(f"too many slashes: {where}")
    step = _number(step_text, field, where, aliases=False) if slash else 1
    if step <= 0:
        raise CronError(f"step of range should be a positive number: {where}")
    if range_text in ("*", "?"):
        return set(range(field.low, field.high + 1, step)), step == 1
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
    return set(range(low, high + 1, step)), False


def _number(text: str, field: _Field, where: str, *, aliases: bool = True) -> int:
    if aliases and text.lower() in field.aliases:
        return field.aliases[text.lower()]
    if not text.isascii() or not text.isdigit():
        raise CronError(f"failed to parse number from {text!r}: {where}")
    return int(text)

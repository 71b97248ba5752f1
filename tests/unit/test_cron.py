"""The cron schedule parser and its next-run computation."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kpy.api import cron

PARSED = [
    ("every minute", "* * * * *", "minutes", set(range(60))),
    ("step", "*/15 * * * *", "minutes", {0, 15, 30, 45}),
    ("value with step runs to the max", "5/20 * * * *", "minutes", {5, 25, 45}),
    ("range with step", "0 9-17/4 * * *", "hours", {9, 13, 17}),
    ("list", "0 0 1,15,31 * *", "days_of_month", {1, 15, 31}),
    ("month names", "0 0 1 jan,JUL-Sep *", "months", {1, 7, 8, 9}),
    ("day names", "0 0 * * MON-FRI", "days_of_week", {1, 2, 3, 4, 5}),
    ("7 is sunday", "0 0 * * 5-7", "days_of_week", {5, 6, 0}),
    ("question mark", "0 0 ? * 1", "days_of_month", set(range(1, 32))),
    ("@hourly", "@hourly", "minutes", {0}),
    ("@weekly", "@weekly", "days_of_week", {0}),
    ("@yearly", "@yearly", "months", {1}),
    ("@midnight", "@midnight", "hours", {0}),
]


@pytest.mark.parametrize(
    ("name", "text", "field", "expected"), PARSED, ids=[case[0] for case in PARSED]
)
def test_parse(name: str, text: str, field: str, expected: set[int]) -> None:
    assert getattr(cron.parse(text), field) == expected, name


INVALID = [
    ("empty", "", "empty spec string"),
    ("four fields", "* * * *", "expected exactly 5 fields, found 4"),
    ("six fields", "0 * * * * *", "expected exactly 5 fields, found 6"),
    ("unknown macro", "@fortnightly", "unrecognized descriptor"),
    ("minute 60", "60 * * * *", "end of range (60) above maximum (59)"),
    ("hour 24", "0 24 * * *", "end of range (24) above maximum (23)"),
    ("day 0", "0 0 0 * *", "beginning of range (0) below minimum (1)"),
    ("day 32", "0 0 32 * *", "above maximum (31)"),
    ("month 13", "0 0 1 13 *", "above maximum (12)"),
    ("weekday 8", "0 0 * * 8", "above maximum (7)"),
    ("backwards range", "0 0 * * FRI-MON", "beginning of range (5) beyond end of range (1)"),
    ("zero step", "*/0 * * * *", "step of range should be a positive number"),
    ("two slashes", "*/2/3 * * * *", "too many slashes"),
    ("two hyphens", "1-2-3 * * * *", "too many hyphens"),
    ("word", "foo * * * *", "failed to parse number"),
    ("negative", "-5 * * * *", "failed to parse number"),
    ("name in the wrong field", "0 0 * MON *", "failed to parse number"),
    ("empty list item", "0, * * * *", "failed to parse number"),
]


@pytest.mark.parametrize(("name", "text", "message"), INVALID, ids=[case[0] for case in INVALID])
def test_parse_rejects(name: str, text: str, message: str) -> None:
    with pytest.raises(cron.CronError, match=re.escape(message)):
        cron.parse(text)


NEXT = [
    ("next minute", "* * * * *", datetime(2026, 3, 4, 10, 15, 30), datetime(2026, 3, 4, 10, 16)),
    ("strictly after", "*/5 * * * *", datetime(2026, 3, 4, 10, 15), datetime(2026, 3, 4, 10, 20)),
    ("next hour", "0 * * * *", datetime(2026, 3, 4, 10, 15), datetime(2026, 3, 4, 11, 0)),
    ("next day", "30 8 * * *", datetime(2026, 3, 4, 10, 15), datetime(2026, 3, 5, 8, 30)),
    ("year end", "@yearly", datetime(2026, 12, 31, 23, 59), datetime(2027, 1, 1, 0, 0)),
    ("weekday", "0 9 * * MON", datetime(2026, 3, 4, 10, 0), datetime(2026, 3, 9, 9, 0)),
    # Both day fields restricted: either one matching is enough.
    ("day of month or week", "0 0 13 * FRI", datetime(2026, 3, 1), datetime(2026, 3, 6)),
    # Day of week `*`: only the day of month counts.
    ("day of month only", "0 0 13 * *", datetime(2026, 3, 1), datetime(2026, 3, 13)),
    ("leap day", "0 0 29 2 *", datetime(2026, 3, 1), datetime(2028, 2, 29)),
    ("31st skips short months", "0 0 31 * *", datetime(2026, 4, 1), datetime(2026, 5, 31)),
]


@pytest.mark.parametrize(
    ("name", "text", "after", "expected"), NEXT, ids=[case[0] for case in NEXT]
)
def test_next_after(name: str, text: str, after: datetime, expected: datetime) -> None:
    schedule = cron.parse(text)
    assert schedule.next_after(after) == expected, name
    assert schedule.matches(expected)


def test_impossible_date_never_fires() -> None:
    assert cron.parse("0 0 30 2 *").next_after(datetime(2026, 1, 1)) is None


def test_next_after_keeps_the_time_zone_and_skips_dst_gaps() -> None:
    paris = ZoneInfo("Europe/Paris")
    # 02:30 does not exist on 2026-03-29 in Paris: clocks jump from 02:00 to 03:00.
    after = datetime(2026, 3, 28, 12, 0, tzinfo=paris)
    assert cron.parse("30 2 * * *").next_after(after) == datetime(2026, 3, 30, 2, 30, tzinfo=paris)
    assert cron.parse("0 3 * * *").next_after(after) == datetime(2026, 3, 29, 3, 0, tzinfo=paris)

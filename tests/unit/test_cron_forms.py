"""The schedule forms robfig/cron (so Kubernetes) accepts beyond five fields:
`@every <duration>` and a `TZ=`/`CRON_TZ=` prefix."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kpy.api import cron

EVERY = [
    ("an hour", "@every 1h", timedelta(hours=1)),
    ("hours and minutes", "@every 1h30m", timedelta(minutes=90)),
    ("fractions", "@every 1.5m", timedelta(seconds=90)),
    ("below a second is a second", "@every 100ms", timedelta(seconds=1)),
    ("cut to whole seconds", "@every 2500ms", timedelta(seconds=2)),
]


@pytest.mark.parametrize(("name", "text", "every"), EVERY, ids=[c[0] for c in EVERY])
def test_every(name: str, text: str, every: timedelta) -> None:
    schedule = cron.parse(text)
    assert schedule.every == every, name
    after = datetime(2026, 3, 4, 10, 15, 30, 500_000, tzinfo=UTC)
    # robfig's ConstantDelaySchedule: the previous second, plus the delay.
    assert schedule.next_after(after) == after.replace(microsecond=0) + every, name


BAD_EVERY = [
    ("no unit", "@every 5"),
    ("unknown unit", "@every 5d"),
]


@pytest.mark.parametrize(("name", "text"), BAD_EVERY, ids=[c[0] for c in BAD_EVERY])
def test_every_rejects(name: str, text: str) -> None:
    with pytest.raises(cron.CronError, match="failed to parse duration"):
        cron.parse(text)


ZONED = [
    # 09:00 in Tokyo is 00:00 UTC.
    ("TZ", "TZ=Asia/Tokyo 0 9 * * *", datetime(2026, 3, 4, 1, 0, tzinfo=UTC),
     datetime(2026, 3, 5, 0, 0, tzinfo=UTC)),
    ("CRON_TZ", "CRON_TZ=Asia/Tokyo 0 9 * * *", datetime(2026, 3, 4, 1, 0, tzinfo=UTC),
     datetime(2026, 3, 5, 0, 0, tzinfo=UTC)),
    ("naive times are UTC", "TZ=Asia/Tokyo 0 9 * * *", datetime(2026, 3, 4, 1, 0),
     datetime(2026, 3, 5, 0, 0)),
    ("with a macro", "CRON_TZ=Asia/Tokyo @daily", datetime(2026, 3, 4, 1, 0, tzinfo=UTC),
     datetime(2026, 3, 4, 15, 0, tzinfo=UTC)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "after", "expected"), ZONED, ids=[c[0] for c in ZONED])
def test_time_zone_prefix(name: str, text: str, after: datetime, expected: datetime) -> None:
    schedule = cron.parse(text)
    assert schedule.location == ZoneInfo("Asia/Tokyo"), name
    assert schedule.next_after(after) == expected, name


def test_unknown_zone_prefix_is_refused() -> None:
    with pytest.raises(cron.CronError, match=re.escape("provided bad location Mars/Olympus")):
        cron.parse("TZ=Mars/Olympus 0 * * * *")


# croniter accepts these; Kubernetes does not, so kpy does not either.
CRONITER_ONLY = [
    ("seconds field", "0 0 * * * *"),
    ("last day of month", "0 0 L * *"),
    ("nth weekday", "0 0 * * 1#2"),
    ("hashed", "H * * * *"),
]


@pytest.mark.parametrize(("name", "text"), CRONITER_ONLY, ids=[c[0] for c in CRONITER_ONLY])
def test_refuses_what_kubernetes_refuses(name: str, text: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(text)

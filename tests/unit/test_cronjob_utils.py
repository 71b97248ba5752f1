"""The CronJob controller's schedule arithmetic, table by table, ported from
Kubernetes' pkg/controller/cronjob/utils_test.go."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kpy.api.batch.v1 import CronJob, Job
from kpy.controllers.cronjob import (
    NEXT_SCHEDULE_DELTA,
    SCHEDULED_TIMESTAMP_ANNOTATION,
    MissedSchedules,
    ScheduleError,
    get_job_from_template,
    get_job_name,
    job_start_time_key,
    most_recent_schedule_time,
    next_schedule_time,
    next_schedule_time_duration,
)

TOP = datetime(2016, 5, 19, 10, 0, tzinfo=UTC)


def after(**delta: float) -> datetime:
    return TOP + timedelta(**delta)


def cron_job(
    schedule: str,
    *,
    created: datetime = TOP,
    last: datetime | None = None,
    deadline: int | None = None,
    time_zone: str | None = None,
) -> CronJob:
    cj = CronJob()
    cj.metadata.name = "mycronjob"
    cj.metadata.namespace = "default"
    cj.metadata.uid = "1a2b3c"
    cj.metadata.creation_timestamp.FromDatetime(created)
    cj.spec.schedule = schedule
    cj.spec.concurrency_policy = "Allow"
    if last is not None:
        cj.status.last_schedule_time.FromDatetime(last)
    if deadline is not None:
        cj.spec.starting_deadline_seconds = deadline
    if time_zone is not None:
        cj.spec.time_zone = time_zone
    return cj


@dataclass(frozen=True)
class Recent:
    name: str
    cj: CronJob
    now: datetime
    earliest: datetime | None = None
    recent: datetime | None = None
    missed: MissedSchedules = MissedSchedules.NONE
    include_sds: bool = False
    want_error: bool = False


MOST_RECENT = [
    Recent("now before next schedule", cron_job("0 * * * *"), after(seconds=30), TOP),
    Recent(
        "now just after next schedule",
        cron_job("0 * * * *"),
        after(minutes=61),
        TOP,
        after(minutes=60),
    ),
    Recent(
        "missed 5 schedules",
        cron_job("0 * * * *", created=after(seconds=10)),
        after(minutes=301),
        after(seconds=10),
        after(minutes=300),
        MissedSchedules.FEW,
    ),
    Recent(
        "complex schedule",
        cron_job("30 6-16/4 * * 1-5", last=after(minutes=30)),
        after(hours=24, minutes=31),
        after(minutes=30),
        after(hours=24, minutes=30),
        MissedSchedules.FEW,
    ),
    Recent(
        "another complex schedule",
        cron_job("30 10,11,12 * * 1-5", last=after(minutes=30)),
        after(hours=30, minutes=30),
        after(minutes=30),
        None,
        MissedSchedules.FEW,
    ),
    Recent(
        "complex schedule with longer diff between executions",
        cron_job("30 6-16/4 * * 1-5", last=after(minutes=30)),
        after(hours=96, minutes=31),
        after(minutes=30),
        after(hours=96, minutes=30),
        MissedSchedules.FEW,
    ),
    Recent(
        "complex schedule with shorter diff between executions",
        cron_job("30 6-16/4 * * 1-5"),
        after(hours=24, minutes=31),
        TOP,
        after(hours=24, minutes=30),
        MissedSchedules.FEW,
    ),
    Recent(
        "@every schedule",
        cron_job("@every 1h", created=after(minutes=-59), last=after(minutes=1), deadline=10),
        after(days=7),
        after(minutes=1),
        after(days=6, hours=23, minutes=1),
        MissedSchedules.MANY,
    ),
    Recent(
        "rogue cronjob",
        cron_job("59 23 31 2 *", created=after(seconds=10)),
        after(hours=1),
        want_error=True,
    ),
    Recent(
        "earliestTime being CreationTimestamp and LastScheduleTime",
        cron_job("0 * * * *", last=TOP),
        after(seconds=30),
        TOP,
    ),
    Recent(
        "earliestTime being LastScheduleTime",
        cron_job("*/5 * * * *", last=after(minutes=30)),
        after(minutes=31),
        after(minutes=30),
    ),
    Recent(
        "earliestTime being LastScheduleTime (within StartingDeadlineSeconds)",
        cron_job("*/5 * * * *", last=after(minutes=30), deadline=60),
        after(minutes=31),
        after(minutes=30),
    ),
    Recent(
        "earliestTime being LastScheduleTime (outside StartingDeadlineSeconds)",
        cron_job("*/5 * * * *", last=after(minutes=30), deadline=60),
        after(minutes=32),
        after(minutes=31),
        include_sds=True,
    ),
    # kpy's own: a time zone moves the schedule with it.
    Recent(
        "time zone",
        cron_job(
            "0 9 * * *", time_zone="Asia/Tokyo", created=datetime(2016, 5, 18, 23, tzinfo=UTC)
        ),
        datetime(2016, 5, 19, 0, 30, tzinfo=UTC),
        datetime(2016, 5, 18, 23, tzinfo=UTC),
        datetime(2016, 5, 19, 0, 0, tzinfo=UTC),
    ),
]


MOST_RECENT.append(
    Recent(
        "a naive now is UTC",
        cron_job("0 * * * *"),
        after(minutes=61).replace(tzinfo=None),
        TOP,
        after(minutes=60),
    )
)


@pytest.mark.parametrize("case", MOST_RECENT, ids=[c.name for c in MOST_RECENT])
def test_most_recent_schedule_time(case: Recent) -> None:
    if case.want_error:
        with pytest.raises(ScheduleError):
            most_recent_schedule_time(case.cj, case.now, None, case.include_sds)
        return
    earliest, recent, missed = most_recent_schedule_time(case.cj, case.now, None, case.include_sds)
    assert (earliest, recent, missed) == (case.earliest, case.recent, case.missed), case.name


DURATION = [
    (
        "complex schedule skipping weekend",
        cron_job("30 6-16/4 * * 1-5", last=after(minutes=30)),
        after(hours=24, minutes=31),
        timedelta(hours=3, minutes=59),
    ),
    (
        "another complex schedule skipping weekend",
        cron_job("30 10,11,12 * * 1-5", last=after(minutes=30)),
        after(hours=30, minutes=30),
        timedelta(hours=66),
    ),
    (
        "once a week cronjob, missed two runs",
        cron_job("0 12 * * 4", last=after(hours=2)),
        after(days=19, hours=1, minutes=30),
        timedelta(hours=48, minutes=30),
    ),
    (
        "no previous run of a cronjob",
        cron_job("0 12 * * 5"),
        after(hours=6),
        timedelta(hours=20),
    ),
    (
        "@every 1s, many missed: the next second",
        cron_job("@every 1s", created=after(hours=-1)),
        TOP,
        timedelta(seconds=1),
    ),
]


@pytest.mark.parametrize(("name", "cj", "now", "expected"), DURATION, ids=[c[0] for c in DURATION])
def test_next_schedule_time_duration(
    name: str, cj: CronJob, now: datetime, expected: timedelta
) -> None:
    assert next_schedule_time_duration(cj, now) == expected + NEXT_SCHEDULE_DELTA, name


@dataclass
class FakeRecorder:
    events: list[tuple[str, str]] = field(default_factory=list)

    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
        self.events.append((eventtype, reason))


T1 = TOP
T2 = after(hours=1)

NEXT = [
    ("no known start times, none needed", cron_job("0 * * * ?", created=T1 - timedelta(minutes=10)),
     T1 - timedelta(minutes=7), None),
    ("no known start times, one needed", cron_job("0 * * * ?", created=T1 - timedelta(minutes=10)),
     T1 + timedelta(seconds=2), T1),
    ("known last schedule, none needed",
     cron_job("0 * * * ?", created=T1 - timedelta(minutes=10), last=T1), T1 + timedelta(minutes=2),
     None),
    ("known last schedule, one needed",
     cron_job("0 * * * ?", created=T1 - timedelta(minutes=10), last=T1), T2 + timedelta(minutes=5),
     T2),
    ("known last schedule, two needed: the latest",
     cron_job("0 * * * ?", created=T1 - timedelta(hours=2), last=T1 - timedelta(hours=1)),
     T2 + timedelta(minutes=5), T2),
    ("far ahead, no deadline",
     cron_job("0 * * * ?", created=T1 - timedelta(hours=2), last=T1 - timedelta(hours=1)),
     T2 + timedelta(days=10), T2 + timedelta(days=10)),
    ("far ahead, short deadline",
     cron_job("0 * * * ?", created=T1 - timedelta(hours=2), last=T1 - timedelta(hours=1),
              deadline=7200),
     T2 + timedelta(days=10), T2 + timedelta(days=10)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "cj", "now", "expected"), NEXT, ids=[c[0] for c in NEXT])
def test_next_schedule_time(
    name: str, cj: CronJob, now: datetime, expected: datetime | None
) -> None:
    assert next_schedule_time(cj, now) == expected, name


def test_next_schedule_time_warns_of_too_many_missed() -> None:
    recorder = FakeRecorder()
    cj = cron_job("0 * * * ?", created=T1 - timedelta(hours=2), last=T1 - timedelta(hours=1))
    assert next_schedule_time(cj, T2 + timedelta(days=10), None, recorder) is not None
    assert recorder.events == [("Warning", "TooManyMissedTimes")]


def test_next_schedule_time_raises_for_a_rogue_schedule() -> None:
    cj = cron_job("59 23 31 2 *", created=T1 + timedelta(seconds=10))
    with pytest.raises(ScheduleError, match="less than 1 second"):
        next_schedule_time(cj, T2)


def job(name: str, start: datetime | None) -> Job:
    j = Job()
    j.metadata.name = name
    if start is not None:
        j.status.start_time.FromDatetime(start)
    return j


NOW = datetime(2018, 1, 1, 2, 3, 4, tzinfo=UTC)
LATER = datetime(2019, 1, 1, 2, 3, 4, tzinfo=UTC)
BY_START = [
    ("both have nil start times", [("b", None), ("a", None)], ["a", "b"]),
    ("only the first has a nil start time", [("a", None), ("b", NOW)], ["b", "a"]),
    ("only the second has a nil start time", [("a", NOW), ("b", None)], ["a", "b"]),
    ("both have non-nil, equal start time", [("b", NOW), ("a", NOW)], ["a", "b"]),
    ("both have non-nil, different start time", [("a", LATER), ("b", NOW)], ["b", "a"]),
]


@pytest.mark.parametrize(("name", "jobs", "expected"), BY_START, ids=[c[0] for c in BY_START])
def test_job_start_time_order(
    name: str, jobs: list[tuple[str, datetime | None]], expected: list[str]
) -> None:
    ordered = sorted((job(n, s) for n, s in jobs), key=job_start_time_key)
    assert [j.metadata.name for j in ordered] == expected, name


JOB_FROM_TEMPLATE = [
    ("UTC", "UTC", "2016-05-19T10:00:00Z"),
    ("no time zone", None, "2016-05-19T10:00:00Z"),
    ("Europe/Rome", "Europe/Rome", "2016-05-19T12:00:00+02:00"),
]


@pytest.mark.parametrize(
    ("name", "zone", "stamp"), JOB_FROM_TEMPLATE, ids=[c[0] for c in JOB_FROM_TEMPLATE]
)
def test_get_job_from_template(name: str, zone: str | None, stamp: str) -> None:
    cj = cron_job("* * * * ?", time_zone=zone)
    cj.spec.job_template.metadata.labels["a"] = "b"
    cj.spec.job_template.metadata.annotations["x"] = "y"
    cj.spec.job_template.spec.active_deadline_seconds = 1
    made = get_job_from_template(cj, TOP)
    assert made.metadata.name == f"mycronjob-{int(TOP.timestamp()) // 60}", name
    assert made.metadata.name == get_job_name(cj, TOP)
    assert dict(made.metadata.labels) == {"a": "b"}
    assert dict(made.metadata.annotations) == {"x": "y", SCHEDULED_TIMESTAMP_ANNOTATION: stamp}
    assert made.spec.active_deadline_seconds == 1
    (ref,) = made.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("CronJob", "mycronjob", "1a2b3c", True)

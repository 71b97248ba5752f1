"""Schedule arithmetic of the CronJob controller (Kubernetes'
pkg/controller/cronjob/utils.go), as plain functions of time passed in.

Lives in `kpy.controllers.cronjob.utils`; re-exported from
`kpy.controllers.cronjob`. Times are aware datetimes (UTC from the API);
`schedule` is a parsed `kpy.api.cron.Schedule`, or a string to parse, or
None for the CronJob's own (`schedule_of`: its spec.schedule read in its
spec.timeZone).

- `most_recent_schedule_time(cj, now, schedule, include_starting_deadline)`
  returns (earliest, most recent, missed): the time from which to look (the
  last schedule time, else the creation time, else, with
  `include_starting_deadline`, now less startingDeadlineSeconds if later),
  the most recent scheduled time in (earliest, now] or None, and whether
  none, few or many (more than 100) scheduled times were missed. A schedule
  whose two next times are less than a second apart (`59 23 31 2 *`, which
  never happens) raises `ScheduleError`.
- `next_schedule_time(cj, now, schedule, recorder)`: the scheduled time a
  Job should be created for now, or None; records the TooManyMissedTimes
  warning when more than 100 were missed.
- `next_schedule_time_duration(cj, now, schedule)`: how long until the
  controller should look again: to the next scheduled time after the most
  recent one (or after now when times were missed and none is due), plus
  100 ms of slack for clock skew.
- `get_job_name`, `get_job_from_template`, `is_job_finished`,
  `job_start_time_key`: naming (`<cronjob>-<minutes since the epoch>`) and
  ordering of the Jobs a CronJob owns.
"""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from kpy.api import cron
from kpy.api.batch.v1 import CronJob, Job

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

__all__ = [
    "NEXT_SCHEDULE_DELTA",
    "SCHEDULED_TIMESTAMP_ANNOTATION",
    "MissedSchedules",
    "ScheduleError",
    "get_job_from_template",
    "get_job_name",
    "is_job_finished",
    "job_finished_type",
    "job_start_time_key",
    "most_recent_schedule_time",
    "next_schedule_time",
    "next_schedule_time_duration",
    "schedule_of",
]

NEXT_SCHEDULE_DELTA: Final = timedelta(milliseconds=100)
SCHEDULED_TIMESTAMP_ANNOTATION: Final = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED: Final = 100


class MissedSchedules(enum.Enum):
    NONE = "none"
    FEW = "few"
    MANY = "many"


class ScheduleError(ValueError):
    """A schedule that parses but cannot be run (its times never come)."""


class _Recorder(Protocol):
    def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None: ...


def _dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _aware(t: datetime) -> datetime:
    """`t`, a naive time read as UTC (the API's times are all UTC)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def schedule_of(cj: CronJob) -> cron.Schedule:
    """The CronJob's schedule, in its timeZone when it has one (as
    Kubernetes' formatSchedule prefixes `TZ=`). Raises cron.CronError."""
    text = cj.spec.schedule
    if cj.spec.HasField("time_zone") and "TZ" not in text:
        text = f"TZ={cj.spec.time_zone} {text}"
    return cron.parse(text)


def _resolve(cj: CronJob, schedule: cron.Schedule | str | None) -> cron.Schedule:
    if schedule is None:
        return schedule_of(cj)
    if isinstance(schedule, str):
        return cron.parse(schedule)
    return schedule


def _next(schedule: cron.Schedule, t: datetime) -> datetime:
    found = schedule.next_after(t)
    # robfig/cron returns the zero time for a schedule that never fires,
    # which makes any "next" comparison below fail the same way.
    return found if found is not None else datetime.min.replace(tzinfo=UTC)


def most_recent_schedule_time(
    cj: CronJob,
    now: datetime,
    schedule: cron.Schedule | str | None = None,
    include_starting_deadline_seconds: bool = False,
) -> tuple[datetime, datetime | None, MissedSchedules]:
    """(earliest, most recent or None, missed); see the module docstring."""
    sched = _resolve(cj, schedule)
    now = _aware(now)
    earliest = _dt(cj.metadata.creation_timestamp)
    if cj.status.HasField("last_schedule_time"):
        earliest = _dt(cj.status.last_schedule_time)
    if include_starting_deadline_seconds and cj.spec.HasField("starting_deadline_seconds"):
        # The controller will not schedule anything before this point.
        deadline = now - timedelta(seconds=cj.spec.starting_deadline_seconds)
        earliest = max(earliest, deadline)
    t1 = _next(sched, earliest)
    t2 = _next(sched, t1)
    if now < t1:
        return earliest, None, MissedSchedules.NONE
    if now < t2:
        return earliest, t1, MissedSchedules.NONE
    between = math.floor((t2 - t1).total_seconds() + 0.5)
    if between < 1:
        raise ScheduleError(
            f"spec.schedule {cj.spec.schedule!r}: time difference between two schedules is "
            "less than 1 second; the schedule never fires (check day of month and month)"
        )
    # A rough count: how many intervals of t1..t2 fit between t1 and now.
    missed = int((now - t1).total_seconds()) // between + 1
    # Start two intervals before the estimate, so that irregular schedules
    # (`30 6-16/4 * * 1-5`) and @every both land on their real times.
    potential = t1 + timedelta(seconds=(missed - 2) * between)
    most_recent: datetime | None = None
    t = _next(sched, potential)
    while t <= now and t > potential:
        most_recent = t
        t = _next(sched, t)
    kind = MissedSchedules.MANY if missed > TOO_MANY_MISSED else MissedSchedules.FEW
    return earliest, most_recent, kind


def next_schedule_time(
    cj: CronJob,
    now: datetime,
    schedule: cron.Schedule | str | None = None,
    recorder: _Recorder | None = None,
) -> datetime | None:
    """The scheduled time to create a Job for now, or None (see the module
    docstring). Raises ScheduleError for a schedule that never fires."""
    now = _aware(now)
    _, most_recent, missed = most_recent_schedule_time(cj, now, schedule, True)
    if most_recent is None or most_recent > now:
        return None
    if missed is MissedSchedules.MANY and recorder is not None:
        recorder.event(
            cj,
            "Warning",
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
            "or check clock skew",
        )
    return most_recent


def next_schedule_time_duration(
    cj: CronJob, now: datetime, schedule: cron.Schedule | str | None = None
) -> timedelta:
    """How long until the next scheduled time (plus NEXT_SCHEDULE_DELTA)."""
    sched = _resolve(cj, schedule)
    now = _aware(now)
    try:
        earliest, most_recent, missed = most_recent_schedule_time(cj, now, sched, False)
    except ScheduleError:
        # Still requeue at some point: aim for the next slot after now.
        most_recent = now
    else:
        if most_recent is None:
            most_recent = earliest if missed is MissedSchedules.NONE else now
    return _next(sched, most_recent) + NEXT_SCHEDULE_DELTA - now


# -- the Jobs of a CronJob ----------------------------------------------------------------


def get_job_name(cj: CronJob, scheduled_time: datetime) -> str:
    """`<cronjob>-<scheduled time in minutes since the epoch>`: one name per
    scheduled time, so a retried creation cannot make a second Job."""
    return f"{cj.metadata.name}-{int(_aware(scheduled_time).timestamp()) // 60}"


def get_job_from_template(cj: CronJob, scheduled_time: datetime) -> Job:
    """The Job for `scheduled_time`: the template's labels, annotations
    (plus the scheduled-timestamp one, in the CronJob's time zone) and spec,
    owned by the CronJob. Raises cron.CronError for an unknown timeZone."""
    template = cj.spec.job_template
    job = Job()
    job.metadata.name = get_job_name(cj, scheduled_time)
    job.metadata.namespace = cj.metadata.namespace
    job.metadata.labels.update(template.metadata.labels)
    job.metadata.annotations.update(template.metadata.annotations)
    zone: Any = UTC
    if cj.spec.HasField("time_zone"):
        zone = _zone(cj.spec.time_zone)
    job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = (
        scheduled_time.astimezone(zone).isoformat().replace("+00:00", "Z")
    )
    ref = job.metadata.owner_references.add()
    ref.api_version = "batch/v1"
    ref.kind = "CronJob"
    ref.name = cj.metadata.name
    ref.uid = cj.metadata.uid
    ref.controller = True
    ref.block_owner_deletion = True
    job.spec.CopyFrom(template.spec)
    return job


def _zone(name: str) -> Any:
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise cron.CronError(f"unknown time zone {name}") from exc


def job_finished_type(job: Job) -> str | None:
    """ "Complete" or "Failed" when that condition is True, else None."""
    for c in job.status.conditions:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return None


def is_job_finished(job: Job) -> bool:
    return job_finished_type(job) is not None


def job_start_time_key(job: Job) -> tuple[bool, float, str]:
    """Sort key of Kubernetes' byJobStartTime: started Jobs first, by start
    time, then by name; Jobs not started last, by name."""
    if not job.status.HasField("start_time"):
        return True, 0.0, job.metadata.name
    return False, _dt(job.status.start_time).timestamp(), job.metadata.name

"""The CronJob controller and its schedule arithmetic.

The plain functions (`most_recent_schedule_time`, `next_schedule_time`,
`next_schedule_time_duration`, ...) live in `kpy.controllers.cronjob.utils`;
the controller in `kpy.controllers.cronjob.controller`.
"""

from kpy.controllers.cronjob.utils import (
    NEXT_SCHEDULE_DELTA,
    SCHEDULED_TIMESTAMP_ANNOTATION,
    MissedSchedules,
    ScheduleError,
    get_job_from_template,
    get_job_name,
    is_job_finished,
    job_finished_type,
    job_start_time_key,
    most_recent_schedule_time,
    next_schedule_time,
    next_schedule_time_duration,
    schedule_of,
)

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

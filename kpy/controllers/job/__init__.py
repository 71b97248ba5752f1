"""The Job controller and its arithmetic.

The plain functions live in `kpy.controllers.job.backoff` (back-off of a
Job and of an index: `BackoffStore.new_backoff_record`,
`BackoffRecord.remaining_time`, `remaining_time_for_failures_count`,
`get_remaining_time_per_index`, `get_finished_time`) and
`kpy.controllers.job.pod_failure_policy` (`match_pod_failure_policy`); the
controller in `kpy.controllers.job.controller`.
"""

from kpy.controllers.job.backoff import (
    DEFAULT_BACKOFF,
    INDEX_FAILURE_COUNT_ANNOTATION,
    INDEX_IGNORED_FAILURE_COUNT_ANNOTATION,
    MAX_BACKOFF,
    BackoffRecord,
    BackoffStore,
    get_finished_time,
    get_index_absolute_failure_count,
    get_remaining_time_per_index,
    remaining_time_for_failures_count,
)
from kpy.controllers.job.pod_failure_policy import (
    ACTION_COUNT,
    ACTION_FAIL_INDEX,
    ACTION_FAIL_JOB,
    ACTION_IGNORE,
    match_pod_failure_policy,
)

__all__ = [
    "ACTION_COUNT",
    "ACTION_FAIL_INDEX",
    "ACTION_FAIL_JOB",
    "ACTION_IGNORE",
    "DEFAULT_BACKOFF",
    "INDEX_FAILURE_COUNT_ANNOTATION",
    "INDEX_IGNORED_FAILURE_COUNT_ANNOTATION",
    "MAX_BACKOFF",
    "BackoffRecord",
    "BackoffStore",
    "get_finished_time",
    "get_index_absolute_failure_count",
    "get_remaining_time_per_index",
    "match_pod_failure_policy",
    "remaining_time_for_failures_count",
]

"""The Job controller's back-off before a replacement pod (Kubernetes'
pkg/controller/job/backoff_utils.go), as plain functions of time passed in.

Lives in `kpy.controllers.job.backoff`; everything here is re-exported from
`kpy.controllers.job`.

- `get_finished_time(pod)`: when a pod finished: the last container
  termination (regular containers all terminated, plus any terminated init
  containers, which a sidecar makes finish last), else the transition of its
  Ready condition to False, else its deletion time less its grace period,
  else its creation time.
- `BackoffStore.new_backoff_record(key, succeeded, failed)`: the failures in
  a row of a Job after its newly finished pods: a success resets the count,
  and only failures after the last success count (their latest finish is
  the last failure).
- `remaining_time_for_failures_count(now, default, max, n, last)`: the
  delay after `n` failures in a row: `default` doubled n-1 times, capped at
  `max`, less the time since the last failure, never below zero.
  Kubernetes' defaults are 10 s and 6 minutes (`DEFAULT_BACKOFF`,
  `MAX_BACKOFF`).
- `get_remaining_time_per_index(now, default, max, last_failed_pod)`: the
  same for one index of a Job with backoffLimitPerIndex, counting the
  failures recorded on the index's last failed pod (its failure count and
  ignored-failure count annotations, plus itself).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from google.protobuf.timestamp_pb2 import Timestamp

    from kpy.api.core.v1 import ContainerStatus, Pod

log = logging.getLogger("kpy.controllers.job")

__all__ = [
    "DEFAULT_BACKOFF",
    "INDEX_FAILURE_COUNT_ANNOTATION",
    "INDEX_IGNORED_FAILURE_COUNT_ANNOTATION",
    "MAX_BACKOFF",
    "BackoffRecord",
    "BackoffStore",
    "get_finished_time",
    "get_index_absolute_failure_count",
    "get_remaining_time_per_index",
    "remaining_time_for_failures_count",
]

DEFAULT_BACKOFF: Final = timedelta(seconds=10)
MAX_BACKOFF: Final = timedelta(minutes=6)
INDEX_FAILURE_COUNT_ANNOTATION: Final = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT_ANNOTATION: Final = (
    "batch.kubernetes.io/job-index-ignored-failure-count"
)


def to_datetime(ts: Timestamp) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)


def _aware(t: datetime) -> datetime:
    """`t`, a naive time read as UTC (the API's times are all UTC)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BackoffRecord:
    """A Job's failures in a row since its last success, and when the last
    one finished (None when there are none)."""

    key: str
    failures_after_last_success: int = 0
    last_failure_time: datetime | None = None

    def remaining_time(
        self,
        now: datetime,
        default_backoff: timedelta = DEFAULT_BACKOFF,
        max_backoff: timedelta = MAX_BACKOFF,
    ) -> timedelta:
        """How long before the Job may create a replacement pod."""
        return remaining_time_for_failures_count(
            now, default_backoff, max_backoff, self.failures_after_last_success,
            self.last_failure_time,
        )  # fmt: skip


class BackoffStore:
    """The controller's BackoffRecords by Job key (kept in memory: after a
    restart the first sync of a Job rebuilds it from the pods it sees)."""

    def __init__(self) -> None:
        self._records: dict[str, BackoffRecord] = {}

    def get(self, key: str) -> BackoffRecord | None:
        return self._records.get(key)

    def update_backoff_record(self, record: BackoffRecord) -> None:
        self._records[record.key] = record

    def remove_backoff_record(self, key: str) -> None:
        self._records.pop(key, None)

    def new_backoff_record(
        self, key: str, new_succeeded_pods: Sequence[Pod], new_failed_pods: Sequence[Pod]
    ) -> BackoffRecord:
        """The record of `key` after these newly finished pods (not stored:
        the caller stores it once the pods are counted in the Job's status)."""
        backoff = self._records.get(key) or BackoffRecord(key)
        succeeded = sorted(get_finished_time(p) for p in new_succeeded_pods)
        failed = sorted(get_finished_time(p) for p in new_failed_pods)
        if not succeeded:
            if not failed:
                return backoff
            return replace(
                backoff,
                failures_after_last_success=backoff.failures_after_last_success + len(failed),
                last_failure_time=failed[-1],
            )
        last_success = succeeded[-1]
        after = [t for t in failed if t > last_success]
        return BackoffRecord(key, len(after), after[-1] if after else None)


def get_finished_time(pod: Pod) -> datetime:
    """When `pod` finished (see the module docstring for the lookups)."""
    for finish in (
        _finish_time_from_containers(pod),
        _finish_time_from_ready_false(pod),
        _finish_time_from_deletion(pod),
    ):
        if finish is not None:
            return finish
    # Never so with a node agent marking pods and a pod GC deleting orphans.
    return to_datetime(pod.metadata.creation_timestamp)


def _finish_time_from_containers(pod: Pod) -> datetime | None:
    finish = _latest_finish(pod.status.container_statuses, every=True)
    if finish is None:
        return None
    init = _latest_finish(pod.status.init_container_statuses, every=False)
    return max(finish, init) if init is not None else finish


def _latest_finish(statuses: Iterable[ContainerStatus], *, every: bool) -> datetime | None:
    """The latest finish among terminated containers; with `every`, None
    unless all of them terminated with a finish time."""
    latest: datetime | None = None
    for status in statuses:
        terminated = status.state.terminated if status.state.HasField("terminated") else None
        if terminated is None or not terminated.HasField("finished_at"):
            if every:
                return None
            continue
        finished = to_datetime(terminated.finished_at)
        if latest is None or finished > latest:
            latest = finished
    return latest


def _finish_time_from_ready_false(pod: Pod) -> datetime | None:
    for condition in pod.status.conditions:
        if condition.type == "Ready":
            if condition.status == "False" and condition.HasField("last_transition_time"):
                return to_datetime(condition.last_transition_time)
            return None
    return None


def _finish_time_from_deletion(pod: Pod) -> datetime | None:
    meta = pod.metadata
    if not meta.HasField("deletion_timestamp"):
        return None
    return to_datetime(meta.deletion_timestamp) - timedelta(
        seconds=meta.deletion_grace_period_seconds
    )


def remaining_time_for_failures_count(
    now: datetime,
    default_backoff: timedelta,
    max_backoff: timedelta,
    failures_count: int,
    last_failure_time: datetime | None,
) -> timedelta:
    """The back-off left after `failures_count` failures in a row, the last
    at `last_failure_time`: `default_backoff` doubled for each failure after
    the first, capped at `max_backoff`, less the time elapsed since."""
    if failures_count == 0 or last_failure_time is None:
        return timedelta(0)
    now, last_failure_time = _aware(now), _aware(last_failure_time)
    backoff = default_backoff
    for _ in range(1, failures_count):
        backoff *= 2
        if backoff >= max_backoff:
            backoff = max_backoff
            break
    elapsed = now - last_failure_time
    if backoff < elapsed:
        return timedelta(0)
    return backoff - elapsed


def get_index_absolute_failure_count(pod: Pod) -> int:
    """The failures (counted and ignored) of the pod's index before it, from
    its annotations; 0 for a value that is not a non-negative number."""
    total = 0
    for annotation in (INDEX_FAILURE_COUNT_ANNOTATION, INDEX_IGNORED_FAILURE_COUNT_ANNOTATION):
        text = pod.metadata.annotations.get(annotation)
        if text is None:
            continue
        if not text.isdigit():
            log.info(
                "ignoring a malformed index failure count",
                extra={"pod": pod.metadata.name, "annotation": annotation, "value": text},
            )
            continue
        total += int(text)
    return total


def get_remaining_time_per_index(
    now: datetime,
    default_backoff: timedelta,
    max_backoff: timedelta,
    last_failed_pod: Pod | None,
) -> timedelta:
    """The back-off left before index of `last_failed_pod` gets a new pod."""
    if last_failed_pod is None:
        return timedelta(0)
    failures = get_index_absolute_failure_count(last_failed_pod) + 1
    return remaining_time_for_failures_count(
        now, default_backoff, max_backoff, failures, get_finished_time(last_failed_pod)
    )

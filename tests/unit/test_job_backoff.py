"""The Job controller's back-off, table by table, ported from Kubernetes'
pkg/controller/job/backoff_utils_test.go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kpy.api.core.v1 import Pod
from kpy.controllers.job import (
    INDEX_FAILURE_COUNT_ANNOTATION,
    INDEX_IGNORED_FAILURE_COUNT_ANNOTATION,
    BackoffRecord,
    BackoffStore,
    get_finished_time,
    get_remaining_time_per_index,
)

T = datetime(2009, 11, 10, 23, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def finished_pod(phase: str, *finished: datetime | None) -> Pod:
    """A pod with one container per time (None: still running)."""
    pod = Pod()
    pod.status.phase = phase
    for at in finished:
        status = pod.status.container_statuses.add()
        if at is None:
            status.state.running.SetInParent()
        else:
            status.state.terminated.finished_at.FromDatetime(at)
    return pod


RECORDS = [
    ("Empty backoff store and one new failure", None, [], [T], BackoffRecord("key", 1, T)),
    ("Empty backoff store and two new failures", None, [], [T, T - MS], BackoffRecord("key", 2, T)),
    ("Empty backoff store, two failures followed by success", None, [T], [T - 2 * MS, T - MS],
     BackoffRecord("key", 0, None)),
    ("Empty backoff store, two failures, one success and two more failures", None, [T - 2 * MS],
     [T, T - 4 * MS, T - 3 * MS, T - MS], BackoffRecord("key", 2, T)),
    ("Backoff store having failure count 2 and one new failure", BackoffRecord("key", 2, None), [],
     [T], BackoffRecord("key", 3, T)),
    ("Empty backoff store with success and failure at same timestamp", None, [T], [T],
     BackoffRecord("key", 0, None)),
    ("Empty backoff store with no success/failure", None, [], [], BackoffRecord("key", 0, None)),
    ("Empty backoff store with one success", None, [T], [], BackoffRecord("key", 0, None)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "stored", "succeeded", "failed", "expected"), RECORDS, ids=[c[0] for c in RECORDS]
)
def test_new_backoff_record(
    name: str,
    stored: BackoffRecord | None,
    succeeded: list[datetime],
    failed: list[datetime],
    expected: BackoffRecord,
) -> None:
    store = BackoffStore()
    if stored is not None:
        store.update_backoff_record(stored)
    record = store.new_backoff_record(
        "key",
        [finished_pod("Succeeded", t) for t in succeeded],
        [finished_pod("Failed", t) for t in failed],
    )
    assert record == expected, name


def _pod_with(
    *,
    containers: list[datetime | None] = (),  # type: ignore[assignment]
    init: list[datetime | None] = (),  # type: ignore[assignment]
    deleted: datetime | None = None,
    grace: int | None = None,
    ready: tuple[str, datetime] | None = None,
    created: datetime | None = None,
    terminated_without_time: bool = False,
) -> Pod:
    pod = finished_pod("Failed", *containers)
    for at in init:
        status = pod.status.init_container_statuses.add()
        if at is not None:
            status.state.terminated.finished_at.FromDatetime(at)
    if terminated_without_time:
        pod.status.container_statuses.add().state.terminated.SetInParent()
    if deleted is not None:
        pod.metadata.deletion_timestamp.FromDatetime(deleted)
    if grace is not None:
        pod.metadata.deletion_grace_period_seconds = grace
    if ready is not None:
        cond = pod.status.conditions.add(type="Ready", status=ready[0])
        cond.last_transition_time.FromDatetime(ready[1])
    if created is not None:
        pod.metadata.creation_timestamp.FromDatetime(created)
    return pod


S = timedelta(seconds=1)
FINISHED = [
    ("Pod with multiple containers and all containers terminated",
     _pod_with(containers=[T - S, T, T - 2 * S]), T),
    ("two containers terminated and one running; fallback to deletionTimestamp",
     _pod_with(containers=[T - S, None, T - 2 * S], deleted=T), T),
    ("fallback to deletionTimestamp", _pod_with(containers=[None], deleted=T), T),
    ("fallback to deletionTimestamp, decremented by grace period",
     _pod_with(containers=[None], deleted=T, grace=30), T - 30 * S),
    ("fallback to PodReady.LastTransitionTime when status of the condition is False",
     _pod_with(terminated_without_time=True, ready=("False", T)), T),
    ("skip fallback to PodReady.LastTransitionTime when status of the condition is True",
     _pod_with(terminated_without_time=True, ready=("True", T - 30 * S), deleted=T), T),
    ("fallback to creationTimestamp", _pod_with(terminated_without_time=True, created=T), T),
    ("Pod with init container and all containers terminated",
     _pod_with(containers=[T - S], init=[T]), T),
]  # fmt: skip


@pytest.mark.parametrize(("name", "pod", "expected"), FINISHED, ids=[c[0] for c in FINISHED])
def test_get_finished_time(name: str, pod: Pod, expected: datetime) -> None:
    assert get_finished_time(pod) == expected, name


SEC = timedelta(seconds=1)
REMAINING = [
    ("no failures", BackoffRecord("k", 0, None), T, 5, 700, 0),
    ("one failure; current time and failure time are same", BackoffRecord("k", 1, T), T, 5, 700, 5),
    ("one failure; current time == 1 second + failure time", BackoffRecord("k", 1, T), T + SEC, 5,
     700, 4),
    ("one failure; current time == expected backoff time", BackoffRecord("k", 1, T), T + 5 * SEC, 5,
     700, 0),
    ("one failure; current time == expected backoff time + 1 Second", BackoffRecord("k", 1, T),
     T + 6 * SEC, 5, 700, 0),
    ("three failures; current time and failure time are same", BackoffRecord("k", 3, T), T, 5, 700,
     20),
    ("eight failures; backoff not exceeding maxBackoff", BackoffRecord("k", 8, T), T, 5, 700, 640),
    ("nine failures; backoff exceeding maxBackoff", BackoffRecord("k", 9, T), T, 5, 700, 700),
    # kpy's defaults are Kubernetes': 10 s doubling, capped at 6 minutes.
    ("defaults: first failure", BackoffRecord("k", 1, T), T, None, None, 10),
    ("defaults: sixth failure", BackoffRecord("k", 6, T), T, None, None, 320),
    ("defaults: capped", BackoffRecord("k", 7, T), T, None, None, 360),
    ("naive times are UTC", BackoffRecord("k", 1, T.replace(tzinfo=None)), T + SEC, None, None, 9),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "record", "now", "default", "maximum", "seconds"),
    REMAINING,
    ids=[c[0] for c in REMAINING],
)
def test_remaining_time(
    name: str,
    record: BackoffRecord,
    now: datetime,
    default: int | None,
    maximum: int | None,
    seconds: int,
) -> None:
    if default is None or maximum is None:
        got = record.remaining_time(now)
    else:
        got = record.remaining_time(now, default * SEC, maximum * SEC)
    assert got == seconds * SEC, name


def _index_pod(failures: str | None, ignored: str | None) -> Pod:
    pod = _pod_with(containers=[None], deleted=T)
    if failures is not None:
        pod.metadata.annotations[INDEX_FAILURE_COUNT_ANNOTATION] = failures
    if ignored is not None:
        pod.metadata.annotations[INDEX_IGNORED_FAILURE_COUNT_ANNOTATION] = ignored
    return pod


PER_INDEX = [
    ("no failures", None, 0),
    ("two prev failures; current time and failure time are same", _index_pod("2", None), 20),
    ("one prev failure counted and one ignored; current time and failure time are same",
     _index_pod("1", "1"), 20),
    ("malformed count is zero", _index_pod("x", None), 5),
]  # fmt: skip


@pytest.mark.parametrize(("name", "pod", "seconds"), PER_INDEX, ids=[c[0] for c in PER_INDEX])
def test_remaining_time_per_index(name: str, pod: Pod | None, seconds: int) -> None:
    assert get_remaining_time_per_index(T, 5 * SEC, 700 * SEC, pod) == seconds * SEC, name

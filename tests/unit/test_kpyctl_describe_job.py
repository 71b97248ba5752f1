"""`kpyctl describe job` and `kpyctl describe cronjob`: the text kubectl
1.3x prints (kpy.cli._describe_job through describe.describe, events from a
fake client). Times are shown in local time: the tests pin TZ to UTC."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api.batch.v1 import CronJob, Job
from kpy.api.codec import from_dict
from kpy.cli import _client, _describe_job, describe
from kpy.client.fake import FakeClient

UID = "8ae0df37-93c8-4f14-8d7a-1b911d3521cb"
TEMPLATE = {
    "metadata": {"labels": {"batch.kubernetes.io/job-name": "pi"}},
    "spec": {
        "containers": [
            {
                "name": "pi",
                "image": "perl",
                "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"],
            }
        ],
        "restartPolicy": "Never",
    },
}
PI: dict[str, Any] = {
    "metadata": {"name": "pi", "namespace": "default", "uid": UID},
    "spec": {
        "parallelism": 2,
        "completions": 5,
        "completionMode": "NonIndexed",
        "suspend": False,
        "backoffLimit": 4,
        "activeDeadlineSeconds": 100,
        "ttlSecondsAfterFinished": 100,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}},
        "template": TEMPLATE,
    },
    "status": {
        "startTime": "2026-12-07T16:55:05Z",
        "completionTime": "2026-12-07T16:55:16Z",
        "active": 0,
        "ready": 0,
        "succeeded": 5,
        "failed": 0,
    },
}
PI_TEXT = f"""\
Name:                        pi
Namespace:                   default
Selector:                    batch.kubernetes.io/controller-uid={UID}
Labels:                      <none>
Annotations:                 <none>
Parallelism:                 2
Completions:                 5
Completion Mode:             NonIndexed
Suspend:                     false
Backoff Limit:               4
TTL Seconds After Finished:  100
Start Time:                  Mon, 07 Dec 2026 16:55:05 +0000
Completed At:                Mon, 07 Dec 2026 16:55:16 +0000
Duration:                    11s
Active Deadline Seconds:     100s
Pods Statuses:               0 Active (0 Ready) / 5 Succeeded / 0 Failed
Pod Template:
  Labels:  batch.kubernetes.io/job-name=pi
  Containers:
   pi:
    Image:      perl
    Port:       <none>
    Host Port:  <none>
    Command:
      perl
      -Mbignum=bpi
      -wle
      print bpi(2000)
    Environment:  <none>
    Mounts:       <none>
  Volumes:        <none>
Events:           <none>
"""

HELLO: dict[str, Any] = {
    "metadata": {"name": "hello", "namespace": "default", "uid": "c1"},
    "spec": {
        "schedule": "* * * * *",
        "concurrencyPolicy": "Allow",
        "suspend": False,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "hello", "image": "busybox:1.28"}],
                        "restartPolicy": "OnFailure",
                    }
                }
            }
        },
    },
    "status": {
        "lastScheduleTime": "2026-12-07T16:56:00Z",
        "active": [{"kind": "Job", "name": "hello-29944376", "namespace": "default"}],
    },
}
# The template's last lines align with Last Schedule Time: kubectl's tabwriter
# runs a column over consecutive lines that have one (no Command lines here).
HELLO_TEXT = """\
Name:                          hello
Namespace:                     default
Labels:                        <none>
Annotations:                   <none>
Schedule:                      * * * * *
Concurrency Policy:            Allow
Suspend:                       False
Successful Job History Limit:  3
Failed Job History Limit:      1
Starting Deadline Seconds:     <unset>
Selector:                      <unset>
Parallelism:                   <unset>
Completions:                   <unset>
Pod Template:
  Labels:  <none>
  Containers:
   hello:
    Image:           busybox:1.28
    Port:            <none>
    Host Port:       <none>
    Environment:     <none>
    Mounts:          <none>
  Volumes:           <none>
Last Schedule Time:  Mon, 07 Dec 2026 16:56:00 +0000
Active Jobs:         hello-29944376
Events:              <none>
"""


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


async def _text(kind: type[Any], resource: str, body: dict[str, Any]) -> str:
    obj = from_dict(kind, body)
    client: Any = FakeClient()
    return await describe.describe(client, _client.resolve(resource), obj, scheduler="")


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`base` with `patch` merged in (a None value removes the key)."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


async def test_describe_job_as_kubectl_prints_it() -> None:
    text = await _text(Job, "jobs.batch", PI)
    assert text == PI_TEXT, text


async def test_describe_cron_job_as_kubectl_prints_it() -> None:
    text = await _text(CronJob, "cronjobs.batch", HELLO)
    assert text == HELLO_TEXT, text


@dataclass(frozen=True)
class Case:
    name: str
    patch: dict[str, Any]
    lines: tuple[str, ...]  # each appears, with runs of spaces collapsed
    absent: tuple[str, ...] = ()  # no line starts with any of these
    extra: dict[str, Any] = field(default_factory=dict)


JOB_CASES = [
    Case(
        "running work queue: completions unset, no end yet",
        {
            "spec": {"completions": None, "parallelism": 3},
            "status": {"completionTime": None, "active": 3, "ready": 2, "succeeded": 1},
        },
        ("Completions: <unset>", "Pods Statuses: 3 Active (2 Ready) / 1 Succeeded / 0 Failed"),
        absent=("Completed At:", "Duration:"),
    ),
    Case(
        "a status without a ready count",
        {"status": {"ready": None, "active": 1, "failed": 2, "succeeded": 0}},
        ("Pods Statuses: 1 Active / 0 Succeeded / 2 Failed",),
    ),
    Case(
        "fields left unset are left out",
        {
            "spec": {
                "parallelism": None,
                "completionMode": None,
                "suspend": None,
                "backoffLimit": None,
                "ttlSecondsAfterFinished": None,
                "activeDeadlineSeconds": None,
            },
            "status": {"startTime": None, "completionTime": None},
        },
        ("Completions: 5",),
        absent=(
            "Parallelism:",
            "Completion Mode:",
            "Suspend:",
            "Backoff Limit:",
            "TTL Seconds After Finished:",
            "Active Deadline Seconds:",
            "Start Time:",
            "Completed At:",
            "Duration:",
            "Completed Indexes:",
        ),
    ),
    Case(
        "suspended",
        {"spec": {"suspend": True}, "status": {"completionTime": None}},
        ("Suspend: true",),
    ),
    Case(
        "indexed with completed indexes",
        {"spec": {"completionMode": "Indexed"}, "status": {"completedIndexes": "1,3-5,7"}},
        ("Completion Mode: Indexed", "Completed Indexes: 1,3-5,7"),
    ),
    Case(
        "indexed, none completed yet",
        {"spec": {"completionMode": "Indexed"}},
        ("Completed Indexes: <none>",),
    ),
    Case(
        "a long duration, labels, annotations and its cron job",
        {
            "metadata": {
                "labels": {"app": "pi", "tier": "batch"},
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "pis",
                        "uid": "u",
                        "controller": True,
                    },
                ],
            },
            "status": {"completionTime": "2026-12-07T17:05:35Z"},
        },
        (
            "Labels: app=pi",
            "tier=batch",
            "Annotations: cronjob.kubernetes.io/instantiate: manual",
            "Controlled By: CronJob/pis",
            "Duration: 10m",
        ),
    ),
    Case(
        "a selector with expressions",
        {
            "spec": {
                "selector": {
                    "matchLabels": {"a": "1", "batch.kubernetes.io/controller-uid": None},
                    "matchExpressions": [{"key": "b", "operator": "In", "values": ["x", "y"]}],
                }
            }
        },
        ("Selector: a=1,b in (x,y)",),
    ),
]

CRON_CASES = [
    Case(
        "everything unset, never scheduled",
        {
            "spec": {
                "suspend": None,
                "successfulJobsHistoryLimit": None,
                "failedJobsHistoryLimit": None,
            },
            "status": {"lastScheduleTime": None, "active": None},
        },
        (
            "Suspend: <unset>",
            "Successful Job History Limit: <unset>",
            "Failed Job History Limit: <unset>",
            "Last Schedule Time: <unset>",
            "Active Jobs: <none>",
        ),
    ),
    Case(
        "a job template with every field",
        {
            "spec": {
                "suspend": True,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 200,
                "jobTemplate": {
                    "spec": {
                        "parallelism": 2,
                        "completions": 4,
                        "activeDeadlineSeconds": 60,
                        "selector": {"matchLabels": {"job": "x"}},
                    }
                },
            },
        },
        (
            "Suspend: True",
            "Concurrency Policy: Forbid",
            "Starting Deadline Seconds: 200s",
            "Selector: job=x",
            "Parallelism: 2",
            "Completions: 4",
            "Active Deadline Seconds: 60s",
        ),
    ),
    Case(
        "two active jobs",
        {
            "status": {
                "active": [
                    {"kind": "Job", "name": "hello-1", "namespace": "default"},
                    {"kind": "Job", "name": "hello-2", "namespace": "default"},
                ]
            }
        },
        ("Active Jobs: hello-1, hello-2",),
    ),
]


async def _check(case: Case, kind: type[Any], resource: str, base: dict[str, Any]) -> None:
    text = await _text(kind, resource, _merge(base, case.patch))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for want in case.lines:
        assert want in lines, f"{case.name}: no line {want!r} in:\n{text}"
    for prefix in case.absent:
        found = [line for line in lines if line.startswith(prefix)]
        assert not found, f"{case.name}: unexpected {found} in:\n{text}"


@pytest.mark.parametrize("case", JOB_CASES, ids=[c.name for c in JOB_CASES])
async def test_describe_job(case: Case) -> None:
    await _check(case, Job, "jobs.batch", PI)


@pytest.mark.parametrize("case", CRON_CASES, ids=[c.name for c in CRON_CASES])
async def test_describe_cron_job(case: Case) -> None:
    await _check(case, CronJob, "cronjobs.batch", HELLO)


CAPS = [
    ("empty", "", "<none>"),
    ("short", "0-3,7", "0-3,7"),
    ("exactly at the limit", "1" * 50, "1" * 50),
    ("cut at the first comma past the limit", "1" * 48 + ",34,56,78", "1" * 48 + ",34,..."),
    ("no comma past the limit", "1" * 60, "1" * 60),
]


@pytest.mark.parametrize(("name", "indexes", "want"), CAPS, ids=[c[0] for c in CAPS])
def test_cap_indexes(name: str, indexes: str, want: str) -> None:
    assert _describe_job.cap_indexes(indexes) == want, name

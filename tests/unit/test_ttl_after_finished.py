"""The TTL-after-finished controller's `sync`, table by table, on the fake
client (after Kubernetes' pkg/controller/ttlafterfinished tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kpy.api.batch.v1 import Job
from kpy.api.defaults import set_defaults
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.ttl_after_finished import TTLAfterFinishedController

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def job(ttl: int | None, finished_ago: int | None, condition: str = "Complete") -> Job:
    j = Job()
    j.metadata.name, j.metadata.namespace = "job", "default"
    j.spec.template.spec.containers.add(name="c", image="busybox")
    j.spec.template.spec.restart_policy = "Never"
    if ttl is not None:
        j.spec.ttl_seconds_after_finished = ttl
    if finished_ago is not None:
        c = j.status.conditions.add(type=condition, status="True")
        c.last_transition_time.FromDatetime(NOW - timedelta(seconds=finished_ago))
    return set_defaults(j)


@dataclass(frozen=True)
class Case:
    name: str
    job: Job
    deleted: bool
    requeue: float | None = None


CASES = [
    Case("no TTL: kept", job(None, 1000), deleted=False),
    Case("not finished: kept", job(10, None), deleted=False),
    Case("finished, TTL not yet up: requeued for then", job(100, 40), False, requeue=60.0),
    Case("finished, TTL up: deleted", job(100, 100), deleted=True),
    Case("failed, TTL 0: deleted at once", job(0, 0, "Failed"), deleted=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    client = FakeClient(now=NOW.timestamp)
    jobs = SharedInformer(client, Job)
    requeues: list[float] = []
    controller = TTLAfterFinishedController(client, jobs, now=lambda: NOW)
    controller.enqueue_after = lambda _k, d: requeues.append(d)  # type: ignore[assignment,method-assign]
    [stored] = client.add(case.job)
    jobs.indexer.add(stored)
    await controller.sync("default/job")
    controller.queue.shut_down()
    deletes = [a for a in client.writes() if a.verb == "delete"]
    assert bool(deletes) == case.deleted, case.name
    if case.deleted:
        # Foreground: the garbage collector deletes the pods before the Job.
        stored_after: Any = client.stored(Job, "job")
        assert stored_after is not None
        assert "foregroundDeletion" in stored_after.metadata.finalizers, case.name
    assert requeues == ([case.requeue] if case.requeue is not None else []), case.name

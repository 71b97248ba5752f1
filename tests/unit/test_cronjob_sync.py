"""The CronJob controller's `sync`, table by table, on the fake client (after
Kubernetes' pkg/controller/cronjob/cronjob_controllerv2_test.go:
TestControllerV2SyncCronJob; the cases are ported, the code is kpy's).

Every case names the CronJob, the Jobs the listers hold and `now`, then the
writes the sync makes (`verb Kind namespace/name (subresource)`), the
events it records (reasons), the stored status and when it asks to be
synced again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kpy.api.batch.v1 import CronJob, Job
from kpy.api.defaults import set_defaults
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.cronjob import NEXT_SCHEDULE_DELTA, get_job_name
from kpy.controllers.cronjob.controller import CronJobController
from kpy.controllers.ownership import new_controller_ref

T1 = datetime(2016, 5, 19, 10, 0, tzinfo=UTC)  # a scheduled time of "0 * * * ?"
T2 = T1 + timedelta(hours=1)
JUST_AFTER_T1 = T1 + timedelta(seconds=2)
_uids = iter(range(1, 10_000))


def cron_job(
    policy: str = "Allow",
    *,
    suspend: bool = False,
    created: datetime = T1 - timedelta(minutes=10),
    last: datetime | None = None,
    deadline: int | None = None,
    active: list[Job] | None = None,
    successful_limit: int = 3,
) -> CronJob:
    cj = CronJob()
    cj.metadata.name, cj.metadata.namespace, cj.metadata.uid = "cj", "default", "cj-uid"
    cj.metadata.creation_timestamp.FromDatetime(created)
    cj.spec.schedule = "0 * * * ?"
    cj.spec.concurrency_policy = policy
    cj.spec.suspend = suspend
    cj.spec.successful_jobs_history_limit = successful_limit
    if deadline is not None:
        cj.spec.starting_deadline_seconds = deadline
    template = cj.spec.job_template.spec.template
    template.spec.containers.add(name="c", image="busybox")
    template.spec.restart_policy = "OnFailure"
    if last is not None:
        cj.status.last_schedule_time.FromDatetime(last)
    for job in active or []:
        cj.status.active.add(
            kind="Job", namespace="default", name=job.metadata.name, uid=job.metadata.uid,
            api_version="batch/v1",
        )  # fmt: skip
    return set_defaults(cj)


OWNER = cron_job()


def job(scheduled: datetime, finished: str | None = None, *, owned: bool = True) -> Job:
    j = Job()
    j.metadata.name = get_job_name(OWNER, scheduled)
    j.metadata.namespace = "default"
    j.metadata.uid = f"job-uid-{next(_uids)}"
    if owned:
        j.metadata.owner_references.append(new_controller_ref(OWNER, "batch/v1", "CronJob"))
    j.spec.template.spec.containers.add(name="c", image="busybox")
    j.spec.template.spec.restart_policy = "OnFailure"
    j.status.start_time.FromDatetime(scheduled)
    if finished is not None:
        j.status.conditions.add(type=finished, status="True")
        if finished == "Complete":
            j.status.completion_time.FromDatetime(scheduled + timedelta(minutes=1))
    return set_defaults(j)


RUNNING_T0 = job(T1 - timedelta(hours=1))
DONE_T0 = job(T1 - timedelta(hours=1), "Complete")
STATUS = "update CronJob default/cj (status)"
CREATE_T1 = f"create Job default/{get_job_name(OWNER, T1)}"


@dataclass(frozen=True)
class Case:
    name: str
    cj: CronJob
    jobs: list[Job] = field(default_factory=list)
    now: datetime = JUST_AFTER_T1
    want: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    active: int | None = None
    last_schedule: datetime | None = None
    requeue: timedelta | None = None


NEXT_HOUR = T2 - JUST_AFTER_T1 + NEXT_SCHEDULE_DELTA

CASES = [
    Case(
        "never ran, not yet time: waits for the time",
        cron_job(),
        now=T1 - timedelta(minutes=7),
        requeue=timedelta(minutes=7) + NEXT_SCHEDULE_DELTA,
    ),
    Case(
        "never ran, time: creates the Job",
        cron_job(),
        want=[CREATE_T1, STATUS],
        events=["SuccessfulCreate"],
        active=1,
        last_schedule=T1,
        requeue=NEXT_HOUR,
    ),
    Case("suspended: nothing", cron_job(suspend=True), want=[], events=[], requeue=None),
    Case(
        "already ran at this time: nothing until the next",
        cron_job(last=T1),
        now=T1 + timedelta(minutes=2),
        requeue=T2 - (T1 + timedelta(minutes=2)) + NEXT_SCHEDULE_DELTA,
    ),
    Case(
        "Allow with a Job running: another",
        cron_job("Allow", last=T1 - timedelta(hours=1), active=[RUNNING_T0]),
        jobs=[RUNNING_T0],
        want=[CREATE_T1, STATUS],
        events=["SuccessfulCreate"],
        active=2,
        last_schedule=T1,
    ),
    Case(
        "Forbid with a Job running: skipped",
        cron_job("Forbid", last=T1 - timedelta(hours=1), active=[RUNNING_T0]),
        jobs=[RUNNING_T0],
        events=["JobAlreadyActive"],
        active=1,
        requeue=NEXT_HOUR,
    ),
    Case(
        "Replace with a Job running: replaced",
        cron_job("Replace", last=T1 - timedelta(hours=1), active=[RUNNING_T0]),
        jobs=[RUNNING_T0],
        want=[f"delete Job default/{RUNNING_T0.metadata.name}", CREATE_T1, STATUS],
        events=["SuccessfulDelete", "SuccessfulCreate"],
        active=1,
        last_schedule=T1,
    ),
    Case(
        "past startingDeadlineSeconds: missed",
        cron_job(deadline=1),
        now=T1 + timedelta(seconds=30),
        want=[],
        events=[],
        requeue=T2 - (T1 + timedelta(seconds=30)) + NEXT_SCHEDULE_DELTA,
    ),
    Case(
        "within startingDeadlineSeconds: created",
        cron_job(deadline=60),
        now=T1 + timedelta(seconds=30),
        want=[CREATE_T1, STATUS],
        events=["SuccessfulCreate"],
    ),
    Case(
        "an active Job finished: leaves active, sets lastSuccessfulTime",
        cron_job(last=T1, active=[DONE_T0]),
        jobs=[DONE_T0],
        now=T1 + timedelta(minutes=2),
        want=[STATUS],
        events=["SawCompletedJob"],
        active=0,
    ),
    Case(
        "an active Job gone: MissingJob",
        cron_job(last=T1, active=[RUNNING_T0]),
        now=T1 + timedelta(minutes=2),
        want=[STATUS],
        events=["MissingJob"],
        active=0,
    ),
    Case(
        "an unfinished Job not in active: UnexpectedJob",
        cron_job(last=T1),
        jobs=[RUNNING_T0],
        now=T1 + timedelta(minutes=2),
        events=["UnexpectedJob"],
    ),
    Case(
        "more than 100 missed: a warning, and only the latest runs",
        cron_job(created=T1 - timedelta(days=10), last=T1 - timedelta(days=10)),
        want=[CREATE_T1, STATUS],
        events=["TooManyMissedTimes", "SuccessfulCreate"],
        last_schedule=T1,
    ),
    Case(
        "finished Jobs beyond successfulJobsHistoryLimit: the oldest go",
        cron_job(last=T1, successful_limit=1),
        jobs=[job(T1 - timedelta(hours=2), "Complete"), job(T1 - timedelta(hours=1), "Complete")],
        now=T1 + timedelta(minutes=2),
        want=[f"delete Job default/{get_job_name(OWNER, T1 - timedelta(hours=2))}", STATUS],
        events=["SuccessfulDelete"],
    ),
]


@dataclass
class Fixture:
    client: FakeClient
    cron_jobs: SharedInformer[CronJob]
    jobs: SharedInformer[Job]
    controller: CronJobController
    events: list[str]
    requeues: list[float]

    @classmethod
    def new(cls, now: datetime) -> Fixture:
        client = FakeClient(now=now.timestamp)
        cron_jobs, jobs = SharedInformer(client, CronJob), SharedInformer(client, Job)
        events: list[str] = []
        requeues: list[float] = []

        class Recorder:
            def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
                events.append(reason)

        controller = CronJobController(
            client,
            cron_jobs,
            jobs,
            recorder=Recorder(),  # type: ignore[arg-type]
            now=lambda: now,
        )
        controller.enqueue_after = lambda _key, delay: requeues.append(delay)  # type: ignore[assignment,method-assign]
        return cls(client, cron_jobs, jobs, controller, events, requeues)

    def seed(self, *objects: CronJob | Job) -> None:
        for stored in self.client.add(*objects):
            informer: SharedInformer[Any] = (
                self.cron_jobs if isinstance(stored, CronJob) else self.jobs
            )
            informer.indexer.add(stored)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    fx = Fixture.new(case.now)
    fx.seed(case.cj, *case.jobs)
    await fx.controller.sync("default/cj")
    fx.controller.queue.shut_down()
    got = [str(a) for a in fx.client.writes()]
    assert got == case.want, f"{case.name}: writes {got}"
    assert fx.events == case.events, f"{case.name}: events {fx.events}"
    stored = fx.client.stored(CronJob, "cj")
    assert stored is not None
    if case.active is not None:
        assert len(stored.status.active) == case.active, case.name
    if case.last_schedule is not None:
        assert stored.status.last_schedule_time.ToDatetime(tzinfo=UTC) == case.last_schedule
    if case.requeue is not None:
        assert fx.requeues == [case.requeue.total_seconds()], f"{case.name}: {fx.requeues}"
    elif not case.want or "STATUS" not in case.want:
        pass


async def test_the_created_job_comes_from_the_template() -> None:
    fx = Fixture.new(JUST_AFTER_T1)
    cj = cron_job()
    cj.spec.job_template.metadata.labels["team"] = "a"
    fx.seed(cj)
    await fx.controller.sync("default/cj")
    fx.controller.queue.shut_down()
    [made] = fx.client.stored_list(Job)
    assert made.metadata.name == f"cj-{int(T1.timestamp()) // 60}"
    assert made.metadata.labels["team"] == "a"
    [ref] = made.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("CronJob", "cj", "cj-uid", True)
    stored = fx.client.stored(CronJob, "cj")
    assert stored is not None
    assert [r.name for r in stored.status.active] == [made.metadata.name]


async def test_a_job_created_before_a_crash_is_taken_back() -> None:
    """The Job exists (the status write was lost): AlreadyExists re-adopts it."""
    fx = Fixture.new(JUST_AFTER_T1)
    fx.seed(cron_job())
    fx.client.add(job(T1))  # in the API, not yet in the cache
    await fx.controller.sync("default/cj")
    fx.controller.queue.shut_down()
    stored = fx.client.stored(CronJob, "cj")
    assert stored is not None
    assert [r.name for r in stored.status.active] == [get_job_name(OWNER, T1)]
    assert "SuccessfulCreate" not in fx.events


async def test_a_changed_schedule_requeues_for_its_new_time() -> None:
    fx = Fixture.new(T1 + timedelta(minutes=1))
    old = cron_job()
    new = cron_job()
    new.spec.schedule = "30 * * * *"
    fx.controller._update_cron_job(old, new)
    fx.controller.queue.shut_down()
    assert fx.requeues == [(timedelta(minutes=29) + NEXT_SCHEDULE_DELTA).total_seconds()]


async def test_a_job_listed_by_a_status_write_the_cache_lags_behind_is_expected() -> None:
    """The CronJob's own write (listing the new Job) is in the API but not yet
    in the cache: no UnexpectedJob warning, nothing written."""
    now = T1 + timedelta(minutes=2)
    fx = Fixture.new(now)
    [stored] = fx.client.add(cron_job(last=T1, active=[RUNNING_T0]))
    stale = CronJob()
    stale.CopyFrom(stored)
    del stale.status.active[:]
    fx.cron_jobs.indexer.add(stale)
    fx.seed(RUNNING_T0)
    await fx.controller.sync("default/cj")
    fx.controller.queue.shut_down()
    assert "UnexpectedJob" not in fx.events
    assert [str(a) for a in fx.client.writes()] == []

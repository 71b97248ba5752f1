"""The CronJob controller (Kubernetes' pkg/controller/cronjob,
cronjob_controllerv2.go).

Creates a Job for each scheduled time of a CronJob:

- Handlers: a CronJob change enqueues it (at once; a changed schedule or
  time zone is then requeued for its new next time); a Job change enqueues
  the CronJob that controls it.
- `sync(key)`:
  1. reconciles `status.active` with the Jobs it owns: a finished Job
     leaves it (and moves `lastSuccessfulTime`), a Job that is gone leaves
     it after a check against the API (the cache may lag), an unfinished
     Job missing from it is reported (UnexpectedJob);
  2. unless the CronJob is being deleted, suspended or has an unknown time
     zone or unusable schedule (a Warning event, no retry until it
     changes), finds the most recent scheduled time not yet run
     (`utils.next_schedule_time`; more than 100 missed: a
     TooManyMissedTimes warning and only the latest is run);
  3. one past `startingDeadlineSeconds` is skipped (MissSchedule); with
     concurrencyPolicy Forbid an active Job skips it (JobAlreadyActive);
     with Replace the active Jobs are deleted first; then the Job
     `<cronjob>-<minutes since the epoch>` is created (the name makes a
     second creation for the same time fail with AlreadyExists, which
     re-adopts it), recorded in `active` and `lastScheduleTime`;
  4. deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit`
     and `failedJobsHistoryLimit`;
  5. writes the status if it changed and requeues itself for the next
     scheduled time (plus 100 ms): the controller never polls.

Times come from `now` (injected for tests).
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kpy.api import cron, errors
from kpy.api.batch.v1 import CronJob, CronJobStatus, Job
from kpy.api.core.v1 import ObjectReference
from kpy.cache.events import NORMAL, WARNING
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.cronjob.utils import (
    ScheduleError,
    get_job_from_template,
    get_job_name,
    job_finished_type,
    job_start_time_key,
    next_schedule_time,
    next_schedule_time_duration,
    schedule_of,
)
from kpy.controllers.ownership import get_controller_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.cronjob")

__all__ = ["CronJobController", "new_cronjob_controller"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Sync:
    cj: CronJob
    status: CronJobStatus
    jobs: list[Job]
    now: datetime


class CronJobController(Controller):
    name = "cronjob"

    def __init__(
        self,
        client: ClientProtocol,
        cron_jobs: SharedInformer[CronJob],
        jobs: SharedInformer[Job],
        *,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._cron_jobs: Lister[CronJob] = cron_jobs.lister()
        self._jobs: Lister[Job] = jobs.lister()
        self._now = now
        cron_jobs.add_event_handler(
            EventHandler(
                on_add=lambda cj, _initial: self.enqueue(cj),
                on_update=self._update_cron_job,
                on_delete=self.enqueue,
            )
        )
        jobs.add_event_handler(
            EventHandler(
                on_add=lambda job, _initial: self._enqueue_owner(job),
                on_update=self._update_job,
                on_delete=self._delete_job,
            )
        )

    # -- handlers -------------------------------------------------------------------------

    def _update_cron_job(self, old: CronJob, new: CronJob) -> None:
        if old.spec.schedule != new.spec.schedule or old.spec.time_zone != new.spec.time_zone:
            try:
                delay = next_schedule_time_duration(new, self._now(), schedule_of(new))
            except (cron.CronError, ScheduleError):
                delay = timedelta(0)  # the sync reports it
            self.enqueue_after(new, max(0.0, delay.total_seconds()))
        self.enqueue(new)

    def _update_job(self, old: Job, new: Job) -> None:
        old_ref, new_ref = get_controller_of(old), get_controller_of(new)
        if old_ref is not None and (new_ref is None or old_ref.uid != new_ref.uid):
            self._enqueue_owner(old)
        self._enqueue_owner(new)

    def _delete_job(self, obj: Any) -> None:
        job = deleted_object(obj)
        if job is not None:
            self._enqueue_owner(job)

    def _enqueue_owner(self, job: Job) -> None:
        owner = self._resolve(job)
        if owner is not None:
            self.enqueue(owner)

    def _resolve(self, job: Job) -> CronJob | None:
        ref = get_controller_of(job)
        if ref is None or ref.kind != "CronJob":
            return None
        cj = self._cron_jobs.get(job.metadata.namespace, ref.name)
        if cj is None or cj.metadata.uid != ref.uid:
            return None
        return cj

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        cj = self._cron_jobs.get(namespace, name)
        if cj is None:
            return
        jobs = [
            j
            for j in self._jobs.list(namespace)
            if (ref := get_controller_of(j)) is not None and ref.uid == cj.metadata.uid
        ]
        status = CronJobStatus()
        status.CopyFrom(cj.status)
        ctx = _Sync(cj, status, jobs, self._now())
        failure: errors.StatusError | None = None
        requeue: timedelta | None = None
        try:
            await self._reconcile_active(ctx)
            requeue = await self._schedule(ctx)
        except errors.StatusError as e:
            failure = e
        await self._cleanup_finished(ctx)
        await self._write(ctx)
        if failure is not None:
            raise failure
        if requeue is not None:
            self.enqueue_after(key, max(0.0, requeue.total_seconds()))

    async def _reconcile_active(self, ctx: _Sync) -> None:
        for job in ctx.jobs:
            listed = any(r.uid == job.metadata.uid for r in ctx.status.active)
            finished = job_finished_type(job)
            if not listed and finished is None and await self._listed_in_fresh_copy(ctx, job):
                continue
            status = ctx.status
            if not listed and finished is None:
                self.record(
                    ctx.cj,
                    WARNING,
                    "UnexpectedJob",
                    f"Saw a job that the controller did not create or forgot: {job.metadata.name}",
                )
            elif listed and finished is not None:
                _remove_active(status, job.metadata.uid)
                self.record(
                    ctx.cj,
                    NORMAL,
                    "SawCompletedJob",
                    f"Saw completed job: {job.metadata.name}, condition: {finished}",
                )
            if finished == "Complete" and job.status.HasField("completion_time"):
                done = job.status.completion_time
                if not status.HasField("last_successful_time") or (
                    done.ToDatetime() > status.last_successful_time.ToDatetime()
                ):
                    status.last_successful_time.CopyFrom(done)
        status = ctx.status
        children = {j.metadata.uid for j in ctx.jobs}
        for ref in list(status.active):
            if ref.uid in children:
                continue
            # The cache may lag behind a Job just created: ask the API.
            try:
                await self._client.get(Job, ref.name, namespace=ref.namespace)
            except errors.NotFound:
                self.record(ctx.cj, NORMAL, "MissingJob", f"Active job went missing: {ref.name}")
                _remove_active(status, ref.uid)

    async def _listed_in_fresh_copy(self, ctx: _Sync, job: Job) -> bool:
        """Whether the CronJob as the API has it lists `job` as active (the
        cache may not show our own status write yet); if so, this sync goes
        on from that copy."""
        try:
            fresh = await self._client.get(
                CronJob, ctx.cj.metadata.name, namespace=ctx.cj.metadata.namespace
            )
        except errors.NotFound:
            return False
        if fresh.metadata.uid != ctx.cj.metadata.uid:
            return False
        if not any(r.uid == job.metadata.uid for r in fresh.status.active):
            return False
        ctx.cj = fresh
        ctx.status.CopyFrom(fresh.status)
        return True

    async def _schedule(self, ctx: _Sync) -> timedelta | None:
        """Steps 2-3; how long until the next look (None: wait for a change)."""
        cj, now = ctx.cj, ctx.now
        if cj.metadata.HasField("deletion_timestamp"):
            return None
        if cj.spec.HasField("time_zone") and not _known_zone(cj.spec.time_zone):
            self.record(
                cj,
                WARNING,
                "UnknownTimeZone",
                f"invalid timeZone: {cj.spec.time_zone!r}: unknown time zone; set an IANA "
                "name such as Europe/Paris",
            )
            return None
        if cj.spec.suspend:
            return None
        try:
            schedule = schedule_of(cj)
        except cron.CronError as e:
            self.record(
                cj,
                WARNING,
                "UnparseableSchedule",
                f"unparseable schedule: {cj.spec.schedule!r} : {e}",
            )
            return None
        # The schedule arithmetic reads the status as this sync has it so far
        # (on a copy: the lister's object is shared and never mutated).
        probe = CronJob()
        probe.CopyFrom(cj)
        probe.status.CopyFrom(ctx.status)
        try:
            scheduled = next_schedule_time(probe, now, schedule, self.recorder)
        except ScheduleError as e:
            self.record(
                cj, WARNING, "InvalidSchedule", f"invalid schedule: {cj.spec.schedule} : {e}"
            )
            return None
        if scheduled is None:
            return next_schedule_time_duration(probe, now, schedule)
        if await self._start(ctx, scheduled):
            probe.status.CopyFrom(ctx.status)
        return next_schedule_time_duration(probe, now, schedule)

    async def _start(self, ctx: _Sync, scheduled: datetime) -> bool:
        """Creates the Job for `scheduled` unless a rule says not to;
        whether the status now records it."""
        cj, status = ctx.cj, ctx.status
        deadline = cj.spec.starting_deadline_seconds
        if cj.spec.HasField("starting_deadline_seconds") and (
            scheduled + timedelta(seconds=deadline) < ctx.now
        ):
            self.record(
                cj,
                WARNING,
                "MissSchedule",
                "Missed scheduled time to start a job: "
                f"{scheduled.astimezone(UTC).strftime('%a, %d %b %Y %H:%M:%S +0000')}",
            )
            return False
        name = get_job_name(cj, scheduled)
        already = any(r.name == name for r in status.active) or (
            status.HasField("last_schedule_time")
            and status.last_schedule_time.ToDatetime(tzinfo=UTC) == scheduled
        )
        if already:
            return False
        if cj.spec.concurrency_policy == "Forbid" and status.active:
            self.record(
                cj,
                NORMAL,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy "
                "is Forbid",
            )
            return False
        if cj.spec.concurrency_policy == "Replace":
            for ref in list(status.active):
                await self._delete_job_ref(cj, ref.namespace, ref.name)
                _remove_active(status, ref.uid)
        job = await self._create(cj, scheduled)
        if job is None:
            return False
        status.active.append(
            ObjectReference(
                kind="Job",
                namespace=job.metadata.namespace,
                name=job.metadata.name,
                uid=job.metadata.uid,
                api_version="batch/v1",
                resource_version=job.metadata.resource_version,
            )
        )
        status.last_schedule_time.FromDatetime(scheduled)
        return True

    async def _create(self, cj: CronJob, scheduled: datetime) -> Job | None:
        """The Job made (or found, if an earlier sync made it); None when a
        Job of that name belongs to someone else or is already active."""
        wanted = get_job_from_template(cj, scheduled)
        try:
            made = await self._client.create(wanted)
        except errors.AlreadyExists:
            found = await self._client.get(
                Job, wanted.metadata.name, namespace=wanted.metadata.namespace
            )
            ref = get_controller_of(found)
            if ref is None or ref.uid != cj.metadata.uid:
                return None
            if any(r.uid == found.metadata.uid for r in cj.status.active):
                return None
            log.info(
                "job already exists", extra={"controller": self.name, "job": found.metadata.name}
            )
            return found
        except errors.StatusError as e:
            self.record(cj, WARNING, "FailedCreate", f"Error creating job: {e}")
            raise
        self.record(cj, NORMAL, "SuccessfulCreate", f"Created job {made.metadata.name}")
        return made

    async def _delete_job_ref(self, cj: CronJob, namespace: str, name: str) -> None:
        try:
            await self._client.delete(
                Job, name, namespace=namespace, propagation_policy="Background"
            )
        except errors.NotFound:
            return
        except errors.StatusError as e:
            self.record(cj, WARNING, "FailedDelete", f"Deleted job: {e}")
            raise
        self.record(cj, NORMAL, "SuccessfulDelete", f"Deleted job {name}")

    async def _cleanup_finished(self, ctx: _Sync) -> None:
        """Step 4: the oldest finished Jobs beyond the history limits go."""
        cj = ctx.cj
        limits = {
            "Complete": cj.spec.successful_jobs_history_limit
            if cj.spec.HasField("successful_jobs_history_limit")
            else None,
            "Failed": cj.spec.failed_jobs_history_limit
            if cj.spec.HasField("failed_jobs_history_limit")
            else None,
        }
        for kind, limit in limits.items():
            if limit is None:
                continue
            finished = sorted(
                (j for j in ctx.jobs if job_finished_type(j) == kind), key=job_start_time_key
            )
            for job in finished[: max(0, len(finished) - limit)]:
                try:
                    await self._delete_job_ref(cj, job.metadata.namespace, job.metadata.name)
                except errors.StatusError:
                    continue  # logged by its event; the next sync tries again
                _remove_active(ctx.status, job.metadata.uid)

    async def _write(self, ctx: _Sync) -> None:
        if ctx.status == ctx.cj.status:
            return
        fresh = CronJob()
        fresh.CopyFrom(ctx.cj)
        fresh.status.CopyFrom(ctx.status)
        try:
            await self._client.update_status(fresh)
        except errors.Conflict:
            self.enqueue(ctx.cj)  # the event that made it stale brings us back
        except errors.NotFound:
            return


def _remove_active(status: CronJobStatus, uid: str) -> None:
    keep = [r for r in status.active if r.uid != uid]
    if len(keep) != len(status.active):
        del status.active[:]
        status.active.extend(keep)


def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def new_cronjob_controller(ctx: ControllerContext) -> CronJobController:
    return CronJobController(
        ctx.client,
        ctx.informers.informer(CronJob),
        ctx.informers.informer(Job),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("cronjob-controller"),
    )

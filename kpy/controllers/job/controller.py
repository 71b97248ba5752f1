"""The Job controller (Kubernetes' pkg/controller/job/job_controller.go).

Runs a Job's pods to completion:

- Handlers: a Job change enqueues it; a pod change enqueues its Job (the
  old and the new one when its controller changed) and is counted against
  the Job's expectations. A pod that still carries the tracking finalizer
  but whose Job is gone enqueues an "orphan pod" key, whose sync only
  removes that finalizer.
- `sync(key)`, one pass of Kubernetes' syncJob:
  1. claim the pods the selector matches (adopt, release);
  2. find the newly finished ones: pods with the
     `batch.kubernetes.io/job-tracking` finalizer that are Succeeded, Failed
     or deleted before they succeeded, not yet in
     `status.uncountedTerminatedPods`; a failure the podFailurePolicy
     ignores is not counted;
  3. decide whether the Job is finishing: a FailJob rule matched
     (PodFailurePolicy), more failures than `backoffLimit` or, with
     restartPolicy OnFailure, as many container restarts
     (BackoffLimitExceeded), `activeDeadlineSeconds` past its start
     (DeadlineExceeded), or enough completions (CompletionsReached);
  4. a finishing Job loses its active pods; otherwise, once its earlier
     creations and deletions have come back through the watch, `suspend`
     removes every active pod, and a running Job gets new pods (after the
     back-off of `backoff.py`: 10 s doubling to 6 minutes after failures in
     a row) up to `parallelism` and the remaining completions (the lowest
     missing indexes of an Indexed Job, with their index in an annotation,
     a label, `JOB_COMPLETION_INDEX` and the hostname `<job>-<index>`), or
     loses the surplus;
  5. counts each finished pod exactly once, even across restarts, as
     Kubernetes does: its uid goes into `uncountedTerminatedPods` in one
     status write, then its finalizer is removed, then (the pod no longer
     holding the finalizer) the uid leaves that list for the `succeeded`
     or `failed` counter in the next write; an Indexed Job counts its
     completions by `completedIndexes` instead;
  6. a finishing Job first gets the interim condition (FailureTarget or
     SuccessCriteriaMet), and the final one (Failed or Complete, with
     completionTime) once no pod is left uncounted or terminating.
- A finished Job only has the finalizers of its remaining pods removed.

Indexed Jobs also get Kubernetes' per-index rules: with
`backoffLimitPerIndex`, each index has its own back-off (its failures so far
in the `batch.kubernetes.io/job-index-failure-count` annotation of its next
pod) and fails for good beyond the limit or on a FailIndex rule
(`status.failedIndexes`); more failed indexes than `maxFailedIndexes`
fails the Job (MaxFailedIndexesExceeded), as does every index having ended
with some failed (FailedIndexes). A `successPolicy` finishes the Job
(SuccessCriteriaMet, then Complete, reason SuccessPolicy) as soon as one of
its rules is met, its remaining pods removed. At most `burst` (500) pods are
created or deleted per sync.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import anyio

from kpy.api import errors
from kpy.api.batch.v1 import Job, JobCondition, JobStatus
from kpy.api.core.v1 import EnvVar, Pod
from kpy.api.labels import selector_from_label_selector
from kpy.cache.events import NORMAL, WARNING
from kpy.cache.expectations import ControllerExpectations
from kpy.cache.informer import EventHandler
from kpy.cache.store import meta_namespace_key, split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.job.backoff import (
    DEFAULT_BACKOFF,
    INDEX_FAILURE_COUNT_ANNOTATION,
    INDEX_IGNORED_FAILURE_COUNT_ANNOTATION,
    MAX_BACKOFF,
    BackoffStore,
    get_finished_time,
    get_remaining_time_per_index,
)
from kpy.controllers.job.indexes import (
    COMPLETION_INDEX_ANNOTATION,
    COMPLETION_INDEX_ENV,
    completion_index,
    format_intervals,
    parse_intervals,
)
from kpy.controllers.job.pod_failure_policy import (
    ACTION_FAIL_INDEX,
    ACTION_FAIL_JOB,
    match_pod_failure_policy,
)
from kpy.controllers.ownership import (
    ControllerRefManager,
    deletion_order,
    get_controller_of,
    is_pod_ready,
    new_controller_ref,
    pod_from_template,
)
from kpy.controllers.replicaset import POD_OWNER_INDEX, pod_owner_index

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kpy.cache.events import EventRecorder
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.controllers.job.backoff import BackoffRecord
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.job")

__all__ = ["JOB_TRACKING_FINALIZER", "JobController", "new_job_controller"]

JOB_TRACKING_FINALIZER: Final = "batch.kubernetes.io/job-tracking"
BURST: Final = 500
#: uids in uncountedTerminatedPods at once (Kubernetes' MaxUncountedPods).
MAX_UNCOUNTED: Final = 500
_ORPHAN: Final = "orphan-pod:"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Finish:
    """The condition a finishing Job gets now (`interim`) and at the end."""

    interim: str
    final: str
    reason: str
    message: str


@dataclass(slots=True)
class _Sync:
    """What one sync of one Job has found and decided."""

    key: str
    job: Job
    status: JobStatus
    pods: list[Pod]
    active: list[Pod]
    terminating: int
    succeeded: int
    failed: int
    new_succeeded: list[Pod]
    new_failed: list[Pod]
    record: BackoffRecord
    now: datetime
    #: indexes failed for good (backoffLimitPerIndex), recorded or new.
    failed_indexes: set[int] = field(default_factory=set)
    #: pods created by this sync (not in the cache yet, but active).
    created: int = 0
    finish: _Finish | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)


class JobController(Controller):
    name = "job"

    def __init__(
        self,
        client: ClientProtocol,
        jobs: SharedInformer[Job],
        pods: SharedInformer[Pod],
        *,
        metrics: Metrics | None = None,
        recorder: EventRecorder | None = None,
        now: Callable[[], datetime] = _utcnow,
        burst: int = BURST,
    ) -> None:
        super().__init__(metrics=metrics, recorder=recorder)
        self._client = client
        self._jobs: Lister[Job] = jobs.lister()
        self._pods = pods
        if POD_OWNER_INDEX not in pods.indexer.get_indexers():
            pods.add_indexers({POD_OWNER_INDEX: pod_owner_index})
        self._now = now
        self._burst = burst
        self.expectations = ControllerExpectations()
        self.backoff = BackoffStore()
        #: per Job key, the uids of pods whose finalizer this controller
        #: removed but whose update the pod cache has not shown yet
        #: (Kubernetes' finalizerExpectations): until it does, the cache's
        #: copy still holds the finalizer and must not be counted again.
        self.removing: dict[str, set[str]] = {}
        jobs.add_event_handler(
            EventHandler(
                on_add=lambda job, _initial: self.enqueue(job),
                on_update=lambda _old, new: self.enqueue(new),
                on_delete=self._delete_job,
            )
        )
        pods.add_event_handler(
            EventHandler(
                on_add=self._add_pod, on_update=self._update_pod, on_delete=self._delete_pod
            )
        )

    # -- handlers -------------------------------------------------------------------------

    def _delete_job(self, obj: Any) -> None:
        job = deleted_object(obj)
        key = meta_namespace_key(job) if job is not None else str(obj.key)
        self.expectations.delete(key)
        self.backoff.remove_backoff_record(key)
        self.removing.pop(key, None)
        self.enqueue_key(key)

    def _add_pod(self, pod: Pod, _initial: bool) -> None:
        if pod.metadata.HasField("deletion_timestamp"):
            self._delete_pod(pod)  # a restart found it mid-deletion
            if self._resolve(pod) is None:
                self._maybe_orphan(pod)
            return
        job = self._resolve(pod)
        if job is None:
            self._maybe_orphan(pod)
            return
        key = meta_namespace_key(job)
        self.expectations.creation_observed(key)
        self.enqueue_key(key)

    def _update_pod(self, old: Pod, new: Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        if new.metadata.HasField("deletion_timestamp"):
            self._delete_pod(new)  # counted now: a replacement may start at once
        old_ref, new_ref = get_controller_of(old), get_controller_of(new)
        if old_ref is not None and (new_ref is None or old_ref.uid != new_ref.uid):
            previous = self._resolve(old)
            if previous is not None:
                self.enqueue(previous)
        job = self._resolve(new)
        if job is None:
            self._maybe_orphan(new)
            return
        if not _has_finalizer(new):
            self._removal_observed(meta_namespace_key(job), new.metadata.uid)
        self.enqueue(job)

    def _delete_pod(self, obj: Any) -> None:
        pod = deleted_object(obj)
        if pod is None:
            return
        job = self._resolve(pod)
        if job is None:
            return
        key = meta_namespace_key(job)
        self.expectations.deletion_observed(key, meta_namespace_key(pod))
        self._removal_observed(key, pod.metadata.uid)
        self.enqueue_key(key)

    def _removal_observed(self, key: str, uid: str) -> None:
        uids = self.removing.get(key)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self.removing[key]

    def _maybe_orphan(self, pod: Pod) -> None:
        if JOB_TRACKING_FINALIZER in pod.metadata.finalizers:
            self.enqueue_key(_ORPHAN + meta_namespace_key(pod))

    def _resolve(self, pod: Pod) -> Job | None:
        ref = get_controller_of(pod)
        if ref is None or ref.kind != "Job":
            return None
        job = self._jobs.get(pod.metadata.namespace, ref.name)
        if job is None or job.metadata.uid != ref.uid:
            return None
        return job

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        if key.startswith(_ORPHAN):
            await self._sync_orphan(key.removeprefix(_ORPHAN))
            return
        namespace, name = split_key(key)
        job = self._jobs.get(namespace, name)
        if job is None:
            self.expectations.delete(key)
            self.backoff.remove_backoff_record(key)
            self.removing.pop(key, None)
            return
        pods = await self._claim(job)
        if _finished_condition(job) is not None:
            self.backoff.remove_backoff_record(key)
            gone = self.removing.get(key, set())
            holding = [p for p in pods if _has_finalizer(p) and p.metadata.uid not in gone]
            await self._remove_finalizers(key, holding)
            return
        ctx = self._observe(key, job, pods)
        failure: errors.StatusError | None = None
        try:
            await self._decide_and_act(ctx)
        except errors.StatusError as e:
            failure = e
        await self._track_status(ctx)
        if failure is not None:
            raise failure

    async def _sync_orphan(self, pod_key: str) -> None:
        """Removes the tracking finalizer of a pod whose Job is gone."""
        namespace, name = split_key(pod_key)
        pod = self._pods.lister().get(namespace, name)
        if pod is None or JOB_TRACKING_FINALIZER not in pod.metadata.finalizers:
            return
        job = self._resolve(pod)
        if job is not None and _finished_condition(job) is None:
            return  # its Job counts it
        await self._remove_finalizer(pod)

    async def _claim(self, job: Job) -> list[Pod]:
        selector = selector_from_label_selector(job.spec.selector)
        index = self._pods.indexer
        candidates = index.by_index(POD_OWNER_INDEX, job.metadata.uid) + index.by_index(
            POD_OWNER_INDEX, f"orphan/{job.metadata.namespace}"
        )
        ref = new_controller_ref(job, "batch/v1", "Job")

        async def recheck() -> Any:
            return await self._client.get(Job, job.metadata.name, namespace=job.metadata.namespace)

        manager = ControllerRefManager(self._client, job, selector, ref, recheck)
        return await manager.claim(candidates)

    def _observe(self, key: str, job: Job, pods: list[Pod]) -> _Sync:
        """Counts the pods (steps 1-2 of the module docstring)."""
        status = JobStatus()
        status.CopyFrom(job.status)
        uncounted = status.uncounted_terminated_pods
        counted = set(uncounted.succeeded) | set(uncounted.failed) | self.removing.get(key, set())
        new_succeeded, new_failed = [], []
        for pod in pods:
            if not _has_finalizer(pod) or pod.metadata.uid in counted:
                continue
            if pod.status.phase == "Succeeded":
                new_succeeded.append(pod)
            elif _is_failed(pod, job):
                new_failed.append(pod)
        ignored = [
            p
            for p in new_failed
            if not match_pod_failure_policy(_policy(job), p)[1]  # an Ignore rule
        ]
        if job.spec.completion_mode == "Indexed":
            done = parse_intervals(status.completed_indexes) | _indexes(new_succeeded, job)
            succeeded = len(done)
        else:
            succeeded = status.succeeded + len(new_succeeded) + len(uncounted.succeeded)
        failed = status.failed + len(new_failed) - len(ignored) + len(uncounted.failed)
        now = self._now()
        if not status.HasField("start_time") and not job.spec.suspend:
            status.start_time.FromDatetime(now)
        failed_indexes: set[int] = set()
        if _per_index(job):
            failed_indexes = parse_intervals(status.failed_indexes) | {
                i
                for p in new_failed
                if _is_index_failed(job, p)
                and (i := completion_index(p)) is not None
                and i < job.spec.completions
            }
        return _Sync(
            key=key,
            job=job,
            status=status,
            pods=pods,
            active=[p for p in pods if _is_active(p)],
            terminating=sum(1 for p in pods if _is_terminating(p)),
            succeeded=succeeded,
            failed=failed,
            new_succeeded=new_succeeded,
            new_failed=[p for p in new_failed if p not in ignored],
            record=self.backoff.new_backoff_record(key, new_succeeded, new_failed),
            now=now,
            failed_indexes=failed_indexes,
        )

    async def _decide_and_act(self, ctx: _Sync) -> None:
        """Steps 3-4: whether the Job is finishing, then its pods."""
        job = ctx.job
        ctx.finish = self._failure(ctx)
        if ctx.finish is not None:
            satisfied = self.expectations.satisfied(ctx.key)
            deleted = await self._delete_pods(ctx, ctx.active)
            if deleted != len(ctx.active) or not satisfied:
                ctx.finish = None  # pods may remain that the cache has not shown yet
            ctx.active = ctx.active[deleted:]
            ctx.terminating += deleted
            return
        managed = self.expectations.satisfied(ctx.key) and not job.metadata.HasField(
            "deletion_timestamp"
        )
        if managed:
            await self._manage(ctx)
        if _completed(job, ctx.succeeded, len(ctx.active) + ctx.created):
            ctx.finish = _Finish(
                "SuccessCriteriaMet",
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
        elif managed:
            self._suspended_condition(ctx)

    def _failure(self, ctx: _Sync) -> _Finish | None:
        job, status = ctx.job, ctx.status
        previous = _condition(status, "SuccessCriteriaMet")
        if previous is not None and previous.status == "True":
            return _Finish("SuccessCriteriaMet", "Complete", previous.reason, previous.message)
        target = _condition(status, "FailureTarget")
        if target is not None and target.status == "True":
            return _Finish("FailureTarget", "Failed", target.reason, target.message)
        matched = _match_success_policy(job, ctx)
        if matched is not None:
            return _Finish("SuccessCriteriaMet", "Complete", "SuccessPolicy", matched)
        message = _fail_job_message(job, ctx.pods)
        if message is not None:
            return _Finish("FailureTarget", "Failed", "PodFailurePolicy", message)
        per_index = _per_index_failure(job, ctx)
        if per_index is not None:
            return per_index
        if ctx.failed > job.spec.backoff_limit or _past_backoff_limit_on_failure(job, ctx.pods):
            return _Finish(
                "FailureTarget",
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        if job.spec.HasField("active_deadline_seconds") and not job.spec.suspend:
            started = status.start_time.ToDatetime(tzinfo=UTC)
            left = started + timedelta(seconds=job.spec.active_deadline_seconds) - ctx.now
            if left <= timedelta(0):
                return _Finish(
                    "FailureTarget",
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            self.enqueue_after(ctx.key, left.total_seconds())
        return None

    async def _manage(self, ctx: _Sync) -> None:
        """Suspends, scales down or creates pods (Kubernetes' manageJob)."""
        job = ctx.job
        active = len(ctx.active)
        if job.spec.suspend:
            deleted = await self._delete_pods(ctx, ctx.active)
            ctx.active, ctx.terminating = ctx.active[deleted:], ctx.terminating + deleted
            return
        # A failed index is done for good: it leaves the completions to run.
        want = _want_active(job, ctx.succeeded + len(ctx.failed_indexes), active)
        if active > want:
            victims = deletion_order(ctx.active)[: min(active - want, self._burst)]
            deleted = await self._delete_pods(ctx, victims)
            ctx.active = [p for p in ctx.active if p not in victims[:deleted]]
            ctx.terminating += deleted
            return
        waiting = ctx.terminating if job.spec.pod_replacement_policy == "Failed" else 0
        missing = want - active - waiting
        if missing <= 0:
            return
        if _per_index(job):
            await self._create_pods(ctx, self._indexes_past_backoff(ctx, min(missing, self._burst)))
            return
        delay = ctx.record.remaining_time(ctx.now, DEFAULT_BACKOFF, MAX_BACKOFF)
        if delay > timedelta(0):
            self.enqueue_after(ctx.key, delay.total_seconds())
            return
        indexes: list[int | None] = [None] * min(missing, self._burst)
        if job.spec.completion_mode == "Indexed":
            indexes = list(_pending_indexes(ctx, len(indexes)))
        await self._create_pods(ctx, indexes)

    def _indexes_past_backoff(self, ctx: _Sync, count: int) -> list[int | None]:
        """Up to `count` pending indexes whose own back-off is over; the
        Job is requeued for the first of the others."""
        ready: list[int | None] = []
        wait: float | None = None
        for index in _pending_indexes(ctx, ctx.job.spec.completions):
            if len(ready) == count:
                break
            last = _last_failed_pod(ctx, index)
            left = get_remaining_time_per_index(ctx.now, DEFAULT_BACKOFF, MAX_BACKOFF, last)
            if left > timedelta(0):
                wait = min(wait or left.total_seconds(), left.total_seconds())
                continue
            ready.append(index)
        if wait is not None:
            self.enqueue_after(ctx.key, wait)
        return ready

    def _suspended_condition(self, ctx: _Sync) -> None:
        if ctx.job.spec.suspend:
            if _ensure_condition(
                ctx.status, "Suspended", "True", "JobSuspended", "Job suspended", ctx.now
            ):
                ctx.events.append((NORMAL, "Suspended", "Job suspended"))
        elif _ensure_condition(
            ctx.status, "Suspended", "False", "JobResumed", "Job resumed", ctx.now
        ):
            ctx.events.append((NORMAL, "Resumed", "Job resumed"))
            # activeDeadlineSeconds counts the time a Job is continuously active.
            ctx.status.start_time.FromDatetime(ctx.now)

    # -- pods -------------------------------------------------------------------------------

    async def _create_pods(self, ctx: _Sync, indexes: list[int | None]) -> None:
        job, key = ctx.job, ctx.key
        self.expectations.expect_creations(key, len(indexes))
        ref = new_controller_ref(job, "batch/v1", "Job")
        counts = (
            {
                i: _index_failure_counts(job, _last_failed_pod(ctx, i))
                for i in indexes
                if i is not None
            }
            if _per_index(job)
            else {}
        )
        created, failures = 0, 0
        first_error: errors.StatusError | None = None
        batch = 1
        while created < len(indexes) and first_error is None:
            chunk = indexes[created : created + batch]
            results = await _gather([self._create_pod(job, ref, ix, counts) for ix in chunk])
            errs = [r for r in results if r is not None]
            failures += len(errs)
            first_error = errs[0] if errs else None
            created += len(chunk)
            batch *= 2
        if first_error is not None:
            # Never-attempted and failed creations will never be observed.
            self.expectations.lower_creations(key, len(indexes) - created + failures)
            raise first_error
        ctx.created += len(indexes)
        log.info("created pods", extra={"controller": self.name, "key": key, "count": created})

    async def _create_pod(
        self,
        job: Job,
        ref: Any,
        index: int | None,
        failure_counts: dict[int, tuple[int, int]],
    ) -> None:
        template = job.spec.template
        pod = pod_from_template(template, job, ref)
        pod.metadata.finalizers.append(JOB_TRACKING_FINALIZER)
        if index is not None and index in failure_counts:
            failures, ignored = failure_counts[index]
            pod.metadata.annotations[INDEX_FAILURE_COUNT_ANNOTATION] = str(failures)
            if ignored:
                pod.metadata.annotations[INDEX_IGNORED_FAILURE_COUNT_ANNOTATION] = str(ignored)
        if index is not None:
            pod.metadata.generate_name = f"{job.metadata.name}-{index}-"
            pod.metadata.annotations[COMPLETION_INDEX_ANNOTATION] = str(index)
            pod.metadata.labels[COMPLETION_INDEX_ANNOTATION] = str(index)
            pod.spec.hostname = f"{job.metadata.name}-{index}"
            for container in [*pod.spec.init_containers, *pod.spec.containers]:
                if any(e.name == COMPLETION_INDEX_ENV for e in container.env):
                    continue
                env = EnvVar(name=COMPLETION_INDEX_ENV)
                env.value_from.field_ref.field_path = (
                    f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
                )
                container.env.append(env)
        try:
            made = await self._client.create(pod)
        except errors.StatusError as e:
            self.record(job, WARNING, "FailedCreate", f"Error creating: {e}")
            raise
        self.record(job, NORMAL, "SuccessfulCreate", f"Created pod: {made.metadata.name}")

    async def _delete_pods(self, ctx: _Sync, victims: Sequence[Pod]) -> int:
        """Removes the tracking finalizer of `victims`, then deletes them; how
        many are gone or going. Raises the first error after trying them all."""
        if not victims:
            return 0
        key, job = ctx.key, ctx.job
        self.expectations.expect_deletions(key, [meta_namespace_key(p) for p in victims])
        failures: list[errors.StatusError] = []

        removing = self.removing.setdefault(key, set())

        async def delete(pod: Pod) -> None:
            try:
                if _has_finalizer(pod):
                    # Released first, as Kubernetes does: a pod the controller
                    # deletes (suspend, scale down, a finishing Job) is no failure.
                    removing.add(pod.metadata.uid)
                    await self._remove_finalizer(pod)
                await self._client.delete(Pod, pod.metadata.name, namespace=pod.metadata.namespace)
            except errors.NotFound:
                self.expectations.deletion_observed(key, meta_namespace_key(pod))
            except errors.StatusError as e:
                self.expectations.deletion_observed(key, meta_namespace_key(pod))
                self.record(job, WARNING, "FailedDelete", f"Error deleting: {e}")
                failures.append(e)
            else:
                self.record(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

        async with anyio.create_task_group() as tg:
            for pod in victims:
                tg.start_soon(delete, pod)
        if failures:
            raise failures[0]
        return len(victims)

    async def _remove_finalizers(self, key: str, pods: Sequence[Pod]) -> set[str]:
        """Removes the tracking finalizer of `pods`; the uids it is gone from
        (remembered in `removing` until the pod cache shows it)."""
        done: set[str] = set()
        failures: list[errors.StatusError] = []
        removing = self.removing.setdefault(key, set())
        removing.update(p.metadata.uid for p in pods)

        async def remove(pod: Pod) -> None:
            try:
                await self._remove_finalizer(pod)
            except errors.StatusError as e:
                removing.discard(pod.metadata.uid)
                failures.append(e)
            else:
                done.add(pod.metadata.uid)

        async with anyio.create_task_group() as tg:
            for pod in pods:
                tg.start_soon(remove, pod)
        if failures:
            log.warning(
                "removing tracking finalizers failed",
                extra={"controller": self.name, "key": key, "count": len(failures)},
            )
        return done

    async def _remove_finalizer(self, pod: Pod) -> None:
        patch = {
            "metadata": {
                "$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER],
                "uid": pod.metadata.uid,
            }
        }
        try:
            await self._client.patch(
                Pod, pod.metadata.name, patch, namespace=pod.metadata.namespace
            )
        except errors.NotFound:
            return  # gone: nothing holds it any more

    # -- status -----------------------------------------------------------------------------

    async def _track_status(self, ctx: _Sync) -> None:
        """Steps 5-6: counts finished pods exactly once, then finishes."""
        job, status = ctx.job, ctx.status
        uncounted = status.uncounted_terminated_pods
        uncounted.SetInParent()
        status.active = len(ctx.active) + ctx.created
        status.ready = sum(1 for p in ctx.active if is_pod_ready(p))
        status.terminating = ctx.terminating
        releasing = self._to_release(ctx)
        if job.spec.completion_mode == "Indexed":
            done = parse_intervals(status.completed_indexes) | _indexes(ctx.new_succeeded, job)
            status.completed_indexes = format_intervals(done)
            status.succeeded = len(done)
        else:
            uncounted.succeeded.extend(p.metadata.uid for p in ctx.new_succeeded)
        uncounted.failed.extend(p.metadata.uid for p in ctx.new_failed)
        if _per_index(job):
            status.failed_indexes = format_intervals(ctx.failed_indexes)
        if ctx.finish is not None:
            _ensure_condition(
                status, ctx.finish.interim, "True", ctx.finish.reason, ctx.finish.message, ctx.now
            )
        # Write the uids down before the finalizers go: after a crash in
        # between, the next sync still knows these pods are counted.
        if not await self._write(ctx, status):
            return
        await self._remove_finalizers(ctx.key, releasing)
        gone = self.removing.get(ctx.key, set())
        holding = {
            p.metadata.uid for p in ctx.pods if _has_finalizer(p) and p.metadata.uid not in gone
        }
        _flush_uncounted(status, holding)
        if ctx.finish is not None and _can_finish(status, ctx.terminating):
            self._enact_finish(ctx)
        if await self._write(ctx, status):
            self.backoff.update_backoff_record(ctx.record)

    def _to_release(self, ctx: _Sync) -> list[Pod]:
        """Pods whose finalizer may go: finished ones (counted or ignored),
        and every one once the Job is finishing."""
        finishing = ctx.finish is not None
        gone = self.removing.get(ctx.key, set())
        return [
            p
            for p in ctx.pods
            if _has_finalizer(p)
            and p.metadata.uid not in gone
            and (
                p.status.phase == "Succeeded"
                or _is_failed(p, ctx.job)
                or (finishing and not _is_active(p))
            )
        ][:MAX_UNCOUNTED]

    def _enact_finish(self, ctx: _Sync) -> None:
        finish, status = ctx.finish, ctx.status
        assert finish is not None
        _ensure_condition(status, finish.final, "True", finish.reason, finish.message, ctx.now)
        if finish.final == "Complete":
            status.completion_time.FromDatetime(ctx.now)
            ctx.events.append((NORMAL, "Completed", "Job completed"))
        else:
            ctx.events.append((WARNING, finish.reason, finish.message))

    async def _write(self, ctx: _Sync, status: JobStatus) -> bool:
        """Writes `status` if it changed; False when the Job's copy is stale."""
        job = ctx.job
        if status != job.status:
            fresh = Job()
            fresh.CopyFrom(job)
            fresh.status.CopyFrom(status)
            try:
                updated = await self._client.update_status(fresh)
            except errors.Conflict:
                self.enqueue(job)  # the event that made it stale brings us back
                return False
            except errors.NotFound:
                return False
            ctx.job = updated
        for eventtype, reason, message in ctx.events:
            self.record(job, eventtype, reason, message)
        ctx.events.clear()
        return True


# -- pure helpers -----------------------------------------------------------------------------


def _has_finalizer(pod: Pod) -> bool:
    return JOB_TRACKING_FINALIZER in pod.metadata.finalizers


def _is_active(pod: Pod) -> bool:
    return pod.status.phase not in ("Succeeded", "Failed") and not pod.metadata.HasField(
        "deletion_timestamp"
    )


def _is_terminating(pod: Pod) -> bool:
    return pod.metadata.HasField("deletion_timestamp") and pod.status.phase not in (
        "Succeeded",
        "Failed",
    )


def _is_failed(pod: Pod, job: Job) -> bool:
    """Failed, or (unless only Failed pods are replaced) deleted before it
    succeeded: an orphan may never reach Failed."""
    if pod.status.phase == "Failed":
        return True
    if job.spec.pod_replacement_policy == "Failed":
        return False
    return pod.metadata.HasField("deletion_timestamp") and pod.status.phase != "Succeeded"


def _policy(job: Job) -> Any:
    return job.spec.pod_failure_policy if job.spec.HasField("pod_failure_policy") else None


def _indexes(pods: Sequence[Pod], job: Job) -> set[int]:
    found = {completion_index(p) for p in pods}
    return {i for i in found if i is not None and i < job.spec.completions}


def _condition(status: JobStatus, kind: str) -> JobCondition | None:
    return next((c for c in status.conditions if c.type == kind), None)


def _finished_condition(job: Job) -> str | None:
    for c in job.status.conditions:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return None


def _ensure_condition(
    status: JobStatus, kind: str, value: str, reason: str, message: str, now: datetime
) -> bool:
    """Sets condition `kind` (added only when True); whether it changed."""
    current = _condition(status, kind)
    if current is None:
        if value != "True":
            return False
        current = status.conditions.add(type=kind)
    elif current.status == value and current.reason == reason and current.message == message:
        return False
    if current.status != value:
        current.last_transition_time.FromDatetime(now)
    current.status, current.reason, current.message = value, reason, message
    current.last_probe_time.FromDatetime(now)
    return True


def _per_index(job: Job) -> bool:
    return job.spec.completion_mode == "Indexed" and job.spec.HasField("backoff_limit_per_index")


def _index_failure_count(pod: Pod) -> int:
    text = pod.metadata.annotations.get(INDEX_FAILURE_COUNT_ANNOTATION, "0")
    return int(text) if text.isdigit() else 0


def _is_index_failed(job: Job, pod: Pod) -> bool:
    """Whether this failed pod fails its index for good (Kubernetes'
    isIndexFailed): a FailIndex rule, or a counted failure beyond
    backoffLimitPerIndex."""
    if not _is_failed(pod, job):
        return False
    counts = True
    policy = _policy(job)
    if policy is not None:
        _, counts, action = match_pod_failure_policy(policy, pod)
        if action == ACTION_FAIL_INDEX:
            return True
    return counts and _index_failure_count(pod) >= job.spec.backoff_limit_per_index


def _last_failed_pod(ctx: _Sync, index: int) -> Pod | None:
    """The index's most recently finished failed pod, if any."""
    failed = [p for p in ctx.pods if completion_index(p) == index and _is_failed(p, ctx.job)]
    return max(failed, key=get_finished_time, default=None)


def _index_failure_counts(job: Job, last_failed: Pod | None) -> tuple[int, int]:
    """(failures, ignored failures) of an index, for its next pod's
    annotations (Kubernetes' getNewIndexFailureCounts)."""
    if last_failed is None:
        return 0, 0
    failures = _index_failure_count(last_failed)
    text = last_failed.metadata.annotations.get(INDEX_IGNORED_FAILURE_COUNT_ANNOTATION, "0")
    ignored = int(text) if text.isdigit() else 0
    counts = True
    if _policy(job) is not None:
        counts = match_pod_failure_policy(_policy(job), last_failed)[1]
    return (failures + 1, ignored) if counts else (failures, ignored + 1)


def _per_index_failure(job: Job, ctx: _Sync) -> _Finish | None:
    """MaxFailedIndexesExceeded, or FailedIndexes once every index ended."""
    if not _per_index(job) or not ctx.failed_indexes:
        return None
    if job.spec.HasField("max_failed_indexes") and (
        len(ctx.failed_indexes) > job.spec.max_failed_indexes
    ):
        return _Finish(
            "FailureTarget",
            "Failed",
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes",
        )
    if ctx.succeeded + len(ctx.failed_indexes) >= job.spec.completions:
        return _Finish("FailureTarget", "Failed", "FailedIndexes", "Job has failed indexes")
    return None


def _match_success_policy(job: Job, ctx: _Sync) -> str | None:
    """The message "Matched rules at index N" for the first successPolicy rule the
    succeeded indexes meet (Kubernetes' matchSuccessPolicy), else None."""
    if job.spec.completion_mode != "Indexed" or not job.spec.HasField("success_policy"):
        return None
    completions = job.spec.completions
    succeeded = parse_intervals(ctx.status.completed_indexes) | _indexes(ctx.new_succeeded, job)
    if not succeeded:
        return None
    for index, rule in enumerate(job.spec.success_policy.rules):
        if rule.HasField("succeeded_indexes"):
            required = {i for i in parse_intervals(rule.succeeded_indexes) if i < completions}
            if not required:
                continue
            contains = len(required & succeeded)
            if rule.HasField("succeeded_count"):
                met = contains >= rule.succeeded_count
            else:
                met = contains == len(required)
        elif rule.HasField("succeeded_count"):
            met = len(succeeded) >= rule.succeeded_count
        else:
            continue
        if met:
            return f"Matched rules at index {index}"
    return None


def _fail_job_message(job: Job, pods: Sequence[Pod]) -> str | None:
    policy = _policy(job)
    if policy is None:
        return None
    for pod in pods:
        if pod.status.phase != "Failed" or not _has_finalizer(pod):
            continue
        message, _, action = match_pod_failure_policy(policy, pod)
        if action == ACTION_FAIL_JOB:
            return message
    return None


def _past_backoff_limit_on_failure(job: Job, pods: Sequence[Pod]) -> bool:
    """With restartPolicy OnFailure, container restarts of running pods
    count against backoffLimit."""
    if job.spec.template.spec.restart_policy != "OnFailure":
        return False
    restarts = sum(
        s.restart_count
        for p in pods
        if p.status.phase in ("Running", "Pending")
        for s in [*p.status.init_container_statuses, *p.status.container_statuses]
    )
    limit = job.spec.backoff_limit
    return restarts > 0 if limit == 0 else restarts >= limit


def _want_active(job: Job, succeeded: int, active: int) -> int:
    parallelism = job.spec.parallelism
    if not job.spec.HasField("completions"):
        # A work queue: once one pod succeeded, let the others finish.
        return active if succeeded > 0 else parallelism
    return max(0, min(job.spec.completions - succeeded, parallelism))


def _completed(job: Job, succeeded: int, active: int) -> bool:
    if not job.spec.HasField("completions"):
        return succeeded > 0 and active == 0
    return succeeded >= job.spec.completions and active == 0


def _pending_indexes(ctx: _Sync, count: int) -> list[int]:
    taken = parse_intervals(ctx.status.completed_indexes) | _indexes(ctx.new_succeeded, ctx.job)
    taken |= {i for p in ctx.active if (i := completion_index(p)) is not None}
    taken |= ctx.failed_indexes
    pending: list[int] = []
    for index in range(ctx.job.spec.completions):
        if len(pending) == count:
            break
        if index not in taken:
            pending.append(index)
    return pending


def _flush_uncounted(status: JobStatus, holding: set[str]) -> None:
    """Moves the uids of pods no longer holding the finalizer from
    uncountedTerminatedPods to the counters."""
    uncounted = status.uncounted_terminated_pods
    for uids, counter in ((uncounted.succeeded, "succeeded"), (uncounted.failed, "failed")):
        keep = [u for u in uids if u in holding]
        gone = len(uids) - len(keep)
        if gone:
            if counter == "succeeded":
                status.succeeded += gone
            else:
                status.failed += gone
            del uids[:]
            uids.extend(keep)


def _can_finish(status: JobStatus, terminating: int) -> bool:
    uncounted = status.uncounted_terminated_pods
    return not uncounted.succeeded and not uncounted.failed and terminating == 0


async def _gather(calls: list[Any]) -> list[errors.StatusError | None]:
    results: list[errors.StatusError | None] = [None] * len(calls)

    async def one(i: int) -> None:
        try:
            await calls[i]
        except errors.StatusError as e:
            results[i] = e

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    return results


def new_job_controller(ctx: ControllerContext) -> JobController:
    return JobController(
        ctx.client,
        ctx.informers.informer(Job),
        ctx.informers.informer(Pod),
        metrics=ctx.metrics,
        recorder=ctx.events.new_recorder("job-controller"),
    )

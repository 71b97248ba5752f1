"""The Job controller's `sync`, table by table, on the fake client (after
Kubernetes' pkg/controller/job/job_controller_test.go: TestControllerSyncJob
and its pod-failure-policy and tracking tables; the cases are ported, the
code is kpy's).

Every case names what the listers hold (a Job and its pods) and the writes
the sync makes, as `verb Kind namespace/name (subresource)`; `*` stands for
a name the store generates. Then the Job's stored status is checked: the
counters, and the conditions as `Type=Status/Reason`.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from kpy.api import errors
from kpy.api.batch.v1 import Job
from kpy.api.core.v1 import Pod, PodCondition
from kpy.api.defaults import set_defaults
from kpy.cache.informer import SharedInformer
from kpy.client.fake import FakeClient
from kpy.controllers.job.backoff import INDEX_FAILURE_COUNT_ANNOTATION
from kpy.controllers.job.controller import JOB_TRACKING_FINALIZER, JobController
from kpy.controllers.job.indexes import COMPLETION_INDEX_ANNOTATION
from kpy.controllers.ownership import new_controller_ref
from kpy.controllers.replicaset import POD_OWNER_INDEX, pod_owner_index

NOW = 1_700_000_000
NOW_DT = datetime.fromtimestamp(NOW, UTC)
LABELS = {"batch.kubernetes.io/controller-uid": "job-uid", "job-name": "job"}
_uids = itertools.count(1)


# -- builders (Kubernetes' newJob, buildPod) ----------------------------------------------------


def job(
    completions: int | None = 5,
    parallelism: int = 2,
    *,
    backoff_limit: int = 6,
    restart: str = "Never",
    indexed: bool = False,
    suspend: bool = False,
    deadline: int | None = None,
    started: int | None = 60,
    policy: list[dict[str, Any]] | None = None,
    success: list[dict[str, Any]] | None = None,
    per_index: int | None = None,
    max_failed: int | None = None,
    status: dict[str, Any] | None = None,
) -> Job:
    """A Job "job" started `started` seconds before NOW (None: never)."""
    j = Job()
    j.metadata.name, j.metadata.namespace, j.metadata.uid = "job", "default", "job-uid"
    j.spec.parallelism = parallelism
    if completions is not None:
        j.spec.completions = completions
    j.spec.backoff_limit = backoff_limit
    j.spec.selector.match_labels.update(LABELS)
    j.spec.template.metadata.labels.update(LABELS)
    j.spec.template.spec.containers.add(name="main", image="busybox")
    j.spec.template.spec.restart_policy = restart
    if indexed:
        j.spec.completion_mode = "Indexed"
    j.spec.suspend = suspend
    if deadline is not None:
        j.spec.active_deadline_seconds = deadline
    if policy is not None:
        for rule in policy:
            j.spec.pod_failure_policy.rules.add(**rule)
    if per_index is not None:
        j.spec.backoff_limit_per_index = per_index
    if max_failed is not None:
        j.spec.max_failed_indexes = max_failed
    for rule in success or []:
        j.spec.success_policy.rules.add(**rule)
    if started is not None:
        j.status.start_time.FromSeconds(NOW - started)
    for name, value in (status or {}).items():
        setattr(j.status, name, value)
    return set_defaults(j)


OWNER = job()


def pod(
    name: str,
    phase: str = "Running",
    *,
    ready: bool = False,
    finalizer: bool = True,
    finished_ago: int = 100,
    exit_code: int = 1,
    index: int | None = None,
    restarts: int = 0,
    deleting: bool = False,
    conditions: list[tuple[str, str]] | None = None,
    index_failures: int | None = None,
) -> Pod:
    p = Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    p.metadata.uid = f"{name}-uid-{next(_uids)}"
    p.metadata.labels.update(LABELS)
    p.metadata.creation_timestamp.FromSeconds(NOW - 1000)
    p.metadata.owner_references.append(new_controller_ref(OWNER, "batch/v1", "Job"))
    if finalizer:
        p.metadata.finalizers.append(JOB_TRACKING_FINALIZER)
    if index is not None:
        p.metadata.annotations[COMPLETION_INDEX_ANNOTATION] = str(index)
    if index_failures is not None:
        p.metadata.annotations[INDEX_FAILURE_COUNT_ANNOTATION] = str(index_failures)
    if deleting:
        p.metadata.deletion_timestamp.FromSeconds(NOW)
    p.spec.containers.add(name="main", image="busybox")
    p.spec.restart_policy = "Never"
    p.status.phase = phase
    status = p.status.container_statuses.add(name="main", restart_count=restarts)
    if phase in ("Succeeded", "Failed"):
        terminated = status.state.terminated
        terminated.exit_code = 0 if phase == "Succeeded" else exit_code
        terminated.finished_at.FromSeconds(NOW - finished_ago)
    if ready:
        p.status.conditions.append(PodCondition(type="Ready", status="True"))
    for t, s in conditions or []:
        p.status.conditions.append(PodCondition(type=t, status=s))
    return set_defaults(p)


def pods(prefix: str, count: int, phase: str = "Running", **kw: Any) -> list[Pod]:
    return [pod(f"{prefix}{i}", phase, **kw) for i in range(count)]


# -- the table --------------------------------------------------------------------------------

STATUS = "update Job default/job (status)"
CREATE = "create Pod default/job-*"


def patch(name: str) -> str:
    return f"patch Pod default/{name}"


def delete(name: str) -> str:
    return f"delete Pod default/{name}"


@dataclass(frozen=True)
class Case:
    name: str
    job: Job
    pods: list[Pod] = field(default_factory=list)
    want: list[str] = field(default_factory=list)
    #: the stored status afterwards: counters, then conditions "Type=Status/Reason".
    counts: dict[str, Any] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)
    pending_creations: int = 0
    failing: str = ""
    any_order: bool = False


EXIT_42_FAILS_JOB = [
    {"action": "FailJob", "on_exit_codes": {"operator": "In", "values": [42]}},
]
EXIT_42_IGNORED = [{"action": "Ignore", "on_exit_codes": {"operator": "In", "values": [42]}}]
DISRUPTION_IGNORED = [
    {"action": "Ignore", "on_pod_conditions": [{"type": "DisruptionTarget", "status": "True"}]}
]

DELETED_1_2 = [patch("job-1"), delete("job-1"), patch("job-2"), delete("job-2")]

CASES = [
    Case(
        "no pods: creates parallelism pods",
        job(5, 2, started=None),
        want=[CREATE, CREATE, STATUS],
        counts={"active": 2, "succeeded": 0, "failed": 0},
    ),
    Case(
        "fewer completions left than parallelism: creates only those",
        job(3, 5, status={"succeeded": 2}),
        want=[CREATE, STATUS],
        counts={"active": 1, "succeeded": 2},
    ),
    Case(
        "too many active: deletes the surplus",
        job(2, 1, status={"active": 2}),
        pods=[pod("a"), pod("b")],
        want=[patch("*"), delete("*"), STATUS],
        counts={"active": 1, "terminating": 1, "failed": 0},
    ),
    Case(
        "a pod succeeded: recorded uncounted, released, then counted; replaced",
        job(5, 2, status={"active": 2}),
        pods=[pod("done", "Succeeded"), pod("running")],
        want=[CREATE, STATUS, patch("done"), STATUS],
        counts={"active": 2, "succeeded": 1},
    ),
    Case(
        "all completions done: SuccessCriteriaMet, then Complete",
        job(2, 2, status={"active": 2}),
        pods=[pod("a", "Succeeded"), pod("b", "Succeeded")],
        want=[STATUS, patch("*"), patch("*"), STATUS],
        any_order=True,
        counts={"active": 0, "succeeded": 2},
        conditions=[
            "SuccessCriteriaMet=True/CompletionsReached",
            "Complete=True/CompletionsReached",
        ],
    ),
    Case(
        "work queue (completions unset): the first success, the others done: Complete",
        job(None, 2, status={"active": 1}),
        pods=[pod("a", "Succeeded"), pod("b", "Failed")],
        want=[STATUS, patch("*"), patch("*"), STATUS],
        any_order=True,
        counts={"succeeded": 1, "failed": 1},
        conditions=[
            "SuccessCriteriaMet=True/CompletionsReached",
            "Complete=True/CompletionsReached",
        ],
    ),
    Case(
        "work queue: a success with others running creates nothing more",
        job(None, 3, status={"active": 3}),
        pods=[pod("a", "Succeeded"), pod("b"), pod("c")],
        want=[STATUS, patch("a"), STATUS],
        counts={"active": 2, "succeeded": 1},
    ),
    Case(
        "a failure within its back-off: no replacement yet",
        job(5, 1, status={"active": 1}),
        pods=[pod("failed", "Failed", finished_ago=2)],
        want=[STATUS, patch("failed"), STATUS],
        counts={"active": 0, "failed": 1},
    ),
    Case(
        "a failure past its back-off: replaced",
        job(5, 1, status={"active": 1}),
        pods=[pod("failed", "Failed", finished_ago=30)],
        want=[CREATE, STATUS, patch("failed"), STATUS],
        counts={"active": 1, "failed": 1},
    ),
    Case(
        "more failures than backoffLimit: FailureTarget, then Failed",
        job(5, 1, backoff_limit=1, status={"failed": 1}),
        pods=[pod("failed", "Failed")],
        want=[STATUS, patch("failed"), STATUS],
        counts={"active": 0, "failed": 2},
        conditions=[
            "FailureTarget=True/BackoffLimitExceeded",
            "Failed=True/BackoffLimitExceeded",
        ],
    ),
    Case(
        "backoffLimit exceeded with a pod running: it is deleted first, Failed later",
        job(5, 2, backoff_limit=0, status={"active": 2}),
        pods=[pod("failed", "Failed"), pod("running")],
        want=[patch("running"), delete("running"), STATUS, patch("failed"), STATUS],
        counts={"active": 0, "terminating": 1, "failed": 1},
        conditions=["FailureTarget=True/BackoffLimitExceeded"],
    ),
    Case(
        "OnFailure: container restarts reach backoffLimit",
        job(1, 1, backoff_limit=2, restart="OnFailure", status={"active": 1}),
        pods=[pod("restarting", restarts=2)],
        want=[patch("restarting"), delete("restarting"), STATUS],
        counts={"active": 0, "terminating": 1},
        conditions=["FailureTarget=True/BackoffLimitExceeded"],
    ),
    Case(
        "activeDeadlineSeconds past: DeadlineExceeded",
        job(5, 1, deadline=30, started=60, status={"active": 1}),
        pods=[pod("running")],
        want=[patch("running"), delete("running"), STATUS],
        conditions=["FailureTarget=True/DeadlineExceeded"],
    ),
    Case(
        "podFailurePolicy FailJob rule",
        job(5, 1, policy=EXIT_42_FAILS_JOB, status={"active": 1}),
        pods=[pod("failed", "Failed", exit_code=42)],
        want=[STATUS, patch("failed"), STATUS],
        counts={"failed": 1},
        conditions=["FailureTarget=True/PodFailurePolicy", "Failed=True/PodFailurePolicy"],
    ),
    Case(
        "podFailurePolicy Ignore rule: not counted, replaced after the back-off",
        job(5, 1, backoff_limit=0, policy=EXIT_42_IGNORED, status={"active": 1}),
        pods=[pod("failed", "Failed", exit_code=42, finished_ago=30)],
        want=[CREATE, STATUS, patch("failed")],
        counts={"active": 1, "failed": 0},
    ),
    Case(
        "podFailurePolicy Ignore on a pod condition",
        job(5, 1, backoff_limit=0, policy=DISRUPTION_IGNORED, status={"active": 1}),
        pods=[pod("evicted", "Failed", conditions=[("DisruptionTarget", "True")])],
        want=[CREATE, STATUS, patch("evicted")],
        counts={"failed": 0},
    ),
    Case(
        "podFailurePolicy Count rule on another exit code counts",
        job(5, 1, backoff_limit=0, policy=EXIT_42_IGNORED, status={"active": 1}),
        pods=[pod("failed", "Failed", exit_code=1)],
        want=[STATUS, patch("failed"), STATUS],
        counts={"failed": 1},
        conditions=["FailureTarget=True/BackoffLimitExceeded", "Failed=True/BackoffLimitExceeded"],
    ),
    Case(
        "suspended: active pods deleted, Suspended",
        job(5, 2, suspend=True, status={"active": 2}),
        pods=[pod("a"), pod("b")],
        want=[patch("*"), delete("*"), patch("*"), delete("*"), STATUS],
        any_order=True,
        counts={"active": 0, "terminating": 2, "failed": 0},
        conditions=["Suspended=True/JobSuspended"],
    ),
    Case(
        "Indexed: creates the lowest missing indexes",
        job(4, 2, indexed=True, status={"completed_indexes": "0", "succeeded": 1, "active": 1}),
        pods=[pod("job-1", index=1)],
        want=[CREATE, STATUS],
        counts={"active": 2, "succeeded": 1, "completed_indexes": "0"},
    ),
    Case(
        "Indexed: a success is counted by its index",
        job(3, 1, indexed=True, status={"active": 1}),
        pods=[pod("job-0", "Succeeded", index=0), pod("dup-0", "Succeeded", index=0)],
        want=[CREATE, STATUS, patch("*"), patch("*")],
        any_order=True,
        counts={"succeeded": 1, "completed_indexes": "0"},
    ),
    Case(
        "successPolicy met by index 0: SuccessCriteriaMet, the other pods removed",
        job(3, 3, indexed=True, success=[{"succeeded_indexes": "0"}], status={"active": 3}),
        pods=[
            pod("job-0", "Succeeded", index=0),
            pod("job-1", index=1),
            pod("job-2", index=2),
        ],
        want=[*DELETED_1_2, STATUS, patch("job-0")],
        any_order=True,
        counts={"active": 0, "succeeded": 1, "completed_indexes": "0", "failed": 0},
        conditions=["SuccessCriteriaMet=True/SuccessPolicy"],
    ),
    Case(
        "successPolicy succeededCount met, nothing left running: Complete",
        job(3, 1, indexed=True, success=[{"succeeded_count": 1}], status={"active": 1}),
        pods=[pod("job-0", "Succeeded", index=0)],
        want=[STATUS, patch("job-0"), STATUS],
        counts={"succeeded": 1, "completed_indexes": "0"},
        conditions=["SuccessCriteriaMet=True/SuccessPolicy", "Complete=True/SuccessPolicy"],
    ),
    Case(
        "successPolicy not met yet: runs on",
        job(3, 1, indexed=True, success=[{"succeeded_indexes": "1-2"}], status={"active": 1}),
        pods=[pod("job-0", "Succeeded", index=0)],
        want=[CREATE, STATUS, patch("job-0")],
        counts={"active": 1, "succeeded": 1},
    ),
    Case(
        "per index: a failure within the limit, past its back-off: the index gets a new pod",
        job(2, 2, indexed=True, per_index=1, status={"active": 2}),
        pods=[pod("job-0", "Failed", index=0, finished_ago=30), pod("job-1", index=1)],
        want=[CREATE, STATUS, patch("job-0"), STATUS],
        counts={"active": 2, "failed": 1, "failed_indexes": ""},
    ),
    Case(
        "per index: within its back-off: not yet",
        job(2, 2, indexed=True, per_index=1, status={"active": 2}),
        pods=[pod("job-0", "Failed", index=0, finished_ago=2), pod("job-1", index=1)],
        want=[STATUS, patch("job-0"), STATUS],
        counts={"active": 1, "failed": 1, "failed_indexes": ""},
    ),
    Case(
        "per index: beyond backoffLimitPerIndex the index fails, the others run on",
        job(3, 2, indexed=True, per_index=1, status={"active": 2}),
        pods=[pod("job-0", "Failed", index=0, index_failures=1), pod("job-1", index=1)],
        want=[CREATE, STATUS, patch("job-0"), STATUS],
        counts={"active": 2, "failed": 1, "failed_indexes": "0"},
    ),
    Case(
        "per index: more failed indexes than maxFailedIndexes: the Job fails",
        job(3, 2, indexed=True, per_index=1, max_failed=0, status={"active": 2}),
        pods=[pod("job-0", "Failed", index=0, index_failures=1), pod("job-1", index=1)],
        want=[patch("job-1"), delete("job-1"), STATUS, patch("job-0"), STATUS],
        counts={"failed": 1, "failed_indexes": "0"},
        conditions=["FailureTarget=True/MaxFailedIndexesExceeded"],
    ),
    Case(
        "per index: every index ended, one failed: FailedIndexes",
        job(
            2,
            2,
            indexed=True,
            per_index=0,
            status={"active": 1, "completed_indexes": "1", "succeeded": 1},
        ),
        pods=[pod("job-0", "Failed", index=0)],
        want=[STATUS, patch("job-0"), STATUS],
        counts={"failed": 1, "failed_indexes": "0", "succeeded": 1},
        conditions=["FailureTarget=True/FailedIndexes", "Failed=True/FailedIndexes"],
    ),
    Case(
        "per index: a FailIndex rule fails the index at once",
        job(
            2,
            1,
            indexed=True,
            per_index=5,
            policy=[{"action": "FailIndex", "on_exit_codes": {"operator": "In", "values": [42]}}],
            status={"active": 1},
        ),
        pods=[pod("job-0", "Failed", index=0, exit_code=42)],
        want=[CREATE, STATUS, patch("job-0"), STATUS],
        counts={"active": 1, "failed": 1, "failed_indexes": "0"},
    ),
    Case(
        "creations not yet seen: waits",
        job(5, 2, status={"active": 0}),
        pending_creations=2,
        want=[STATUS],
    ),
    Case(
        "a failing create is raised, the status still written",
        job(5, 2),
        failing="create",
        want=[CREATE, STATUS],
        counts={"active": 0},
    ),
    Case(
        "a finished Job only releases its pods",
        job(1, 1, status={"succeeded": 1}),
        pods=[pod("left", "Succeeded")],
        want=[patch("left")],
    ),
    Case(
        "a pod already uncounted from an earlier sync: released and counted, not twice",
        job(5, 1, status={"active": 1}),
        pods=[pod("counted-once", "Succeeded")],
        want=[CREATE, STATUS, patch("counted-once"), STATUS],
        counts={"succeeded": 1},
    ),
]


def _finish(case: Case) -> Case:
    """Makes "a finished Job" finished and "already uncounted" uncounted."""
    if case.name.startswith("a finished Job"):
        case.job.status.conditions.add(type="Complete", status="True")
    if case.name.startswith("a pod already uncounted"):
        case.job.status.uncounted_terminated_pods.succeeded.append(case.pods[0].metadata.uid)
    return case


CASES = [_finish(c) for c in CASES]


@dataclass
class Fixture:
    """A JobController over a FakeClient; its informers never run: `seed`
    puts objects both in the client and in the listers."""

    client: FakeClient
    jobs: SharedInformer[Job]
    pods: SharedInformer[Pod]
    controller: JobController

    @classmethod
    def new(cls) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        jobs = SharedInformer(client, Job)
        pod_informer = SharedInformer(client, Pod)
        pod_informer.add_indexers({POD_OWNER_INDEX: pod_owner_index})
        controller = JobController(client, jobs, pod_informer, now=lambda: NOW_DT)
        return cls(client, jobs, pod_informer, controller)

    def seed(self, *objects: Job | Pod) -> None:
        for stored in self.client.add(*objects):
            informer: SharedInformer[Any] = self.jobs if isinstance(stored, Job) else self.pods
            informer.indexer.add(stored)

    def close(self) -> None:
        self.controller.queue.shut_down()


def matches(got: list[str], want: list[str], any_order: bool) -> bool:
    if any_order:
        got, want = sorted(got), sorted(want)
    return len(got) == len(want) and all(
        fnmatch.fnmatchcase(g, w) for g, w in zip(got, want, strict=True)
    )


def conditions_of(j: Job) -> list[str]:
    return [f"{c.type}={c.status}/{c.reason}" for c in j.status.conditions]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_sync(case: Case) -> None:
    fx = Fixture.new()
    fx.seed(case.job, *case.pods)
    if case.pending_creations:
        fx.controller.expectations.expect_creations("default/job", case.pending_creations)
    if case.failing:
        fx.client.fail(case.failing, "Pod", errors.Forbidden("exceeded quota"))
    try:
        if case.failing:
            with pytest.raises(errors.Forbidden):
                await fx.controller.sync("default/job")
        else:
            await fx.controller.sync("default/job")
    finally:
        fx.close()
    got = [str(a) for a in fx.client.writes()]
    assert matches(got, case.want, case.any_order), f"{case.name}: got {got}, want {case.want}"
    stored = fx.client.stored(Job, "job")
    assert stored is not None
    seen = {k: getattr(stored.status, k) for k in case.counts}
    assert seen == case.counts, f"{case.name}: status {seen}, want {case.counts}"
    if case.conditions:
        assert conditions_of(stored) == case.conditions, case.name


# -- what the writes carry ----------------------------------------------------------------------


async def test_created_pods_carry_the_tracking_finalizer_and_owner() -> None:
    fx = Fixture.new()
    fx.seed(job(1, 1))
    await fx.controller.sync("default/job")
    fx.close()
    [created] = fx.client.stored_list(Pod)
    assert created.metadata.name.startswith("job-")
    assert JOB_TRACKING_FINALIZER in created.metadata.finalizers
    [ref] = created.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Job", "job", "job-uid", True)


async def test_indexed_pods_know_their_index() -> None:
    fx = Fixture.new()
    fx.seed(job(3, 3, indexed=True))
    await fx.controller.sync("default/job")
    fx.close()
    created = sorted(fx.client.stored_list(Pod), key=lambda p: p.metadata.name)
    assert [p.metadata.annotations[COMPLETION_INDEX_ANNOTATION] for p in created] == ["0", "1", "2"]
    assert [p.spec.hostname for p in created] == ["job-0", "job-1", "job-2"]
    assert all(p.metadata.name.startswith(f"job-{i}-") for i, p in enumerate(created))
    [env] = created[0].spec.containers[0].env
    assert env.name == "JOB_COMPLETION_INDEX"
    assert env.value_from.field_ref.field_path == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )


async def test_a_pod_is_counted_once_across_a_restart() -> None:
    """The first controller records the uid but cannot release the pod (it
    dies there); a new controller, with no memory, counts it exactly once."""
    fx = Fixture.new()
    fx.seed(job(5, 1, status={"active": 1}), pod("done", "Succeeded"))
    fx.client.fail("patch", "Pod", errors.Forbidden("the controller died here"))
    await fx.controller.sync("default/job")
    fx.close()
    stored = fx.client.stored(Job, "job")
    assert stored is not None
    assert stored.status.succeeded == 0
    assert len(stored.status.uncounted_terminated_pods.succeeded) == 1
    for _ in range(2):
        restarted = Fixture.new()
        restarted.seed(stored, *fx.client.stored_list(Pod))
        await restarted.controller.sync("default/job")
        restarted.close()
        fresh = restarted.client.stored(Job, "job")
        assert fresh is not None
        assert fresh.status.succeeded == 1
        assert not fresh.status.uncounted_terminated_pods.succeeded
        stored, fx = fresh, restarted


async def test_an_orphan_pod_loses_its_finalizer() -> None:
    fx = Fixture.new()
    fx.seed(pod("orphan", "Running", deleting=True))
    await fx.controller.sync("orphan-pod:default/orphan")
    fx.close()
    assert [str(a) for a in fx.client.writes()] == [patch("orphan")]


async def test_a_finished_job_records_an_event_once() -> None:
    events: list[tuple[str, str]] = []

    class Recorder:
        def event(self, obj: Any, eventtype: str, reason: str, message: str) -> None:
            events.append((eventtype, reason))

    fx = Fixture.new()
    fx.controller.recorder = Recorder()  # type: ignore[assignment]
    fx.seed(job(1, 1, status={"active": 1}), pod("a", "Succeeded"))
    await fx.controller.sync("default/job")
    fx.close()
    assert ("Normal", "Completed") in events
    assert sum(1 for e in events if e[1] == "Completed") == 1


async def test_a_stale_pod_cache_does_not_count_a_pod_twice() -> None:
    """The Job's cache has the counted status, the pod's cache still shows
    the finalizer this controller removed: not counted again."""
    fx = Fixture.new()
    fx.seed(job(5, 1, status={"active": 1}), pod("done", "Succeeded"))
    await fx.controller.sync("default/job")
    counted = fx.client.stored(Job, "job")
    assert counted is not None
    assert counted.status.succeeded == 1
    fx.jobs.indexer.update(counted)  # the pod informer has not caught up
    await fx.controller.sync("default/job")
    fx.close()
    again = fx.client.stored(Job, "job")
    assert again is not None
    assert again.status.succeeded == 1
    assert not again.status.uncounted_terminated_pods.succeeded


async def test_an_orphan_found_mid_deletion_is_queued_for_its_finalizer() -> None:
    fx = Fixture.new()
    orphan = pod("orphan", "Running", deleting=True)
    fx.controller._add_pod(orphan, True)
    fx.close()
    assert len(fx.controller.queue) == 1


async def test_a_replacement_pod_carries_its_index_failure_count() -> None:
    fx = Fixture.new()
    fx.seed(
        job(2, 1, indexed=True, per_index=3, status={"active": 1}),
        pod("job-0", "Failed", index=0, index_failures=1, finished_ago=100),
    )
    await fx.controller.sync("default/job")
    fx.close()
    [replacement] = [p for p in fx.client.stored_list(Pod) if p.metadata.name != "job-0"]
    assert replacement.metadata.annotations[COMPLETION_INDEX_ANNOTATION] == "0"
    assert replacement.metadata.annotations[INDEX_FAILURE_COUNT_ANNOTATION] == "2"

"""Jobs, CronJobs and the TTL-after-finished controller over the real API
server; the tests play the node agent, ending each pod as it would
(Succeeded with exit code 0, or Failed with 1)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import errors
from kpy.api.batch.v1 import CronJob, Job
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.controllers.job.controller import JOB_TRACKING_FINALIZER
from tests.integration._controllers import eventually, running

if TYPE_CHECKING:
    from kpy.client import Client


def pi_job(name: str, **spec: Any) -> Job:
    body: dict[str, Any] = {
        "template": {
            "spec": {
                "containers": [{"name": "pi", "image": "perl"}],
                "restartPolicy": "Never",
            }
        },
        **spec,
    }
    made: Job = from_dict(Job, {"metadata": {"name": name}, "spec": body})
    return made


async def job_pods(client: Client, ns: str, job: Job) -> list[Pod]:
    uid = job.metadata.uid
    selector = f"batch.kubernetes.io/controller-uid={uid}"
    return (await client.list(Pod, namespace=ns, label_selector=selector)).items


def _running(pod: Pod) -> bool:
    return pod.status.phase not in ("Succeeded", "Failed") and not pod.metadata.HasField(
        "deletion_timestamp"
    )


async def finish(client: Client, pod: Pod, *, exit_code: int) -> None:
    """Ends the pod's container as its node agent would; retries on conflict."""
    while True:
        try:
            fresh = await client.get(Pod, pod.metadata.name, namespace=pod.metadata.namespace)
        except errors.NotFound:
            return
        fresh.status.phase = "Succeeded" if exit_code == 0 else "Failed"
        status = fresh.status.container_statuses.add(name="pi")
        status.state.terminated.exit_code = exit_code
        now = Timestamp()
        now.FromNanoseconds(time.time_ns())
        status.state.terminated.finished_at.CopyFrom(now)
        try:
            await client.update_status(fresh)
        except errors.Conflict:
            continue
        return


def condition(job: Job, kind: str) -> Any:
    return next((c for c in job.status.conditions if c.type == kind and c.status == "True"), None)


async def test_a_job_runs_to_complete_at_most_parallelism_at_once(
    client: Client, api_namespace: str
) -> None:
    async with running(client, api_namespace, "job"):
        job = await client.create(pi_job("pi", completions=5, parallelism=2))
        # The server chose the selector and labelled the template with it.
        assert job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == (
            job.metadata.uid
        )
        most = 0
        finished: set[str] = set()
        deadline = time.monotonic() + 60
        while True:
            current = await client.get(Job, "pi", namespace=api_namespace)
            if condition(current, "Complete"):
                break
            assert time.monotonic() < deadline, f"not Complete: {current.status}"
            active = [p for p in await job_pods(client, api_namespace, job) if _running(p)]
            most = max(most, len(active))
            for pod in active:
                if pod.metadata.name not in finished:
                    finished.add(pod.metadata.name)
                    await finish(client, pod, exit_code=0)
            await anyio.sleep(0.1)
        assert (current.status.succeeded, current.status.failed) == (5, 0)
        assert current.status.HasField("completion_time")
        assert most <= 2, f"{most} pods ran at once"
        pods = await job_pods(client, api_namespace, job)
        assert len(finished) == 5, [
            (
                p.metadata.name,
                p.status.phase,
                list(p.metadata.finalizers),
                p.metadata.HasField("deletion_timestamp"),
            )
            for p in pods
        ]

        async def released() -> bool:
            pods = await job_pods(client, api_namespace, job)
            return all(JOB_TRACKING_FINALIZER not in p.metadata.finalizers for p in pods)

        await eventually(released, what="tracking finalizers removed")


async def test_a_failing_job_stops_at_its_backoff_limit(client: Client, api_namespace: str) -> None:
    async with running(client, api_namespace, "job"):
        job = await client.create(pi_job("fails", backoffLimit=1))
        failed_at: list[float] = []
        deadline = time.monotonic() + 60
        while True:
            current = await client.get(Job, "fails", namespace=api_namespace)
            if condition(current, "Failed"):
                break
            assert time.monotonic() < deadline, f"not Failed: {current.status}"
            for pod in await job_pods(client, api_namespace, job):
                if _running(pod):
                    await finish(client, pod, exit_code=1)
                    failed_at.append(time.monotonic())
            await anyio.sleep(0.1)
        assert condition(current, "Failed").reason == "BackoffLimitExceeded"
        assert current.status.failed == 2
        assert len(failed_at) == 2
        # The replacement waited for the back-off (10 s after one failure).
        assert failed_at[1] - failed_at[0] >= 9


async def test_a_finished_job_goes_after_its_ttl(client: Client, api_namespace: str) -> None:
    async with running(client, api_namespace, "job", "ttl-after-finished", "garbagecollector"):
        job = await client.create(pi_job("short-lived", ttlSecondsAfterFinished=0))

        async def ended() -> bool:
            for pod in await job_pods(client, api_namespace, job):
                if _running(pod):
                    await finish(client, pod, exit_code=0)
            try:
                await client.get(Job, "short-lived", namespace=api_namespace)
            except errors.NotFound:
                return True
            return False

        await eventually(ended, timeout=30, what="the Job deleted after its TTL")


async def test_a_cronjob_creates_jobs(client: Client, api_namespace: str) -> None:
    cron_job: CronJob = from_dict(
        CronJob,
        {
            "metadata": {"name": "hello"},
            "spec": {
                # robfig/cron's @every: the first run a second after creation.
                "schedule": "@every 1s",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [{"name": "c", "image": "busybox"}],
                                "restartPolicy": "OnFailure",
                            }
                        }
                    }
                },
            },
        },
    )
    async with running(client, api_namespace, "cronjob"):
        made = await client.create(cron_job)

        async def a_job() -> list[Job]:
            return (await client.list(Job, namespace=api_namespace)).items

        jobs = await eventually(a_job, timeout=30, what="a Job from the CronJob")
        job = jobs[0]
        assert job.metadata.name.startswith("hello-")
        assert int(job.metadata.name.removeprefix("hello-")) > 0  # minutes since the epoch
        [ref] = job.metadata.owner_references
        assert (ref.kind, ref.uid) == ("CronJob", made.metadata.uid)

        async def recorded() -> CronJob | None:
            cj = await client.get(CronJob, "hello", namespace=api_namespace)
            return cj if cj.status.active and cj.status.HasField("last_schedule_time") else None

        await eventually(recorded, what="status.active and lastScheduleTime")


async def test_an_indexed_job_completes_every_index(client: Client, api_namespace: str) -> None:
    async with running(client, api_namespace, "job"):
        job = await client.create(
            pi_job("indexed", completions=3, parallelism=3, completionMode="Indexed")
        )

        async def all_running() -> list[Pod]:
            pods = [p for p in await job_pods(client, api_namespace, job) if _running(p)]
            return pods if len(pods) == 3 else []

        pods = await eventually(all_running, what="one pod per index")
        assert sorted(p.spec.hostname for p in pods) == ["indexed-0", "indexed-1", "indexed-2"]
        for pod in pods:
            await finish(client, pod, exit_code=0)

        async def complete() -> Job | None:
            current = await client.get(Job, "indexed", namespace=api_namespace)
            return current if condition(current, "Complete") else None

        done = await eventually(complete, what="the Indexed Job Complete")
        assert (done.status.completed_indexes, done.status.succeeded) == ("0-2", 3)

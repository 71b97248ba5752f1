"""`kpyctl wait` and `kpyctl create job --from=cronjob/NAME` against a real
API server, with the Job controller running in the test."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.batch.v1 import CronJob, Job
from kpy.api.codec import from_dict
from tests.integration._controllers import running
from tests.integration._kpyctl import kpyctl
from tests.integration.test_job import finish, job_pods, pi_job

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


async def test_wait_for_a_job_to_complete(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    async with running(client, ns, "job"):
        job = await client.create(pi_job("pi"))
        code, out, err = await kpyctl(
            apiserver, ns, "wait", "--for=condition=complete", "job/pi", "--timeout=0"
        )
        assert (code, out) == (1, ""), err
        assert err == "error: timed out waiting for the condition on jobs/pi\n"
        for pod in await job_pods(client, ns, job):
            await finish(client, pod, exit_code=0)
        done = await kpyctl(
            apiserver, ns, "wait", "--for=condition=complete", "job/pi", "--timeout=30s"
        )
        assert done == (0, "job.batch/pi condition met\n", "")


async def test_wait_for_a_missing_object_says_not_found(
    api_namespace: str, apiserver: APIServerProcess
) -> None:
    code, _, err = await kpyctl(apiserver, api_namespace, "wait", "--for=delete", "job/gone")
    assert (code, err) == (0, ""), err
    code, _, err = await kpyctl(
        apiserver, api_namespace, "wait", "--for=condition=ready", "pod/gone", "--timeout=1s"
    )
    assert code == 1
    assert "NotFound" in err


async def test_create_job_from_a_cronjob(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    template = pi_job("unused").spec
    cron_job: CronJob = from_dict(
        CronJob,
        {
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"metadata": {"labels": {"a": "b"}}}},
        },
    )
    cron_job.spec.job_template.spec.template.CopyFrom(template.template)
    made = await client.create(cron_job)
    result = await kpyctl(
        apiserver, api_namespace, "create", "job", "now", "--from=cronjob/nightly"
    )
    assert result == (0, "job.batch/now created\n", "")
    job = await client.get(Job, "now", namespace=api_namespace)
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job.metadata.labels["a"] == "b"
    [owner] = job.metadata.owner_references
    assert (owner.kind, owner.uid) == ("CronJob", made.metadata.uid)
    wrong = await kpyctl(apiserver, api_namespace, "create", "job", "x", "--from=deploy/web")
    assert wrong[0] == 1
    assert "cronjob/NAME" in wrong[2]

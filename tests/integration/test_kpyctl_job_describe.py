"""`kpyctl create job NAME --image=IMAGE -- COMMAND` and `kpyctl describe
job` against a real API server, with the Job controller running in the
test: the Job kubectl would make is stored, runs to Complete, and describe
shows its pod counts and the controller's events."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from kpy.api.batch.v1 import Job
from tests.integration._controllers import eventually, running
from tests.integration._kpyctl import KPYCTL, kpyctl
from tests.integration.test_job import finish, job_pods

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


async def test_create_job_from_an_image_then_describe_it(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    # kpyctl() puts --server and -n last: here they must come before `--`.
    made = await anyio.run_process(
        [KPYCTL, "create", "job", "once", "--image=busybox", "--server", apiserver.address,
         "-n", ns, "--", "sh", "-c", "echo hi"],
        check=False,
    )  # fmt: skip
    assert (made.returncode, made.stdout, made.stderr) == (0, b"job.batch/once created\n", b"")
    job = await client.get(Job, "once", namespace=ns)
    pod_spec = job.spec.template.spec
    assert pod_spec.restart_policy == "Never"
    [container] = pod_spec.containers
    assert (container.name, container.image) == ("once", "busybox")
    assert list(container.command) == ["sh", "-c", "echo hi"]

    async with running(client, ns, "job"):
        pods = await eventually(lambda: job_pods(client, ns, job), what="the Job's pod")
        await finish(client, pods[0], exit_code=0)
        done = await kpyctl(
            apiserver, ns, "wait", "--for=condition=complete", "job/once", "--timeout=30s"
        )
        assert done[0] == 0, done

    code, out, err = await kpyctl(apiserver, ns, "describe", "job", "once")
    assert code == 0, err
    lines = [" ".join(line.split()) for line in out.splitlines()]
    for want in (
        "Name: once",
        f"Namespace: {ns}",
        "Completions: 1",
        "Pods Statuses: 0 Active (0 Ready) / 1 Succeeded / 0 Failed",
        "Pod Template:",
        "sh",
        "echo hi",
    ):
        assert want in lines, f"no line {want!r} in:\n{out}"
    events = [line for line in lines if line.startswith("Normal ")]
    reasons = [line.split()[1] for line in events]
    assert "SuccessfulCreate" in reasons, out
    assert "Completed" in reasons, out

"""`kpyctl scale` and `kpyctl rollout ...` as a user runs them: the real
command in a subprocess against the real API server, with the ReplicaSet
and Deployment controllers running and the test marking pods ready where a
node agent would."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import Pod
from tests.integration._controllers import eventually, make_all_ready, running, workload
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


@asynccontextmanager
async def kubelet(client: Client, ns: str) -> AsyncIterator[None]:
    """Marks every new pod ready, as node agents would, until the block ends."""
    async with anyio.create_task_group() as tg:

        async def loop() -> None:
            while True:
                await make_all_ready(client, ns)
                await anyio.sleep(0.1)

        tg.start_soon(loop)
        yield
        tg.cancel_scope.cancel()


async def images(client: Client, ns: str) -> set[str]:
    pods = (await client.list(Pod, namespace=ns)).items
    return {
        p.spec.containers[0].image for p in pods if not p.metadata.HasField("deletion_timestamp")
    }


async def test_scale_and_rollout_status(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    async with running(client, ns, "replicaset", "deployment"):
        await client.create(workload(Deployment, "web", 1))
        code, out, err = await kpyctl(apiserver, ns, "scale", "deployment/web", "--replicas=3")
        assert (code, out, err) == (0, "deployment.apps/web scaled\n", "")
        code, out, err = await kpyctl(
            apiserver, ns, "rollout", "status", "deploy", "web", "--timeout=1"
        )
        assert code == 1
        assert "timed out waiting for the condition" in err
        assert out.startswith('Waiting for deployment "web" rollout to finish')
        async with kubelet(client, ns):
            code, out, err = await kpyctl(apiserver, ns, "rollout", "status", "deployment/web")
        assert code == 0, err
        assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'
        code, _, err = await kpyctl(
            apiserver, ns, "scale", "deployment/web", "--replicas=2", "--current-replicas=5"
        )
        assert code == 1
        assert "expected replicas to be 5, was 3" in err


async def test_history_undo_pause_resume_restart(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    async with running(client, ns, "replicaset", "deployment"), kubelet(client, ns):
        await client.create(workload(Deployment, "web", 2))
        await kpyctl(apiserver, ns, "rollout", "status", "deployment/web")
        patch = {
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}
        }
        await client.patch(Deployment, "web", patch)
        code, out, _ = await kpyctl(apiserver, ns, "rollout", "status", "deployment/web")
        assert code == 0
        assert await images(client, ns) == {"busybox:2"}

        code, out, _ = await kpyctl(apiserver, ns, "rollout", "history", "deployment/web")
        assert out.splitlines() == [
            "deployment.apps/web ",
            "REVISION  CHANGE-CAUSE",
            "1         <none>",
            "2         <none>",
            "",
        ]

        code, out, _ = await kpyctl(apiserver, ns, "rollout", "undo", "deployment/web")
        assert (code, out) == (0, "deployment.apps/web rolled back\n")
        await kpyctl(apiserver, ns, "rollout", "status", "deployment/web")
        await eventually(lambda: _only(client, ns, "busybox"), what="pods back on the old image")
        code, out, _ = await kpyctl(apiserver, ns, "rollout", "history", "deployment/web")
        assert out.splitlines()[2:] == ["2         <none>", "3         <none>", ""]

        code, _, err = await kpyctl(
            apiserver, ns, "rollout", "undo", "deployment/web", "--to-revision=9"
        )
        assert code == 1
        assert "revision 9" in err

        assert (await kpyctl(apiserver, ns, "rollout", "pause", "deployment/web"))[:2] == (
            0,
            "deployment.apps/web paused\n",
        )
        code, _, err = await kpyctl(apiserver, ns, "rollout", "pause", "deployment/web")
        assert (code, err) == (
            1,
            'Error from server (BadRequest): deployments.apps "web" is already paused\n',
        )
        assert (await kpyctl(apiserver, ns, "rollout", "resume", "deployment/web"))[1] == (
            "deployment.apps/web resumed\n"
        )

        before = {p.metadata.name for p in (await client.list(Pod, namespace=ns)).items}
        assert (await kpyctl(apiserver, ns, "rollout", "restart", "deployment/web"))[1] == (
            "deployment.apps/web restarted\n"
        )
        code, _, _ = await kpyctl(apiserver, ns, "rollout", "status", "deployment/web")
        assert code == 0
        after = {
            p.metadata.name
            for p in (await client.list(Pod, namespace=ns)).items
            if not p.metadata.HasField("deletion_timestamp")
        }
        assert after.isdisjoint(before), "restart replaces every pod"


async def test_bad_targets_are_refused_with_what_to_do(
    api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    code, _, err = await kpyctl(apiserver, ns, "rollout", "status", "pod/x")
    assert (code, err) == (
        1,
        "error: rollout works on deployments, daemonsets and statefulsets, not pods\n",
    )
    code, _, err = await kpyctl(apiserver, ns, "scale", "gizmo/x", "--replicas=1")
    assert (code, err) == (1, 'error: the server doesn\'t have a resource type "gizmo"\n')
    code, _, err = await kpyctl(apiserver, ns, "rollout", "undo", "deployment/nope")
    assert (code, err) == (1, 'Error from server (NotFound): deployments.apps "nope" not found\n')
    code, _, err = await kpyctl(apiserver, ns, "scale", "deployment", "--replicas=1")
    assert code == 1
    assert "TYPE/NAME or TYPE NAME" in err


async def _only(client: Client, ns: str, image: str) -> bool:
    return await images(client, ns) == {image}

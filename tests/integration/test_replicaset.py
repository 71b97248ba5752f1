"""The ReplicaSet (and ReplicationController) controller over the real API
server; the tests play the node agent where pods must become ready."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from kpy.api.apps.v1 import ReplicaSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod, ReplicationController
from kpy.controllers.ownership import get_controller_of
from tests.integration._controllers import (
    eventually,
    make_all_ready,
    make_ready,
    running,
    workload,
)

if TYPE_CHECKING:
    from kpy.client import Client


def replicaset(name: str, replicas: int, *, min_ready: int = 0, app: str = "") -> ReplicaSet:
    return workload(ReplicaSet, name, replicas, app=app, minReadySeconds=min_ready)


def bare_pod(name: str, **labels: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )


async def active_pods(client: Client, ns: str, selector: str) -> list[Pod]:
    pods = (await client.list(Pod, namespace=ns, label_selector=selector)).items
    return [
        p
        for p in pods
        if not p.metadata.HasField("deletion_timestamp")
        and p.status.phase not in ("Succeeded", "Failed")
    ]


async def wait_for_count(client: Client, ns: str, selector: str, count: int) -> list[Pod]:
    async def check() -> list[Pod] | None:
        pods = await active_pods(client, ns, selector)
        return pods if len(pods) == count else None

    return await eventually(check, what=f"{count} pods matching {selector}")


async def status_of(client: Client, kind: type[Any], name: str, ns: str, **want: int) -> Any:
    async def check() -> Any:
        obj = await client.get(kind, name, namespace=ns)
        seen = {k: getattr(obj.status, k) for k in want}
        return obj if seen == want else None

    return await eventually(check, what=f"status {want}")


async def test_keeps_replicas_under_pod_deletion(client: Client, api_namespace: str) -> None:
    async with running(client, api_namespace, "replicaset"):
        rs = await client.create(replicaset("web", 3))
        pods = await wait_for_count(client, api_namespace, "app=web", 3)
        for pod in pods:
            ref = get_controller_of(pod)
            assert ref is not None
            assert (ref.kind, ref.name, ref.uid) == ("ReplicaSet", "web", rs.metadata.uid)
            assert pod.metadata.name.startswith("web-")
        await client.delete(Pod, pods[0].metadata.name, namespace=api_namespace)
        after = await wait_for_count(client, api_namespace, "app=web", 3)
        assert pods[0].metadata.name not in {p.metadata.name for p in after}
        await make_all_ready(client, api_namespace, "app=web")
        await status_of(
            client,
            ReplicaSet,
            "web",
            api_namespace,
            replicas=3,
            ready_replicas=3,
            available_replicas=3,
            fully_labeled_replicas=3,
        )


async def test_scale_up_then_down_deletes_not_ready_pods_first(
    client: Client, api_namespace: str
) -> None:
    async with running(client, api_namespace, "replicaset"):
        await client.create(replicaset("web", 2))
        await wait_for_count(client, api_namespace, "app=web", 2)
        ready = {p.metadata.name for p in await make_all_ready(client, api_namespace, "app=web")}
        await client.scale(ReplicaSet, "web", 5, namespace=api_namespace)
        await wait_for_count(client, api_namespace, "app=web", 5)
        await client.scale(ReplicaSet, "web", 2, namespace=api_namespace)
        survivors = await wait_for_count(client, api_namespace, "app=web", 2)
        assert {p.metadata.name for p in survivors} == ready
        rs = await status_of(client, ReplicaSet, "web", api_namespace, replicas=2)
        assert rs.status.observed_generation == rs.metadata.generation


async def test_adopts_matching_orphans_and_releases_pods_that_stop_matching(
    client: Client, api_namespace: str
) -> None:
    await client.create(bare_pod("stray", app="web"))
    async with running(client, api_namespace, "replicaset"):
        rs = await client.create(replicaset("web", 2))
        pods = await wait_for_count(client, api_namespace, "app=web", 2)
        assert "stray" in {p.metadata.name for p in pods}

        async def adopted() -> bool:
            stray = await client.get(Pod, "stray", namespace=api_namespace)
            ref = get_controller_of(stray)
            return ref is not None and ref.uid == rs.metadata.uid

        await eventually(adopted, what="the orphan adopted")
        await client.patch(
            Pod, "stray", {"metadata": {"labels": {"app": "other"}}}, namespace=api_namespace
        )

        async def released() -> bool:
            stray = await client.get(Pod, "stray", namespace=api_namespace)
            return get_controller_of(stray) is None

        await eventually(released, what="the pod released")
        pods = await wait_for_count(client, api_namespace, "app=web", 2)
        assert "stray" not in {p.metadata.name for p in pods}


async def test_creates_each_pod_once_even_for_a_large_replica_set(
    client: Client, api_namespace: str
) -> None:
    created: list[str] = []
    async with running(client, api_namespace, "replicaset"):
        async with client.watch(Pod, namespace=api_namespace) as events:
            await client.create(replicaset("big", 40))
            with anyio.fail_after(30):
                async for event in events:
                    if event.type == "ADDED":
                        created.append(event.object.metadata.name)
                    if len(created) == 40:
                        break
            # Give a duplicate creation time to show up before counting.
            await status_of(client, ReplicaSet, "big", api_namespace, replicas=40)
            await anyio.sleep(1.0)
        pods = await active_pods(client, api_namespace, "app=big")
    assert len(created) == 40
    assert len(pods) == 40


async def test_replaces_failed_pods(client: Client, api_namespace: str) -> None:
    async with running(client, api_namespace, "replicaset"):
        await client.create(replicaset("web", 2))
        pods = await wait_for_count(client, api_namespace, "app=web", 2)
        failed = pods[0]
        failed.status.phase = "Failed"
        await client.update_status(failed)
        after = await wait_for_count(client, api_namespace, "app=web", 2)
        assert failed.metadata.name not in {p.metadata.name for p in after}
        # A failed pod is replaced, not deleted: its logs stay readable.
        kept = await client.get(Pod, failed.metadata.name, namespace=api_namespace)
        assert kept.status.phase == "Failed"


async def test_available_only_after_min_ready_seconds(client: Client, api_namespace: str) -> None:
    async with running(client, api_namespace, "replicaset"):
        await client.create(replicaset("slow", 2, min_ready=2))
        await wait_for_count(client, api_namespace, "app=slow", 2)
        became_ready = time.time()
        await make_all_ready(client, api_namespace, "app=slow", ready_since=became_ready)
        await status_of(
            client, ReplicaSet, "slow", api_namespace, ready_replicas=2, available_replicas=0
        )
        await status_of(client, ReplicaSet, "slow", api_namespace, available_replicas=2)
        assert time.time() - became_ready >= 2


async def test_replication_controller_keeps_its_replicas(
    client: Client, api_namespace: str
) -> None:
    rc = from_dict(
        ReplicationController,
        {
            "metadata": {"name": "legacy"},
            "spec": {
                "replicas": 2,
                "selector": {"app": "legacy"},
                "template": {
                    "metadata": {"labels": {"app": "legacy"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    async with running(client, api_namespace, "replicationcontroller"):
        await client.create(rc)
        pods = await wait_for_count(client, api_namespace, "app=legacy", 2)
        ref = get_controller_of(pods[0])
        assert ref is not None
        assert (ref.api_version, ref.kind) == ("v1", "ReplicationController")
        await make_ready(client, pods[0])
        await status_of(client, ReplicationController, "legacy", api_namespace, ready_replicas=1)


async def test_a_replica_set_being_deleted_creates_no_pods(
    client: Client, api_namespace: str
) -> None:
    rs = replicaset("doomed", 0)
    rs.metadata.finalizers.append("example.com/hold")
    await client.create(rs)
    await client.delete(ReplicaSet, "doomed", namespace=api_namespace)
    async with running(client, api_namespace, "replicaset"):
        await client.patch(ReplicaSet, "doomed", {"spec": {"replicas": 3}}, namespace=api_namespace)
        # A live ReplicaSet, synced after the patch, shows the controller at
        # work; the doomed one still has no pods.
        await client.create(replicaset("alive", 1))
        await wait_for_count(client, api_namespace, "app=alive", 1)
        assert await active_pods(client, api_namespace, "app=doomed") == []
    await client.patch(
        ReplicaSet, "doomed", {"metadata": {"finalizers": None}}, namespace=api_namespace
    )

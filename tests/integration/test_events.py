"""Events as users read them with `describe`: written by the recorder,
repeats counted on one Event, and recorded by the controllers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Event, Namespace
from kpy.cache.events import NORMAL, WARNING, EventBroadcaster
from tests.integration._controllers import eventually, running, workload
from tests.integration.test_replicaset import replicaset, wait_for_count

if TYPE_CHECKING:
    from kpy.client import Client


async def events_about(client: Client, namespace: str, name: str) -> list[Event]:
    found = (await client.list(Event, namespace=namespace)).items
    return [e for e in found if e.involved_object.name == name]


async def test_recorder_writes_and_counts_repeats(client: Client, api_namespace: str) -> None:
    cm = await client.create(from_dict(ConfigMap, {"metadata": {"name": "subject"}}))
    ns = await client.get(Namespace, api_namespace)
    broadcaster = EventBroadcaster(client, host="test-host")
    recorder = broadcaster.new_recorder("test-component")
    async with anyio.create_task_group() as tg:
        tg.start_soon(broadcaster.run)
        for _ in range(3):
            recorder.event(cm, WARNING, "Broken", "it broke")
        recorder.event(cm, NORMAL, "Fixed", "it works")
        recorder.event(ns, NORMAL, "Seen", "a cluster-scoped object")

        async def written() -> list[Event]:
            found = await events_about(client, api_namespace, "subject")
            broken = [e for e in found if e.reason == "Broken"]
            return found if len(found) == 2 and broken and broken[0].count == 3 else []

        found = await eventually(written, what="two events, one counted three times")
        cluster = await eventually(
            lambda: events_about(client, "default", api_namespace), what="the namespace's event"
        )
        tg.cancel_scope.cancel()
    broken = next(e for e in found if e.reason == "Broken")
    assert (broken.type, broken.message, broken.source.component, broken.source.host) == (
        WARNING,
        "it broke",
        "test-component",
        "test-host",
    )
    ref = broken.involved_object
    assert (ref.kind, ref.api_version, ref.name, ref.uid) == (
        "ConfigMap",
        "v1",
        "subject",
        cm.metadata.uid,
    )
    assert broken.last_timestamp.ToNanoseconds() >= broken.first_timestamp.ToNanoseconds()
    assert broken.metadata.name.startswith("subject.")
    assert [e.reason for e in cluster] == ["Seen"]
    assert broadcaster.written == 3


async def test_a_full_queue_drops_events_instead_of_blocking(
    client: Client, api_namespace: str
) -> None:
    cm = await client.create(from_dict(ConfigMap, {"metadata": {"name": "noisy"}}))
    broadcaster = EventBroadcaster(client, queue_size=2)
    recorder = broadcaster.new_recorder("test")
    for i in range(5):  # nothing runs the broadcaster yet: the queue fills
        recorder.event(cm, NORMAL, "Tick", f"tick {i}")
    assert broadcaster.dropped == 3


async def test_controllers_record_what_they_did(client: Client, api_namespace: str) -> None:
    deployment = workload(Deployment, "web", 2)
    async with running(client, api_namespace, "replicaset", "deployment"):
        await client.create(replicaset("solo", 2))
        await wait_for_count(client, api_namespace, "app=solo", 2)
        await client.create(deployment)
        await wait_for_count(client, api_namespace, "app=web", 2)

        async def recorded() -> tuple[list[Event], list[Event]] | None:
            solo = await events_about(client, api_namespace, "solo")
            web = await events_about(client, api_namespace, "web")
            return (solo, web) if len(solo) == 2 and web else None

        solo, web = await eventually(recorded, what="events of the replica set and deployment")
    assert {e.reason for e in solo} == {"SuccessfulCreate"}
    assert all(e.message.startswith("Created pod: solo-") for e in solo)
    assert all(e.source.component == "replicaset-controller" for e in solo)
    [scaled] = web
    assert scaled.reason == "ScalingReplicaSet"
    assert scaled.source.component == "deployment-controller"
    rs_name = (await client.list(ReplicaSet, label_selector="app=web")).items[0].metadata.name
    assert scaled.message == f"Scaled up replica set {rs_name} to 2"

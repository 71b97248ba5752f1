"""The Deployment controller over the real API server, with the ReplicaSet
controller making the pods; the tests play the node agent (pods become
ready only when a test says so)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.controllers.deployment import util
from kpy.controllers.ownership import get_controller_of, is_pod_ready
from tests.integration._controllers import eventually, make_all_ready, make_ready, running

if TYPE_CHECKING:
    from kpy.client import Client

HASH = util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY
SELECTOR = "app=web"


def web(replicas: int, *, image: str = "busybox:1", **spec: Any) -> Deployment:
    """A Deployment "web" of `replicas` pods; `spec` adds camelCase fields."""
    return from_dict(
        Deployment,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
                **spec,
            },
        },
    )


async def set_image(client: Client, ns: str, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
    await client.patch(Deployment, "web", patch, namespace=ns)


async def active_pods(client: Client, ns: str) -> list[Pod]:
    pods = (await client.list(Pod, namespace=ns, label_selector=SELECTOR)).items
    return [
        p
        for p in pods
        if not p.metadata.HasField("deletion_timestamp")
        and p.status.phase not in ("Succeeded", "Failed")
    ]


async def replica_sets(client: Client, ns: str) -> list[ReplicaSet]:
    """The ReplicaSets controlled by a Deployment, oldest revision first."""
    items = (await client.list(ReplicaSet, namespace=ns)).items
    owned = [r for r in items if (ref := get_controller_of(r)) and ref.kind == "Deployment"]
    return util.replica_sets_by_revision(owned)


async def rolled_out(client: Client, ns: str, *, ready: bool = True) -> Deployment:
    """What `kubectl rollout status` waits for; makes pods ready meanwhile."""

    async def check() -> Deployment | None:
        if ready:
            await make_all_ready(client, ns, SELECTOR)
        d = await client.get(Deployment, "web", namespace=ns)
        return d if is_complete(d) else None

    return await eventually(check, timeout=20, what="the rollout to complete")


def is_complete(d: Deployment) -> bool:
    s, want = d.status, d.spec.replicas
    return (
        s.observed_generation >= d.metadata.generation
        and s.updated_replicas == want
        and s.replicas == want
        and s.available_replicas == want
    )


def condition(d: Deployment, cond_type: str) -> tuple[str, str] | None:
    c = util.get_deployment_condition(d.status, cond_type)
    return None if c is None else (c.status, c.reason)


async def test_creates_a_replica_set_named_by_its_template_hash(
    client: Client, api_namespace: str
) -> None:
    async with running(client, api_namespace, "replicaset", "deployment"):
        d = await client.create(web(3))
        done = await rolled_out(client, api_namespace)
        [rs] = await replica_sets(client, api_namespace)
        template_hash = util.compute_hash(d.spec.template, None)
        assert rs.metadata.name == f"web-{template_hash}"
        assert rs.spec.selector.match_labels[HASH] == template_hash
        assert rs.metadata.owner_references[0].uid == d.metadata.uid
        annotations = rs.metadata.annotations
        assert annotations[util.REVISION_ANNOTATION] == "1"
        assert annotations[util.DESIRED_REPLICAS_ANNOTATION] == "3"
        assert annotations[util.MAX_REPLICAS_ANNOTATION] == "4"  # 25% of 3 rounds up
        pods = await active_pods(client, api_namespace)
        assert len(pods) == 3
        assert {p.metadata.labels[HASH] for p in pods} == {template_hash}
        s = done.status
        assert (s.replicas, s.updated_replicas, s.ready_replicas) == (3, 3, 3)
        assert (s.available_replicas, s.unavailable_replicas) == (3, 0)
        assert s.observed_generation == done.metadata.generation
        assert done.metadata.annotations[util.REVISION_ANNOTATION] == "1"
        assert condition(done, "Available") == ("True", util.MINIMUM_REPLICAS_AVAILABLE)

        async def progressed() -> Deployment | None:
            d = await client.get(Deployment, "web", namespace=api_namespace)
            reason = condition(d, "Progressing")
            return d if reason == ("True", util.NEW_RS_AVAILABLE_REASON) else None

        await eventually(progressed, what="Progressing True NewReplicaSetAvailable")


async def test_rolling_update_stays_within_surge_and_unavailability(
    client: Client, api_namespace: str
) -> None:
    replicas, surge, unavailable = 4, 1, 1
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    async with running(client, api_namespace, "replicaset", "deployment"):
        await client.create(web(replicas, strategy=strategy))
        await rolled_out(client, api_namespace)
        await set_image(client, api_namespace, "busybox:2")
        deadline = time.monotonic() + 20
        while True:
            rss = await replica_sets(client, api_namespace)
            assert sum(r.spec.replicas for r in rss) <= replicas + surge, rss
            pods = await active_pods(client, api_namespace)
            assert len(pods) <= replicas + surge, [p.metadata.name for p in pods]
            ready = [p for p in pods if is_pod_ready(p)]
            assert len(ready) >= replicas - unavailable, [p.metadata.name for p in pods]
            d = await client.get(Deployment, "web", namespace=api_namespace)
            if is_complete(d):
                break
            assert time.monotonic() < deadline, f"rollout stuck: {d.status}"
            # The node agent: one new pod at a time becomes ready.
            waiting = [p for p in pods if not is_pod_ready(p)]
            if waiting:
                await make_ready(client, waiting[0])
            await anyio.sleep(0.1)
        old, new = await replica_sets(client, api_namespace)
        assert (old.spec.replicas, new.spec.replicas) == (0, replicas)
        assert new.metadata.annotations[util.REVISION_ANNOTATION] == "2"
        assert d.metadata.annotations[util.REVISION_ANNOTATION] == "2"
        images = {p.spec.containers[0].image for p in await active_pods(client, api_namespace)}
        assert images == {"busybox:2"}


async def test_recreate_creates_no_new_pod_while_old_ones_exist(
    client: Client, api_namespace: str
) -> None:
    async with running(client, api_namespace, "replicaset", "deployment"):
        await client.create(web(3, strategy={"type": "Recreate"}))
        ns = api_namespace
        first = await rolled_out(client, ns)
        old_hash = util.compute_hash(first.spec.template, None)
        live = {p.metadata.name: old_hash for p in await active_pods(client, ns)}
        async with client.watch(Pod, namespace=ns, label_selector=SELECTOR) as events:
            await set_image(client, ns, "busybox:2")
            with anyio.fail_after(20):
                async for event in events:
                    pod = event.object
                    name, pod_hash = pod.metadata.name, pod.metadata.labels[HASH]
                    if event.type == "DELETED":
                        live.pop(name, None)
                        continue
                    if event.type == "ADDED" and pod_hash != old_hash:
                        assert old_hash not in live.values(), f"{name} created next to old pods"
                    live[name] = pod_hash
                    if sum(1 for h in live.values() if h != old_hash) == 3:
                        break
        await rolled_out(client, ns)


async def test_scaling_replicas_alone_starts_no_rollout(client: Client, api_namespace: str) -> None:
    async with running(client, api_namespace, "replicaset", "deployment"):
        await client.create(web(2))
        await rolled_out(client, api_namespace)
        await client.scale(Deployment, "web", 5, namespace=api_namespace)
        d = await rolled_out(client, api_namespace)
        [rs] = await replica_sets(client, api_namespace)
        assert rs.spec.replicas == 5
        assert rs.metadata.annotations[util.DESIRED_REPLICAS_ANNOTATION] == "5"
        assert rs.metadata.annotations[util.REVISION_ANNOTATION] == "1"
        assert d.metadata.annotations[util.REVISION_ANNOTATION] == "1"


async def test_pause_stops_rollouts_not_scaling_and_resume_continues(
    client: Client, api_namespace: str
) -> None:
    ns = api_namespace
    async with running(client, ns, "replicaset", "deployment"):
        await client.create(web(2))
        await rolled_out(client, ns)
        await client.patch(Deployment, "web", {"spec": {"paused": True}}, namespace=ns)

        async def paused() -> bool:
            d = await client.get(Deployment, "web", namespace=ns)
            return condition(d, "Progressing") == ("Unknown", util.PAUSED_DEPLOY_REASON)

        await eventually(paused, what="Progressing Unknown DeploymentPaused")
        await set_image(client, ns, "busybox:2")
        await client.scale(Deployment, "web", 3, namespace=ns)

        async def scaled() -> bool:  # scaling still happens, the rollout does not
            rss = await replica_sets(client, ns)
            pods = await active_pods(client, ns)
            return [r.spec.replicas for r in rss] == [3] and len(pods) == 3

        await eventually(scaled, what="the old replica set scaled to 3")
        [rs] = await replica_sets(client, ns)
        assert rs.spec.template.spec.containers[0].image == "busybox:1"

        reasons: list[str] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(record_progress_reasons, client, ns, reasons)
            await anyio.sleep(0.3)  # the watch is open
            await client.patch(Deployment, "web", {"spec": {"paused": False}}, namespace=ns)
            d = await rolled_out(client, ns)
            tg.cancel_scope.cancel()
        assert util.RESUMED_DEPLOY_REASON in reasons
        assert d.spec.template.spec.containers[0].image == "busybox:2"
        assert len(await replica_sets(client, ns)) == 2


async def record_progress_reasons(client: Client, ns: str, reasons: list[str]) -> None:
    async with client.watch(Deployment, namespace=ns) as events:
        async for event in events:
            found = util.get_deployment_condition(event.object.status, "Progressing")
            if found is not None and (not reasons or reasons[-1] != found.reason):
                reasons.append(found.reason)


async def test_revision_history_limit_keeps_that_many_old_replica_sets(
    client: Client, api_namespace: str
) -> None:
    ns = api_namespace
    async with running(client, ns, "replicaset", "deployment"):
        await client.create(web(1, revisionHistoryLimit=2))
        await rolled_out(client, ns)
        for n in range(2, 6):
            await set_image(client, ns, f"busybox:{n}")
            await rolled_out(client, ns)

        async def trimmed() -> list[str] | None:
            images = [
                r.spec.template.spec.containers[0].image for r in await replica_sets(client, ns)
            ]
            return images if len(images) == 3 else None

        assert await eventually(trimmed, what="two old replica sets") == [
            "busybox:3",
            "busybox:4",
            "busybox:5",
        ]


async def test_scaling_mid_rollout_is_proportional(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    async with running(client, ns, "replicaset", "deployment"):
        await client.create(web(10, strategy=strategy))
        await rolled_out(client, ns)
        await set_image(client, ns, "busybox:2")  # its pods never become ready

        async def sizes() -> tuple[int, ...]:
            return tuple(r.spec.replicas for r in await replica_sets(client, ns))

        async def stalled() -> bool:
            # 10 + 3 surge; old down by 2; the 5 new pods never become available.
            return await sizes() == (8, 5)

        await eventually(stalled, what="the rollout stalled at 8 old and 5 new")
        patch = {"spec": {"paused": True, "replicas": 20}}
        await client.patch(Deployment, "web", patch, namespace=ns)

        async def scaled() -> bool:
            # 23 allowed = 13 + 10; old: round(8 * 23 / 13) = 14, new: round(5 * 23 / 13) = 9.
            return await sizes() == (14, 9)

        await eventually(scaled, what="old 14 and new 9")


async def test_min_ready_seconds_delays_availability(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    async with running(client, ns, "replicaset", "deployment"):
        await client.create(web(2, minReadySeconds=1))

        async def ready_not_available() -> Deployment | None:
            await make_all_ready(client, ns, SELECTOR)
            d = await client.get(Deployment, "web", namespace=ns)
            s = d.status
            return d if (s.ready_replicas, s.available_replicas) == (2, 0) else None

        await eventually(ready_not_available, what="ready but not yet available")
        became_ready = time.monotonic()
        await rolled_out(client, ns)
        assert time.monotonic() - became_ready >= 0.5
        [rs] = await replica_sets(client, ns)
        assert rs.spec.min_ready_seconds == 1
        # minReadySeconds is not part of the template: changing it rolls nothing out.
        await client.patch(Deployment, "web", {"spec": {"minReadySeconds": 0}}, namespace=ns)

        async def synced() -> bool:
            rss = await replica_sets(client, ns)
            return len(rss) == 1 and rss[0].spec.min_ready_seconds == 0

        await eventually(synced, what="the replica set's minReadySeconds follows")


async def test_progress_deadline_exceeded(client: Client, api_namespace: str) -> None:
    ns = api_namespace
    async with running(client, ns, "replicaset", "deployment"):
        started = time.monotonic()
        await client.create(web(1, progressDeadlineSeconds=2))

        async def timed_out() -> Deployment | None:
            d = await client.get(Deployment, "web", namespace=ns)
            reason = condition(d, "Progressing")
            return d if reason == ("False", util.TIMED_OUT_REASON) else None

        d = await eventually(timed_out, timeout=10, what="ProgressDeadlineExceeded")
        assert time.monotonic() - started >= 2
        assert condition(d, "Available") == ("False", util.MINIMUM_REPLICAS_UNAVAILABLE)

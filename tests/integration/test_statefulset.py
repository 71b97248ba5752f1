"""The StatefulSet controller over the real API server, with a node agent
on the simulated runtime (the set's pods name the agent's node, so no
scheduler is needed), and kpyctl as a user runs it:

- a 3-replica OrderedReady set comes up web-0, web-1, web-2 in order, each
  created only once the one before is Running and Ready;
- a rolling update with `partition: 1` updates web-2 then web-1 and leaves
  web-0 alone; `kpyctl rollout undo sts/web` brings them back;
- `kpyctl scale sts/web --replicas 2` removes web-2.

Claims need no storage provisioner here: the second test checks only that
they are created, named per ordinal, before their pods, and outlive them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio

from kpy.api import errors
from kpy.api.apps.v1 import StatefulSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Node, PersistentVolumeClaim, Pod
from kpy.client.client import WatchEvent
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually, make_ready, running
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

REVISION = "controller-revision-hash"


def web(node_name: str, *, replicas: int = 3, **spec: Any) -> StatefulSet:
    labels = {"app": "web"}
    body: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": "nginx",
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeName": node_name,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "nginx", "image": "nginx:1"}],
            },
        },
        **spec,
    }
    sts: StatefulSet = from_dict(StatefulSet, {"metadata": {"name": "web"}, "spec": body})
    return sts


def _ready(pod: Pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions
    )


async def _record(client: Client, namespace: str, seen: list[tuple[str, str, bool]]) -> None:
    """Appends (event type, pod, ready) for every pod event of the namespace."""
    async with client.watch(Pod, namespace=namespace) as events:
        async for event in events:
            if isinstance(event, WatchEvent) and isinstance(event.object, Pod):
                seen.append((event.type, event.object.metadata.name, _ready(event.object)))


async def _pods(client: Client, namespace: str) -> dict[str, Pod]:
    """The set's live pods by name."""
    listed = await client.list(Pod, namespace=namespace, label_selector="app=web")
    return {
        p.metadata.name: p for p in listed.items if not p.metadata.HasField("deletion_timestamp")
    }


async def _revisions_when_ready(
    client: Client, namespace: str, want: dict[str, str]
) -> dict[str, str] | None:
    """The pods' revision labels once exactly `want`'s pods are there,
    Ready, with those revisions."""
    pods = await _pods(client, namespace)
    got = {name: p.metadata.labels.get(REVISION, "") for name, p in pods.items()}
    return got if got == want and all(_ready(p) for p in pods.values()) else None


@contextlib.asynccontextmanager
async def _node_deleted_after(client: Client, name: list[str]) -> Any:
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            for n in name:
                with contextlib.suppress(errors.NotFound):
                    await client.delete(Node, n)


async def test_ordered_start_partitioned_rolling_update_undo_and_scale(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    nodes: list[str] = []
    seen: list[tuple[str, str, bool]] = []
    async with (
        _node_deleted_after(client, nodes),
        running(client, ns, "statefulset"),
        running_agent(client, runtime="simulated", root=tmp_path) as agent,
        anyio.create_task_group() as watchers,
    ):
        nodes.append(agent.node_name)
        watchers.start_soon(_record, client, ns, seen)
        await anyio.sleep(0.2)  # the watch is open before the first pod
        await client.create(web(agent.node_name))

        async def all_ready() -> StatefulSet | None:
            sts = await client.get(StatefulSet, "web", namespace=ns)
            return sts if sts.status.ready_replicas == 3 else None

        sts = await eventually(all_ready, 60, "web-0, web-1 and web-2 Ready")
        old = sts.status.update_revision
        assert sts.status.current_revision == old
        # Each pod was created only once the one before was Running and Ready.
        added = [name for kind, name, _ in seen if kind == "ADDED"]
        assert added == ["web-0", "web-1", "web-2"], seen
        for before, after in (("web-0", "web-1"), ("web-1", "web-2")):
            created_at = seen.index(("ADDED", after, False))
            assert any((name, ready) == (before, True) for _, name, ready in seen[:created_at]), (
                f"{after} created before {before} was Ready: {seen}"
            )
        pod0 = (await _pods(client, ns))["web-0"]
        assert (pod0.spec.hostname, pod0.spec.subdomain) == ("web-0", "nginx")
        assert pod0.metadata.labels["statefulset.kubernetes.io/pod-name"] == "web-0"
        assert pod0.metadata.labels["apps.kubernetes.io/pod-index"] == "0"
        watchers.cancel_scope.cancel()

        # A rolling update with partition 1: web-2, then web-1; web-0 keeps the old revision.
        patch = {
            "spec": {
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}},
            }
        }
        await client.patch(StatefulSet, "web", patch, namespace=ns)

        async def partitioned() -> StatefulSet | None:
            sts = await client.get(StatefulSet, "web", namespace=ns)
            s = sts.status
            new = s.update_revision
            done = new != old and s.updated_replicas == 2 and s.ready_replicas == 3
            want = {"web-0": old, "web-1": new, "web-2": new}
            return sts if done and await _revisions_when_ready(client, ns, want) else None

        sts = await eventually(partitioned, 60, "web-2 and web-1 updated, web-0 not")
        assert sts.status.current_revision == old, "a partitioned update never completes"
        images = {n: p.spec.containers[0].image for n, p in (await _pods(client, ns)).items()}
        assert images == {"web-0": "nginx:1", "web-1": "nginx:2", "web-2": "nginx:2"}

        code, out, err = await kpyctl(apiserver, ns, "rollout", "status", "sts/web", "--timeout=30")
        assert (code, out) == (
            0,
            "partitioned roll out complete: 2 new pods have been updated...\n",
        ), err
        code, out, err = await kpyctl(apiserver, ns, "rollout", "history", "sts/web")
        assert code == 0, err
        assert out.splitlines()[:4] == [
            "statefulset.apps/web ",
            "REVISION  CHANGE-CAUSE",
            "1         <none>",
            "2         <none>",
        ], out

        # Undo: the first template again, and web-2, web-1 go back to it.
        code, out, err = await kpyctl(apiserver, ns, "rollout", "undo", "sts/web")
        assert (code, out) == (0, "statefulset.apps/web rolled back\n"), err
        want = {"web-0": old, "web-1": old, "web-2": old}
        await eventually(
            lambda: _revisions_when_ready(client, ns, want),
            60,
            "every pod back at the old revision",
        )
        images = {n: p.spec.containers[0].image for n, p in (await _pods(client, ns)).items()}
        assert images == dict.fromkeys(want, "nginx:1")

        # Scale down through the scale subresource: web-2 goes.
        code, out, err = await kpyctl(apiserver, ns, "scale", "sts/web", "--replicas", "2")
        assert (code, out) == (0, "statefulset.apps/web scaled\n"), err
        await eventually(
            lambda: _revisions_when_ready(client, ns, {"web-0": old, "web-1": old}),
            60,
            "web-2 removed",
        )
        code, out, err = await kpyctl(apiserver, ns, "get", "sts")
        assert code == 0, err
        assert out.splitlines()[1].split()[:2] == ["web", "2/2"], out

        code, out, err = await kpyctl(apiserver, ns, "rollout", "restart", "sts/web")
        assert (code, out) == (0, "statefulset.apps/web restarted\n"), err
        sts = await client.get(StatefulSet, "web", namespace=ns)
        assert "kubectl.kubernetes.io/restartedAt" in sts.spec.template.metadata.annotations


async def test_claims_per_ordinal_created_before_pods_and_outliving_them(
    client: Client, api_namespace: str
) -> None:
    """No agent: pods stay Pending, so the set is Parallel to create all at once."""
    ns = api_namespace
    claim_template = {
        "metadata": {"name": "www"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    sts = web("", replicas=2, podManagementPolicy="Parallel", volumeClaimTemplates=[claim_template])
    sts.spec.template.spec.ClearField("node_name")
    async with running(client, ns, "statefulset"):
        await client.create(sts)

        async def both() -> dict[str, Pod] | None:
            pods = await _pods(client, ns)
            return pods if set(pods) == {"web-0", "web-1"} else None

        pods = await eventually(both, 30, "web-0 and web-1 created")
        claims = {
            c.metadata.name: c
            for c in (await client.list(PersistentVolumeClaim, namespace=ns)).items
        }
        assert set(claims) == {"www-web-0", "www-web-1"}
        for i in (0, 1):
            claim = claims[f"www-web-{i}"]
            pod = pods[f"web-{i}"]
            assert claim.metadata.creation_timestamp.ToNanoseconds() <= (
                pod.metadata.creation_timestamp.ToNanoseconds()
            )
            [volume] = [v for v in pod.spec.volumes if v.name == "www"]
            assert volume.persistent_volume_claim.claim_name == f"www-web-{i}"
        await make_ready(client, pods["web-0"])
        await make_ready(client, pods["web-1"])

        # Scaled to 1: web-1 goes, its claim (Retain) stays.
        await client.patch(StatefulSet, "web", {"spec": {"replicas": 1}}, namespace=ns)

        async def web1_gone() -> bool:
            pods = await client.list(Pod, namespace=ns, label_selector="app=web")
            return {p.metadata.name for p in pods.items} == {"web-0"}

        await eventually(web1_gone, 30, "web-1 deleted")
        left = {
            c.metadata.name for c in (await client.list(PersistentVolumeClaim, namespace=ns)).items
        }
        assert left == {"www-web-0", "www-web-1"}


async def test_retention_policy_delete_lets_the_garbage_collector_take_the_claims(
    client: Client, api_namespace: str
) -> None:
    """whenScaled Delete: a scaled-away pod's claim goes with the pod;
    whenDeleted Delete: the rest go with the set."""
    ns = api_namespace
    claim_template = {
        "metadata": {"name": "www"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    sts = web(
        "",
        replicas=2,
        podManagementPolicy="Parallel",
        volumeClaimTemplates=[claim_template],
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Delete"},
    )
    sts.spec.template.spec.ClearField("node_name")

    async def claims() -> set[str]:
        listed = await client.list(PersistentVolumeClaim, namespace=ns)
        return {
            c.metadata.name for c in listed.items if not c.metadata.HasField("deletion_timestamp")
        }

    async with running(client, ns, "statefulset", "garbagecollector"):
        created = await client.create(sts)

        async def both_ready() -> bool:
            pods = await _pods(client, ns)
            for pod in pods.values():
                if not _ready(pod):
                    await make_ready(client, pod)
            return set(pods) == {"web-0", "web-1"} and await claims() == {"www-web-0", "www-web-1"}

        await eventually(both_ready, 30, "web-0 and web-1 with their claims")
        claim0 = await client.get(PersistentVolumeClaim, "www-web-0", namespace=ns)
        assert [(r.kind, r.uid) for r in claim0.metadata.owner_references] == [
            ("StatefulSet", created.metadata.uid)
        ]
        await client.patch(StatefulSet, "web", {"spec": {"replicas": 1}}, namespace=ns)

        async def scaled() -> bool:
            return await claims() == {"www-web-0"}

        await eventually(scaled, 30, "www-web-1 deleted with web-1")
        await client.delete(StatefulSet, "web", namespace=ns)

        async def gone() -> bool:
            return await claims() == set()

        await eventually(gone, 30, "www-web-0 deleted with the set")

"""The DaemonSet controller over the real API server, with the scheduler and
simulated node agents: the seed's fluentd DaemonSet runs one pod on every
node, a tainted node it tolerates included; a node that joins gets one, a
node whose labels stop matching loses its pod.

Nodes are shared by the whole session, so the DaemonSet selects only this
test's nodes (a label named after the namespace) and its pods go to a
scheduler of this test's own."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from kpy.api import errors
from kpy.api.apps.v1 import DaemonSet
from kpy.api.codec import load_manifest
from kpy.api.core.v1 import Node, Pod, Taint
from kpy.component import ElectionOptions
from kpy.scheduler.scheduler import Scheduler
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually, running

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kpy.client import Client
    from tests.integration._agent import AgentHandle

SEED = Path(__file__).parents[1] / "data" / "seed-manifests" / "daemonset-fluentd.yaml"
SELECTOR = "name=fluentd-elasticsearch"


@contextlib.asynccontextmanager
async def scheduling(client: Client, name: str) -> AsyncIterator[None]:
    scheduler = Scheduler(client, scheduler_name=name, election=ElectionOptions(enabled=False))
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        with anyio.fail_after(15):
            await scheduler.leading.wait()
        yield
        tg.cancel_scope.cancel()


def fluentd(namespace: str) -> DaemonSet:
    """The seed manifest, in the test's namespace, for the test's nodes."""
    [ds] = load_manifest(SEED.read_text(), source=str(SEED))
    assert isinstance(ds, DaemonSet)
    ds.metadata.namespace = namespace
    spec = ds.spec.template.spec
    spec.node_selector["kpy.test/daemonset"] = namespace
    spec.scheduler_name = f"s-{namespace}"
    spec.termination_grace_period_seconds = 0
    return ds


@contextlib.asynccontextmanager
async def nodes_deleted_after(client: Client) -> AsyncIterator[list[str]]:
    """Node names to delete when the test ends (the session's API server
    outlives this test's agents)."""
    names: list[str] = []
    try:
        yield names
    finally:
        with anyio.CancelScope(shield=True):
            for name in names:
                with contextlib.suppress(errors.NotFound):
                    await client.delete(Node, name)


async def join(client: Client, agent: AgentHandle, namespace: str, *taints: Taint) -> None:
    """Labels (and taints) the agent's node once it has registered."""

    async def registered() -> Node | None:
        with contextlib.suppress(errors.NotFound):
            return await client.get(Node, agent.node_name)
        return None

    await eventually(registered, what=f"node {agent.node_name} registered")
    while True:
        node = await client.get(Node, agent.node_name)
        node.metadata.labels["kpy.test/daemonset"] = namespace
        node.spec.taints.extend(taints)
        try:
            await client.update(node)
            return
        except errors.Conflict:
            continue


async def unlabel(client: Client, node_name: str) -> None:
    while True:
        node = await client.get(Node, node_name)
        del node.metadata.labels["kpy.test/daemonset"]
        try:
            await client.update(node)
            return
        except errors.Conflict:
            continue


def _summary(pods: list[Pod]) -> list[str]:
    """What a failure message shows of the pods: name, node, phase, readiness."""
    return [
        f"{p.metadata.name} on {p.spec.node_name or '-'}: {p.status.phase or 'no phase'}"
        f"{' deleting' if p.metadata.HasField('deletion_timestamp') else ''}"
        f" {[(c.type, c.status) for c in p.status.conditions]}"
        for p in pods
    ]


async def running_pods_by_node(client: Client, namespace: str, want: set[str]) -> dict[str, Pod]:
    """The DaemonSet's Running and Ready pods by node, once exactly on `want`."""
    seen: list[str] = []

    async def check() -> dict[str, Pod] | None:
        pods = (await client.list(Pod, namespace=namespace, label_selector=SELECTOR)).items
        seen[:] = _summary(pods)
        live = [p for p in pods if not p.metadata.HasField("deletion_timestamp")]
        ready = {
            p.spec.node_name: p
            for p in live
            if p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
        }
        return ready if len(live) == len(want) and set(ready) == want else None

    try:
        return await eventually(check, 60, f"one Ready pod on each of {sorted(want)}")
    except AssertionError as e:
        raise AssertionError(f"{e}; pods: {seen}") from None


async def status_is(client: Client, namespace: str, desired: int) -> DaemonSet:
    async def check() -> DaemonSet | None:
        ds = await client.get(DaemonSet, "fluentd-elasticsearch", namespace=namespace)
        s = ds.status
        numbers = (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready)
        return ds if numbers == (desired, desired, desired) else None

    return await eventually(check, 30, f"status with {desired} desired, current and ready")


async def test_fluentd_runs_on_every_node_and_follows_nodes(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    ns = api_namespace
    master = Taint(key="node-role.kubernetes.io/master", effect="NoSchedule")
    async with (
        nodes_deleted_after(client) as joined,
        scheduling(client, f"s-{ns}"),
        running(client, ns, "daemonset"),
        running_agent(client, runtime="simulated", root=tmp_path) as plain,
        running_agent(client, runtime="simulated", root=tmp_path) as tainted,
    ):
        joined += [plain.node_name, tainted.node_name]
        await join(client, plain, ns)
        await join(client, tainted, ns, master)
        await client.create(fluentd(ns))
        pods = await running_pods_by_node(client, ns, {plain.node_name, tainted.node_name})
        for pod in pods.values():
            assert pod.metadata.labels["controller-revision-hash"]
            assert pod.metadata.owner_references[0].kind == "DaemonSet"
        await status_is(client, ns, 2)

        async with running_agent(client, runtime="simulated", root=tmp_path) as late:
            joined.append(late.node_name)
            await join(client, late, ns)
            await running_pods_by_node(
                client, ns, {plain.node_name, tainted.node_name, late.node_name}
            )
            await status_is(client, ns, 3)
            # The node stops matching the nodeSelector: its pod goes.
            await unlabel(client, late.node_name)
            await running_pods_by_node(client, ns, {plain.node_name, tainted.node_name})
            await status_is(client, ns, 2)


async def images_by_node(client: Client, namespace: str) -> dict[str, str]:
    pods = (await client.list(Pod, namespace=namespace, label_selector=SELECTOR)).items
    return {
        p.spec.node_name: p.spec.containers[0].image
        for p in pods
        if not p.metadata.HasField("deletion_timestamp")
    }


async def test_a_rolling_update_with_surge_replaces_every_pod_and_a_deleted_node_loses_its_pod(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    ns = api_namespace
    ds = fluentd(ns)
    rolling = ds.spec.update_strategy.rolling_update
    rolling.max_unavailable.int_val = 0
    rolling.max_surge.int_val = 1
    async with (
        nodes_deleted_after(client) as joined,
        scheduling(client, f"s-{ns}"),
        running(client, ns, "daemonset"),
        running_agent(client, runtime="simulated", root=tmp_path) as one,
        running_agent(client, runtime="simulated", root=tmp_path) as two,
    ):
        joined += [one.node_name, two.node_name]
        await join(client, one, ns)
        await join(client, two, ns)
        await client.create(ds)
        both = {one.node_name, two.node_name}
        await running_pods_by_node(client, ns, both)
        old_image = ds.spec.template.spec.containers[0].image
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": ds.spec.template.spec.containers[0].name,
                                "image": "fluentd:new",
                            }
                        ]
                    }
                }
            }
        }
        await client.patch(DaemonSet, ds.metadata.name, patch, namespace=ns)

        async def updated() -> DaemonSet | None:
            current = await client.get(DaemonSet, ds.metadata.name, namespace=ns)
            s = current.status
            done = (s.updated_number_scheduled, s.number_available) == (2, 2)
            return (
                current if done and s.observed_generation == current.metadata.generation else None
            )

        try:
            await eventually(updated, 60, "both nodes run the new template")
        except AssertionError as e:
            pods = (await client.list(Pod, namespace=ns, label_selector=SELECTOR)).items
            raise AssertionError(f"{e}; pods: {_summary(pods)}") from None
        pods = await running_pods_by_node(client, ns, both)
        assert {p.spec.containers[0].image for p in pods.values()} == {"fluentd:new"}
        assert old_image != "fluentd:new"

        async with running_agent(client, runtime="simulated", root=tmp_path) as doomed:
            await join(client, doomed, ns)
            await running_pods_by_node(client, ns, {*both, doomed.node_name})
        # The agent is gone; so is its Node: the DaemonSet deletes the pod it had there.
        await client.delete(Node, doomed.node_name)
        await eventually(
            lambda: _equal(images_by_node(client, ns), dict.fromkeys(both, "fluentd:new")),
            30,
            "no pod left for the deleted node",
        )


async def _equal(found: Any, want: Any) -> bool:
    return bool(await found == want)

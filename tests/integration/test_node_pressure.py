"""Node-pressure eviction with a real agent: a threshold the machine always
crosses (`memory.available<1000Ti`) stands in for a machine short of
memory, so nothing has to be filled; the agent is restarted with it once
the pods run on a calm node. The Node says MemoryPressure, the
BestEffort pod is evicted (phase Failed, reason Evicted, a message naming
memory, events on the pod and the Node), and a static pod, critical, runs on.

The agent runs in the test's event loop, as `tests/integration/_agent.py`
runs it, with a short housekeeping interval; every wait is bounded, and
every container left is stopped by pid on the way out.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import anyio
import pytest
import yaml

from kpy.agent.agent import Agent, AgentConfig
from kpy.agent.eviction import EvictionConfig, parse_thresholds
from kpy.agent.node import NodeConfig
from kpy.api import codec, errors
from kpy.api.core.v1 import Event, Node, Pod
from tests.integration._agent import RUNTIMES, new_runtime, stop_everything
from tests.integration._controllers import eventually

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.client import Client

TIMEOUT = 30.0  # seconds any one wait may take, on a loaded machine


def eviction_config(threshold: str) -> EvictionConfig:
    return EvictionConfig(thresholds=parse_thresholds(threshold), housekeeping_interval=0.5)


CALM = "memory.available<1Ki"  # never crossed
SHORT = "memory.available<1000Ti"  # always crossed


def static_manifest(namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "critical", "namespace": namespace},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }


async def phase_of(client: Client, name: str, namespace: str) -> Pod | None:
    """The pod once it runs or ran; None before, including before it exists
    (a static pod's mirror appears a moment after the agent starts)."""
    try:
        got = await client.get(Pod, name, namespace=namespace)
    except errors.NotFound:
        return None
    return got if got.status.phase in ("Running", "Failed", "Succeeded") else None


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_memory_pressure_evicts_the_best_effort_pod(
    client: Client, api_namespace: str, tmp_path: Path, runtime: str
) -> None:
    node_name = f"node-{uuid.uuid4().hex[:8]}"
    root = tmp_path / node_name
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "critical.yaml").write_text(yaml.safe_dump(static_manifest(api_namespace)))

    def config(threshold: str) -> AgentConfig:
        return AgentConfig(
            node=NodeConfig(name=node_name, root_dir=str(root), heartbeat=0.5),
            root_dir=root,
            port=0,
            pod_manifest_path=manifests,
            backoff_base=1.0,
            backoff_max=8.0,
            eviction=eviction_config(threshold),
        )

    try:
        async with anyio.create_task_group() as tg:

            async def start(threshold: str) -> anyio.CancelScope:
                agent = Agent(client, config(threshold), new_runtime(runtime, root, node_name))
                scope = anyio.CancelScope()

                async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
                    with scope:
                        await agent.run(task_status=task_status)

                await tg.start(run)
                return scope

            # The pods start on a calm node, so the hog's container runs (and
            # has a memory figure) before the pressure begins: on a loaded
            # machine a pod evicted before its container started gets the
            # message without one, as the kubelet's does.
            scope = await start(CALM)
            try:
                await start_pods(client, api_namespace, node_name)
                scope.cancel()
                await anyio.sleep(0.1)
                scope = await start(SHORT)  # the new agent adopts the running pods
                evicted = await check_eviction(client, api_namespace, node_name, runtime)
                # A new agent on the same node leaves the evicted pod as it is.
                scope.cancel()
                await anyio.sleep(0.1)
                scope = await start(SHORT)
                await anyio.sleep(2.0)
                again = await client.get(Pod, "hog", namespace=api_namespace)
                assert again.status.phase == "Failed", again.status
                assert again.status.reason == "Evicted"
                assert again.status.container_statuses == evicted.status.container_statuses
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await stop_everything(runtime, root, node_name)


async def start_pods(client: Client, namespace: str, node_name: str) -> None:
    """The static pod (critical) and then the pod to evict (hog), both running."""
    static = f"critical-{node_name}"
    mirror = await eventually(
        lambda: phase_of(client, static, namespace), TIMEOUT, "the static pod running"
    )
    assert mirror is not None
    assert mirror.status.phase == "Running"

    pod = codec.from_dict(
        Pod,
        {
            "metadata": {"name": "hog", "namespace": namespace},
            "spec": {
                "nodeName": node_name,
                "terminationGracePeriodSeconds": 30,
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
            },
        },
    )
    await client.create(pod, namespace=namespace)
    running = await eventually(
        lambda: phase_of(client, "hog", namespace), TIMEOUT, "the hog running"
    )
    assert running is not None
    assert running.status.phase == "Running", running.status


async def check_eviction(client: Client, namespace: str, node_name: str, runtime: str) -> Pod:
    """Checks what a user sees of the eviction; returns the evicted pod."""

    async def pressure() -> str:
        node = await client.get(Node, node_name)
        c = next((c for c in node.status.conditions if c.type == "MemoryPressure"), None)
        return c.reason if c is not None and c.status == "True" else ""

    reason = await eventually(pressure, TIMEOUT, "MemoryPressure True on the Node")
    assert reason == "KubeletHasInsufficientMemory"

    async def evicted() -> Pod | None:
        got = await client.get(Pod, "hog", namespace=namespace)
        return got if got.status.phase == "Failed" else None

    got = await eventually(evicted, TIMEOUT, "the BestEffort pod evicted")
    assert got is not None
    assert got.status.reason == "Evicted"
    assert got.status.message.startswith(
        "The node was low on resource: memory. Threshold quantity: 1000Ti, available: "
    ), got.status.message
    if runtime == "process":  # its container uses memory; a simulated one none
        assert "Container c was using " in got.status.message, got.status.message
        assert "request is 0, has larger consumption of memory." in got.status.message
    states = [s.state for s in got.status.container_statuses]
    assert all(s.HasField("terminated") for s in states), states
    target = [c for c in got.status.conditions if c.type == "DisruptionTarget"]
    assert [(c.status, c.reason, c.message) for c in target] == [
        ("True", "TerminationByKubelet", got.status.message)
    ], got.status.conditions
    assert got.status.qos_class == "BestEffort"

    async def events() -> tuple[Event, Event] | None:
        pod_events = (await client.list(Event, namespace=namespace)).items
        node_events = (await client.list(Event, namespace="default")).items
        on_pod = [e for e in pod_events if e.involved_object.name == "hog"]
        on_node = [e for e in node_events if e.involved_object.name == node_name]
        ev = next((e for e in on_pod if e.reason == "Evicted"), None)
        met = next((e for e in on_node if e.reason == "EvictionThresholdMet"), None)
        return (ev, met) if ev is not None and met is not None else None

    found = await eventually(events, TIMEOUT, "the Evicted and EvictionThresholdMet events")
    assert found is not None
    ev, met = found
    assert ev.type == "Warning"
    assert ev.message == got.status.message
    assert met.message == "Attempting to reclaim memory"
    assert met.involved_object.kind == "Node"

    # Passes go on under pressure; the critical static pod is never evicted.
    await anyio.sleep(2.0)
    still = await client.get(Pod, f"critical-{node_name}", namespace=namespace)
    assert still.status.phase == "Running", still.status
    return got

"""kpy-agent as a real process in a cluster: a real API server, controller
manager, scheduler and agent (process runtime) make a ReplicaSet's pods run;
a killed container is restarted; a crashed agent comes back without
restarting anything."""

from __future__ import annotations

import os
import re
import signal
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.agent.process import AgentProcess
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Event, Pod, PodSpec
from kpy.controllers.process import ControllerManagerProcess
from kpy.scheduler.process import SchedulerProcess
from tests.integration._agent import stop_everything
from tests.integration._controllers import eventually, workload

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


@pytest.fixture
def agent(apiserver: APIServerProcess, tmp_path: Path, namespace: str) -> Iterator[AgentProcess]:
    root = tmp_path / "node"
    process = AgentProcess(
        apiserver.address,
        f"n-{namespace[-6:]}",
        root,
        runtime="process",
        extra_args=("--crashloop-backoff-base", "1"),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        anyio.run(stop_everything, "process", root, process.node_name)


@pytest.fixture
def control_plane(apiserver: APIServerProcess, namespace: str) -> Iterator[None]:
    """A controller manager and a scheduler of this test's own (Leases and
    scheduler name after the test, so no other test's replica interferes)."""
    manager = ControllerManagerProcess(
        apiserver.address,
        extra_args=("--controllers=replicaset", f"--leader-elect-resource-name=cm-{namespace}"),
    )
    scheduler = SchedulerProcess(
        apiserver.address,
        extra_args=(
            f"--scheduler-name=s-{namespace}",
            f"--leader-elect-resource-name=s-{namespace}",
        ),
    )
    manager.start()
    try:
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()
    finally:
        manager.stop()


# "$$$$" is "$$" after Kubernetes' $(VAR) expansion, which turns "$$" into "$".
def replica_set(namespace: str, node: str) -> ReplicaSet:
    spec: dict[str, Any] = {
        "schedulerName": f"s-{namespace}",
        "nodeSelector": {"kubernetes.io/hostname": node},
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "c",
                "image": "busybox",
                "command": ["sh", "-c", "echo pid $$$$; exec sleep 600"],
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
            }
        ],
    }
    rs = workload(ReplicaSet, "web", 2)
    rs.spec.template.spec.CopyFrom(from_dict(PodSpec, spec))
    return rs


async def ready_pods(client: Client, count: int) -> list[Pod] | None:
    pods = (await client.list(Pod, namespace=client.namespace)).items
    ready = [
        p
        for p in pods
        if p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
    ]
    return ready if len(ready) == count else None


async def container_pid(client: Client, pod: str) -> int:
    """The pid the pod's container printed first thing. Running says the
    container started, not that its shell has written yet: under load the
    line lands a moment later, so the log is read until it holds one."""

    async def printed() -> list[str]:
        text = b"".join([chunk async for chunk in client.logs(pod)]).decode()
        return re.findall(r"pid (\d+)", text)

    found = await eventually(printed, 20, f"pod {pod} printing its pid")
    return int(found[-1])


@pytest.mark.usefixtures("control_plane")
async def test_replicaset_pods_run_and_a_killed_container_restarts(
    client: Client, api_namespace: str, agent: AgentProcess
) -> None:
    await client.create(replica_set(api_namespace, agent.node_name))
    pods = await eventually(lambda: ready_pods(client, 2), 30, "2 pods Running and Ready")
    for p in pods:
        assert p.spec.node_name == agent.node_name
        assert p.status.pod_ip.startswith("127.")
    assert pods[0].status.pod_ip != pods[1].status.pod_ip

    victim = pods[0].metadata.name
    pid = await container_pid(client, victim)
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> Pod | None:
        pod = await client.get(Pod, victim)
        status = pod.status.container_statuses[0]
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        return pod if status.restart_count == 1 and ready else None

    pod = await eventually(restarted, 30, "the killed container restarted and Ready")
    last = pod.status.container_statuses[0].last_state.terminated
    assert (last.exit_code, last.reason) == (137, "Error")
    assert await container_pid(client, victim) != pid
    events = [e async for e in _events(client, victim)]
    assert "Started" in events


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _events(client: Client, pod: str) -> Any:
    for e in (await client.list(Event, namespace=client.namespace)).items:
        if e.involved_object.name == pod:
            yield e.reason


async def test_a_crashed_agent_keeps_its_containers(
    client: Client, api_namespace: str, agent: AgentProcess
) -> None:
    pod = from_dict(
        Pod,
        {
            "metadata": {"name": "keep"},
            "spec": {
                "nodeName": agent.node_name,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sh", "-c", "echo pid $$$$; exec sleep 600"],
                    }
                ],
            },
        },
    )
    await client.create(pod)
    [before] = await eventually(lambda: ready_pods(client, 1), 20, "the pod Running")
    pid = await container_pid(client, "keep")

    agent.kill()  # SIGKILL: a crash, nothing cleaned up
    assert alive(pid), "the container died with its agent"
    agent.start()

    [after] = await eventually(lambda: ready_pods(client, 1), 20, "the pod Running again")
    old, new = before.status.container_statuses[0], after.status.container_statuses[0]
    assert new.container_id == old.container_id
    assert new.restart_count == 0
    assert await container_pid(client, "keep") == pid
    await client.delete(Pod, "keep")

    async def gone() -> bool:
        return not (await client.list(Pod, namespace=api_namespace)).items

    await eventually(gone, 20, "the pod deleted by its restarted agent")
    assert not alive(pid)

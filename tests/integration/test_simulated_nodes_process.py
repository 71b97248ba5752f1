"""`kpy-agent --simulated-nodes 3` against a real API server: three Nodes
Ready with their Leases renewed, each running the pods bound to it (and
only those), a deleted pod removed, and a restarted process keeping its
pods' containers; and `kpy up --runtime simulated --nodes 5` running its
nodes in one agent process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.agent.node import LEASE_NAMESPACE
from kpy.agent.process import SimulatedNodesProcess
from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Namespace, Node, Pod
from kpy.cluster.local import ClusterState, running
from tests.e2e._ports import cluster_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


@pytest.fixture
def prefix() -> str:
    return f"sim-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def nodes(
    apiserver: APIServerProcess, prefix: str, tmp_path: Path
) -> Iterator[SimulatedNodesProcess]:
    process = SimulatedNodesProcess(
        apiserver.address, prefix, 3, tmp_path / "nodes", extra_args=("--heartbeat", "1")
    )
    process.start(timeout=60)
    pid = process.pid
    yield process
    process.stop()
    assert not process.running, f"the simulated nodes (pid {pid}) still run after stop()"


def bound_pod(namespace: str, name: str, node: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "registry.local/app:1"}],
            },
        },
    )


async def wait_for(what: str, check: Callable[[], object], seconds: float = 30.0) -> None:
    with anyio.move_on_after(seconds):
        while True:
            if await check():  # type: ignore[misc]
                return
            await anyio.sleep(0.2)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


async def test_simulated_nodes_run_their_own_pods_and_keep_them_across_a_restart(
    client: Client, namespace: str, nodes: SimulatedNodesProcess, prefix: str
) -> None:
    ns = Namespace()
    ns.metadata.name = namespace
    await client.create(ns)
    names = nodes.node_names
    assert names == [f"{prefix}-1", f"{prefix}-2", f"{prefix}-3"]
    try:
        for name in names:
            node = await client.get(Node, name)
            assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
        leases: dict[str, Lease] = {}

        async def leases_made() -> bool:
            for n in names:
                with contextlib.suppress(errors.NotFound):
                    leases[n] = await client.get(Lease, n, namespace=LEASE_NAMESPACE)
            return len(leases) == len(names)

        await wait_for("every node's Lease made", leases_made)

        await client.create(bound_pod(namespace, "on-1", names[0]))
        await client.create(bound_pod(namespace, "on-3", names[2]))
        await client.create(bound_pod(namespace, "elsewhere", f"{prefix}-4"))

        async def running() -> bool:
            pods = [await client.get(Pod, n, namespace=namespace) for n in ("on-1", "on-3")]
            return all(p.status.phase == "Running" for p in pods)

        await wait_for("both pods Running", running)
        on_1 = await client.get(Pod, "on-1", namespace=namespace)
        assert on_1.status.pod_ip
        assert on_1.status.container_statuses[0].ready
        elsewhere = await client.get(Pod, "elsewhere", namespace=namespace)
        assert elsewhere.status.phase == "Pending"
        assert not elsewhere.status.container_statuses

        async def leases_renewed() -> bool:
            for n in names:
                lease = await client.get(Lease, n, namespace=LEASE_NAMESPACE)
                if lease.spec.renew_time == leases[n].spec.renew_time:
                    return False
            return True

        await wait_for("every node's Lease renewed", leases_renewed)

        container = on_1.status.container_statuses[0].container_id
        nodes.stop()
        nodes.start(timeout=60)
        await anyio.sleep(2.0)  # a restarted process that lost them would restart them now
        again = await client.get(Pod, "on-1", namespace=namespace)
        assert again.status.phase == "Running"
        assert again.status.container_statuses[0].container_id == container
        assert again.status.container_statuses[0].restart_count == 0

        await client.delete(Pod, "on-3", namespace=namespace)

        async def gone() -> bool:
            try:
                await client.get(Pod, "on-3", namespace=namespace)
            except errors.NotFound:
                return True
            return False

        await wait_for("the deleted pod removed by its node", gone)
    finally:
        for name in names:
            with contextlib.suppress(errors.NotFound):
                await client.delete(Node, name)


@pytest.mark.cluster
def test_kpy_up_runs_many_simulated_nodes_in_one_agent(tmp_path: Path) -> None:
    port = str(cluster_port())
    kpy = str(Path(sys.executable).parent / "kpy")

    def run(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kpy, *words], capture_output=True, text=True, timeout=180, check=False
        )

    started = run("up", "--dir", str(tmp_path), "--runtime", "simulated", "--nodes", "5",
                  "--port", port)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "starting 5 simulated nodes in one agent" in started.stdout
        state = ClusterState.load(tmp_path)
        assert state is not None
        assert state.nodes == [f"kpy-node-{i}" for i in range(1, 6)]
        node_members = [
            m.name for m in state.members if m.name.startswith(("kpy-agent", "kpy-proxy"))
        ]
        assert node_members == ["kpy-agent-kpy-node"], "one agent process, no proxies"
        assert running(state.member("kpy-agent-kpy-node"))
    finally:
        stopped = run("down", "--dir", str(tmp_path))
    assert stopped.returncode == 0, stopped.stderr
    assert not running(state.member("kpy-agent-kpy-node"))

"""Simulated nodes in one process (`kpy-agent --simulated-nodes N`): names,
flags, the Lease written once per heartbeat, and N nodes sharing one pod
watch, each running only its own pods (against the fake client)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import anyio
import pytest

from kpy.agent.agent import AgentConfig
from kpy.agent.main import _simulated_nodes_problem, config_from
from kpy.agent.node import LEASE_NAMESPACE, NodeAgent, NodeConfig
from kpy.agent.simulated_nodes import SimulatedNodes, node_names
from kpy.api.codec import from_dict
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Node, Pod
from kpy.client.fake import FakeClient

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.client import Client


def test_node_names() -> None:
    cases = [
        ("one", "sim", 1, ["sim-1"]),
        ("three", "kpy-node", 3, ["kpy-node-1", "kpy-node-2", "kpy-node-3"]),
    ]
    for name, prefix, count, want in cases:
        assert node_names(prefix, count) == want, name


def test_settings_that_cannot_run_simulated_nodes_are_refused() -> None:
    cases = [
        ("simulated runtime", ["--simulated-nodes", "3", "--runtime", "simulated"], ""),
        ("runtime left to auto", ["--simulated-nodes", "3"], ""),
        ("zero nodes", ["--simulated-nodes", "0"], "must be at least 1, got 0"),
        (
            "another runtime",
            ["--simulated-nodes", "3", "--runtime", "process"],
            "simulated nodes run the simulated runtime, not --runtime process",
        ),
        (
            "static pods",
            ["--simulated-nodes", "3", "--pod-manifest-path", "/tmp/m"],
            "simulated nodes run no static pods; drop --pod-manifest-path",
        ),
    ]
    for name, argv, want in cases:
        config, settings = config_from(argv)
        runtime = str(settings.get("runtime") or "auto")
        got = _simulated_nodes_problem(int(settings["simulated_nodes"]), runtime, config)
        assert got == want, name


async def test_the_lease_is_renewed_with_one_write_once_held(tmp_path: Path) -> None:
    client = FakeClient()
    agent = NodeAgent(cast("Client", client), NodeConfig(name="n", root_dir=str(tmp_path)))
    await agent.register()
    await agent.renew_lease()  # none yet: read, then made
    client.clear_actions()
    await agent.renew_lease()
    await agent.renew_lease()
    assert [f"{a.verb} {a.kind}" for a in client.actions] == ["update Lease", "update Lease"]
    lease = client.stored(Lease, "n", LEASE_NAMESPACE)
    assert lease is not None
    assert lease.spec.holder_identity == "n"


async def test_a_lease_written_by_someone_else_is_read_again_and_renewed(tmp_path: Path) -> None:
    client = FakeClient()
    agent = NodeAgent(cast("Client", client), NodeConfig(name="n", root_dir=str(tmp_path)))
    await agent.register()
    await agent.renew_lease()
    other = client.stored(Lease, "n", LEASE_NAMESPACE)
    assert other is not None
    other.spec.lease_duration_seconds = 99
    await client.update(other)  # the held copy is stale now
    client.clear_actions()
    await agent.renew_lease()
    verbs = [f"{a.verb} {a.kind}" for a in client.actions]
    assert verbs == ["update Lease", "get Lease", "update Lease"], verbs
    lease = client.stored(Lease, "n", LEASE_NAMESPACE)
    assert lease is not None
    assert lease.spec.lease_duration_seconds == 99


async def test_a_node_given_its_stored_node_reads_none_from_the_api(tmp_path: Path) -> None:
    client = FakeClient()
    config = NodeConfig(name="n", root_dir=str(tmp_path))
    agent = NodeAgent(
        cast("Client", client), config, stored=lambda name: client.stored(Node, name, "")
    )
    await agent.register()
    client.clear_actions()
    await agent.report_status()
    assert [a for a in client.actions if a.verb == "get"] == []


def bound_pod(name: str, node: str) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1"}]},
        },
    )


async def running(client: FakeClient, name: str) -> None:
    """Returns once the stored pod `name` is Running."""
    async with client.watch(Pod, field_selector=f"metadata.name={name}") as events:
        async for event in events:
            if event.object.status.phase == "Running":
                return


async def test_nodes_of_one_process_register_and_run_only_their_own_pods(tmp_path: Path) -> None:
    client = FakeClient()
    node = NodeConfig(name="sim", root_dir=str(tmp_path), heartbeat=3600.0)
    nodes = SimulatedNodes(cast("Client", client), AgentConfig(node=node, root_dir=tmp_path), 3)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            names = await tg.start(nodes.run)
            assert names == ["sim-1", "sim-2", "sim-3"]
            for name in names:
                stored = client.stored(Node, name, "")
                assert stored is not None, name
                ready = [c.status for c in stored.status.conditions if c.type == "Ready"]
                assert ready == ["True"], name
            await client.create(bound_pod("mine", "sim-2"))
            await client.create(bound_pod("theirs", "elsewhere"))
            await running(client, "mine")
            pod = client.stored(Pod, "mine")
            assert pod is not None
            assert [c.name for c in pod.status.container_statuses] == ["app"]
            assert pod.status.pod_ip, "a Running pod has its IP"
            theirs = client.stored(Pod, "theirs")
            assert theirs is not None
            assert theirs.status.phase == "Pending", "another process's node's pod is left alone"
            assert not theirs.status.container_statuses
            assert not theirs.status.host_ip
            tg.cancel_scope.cancel()
    state = tmp_path / "sim-2" / "runtime" / "simulated.json"
    assert await anyio.Path(state).exists(), "each node keeps its state under <root>/<node>"


async def test_fewer_than_one_node_is_refused(tmp_path: Path) -> None:
    node = NodeConfig(name="sim", root_dir=str(tmp_path))
    with pytest.raises(ValueError, match="--simulated-nodes must be at least 1, got 0"):
        SimulatedNodes(cast("Client", FakeClient()), AgentConfig(node=node, root_dir=tmp_path), 0)

"""The agent's node status: a returning agent says Ready again at once
when the node lifecycle controller set its conditions Unknown meanwhile,
and writes nothing when the stored status already says what it would."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from kpy.agent.node import NodeAgent, NodeConfig
from kpy.api.core.v1 import Node
from kpy.client.fake import FakeClient

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.client import Client


async def registered(tmp_path: Path) -> tuple[FakeClient, NodeAgent]:
    client = FakeClient()
    agent = NodeAgent(cast("Client", client), NodeConfig(name="n", root_dir=str(tmp_path)))
    await agent.register()
    client.clear_actions()
    return client, agent


def ready(client: FakeClient) -> str:
    node = client.stored(Node, "n", "")
    assert node is not None
    return next(c.status for c in node.status.conditions if c.type == "Ready")


async def test_conditions_set_unknown_meanwhile_are_reported_again(tmp_path: Path) -> None:
    client, agent = await registered(tmp_path)
    node = client.stored(Node, "n", "")
    assert node is not None
    for c in node.status.conditions:
        c.status = "Unknown"
    client.add(node)
    assert ready(client) == "Unknown"
    await agent.report_status()
    assert ready(client) == "True"


async def test_an_unchanged_status_is_not_written(tmp_path: Path) -> None:
    client, agent = await registered(tmp_path)
    await agent.report_status()
    assert [str(a) for a in client.writes()] == []

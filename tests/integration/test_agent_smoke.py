"""The agent harness itself: a pod bound to the agent's node runs, and is
gone after a delete, on every runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kpy.api import codec, errors
from kpy.api.core.v1 import Pod
from tests.integration._agent import RUNTIMES, running_agent
from tests.integration._controllers import eventually

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.client import Client


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_pod_runs_and_goes(
    client: Client, api_namespace: str, tmp_path: Path, runtime: str
) -> None:
    async with running_agent(client, runtime=runtime, root=tmp_path) as agent:
        pod = codec.from_dict(
            Pod,
            {
                "metadata": {"name": "p"},
                "spec": {
                    "nodeName": agent.node_name,
                    "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "30"]}],
                },
            },
        )
        await client.create(pod)

        async def running() -> Pod | None:
            got = await client.get(Pod, "p")
            return got if got.status.phase == "Running" else None

        got = await eventually(running)
        assert got.status.pod_ip
        await client.delete(Pod, "p", grace_period_seconds=1)

        async def gone() -> bool:
            try:
                await client.get(Pod, "p")
            except errors.NotFound:
                return True
            return False

        await eventually(gone)

"""Running a node agent inside a test, against the session's API server.

    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        ...                      # pods with spec.nodeName = agent.node_name run
        await agent.restart()    # a new Agent on the same state: containers kept

The agent runs in the test's event loop (fast to start, and its failures
surface in the test). Each test gets its own node name, so agents of
different tests never see each other's pods. On exit every container the
runtime still knows of is stopped through a fresh runtime on the same state
directory, so no process a test started outlives it.
"""

from __future__ import annotations

import contextlib
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from kpy.agent.agent import Agent, AgentConfig
from kpy.agent.dns import DNSSettings
from kpy.agent.main import runtime_for_dir
from kpy.agent.node import NodeConfig
from kpy.agent.runtime._ipam import DEFAULT_IP_DIR

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.agent.runtime import Runtime
    from kpy.client import Client

RUNTIMES = ("process", "simulated")


def new_runtime(kind: str, root: Path, node_name: str) -> Runtime:
    """The runtime kpy-agent would use with `--root-dir root` (pod IPs
    claimed where every agent of the machine claims them)."""
    return runtime_for_dir(kind, root, node_name, DEFAULT_IP_DIR)


@dataclass
class AgentHandle:
    client: Client
    runtime_kind: str
    root: Path
    node_name: str
    manifests: Path
    options: dict[str, Any] = field(default_factory=dict)
    agent: Agent | None = None
    _scope: anyio.CancelScope | None = None
    _tg: anyio.abc.TaskGroup | None = None

    def config(self) -> AgentConfig:
        node = NodeConfig(name=self.node_name, root_dir=str(self.root), heartbeat=1.0)
        return AgentConfig(
            node=node,
            root_dir=self.root,
            port=0,
            pod_manifest_path=self.manifests,
            backoff_base=self.options.get("backoff_base", 1.0),
            backoff_max=self.options.get("backoff_max", 8.0),
            probe_time_scale=self.options.get("probe_time_scale", 1.0),
            dns=self.options.get("dns", DNSSettings()),
            tls=self.options.get("tls"),
        )

    async def start(self) -> None:
        assert self._tg is not None
        runtime = new_runtime(self.runtime_kind, self.root, self.node_name)
        self.agent = Agent(self.client, self.config(), runtime)
        scope = anyio.CancelScope()
        self._scope = scope

        async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            assert self.agent is not None
            with scope:
                await self.agent.run(task_status=task_status)

        await self._tg.start(run)

    async def stop(self) -> None:
        """Stops the agent process-like: its containers keep running."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
            await anyio.lowlevel.checkpoint()  # let the agent's finally blocks run
        self.agent = None

    async def restart(self) -> None:
        await self.stop()
        await anyio.sleep(0.05)
        await self.start()


@asynccontextmanager
async def running_agent(
    client: Client, *, runtime: str, root: Path, **options: Any
) -> AsyncIterator[AgentHandle]:
    node_name = f"node-{uuid.uuid4().hex[:8]}"
    node_root = root / node_name
    manifests = root / f"{node_name}-manifests"
    manifests.mkdir(parents=True)
    handle = AgentHandle(client, runtime, node_root, node_name, manifests, dict(options))
    try:
        async with anyio.create_task_group() as tg:
            handle._tg = tg
            await handle.start()
            try:
                yield handle
            finally:
                await handle.stop()
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await stop_everything(runtime, node_root, node_name)


async def stop_everything(kind: str, root: Path, node_name: str) -> None:
    """Stops every sandbox and container left under `root`, by pid (the
    runtime records them), so a test leaves no process behind."""
    runtime = new_runtime(kind, root, node_name)
    await runtime.start()
    try:
        for sandbox in await runtime.list_pod_sandboxes():
            with contextlib.suppress(Exception):
                await runtime.stop_pod_sandbox(sandbox.id)
                await runtime.remove_pod_sandbox(sandbox.id)
        for container in await runtime.list_containers():
            with contextlib.suppress(Exception):
                await runtime.stop_container(container.id, 0)
                await runtime.remove_container(container.id)
    finally:
        await runtime.close()

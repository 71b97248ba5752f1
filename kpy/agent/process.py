"""Run `kpy-agent` as a child process: for tests, benchmarks and the local
cluster launcher (see kpy._process: stopped by pid, dies with its launcher,
log kept in a file). Its containers outlive it, as they would a crash."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kpy._process import ChildProcess

if TYPE_CHECKING:
    from pathlib import Path


class AgentProcess(ChildProcess):
    """`port` 0 picks a free one (`port` is set once it serves)."""

    def __init__(
        self,
        servers: str,
        node_name: str,
        root_dir: Path,
        *,
        runtime: str = "auto",
        port: int = 0,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        detached: bool = False,
    ) -> None:
        args = [
            "--server", servers,
            "--node-name", node_name,
            "--root-dir", str(root_dir),
            "--runtime", runtime,
            "--port", str(port),
            *extra_args,
        ]  # fmt: skip
        super().__init__(
            f"kpy-agent-{node_name}",
            "kpy.agent.main",
            args,
            ready=rf"kpy-agent {re.escape(node_name)} serving on (\S+):(\d+)",
            log_path=log_path,
            detached=detached,
        )
        self.node_name = node_name
        self.port = port

    def start(self, timeout: float = 30.0) -> re.Match[str]:
        match = super().start(timeout)
        self.port = int(match.group(2))
        return match


class SimulatedNodesProcess(ChildProcess):
    """`kpy-agent --simulated-nodes count`: nodes `prefix-1` ...
    `prefix-count` in one process, each with its state under
    `root_dir/<node>`; `start` returns once every node is registered."""

    def __init__(
        self,
        servers: str,
        prefix: str,
        count: int,
        root_dir: Path,
        *,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        detached: bool = False,
    ) -> None:
        args = [
            "--server", servers,
            "--node-name", prefix,
            "--simulated-nodes", str(count),
            "--root-dir", str(root_dir),
            "--runtime", "simulated",
            *extra_args,
        ]  # fmt: skip
        super().__init__(
            f"kpy-agent-{prefix}",
            "kpy.agent.main",
            args,
            ready=r"kpy-agent \d+ simulated nodes ready",
            log_path=log_path,
            detached=detached,
        )
        self.node_names = [f"{prefix}-{i}" for i in range(1, count + 1)]

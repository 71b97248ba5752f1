"""`kpy add-node`, `kpy stop-node`, `kpy start-node`: a running `kpy up`
cluster's nodes.

The new node's processes are copies of node `kpy-node-1`'s: every member
whose name ends in `-kpy-node-1` (its agent, and whatever per-node
companion `up` started for it), each command line with `kpy-node-1`
replaced by the new node's name wherever it stands as a whole word or path
component. So the new agent gets what `up` gave the first one: the API
servers, the runtime, the cluster uid and every `--agent-arg`, with its own
name, root directory (`nodes/<name>/`) and log (`logs/...-<name>.log`).

They are recorded in cluster.json (so `kpy status` shows them and `kpy
down` stops them and the containers of their node) under the supervisor's
`state_lock`, without a process yet (pid 0), and the supervisor is sent
SIGHUP: it starts them as its own children, so that it learns how they exit
and restarts them by its policy (see kpy.cluster.supervisor); with no
supervisor running, they are started here. `add_node` returns once the Node
is Ready; when it is not in time, the processes stay recorded (`kpy down`
stops them) and the error names the agent's log.

`stop_node` marks a node's processes (its agent and companions) `stopped`
in cluster.json, so that the supervisor leaves them down, and sends them
SIGTERM by their recorded pids; its containers keep running, as a stopped
kubelet leaves them. `start_node` clears that mark, or the `lost` one the
supervisor sets on an agent killed from outside, and has the supervisor
start them again from their recorded command lines (SIGHUP, as for
`add_node`); it returns once the Node is Ready again, and the agent adopts
or cleans up the containers it finds.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from kpy.api import errors
from kpy.api.core.v1 import Node
from kpy.client import Client
from kpy.cluster import certs
from kpy.cluster.local import (
    ENV_PREFIX,
    SUPERVISOR,
    ClusterError,
    ClusterState,
    Member,
    client_config,
    running,
    start_time,
)
from kpy.cluster.supervisor import STOPPED, node_of, spawn, state_lock

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.client.config import ClientConfig

TEMPLATE = "kpy-node-1"
_NAME = re.compile(r"kpy-node-(\d+)")


def next_node_name(nodes: list[str]) -> str:
    """`kpy-node-<N+1>`, N the highest number of the `kpy-node-N` names."""
    numbers = [int(m.group(1)) for n in nodes if (m := _NAME.fullmatch(n))]
    return f"kpy-node-{max(numbers, default=0) + 1}"


def renamed(word: str, old: str, new: str) -> str:
    """`word` with `old` replaced by `new` where it stands whole: the word
    itself or a component of it (`.../nodes/old/...`, `agent-old.log`),
    never part of a longer name (`kpy-node-1` in `kpy-node-10`)."""
    return re.sub(rf"(?<!\w){re.escape(old)}(?!\w)", new, word)


def add_node(
    directory: Path,
    name: str = "",
    *,
    progress: Callable[[str], None] = print,
    ready_timeout: float = 120.0,
) -> str:
    """Starts node `name` (default: the next `kpy-node-N`) in the cluster
    that `kpy up` runs from `directory`; see the module docstring. Returns
    the node's name; ClusterError if there is no running cluster, the name
    is taken, or the node is not Ready within `ready_timeout` seconds."""
    state = _running_cluster(directory)
    name = name or next_node_name(state.nodes)
    if name in state.nodes:
        raise ClusterError(f"node {name} is already in the cluster; name another (--name)")
    templates = [m for m in state.members if m.name.endswith(f"-{TEMPLATE}") and m.argv]
    if not any(m.name.startswith("kpy-agent-") for m in templates):
        raise ClusterError(
            f"the cluster in {directory} records no command line of agent {TEMPLATE} "
            "to copy; start it again with `kpy up --nodes N`"
        )
    (directory / "nodes" / name).mkdir(parents=True, exist_ok=True)
    if not state.insecure:
        _node_credentials(directory, name, state.api)
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    supervised = state.supervisor is not None and running(state.supervisor)
    since = time.time()
    added = []
    for template in templates:
        argv = [renamed(word, TEMPLATE, name) for word in template.argv]
        if "--pod-manifest-path" in argv[:-1]:
            Path(argv[argv.index("--pod-manifest-path") + 1]).mkdir(parents=True, exist_ok=True)
        member_name = renamed(template.name, TEMPLATE, name)
        log = renamed(template.log, TEMPLATE, name)
        progress(f"starting {member_name}" + (f" (by {SUPERVISOR})" if supervised else ""))
        pid = 0 if supervised else spawn(argv, log, env)
        added.append(Member(member_name, pid, start_time(pid) if pid else 0, log, argv=tuple(argv)))
    with state_lock(directory):
        recorded = ClusterState.load(directory) or state
        recorded.members += added
        recorded.nodes.append(name)
        recorded.save()
    if state.supervisor is not None and supervised:
        os.kill(state.supervisor.pid, signal.SIGHUP)
    progress(f"waiting for node {name} to be Ready")
    agent_log = next(m.log for m in added if m.name.startswith("kpy-agent-"))
    if not anyio.run(_wait_ready, client_config(directory, state.api), name, since, ready_timeout):
        raise ClusterError(
            f"node {name} is not Ready after {ready_timeout:.0f} s; see {agent_log} "
            "(it stays recorded: `kpy down` stops it)"
        )
    return name


def stop_node(
    directory: Path, name: str, *, progress: Callable[[str], None] = print, grace: float = 10.0
) -> int:
    """Stops node `name`'s processes and marks them `stopped` (see the
    module docstring): SIGTERM, and SIGKILL to those still running after
    `grace` seconds. Returns how many were running; ClusterError if there
    is no running cluster or no such node."""
    state = _running_cluster(directory)
    _check_node(state, name)
    with state_lock(directory):
        recorded = ClusterState.load(directory) or state
        members = _members_of(recorded, name)
        for m in members:
            recorded.replace(replace(m, held=STOPPED))
        recorded.save()
    _tell_supervisor(state)  # a restart it has planned is called off
    live = [m for m in members if running(m)]
    for m in live:
        progress(f"stopping {m.name} (pid {m.pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(m.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(running(m) for m in live) and time.monotonic() < deadline:
        time.sleep(0.1)
    for m in live:
        if running(m):
            progress(f"{m.name} still runs after {grace:g} s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(m.pid, signal.SIGKILL)
    return len(live)


def start_node(
    directory: Path,
    name: str,
    *,
    progress: Callable[[str], None] = print,
    ready_timeout: float = 120.0,
) -> None:
    """Has the supervisor start node `name`'s processes again (see the
    module docstring) and returns once the Node is Ready, with a heartbeat
    from after this call. ClusterError if there is no running cluster or
    supervisor, no such node, or it is not Ready in `ready_timeout` s."""
    state = _running_cluster(directory)
    _check_node(state, name)
    if state.supervisor is None or not running(state.supervisor):
        raise ClusterError(
            f"{SUPERVISOR} does not run (see {directory / 'logs' / 'kpy-supervisor.log'}), "
            "and it is what starts a node; restart the cluster with `kpy down` and `kpy up`"
        )
    since = time.time()
    with state_lock(directory):
        recorded = ClusterState.load(directory) or state
        members = _members_of(recorded, name)
        for m in members:
            recorded.replace(replace(m, held=""))
        recorded.save()
    down = [m.name for m in members if not running(m)]
    if down:
        progress(f"starting {', '.join(down)} (by {SUPERVISOR})")
    else:
        progress(f"the processes of node {name} all run already")
    os.kill(state.supervisor.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30.0
    while down and time.monotonic() < deadline:
        now = {m.name: m for m in _members_of(ClusterState.load(directory) or state, name)}
        for member_name in list(down):
            if running(now[member_name]):
                progress(f"{member_name} started (pid {now[member_name].pid})")
                down.remove(member_name)
        time.sleep(0.2)
    if down:
        raise ClusterError(
            f"{SUPERVISOR} did not start {', '.join(down)} in 30 s; "
            f"see {directory / 'logs' / 'kpy-supervisor.log'}"
        )
    progress(f"waiting for node {name} to be Ready")
    agent_log = next(m.log for m in members if m.name.startswith("kpy-agent-"))
    if not anyio.run(_wait_ready, client_config(directory, state.api), name, since, ready_timeout):
        raise ClusterError(f"node {name} is not Ready after {ready_timeout:.0f} s; see {agent_log}")


def _running_cluster(directory: Path) -> ClusterState:
    state = ClusterState.load(directory)
    if state is None or not state.alive():
        raise ClusterError(f"no kpy cluster runs from {directory}; start one with `kpy up`")
    return state


def _check_node(state: ClusterState, name: str) -> None:
    if name not in state.nodes:
        raise ClusterError(
            f"node {name!r} is not in the cluster in {state.directory} "
            f"(its nodes: {', '.join(state.nodes) or 'none'}); see `kpy status`"
        )
    if not any(m.name.startswith("kpy-agent-") for m in _members_of(state, name)):
        raise ClusterError(f"the cluster in {state.directory} records no agent of node {name}")


def _members_of(state: ClusterState, node: str) -> list[Member]:
    """Node `node`'s processes: its agent and companions (kpy-proxy)."""
    return [m for m in state.members if node_of(m.name, state.nodes) == node]


def _tell_supervisor(state: ClusterState) -> None:
    if state.supervisor is not None and running(state.supervisor):
        os.kill(state.supervisor.pid, signal.SIGHUP)


def _node_credentials(directory: Path, name: str, servers: str) -> None:
    """Node `name`'s certificates and client config, which its copied
    command line names (kpy-node-1's, renamed)."""
    try:
        certs.ClusterPKI.open(directory).agent_flags(name, servers)
    except certs.CertError as e:
        raise ClusterError(str(e)) from None


async def _wait_ready(config: ClientConfig, name: str, since: float, seconds: float) -> bool:
    """Whether node `name` is Ready, by a heartbeat at or after `since`
    (seconds since the epoch; with a second of slack for clocks' rounding),
    within `seconds`."""
    deadline = time.monotonic() + seconds
    async with Client(config, retry_timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                node = await client.get(Node, name)
            except errors.NotFound:
                node = None
            if node is not None and any(
                c.type == "Ready"
                and c.status == "True"
                and c.last_heartbeat_time.seconds + 1 >= since
                for c in node.status.conditions
            ):
                return True
            await anyio.sleep(0.5)
    return False

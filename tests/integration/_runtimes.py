"""A kit for testing container runtimes: each runtime under one harness.

`RuntimeUnderTest` drives one runtime (docker, process or simulated) the
way the conformance suite needs: sandboxes and containers made from
*behaviours* ("runs until stopped", "exits with 3") that each runtime is
asked for in its own terms (a shell command for the two that run
processes; the pod's `sim.kpy.io/` annotations for the simulated one), the
event stream, and a fresh runtime on the same store (an agent restart).

Clean-up is per runtime and touches only what the test made: the process
runtime's state lives in the test's tmp_path (and every process it recorded
is checked dead by pid); the Docker runtime works on a node name and a
cluster uid of the test's own, removed through a fresh runtime and then
swept by label; the simulated one keeps its state file in tmp_path.

Docker is tested where kpy's engine answers (`docker_host_or_skip`); under
CI (env CI set) an engine that does not answer fails the test instead.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiodocker
import anyio
import pytest

from kpy.agent.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    ContainerConfig,
    ContainerEvent,
    ContainerState,
    ContainerStatus,
    PodSandbox,
    PodSandboxConfig,
    Runtime,
)
from kpy.agent.runtime.base import DEFAULT_CLUSTER_UID
from kpy.agent.runtime.docker import (
    LABEL_CLUSTER,
    LABEL_NODE,
    DockerRuntime,
    default_docker_host,
    docker_answers,
)
from kpy.agent.runtime.process import ProcessRuntime
from kpy.agent.runtime.simulated import ANNOTATION_PREFIX, SimulatedRuntime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

KINDS: Final = ("process", "simulated", "docker")
IMAGE: Final = "kpy.local/busybox:latest"
ENGINE: Final = (
    "bash deploy/docker-engine.sh install && bash deploy/docker-engine.sh start "
    "&& bash deploy/docker-engine.sh image"
)
EVENT_TIMEOUT: Final = 15.0
# Runs until stopped, and exits 0 at once on SIGTERM (a shell that is pid 1
# of a container ignores it otherwise).
UNTIL_STOPPED: Final = "trap 'exit 0' TERM; sleep 3600 & wait"
# The same, saying so once its trap is set: a stop sent before that (the
# runtime reports the start when the exec worked, before the shell has read
# its first command) would end it with 143.
TRAPPED: Final = "trapped"
UNTIL_STOPPED_SAYING_SO: Final = f"trap 'exit 0' TERM; echo {TRAPPED}; sleep 3600 & wait"


def docker_host_or_skip() -> str:
    """The engine's address if it answers; else skips the test (fails it
    under CI, where the Docker cases must run)."""
    host = default_docker_host()
    if docker_answers(host, timeout=10.0):  # a loaded engine answers late; a missing one at once
        return host
    message = f"no Docker engine answers at {host}; start one with: {ENGINE}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# -- behaviours ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a container does once started: exit with `exit_code` after
    `after` seconds, or (`after` None) run until stopped, exiting 0 on its
    stop signal unless `ignores_stop_signal` (then only a kill ends it,
    with 137)."""

    after: float | None = None
    exit_code: int = 0
    ignores_stop_signal: bool = False

    def script(self) -> str:
        if self.after is None:
            # A container's pid 1 without a handler ignores SIGTERM.
            return "exec sleep 3600" if self.ignores_stop_signal else UNTIL_STOPPED_SAYING_SO
        pause = f"sleep {self.after}; " if self.after else ""
        return f"{pause}exit {self.exit_code}"

    def annotations(self, container: str) -> dict[str, str]:
        if self.after is None:
            return {}
        prefix = f"{ANNOTATION_PREFIX}{container}."
        return {f"{prefix}exit-after": str(self.after), f"{prefix}exit-code": str(self.exit_code)}


RUNS_UNTIL_STOPPED: Final = Behaviour()
RUNS_UNTIL_KILLED: Final = Behaviour(ignores_stop_signal=True)


def exits(code: int, after: float = 0.0) -> Behaviour:
    return Behaviour(after=after, exit_code=code)


async def check_started_then_exited(
    runtime: Runtime,
    next_event: Callable[[str], Awaitable[ContainerEvent]],
    container_id: str,
    exit_code: int,
    reason: str,
    labels: Mapping[str, str],
) -> ContainerStatus:
    """Asserts that the container's next events are "started" then "exited"
    with `exit_code` and its `labels`, and that its status says the same
    (with `reason` and times in order); returns the status."""
    started = await next_event(container_id)
    exited = await next_event(container_id)

    assert (started.kind, started.exit_code) == ("started", None)
    assert (exited.kind, exited.exit_code) == ("exited", exit_code)
    assert exited.labels == labels
    status = await runtime.container_status(container_id)
    assert status.state is ContainerState.EXITED
    assert (status.exit_code, status.reason) == (exit_code, reason)
    assert status.started_at is not None
    assert status.finished_at is not None
    assert status.finished_at >= status.started_at
    return status


# -- processes ------------------------------------------------------------------------


def alive(pid: int, start_time: int | None = None) -> bool:
    """Whether the process runs: zombies (waiting for init to reap them) and
    a reused pid do not count."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = data[data.rindex(b")") + 2 :].split()
    if start_time is not None and int(fields[19]) != start_time:
        return False
    return fields[0] != b"Z"


async def wait_dead(pid: int, start_time: int | None = None) -> None:
    """Returns once the process has exited (a pidfd turns readable then)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if alive(pid, start_time):  # checked after opening: the fd pins the process
            with anyio.fail_after(5):
                await anyio.wait_readable(fd)
    finally:
        os.close(fd)


def recorded_pids(state_dir: Path) -> list[tuple[int, int]]:
    """(pid, start time) of every shim and container the process runtime
    ever started under `state_dir`."""
    found = []
    for path in state_dir.glob("containers/*/running.json"):
        record = json.loads(path.read_text())
        found.append((record["pid"], record["pid_start_time"]))
        found.append((record["shim_pid"], record["shim_start_time"]))
    return found


# -- Docker ---------------------------------------------------------------------------


async def sweep(host: str, node: str, cluster: str | None = None) -> int:
    """Force-removes every container labelled for `node` (of `cluster` if
    given); how many there were."""
    labels = [f"{LABEL_NODE}={node}"]
    if cluster is not None:
        labels.append(f"{LABEL_CLUSTER}={cluster}")
    async with aiodocker.Docker(url=host) as docker:
        filters = json.dumps({"label": labels})
        found = await docker.containers.list(all=True, filters=filters)
        for container in found:
            await container.delete(force=True)
    return len(found)


async def remove_everything(host: str, node: str, cluster: str = DEFAULT_CLUSTER_UID) -> int:
    """Removes the node's sandboxes and containers through a fresh runtime
    (its records are Docker's labels), then sweeps, whatever happened;
    returns what the runtime left for the sweep."""
    cleaner = DockerRuntime(node_name=node, cluster_uid=cluster, docker_host=host)
    try:
        await cleaner.start()
        for sandbox in await cleaner.list_pod_sandboxes():
            await cleaner.remove_pod_sandbox(sandbox.id)
        for container in await cleaner.list_containers():
            await cleaner.remove_container(container.id)
    finally:
        with anyio.CancelScope(shield=True):
            await cleaner.close()
            left = await sweep(host, node, cluster)
    return left


# -- the harness ----------------------------------------------------------------------


@dataclass
class RuntimeUnderTest:
    """One runtime of `kind` with its store in `tmp`, on a node name and a
    cluster uid of this test's own."""

    kind: str
    tmp: Path
    docker_host: str = ""
    node_name: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    cluster_uid: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    runtime: Runtime = field(init=False)
    events: AsyncIterator[ContainerEvent] = field(init=False)

    def new_runtime(self) -> Runtime:
        """A runtime on this test's store: after `close()` of the previous
        one, it finds what that one left (an agent restart)."""
        if self.kind == "process":
            return ProcessRuntime(
                self.tmp / "state",
                ip_dir=self.tmp / "ips",
                node_name=self.node_name,
                cluster_uid=self.cluster_uid,
                log_poll_interval=0.02,
            )
        if self.kind == "simulated":
            return SimulatedRuntime(node_name=self.node_name, state_file=self.tmp / "sim.json")
        assert self.kind == "docker", self.kind
        return DockerRuntime(
            node_name=self.node_name, cluster_uid=self.cluster_uid, docker_host=self.docker_host
        )

    async def open(self) -> None:
        """A new runtime, started, with its event stream taken."""
        self.runtime = self.new_runtime()
        await self.runtime.start()
        self.events = self.runtime.events()

    async def clean_up(self) -> None:
        """Removes everything the test left, through a fresh runtime; fails
        if anything outlived that (a process, a Docker container)."""
        with anyio.CancelScope(shield=True):
            await self.runtime.close()
            if self.kind == "docker":
                left = await remove_everything(self.docker_host, self.node_name, self.cluster_uid)
                assert left == 0, f"{left} container(s) outlived the runtime's clean-up"
                return
            cleaner = self.new_runtime()
            await cleaner.start()
            for sandbox in await cleaner.list_pod_sandboxes():
                await cleaner.remove_pod_sandbox(sandbox.id)
            await cleaner.close()
            for pid, start_time in recorded_pids(self.tmp / "state"):
                await wait_dead(pid, start_time)
                assert not alive(pid, start_time), f"process {pid} outlived its container"

    def sandbox_config(
        self, name: str = "pod", annotations: Mapping[str, str] | None = None
    ) -> PodSandboxConfig:
        return PodSandboxConfig(
            namespace="default",
            name=name,
            uid=f"{name}-{uuid.uuid4().hex[:8]}",
            labels={LABEL_POD_NAME: name},
            annotations=dict(annotations or {}),
        )

    async def sandbox(
        self, name: str = "pod", annotations: Mapping[str, str] | None = None
    ) -> tuple[PodSandbox, PodSandboxConfig]:
        config = self.sandbox_config(name, annotations)
        return await self.runtime.run_pod_sandbox(config), config

    def container_config(self, name: str, behaviour: Behaviour, **options: Any) -> ContainerConfig:
        return ContainerConfig(
            name=name,
            image=IMAGE,
            command=["sh", "-c", behaviour.script()],
            labels={LABEL_CONTAINER_NAME: name},
            log_path=str(self.tmp / "logs" / f"{name}-{uuid.uuid4().hex[:8]}.log"),
            **options,
        )

    async def create(
        self, behaviour: Behaviour, *, name: str = "c", pod: str = "pod"
    ) -> tuple[PodSandbox, str]:
        """A new sandbox (of a pod whose annotations ask the simulated
        runtime for `behaviour`) with one container, not started."""
        sandbox, config = await self.sandbox(pod, behaviour.annotations(name))
        container_id = await self.runtime.create_container(
            sandbox.id, self.container_config(name, behaviour), config
        )
        return sandbox, container_id

    async def run(
        self, behaviour: Behaviour, *, name: str = "c", pod: str = "pod"
    ) -> tuple[PodSandbox, str]:
        """`create`, then started (and, if it runs until stopped, with its
        stop signal handled)."""
        sandbox, container_id = await self.create(behaviour, name=name, pod=pod)
        await self.runtime.start_container(container_id)
        if behaviour == RUNS_UNTIL_STOPPED:
            await self.stoppable(container_id)
        return sandbox, container_id

    async def stoppable(self, container_id: str) -> None:
        """Returns once a RUNS_UNTIL_STOPPED container has set its trap (at
        once on the simulated runtime, which runs no shell)."""
        if self.kind == "simulated":
            return
        with anyio.fail_after(EVENT_TIMEOUT):
            while True:
                said = b"".join([chunk async for chunk in self.runtime.logs(container_id)])
                if TRAPPED.encode() in said:
                    return
                await anyio.sleep(0.02)

    async def next_event(
        self, container_id: str, stream: AsyncIterator[ContainerEvent] | None = None
    ) -> ContainerEvent:
        """The next event of `container_id` on `stream` (the harness's by
        default), skipping other containers'."""
        with anyio.fail_after(EVENT_TIMEOUT):
            async for event in stream or self.events:
                if event.container_id == container_id:
                    return event
        raise AssertionError("the events stream ended")

"""The simulated runtime: sandboxes and containers that exist only as state.

For scale tests of thousands of pods on one machine. No process, no task and
no file is made per container: every operation is O(1) (a sandbox's
operations are O(its containers)), and a container that must exit later
does so from one `loop.call_later` timer.

A started container runs until stopped, unless its pod's annotations (read
from its sandbox's `PodSandboxConfig.annotations`) say otherwise. With `<c>`
the container's name:

- `sim.kpy.io/<c>.exit-after`: seconds after its start at which it exits,
  with `sim.kpy.io/<c>.exit-code` (default 0). Init containers (labelled
  `LABEL_CONTAINER_INIT`) exit at once unless this says otherwise.
- `sim.kpy.io/<c>.fail-probes`: a comma list of the probe kinds (`startup`,
  `readiness`, `liveness`) that fail; with `sim.kpy.io/<c>.fail-probes-for`
  they fail only for that many seconds after the start, then pass.
  `probe()` (not part of the `Runtime` interface: the agent asks it of this
  runtime alone) always answers, so a simulated container's probes never
  run for real.
- `sim.kpy.io/<c>.image-pull: fail`: `create_container` raises
  ImagePullError. `pull_image` has no annotations to read, so it fails for
  every image whose name contains `sim.kpy.io/pull-error` instead.
- `sim.kpy.io/<c>.exec-exit-code`: the exit code of every exec (default 0).
- `sim.kpy.io/<c>.memory` (a quantity such as `64Mi`, default 4Mi) and
  `sim.kpy.io/<c>.cpu-millis` (default 0): what `stats()` reports while it
  runs; CPU time accrues at that rate.

An annotation that does not parse makes `create_container` raise
ContainerCreateError naming it.

Stopping: `stop_container` is obeyed at once and the container exits with
code 0 (a well-behaved program ending on its stop signal), whatever the
timeout; `stop_pod_sandbox` and `remove_container` kill what still runs,
which exits with 137 (128 + SIGKILL), reason "Error". A container starts
once (as in the CRI); a restart is a new container.

Sandbox IPs come from `_ipam.NodeRangeIPAM`: 10.x.y.z, x fixed by a hash of
the node name, y.z unique among this runtime's ready sandboxes and freed
when a sandbox stops.

Events mean what `base` says (kept from `start()` to `close()`). The
runtime also works without `start()` (for unit tests of the agent): it
then keeps no events.

Persistence: with `state_file`, the whole state is written there atomically
(`_statefile`), at most once per `SAVE_INTERVAL` however many operations
happen, and on `close()`. A new instance given the same file
recovers everything in `start()`: running containers keep running and their
exit-after timers count from their recorded start time (one whose time
passed while no runtime ran exits at once, with the finish time it would
have had).

Timestamps (created, started, finished) come from `clock`, wall-clock
seconds by default; timers run on the event loop. All methods must be called
from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import shlex
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from kpy.agent.runtime._events import EventStream
from kpy.agent.runtime._ipam import NodeRangeIPAM
from kpy.agent.runtime._records import (
    Records,
    config_to_json,
    container_config_from_json,
    sandbox_config_from_json,
)
from kpy.agent.runtime._statefile import write_json
from kpy.agent.runtime.base import (
    LABEL_CONTAINER_INIT,
    SECURITY_FIELDS,
    ContainerConfig,
    ContainerCreateError,
    ContainerEvent,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecOutput,
    ImageNeverPullError,
    ImagePullError,
    PodSandbox,
    PodSandboxConfig,
    RuntimeError_,
    SandboxState,
)
from kpy.api.quantity import Quantity

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "ANNOTATION_PREFIX",
    "PULL_ERROR_MARKER",
    "SAVE_INTERVAL",
    "SimulatedRuntime",
    "SimulatedStatistics",
]

log = logging.getLogger("kpy.agent.runtime.simulated")

ANNOTATION_PREFIX: Final = "sim.kpy.io/"
# An image whose name contains this fails to pull.
PULL_ERROR_MARKER: Final = "sim.kpy.io/pull-error"
# Seconds between two writes of the state file, at most one write per interval.
SAVE_INTERVAL: Final = 0.5

_PROBE_KINDS: Final = frozenset({"startup", "readiness", "liveness"})
_DEFAULT_MEMORY_BYTES: Final = 4 * 1024 * 1024
_KILLED_EXIT_CODE: Final = 137
_STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class SimulatedStatistics:
    """Counts for tests and metrics; `saves` is how often the state file was written."""

    sandboxes: int
    containers: int
    running: int
    saves: int


@dataclass(frozen=True, slots=True)
class _Behaviour:
    """What a container's annotations ask of it, parsed once at creation."""

    exit_after: float | None = None
    exit_code: int = 0
    fail_probes: frozenset[str] = frozenset()
    fail_probes_for: float | None = None
    image_pull_fail: bool = False
    exec_exit_code: int = 0
    memory_bytes: int = _DEFAULT_MEMORY_BYTES
    cpu_millis: int = 0


@dataclass(slots=True)
class _Sandbox:
    id: str
    config: PodSandboxConfig
    ip: str
    state: SandboxState
    created_at: float
    containers: set[str] = dataclasses.field(default_factory=set)
    # The config as saved: made at the first save, as configs never change.
    config_json: dict[str, Any] | None = None


@dataclass(slots=True)
class _Container:
    id: str
    sandbox_id: str
    config: ContainerConfig
    behaviour: _Behaviour
    image_id: str
    created_at: float
    state: ContainerState = ContainerState.CREATED
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    removed: bool = False
    config_json: dict[str, Any] | None = None
    exit_timer: asyncio.TimerHandle | None = None
    # Set (and dropped) on every change of state; created only for a follower.
    changed: asyncio.Event | None = None


class SimulatedRuntime:
    """A `Runtime` without processes; see the module docstring."""

    name = "simulated"
    # It runs nothing: every security setting is recorded (in the config)
    # and accepted.
    security_fields = SECURITY_FIELDS

    def __init__(
        self,
        *,
        node_name: str,
        state_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._node_name = node_name
        self._state_file = state_file
        self._clock = clock
        self._ips = NodeRangeIPAM(node_name)
        self._records: Records[_Sandbox, _Container] = Records(
            f"on node {node_name}", noun="simulated "
        )
        self._events = EventStream(self.name)
        self._save_timer: asyncio.TimerHandle | None = None
        self._saves = 0
        self._closed = False

    # --- life ---

    async def start(self) -> None:
        """Starts keeping events, and recovers the state file's sandboxes and
        containers, if there is one."""
        self._events.open()
        if self._state_file is None or not self._state_file.exists():
            return
        state = _load_state(self._state_file)
        for sandbox in state.sandboxes:
            self._records.sandboxes[sandbox.id] = sandbox
        self._ips.reclaim(s.ip for s in state.sandboxes if s.state is SandboxState.READY)
        for container in state.containers:
            self._records.containers[container.id] = container
            self._records.sandboxes[container.sandbox_id].containers.add(container.id)
        for container in state.containers:
            if container.state is ContainerState.RUNNING:
                self._arm_exit_timer(container)
        log.info(
            "recovered simulated state",
            extra={"file": str(self._state_file), "containers": len(self._records.containers)},
        )

    async def close(self) -> None:
        """Cancels every timer, ends the event stream and log followers, and
        writes the state file; containers keep "running" in that file for
        the next instance. Nothing else may be called after it."""
        if self._closed:
            return
        self._closed = True
        for container in self._records.containers.values():
            _cancel_timer(container)
            self._notify(container)
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        self._save_now()
        self._events.close()

    def statistics(self) -> SimulatedStatistics:
        running = sum(
            1 for c in self._records.containers.values() if c.state is ContainerState.RUNNING
        )
        return SimulatedStatistics(
            sandboxes=len(self._records.sandboxes),
            containers=len(self._records.containers),
            running=running,
            saves=self._saves,
        )

    # --- images ---

    async def image_user(self, image: str) -> str | None:
        """Unknown: a simulated container runs as nobody, so runAsNonRoot is
        not checked against its image."""
        return None

    async def pull_image(self, image: str, policy: str) -> str:
        """Every image is present, except those whose name contains
        `PULL_ERROR_MARKER`: they fail (ImageNeverPullError under policy Never)."""
        if PULL_ERROR_MARKER in image:
            if policy == "Never":
                raise ImageNeverPullError(
                    f'container image "{image}" is not present with pull policy of Never'
                )
            raise ImagePullError(
                f'simulated pull of image "{image}" failed: its name contains '
                f'"{PULL_ERROR_MARKER}"; use another image name'
            )
        return _image_id(image)

    # --- sandboxes ---

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        sandbox_id = _new_id()
        sandbox = _Sandbox(
            id=sandbox_id,
            config=config,
            ip=self._ips.allocate(sandbox_id),
            state=SandboxState.READY,
            created_at=self._clock(),
        )
        self._records.sandboxes[sandbox.id] = sandbox
        self._changed()
        return _sandbox_view(sandbox)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandbox(sandbox_id)
        for container_id in sandbox.containers:
            self._kill(self._records.containers[container_id])
        if sandbox.state is SandboxState.READY:
            sandbox.state = SandboxState.NOT_READY
            self._ips.release(sandbox.ip)
            self._changed()
            labels = sandbox.config.labels
            self._events.emit(
                ContainerEvent(sandbox_id, sandbox_id, "sandbox_stopped", None, labels)
            )

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Stops the sandbox if it is ready and removes it with its containers;
        removing a sandbox that is gone is a no-op."""
        if sandbox_id not in self._records.sandboxes:
            return
        await self.stop_pod_sandbox(sandbox_id)
        sandbox = self._records.sandboxes.pop(sandbox_id)
        for container_id in list(sandbox.containers):
            self._forget(self._records.containers[container_id])
        self._changed()

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        return [_sandbox_view(sandbox) for sandbox in self._records.sandboxes.values()]

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        return _sandbox_view(self._sandbox(sandbox_id))

    # --- containers ---

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox: PodSandboxConfig
    ) -> str:
        """Raises ContainerCreateError for an annotation that does not parse
        and ImagePullError when `image-pull: fail` asks for it."""
        owner = self._records.ready_sandbox(sandbox_id, config.name, sandbox)
        behaviour = _behaviour_for(config, owner.config)
        if behaviour.image_pull_fail:
            raise ImagePullError(
                f'simulated pull of image "{config.image}" failed: annotation '
                f"{ANNOTATION_PREFIX}{config.name}.image-pull=fail"
            )
        container = _Container(
            id=_new_id(),
            sandbox_id=sandbox_id,
            config=config,
            behaviour=behaviour,
            image_id=_image_id(config.image),
            created_at=self._clock(),
        )
        self._records.containers[container.id] = container
        owner.containers.add(container.id)
        self._changed()
        return container.id

    async def start_container(self, container_id: str) -> None:
        container = self._container(container_id)
        if container.state is not ContainerState.CREATED:
            raise RuntimeError_(
                f"cannot start container {container_id} ({container.config.name}): it is "
                f"{container.state.value}, and a container starts only once; create a new one"
            )
        container.state = ContainerState.RUNNING
        container.started_at = self._clock()
        self._notify(container)
        self._emit(container, "started")
        self._changed()
        # Last: with exit-after 0 the container exits right here.
        self._arm_exit_timer(container)

    async def stop_container(
        self,
        container_id: str,
        timeout: float,  # noqa: ASYNC109 - the Runtime protocol's signature
    ) -> None:
        """Exits the container at once with code 0; a no-op once exited."""
        container = self._container(container_id)
        if container.state is ContainerState.EXITED:
            return
        self._finish(container, 0)

    async def remove_container(self, container_id: str) -> None:
        """Kills the container if it runs, then forgets it; removing a
        container that is gone is a no-op."""
        container = self._records.containers.get(container_id)
        if container is None:
            return
        self._kill(container)
        self._records.sandboxes[container.sandbox_id].containers.discard(container_id)
        self._forget(container)
        self._changed()

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        if sandbox_id is None:
            containers: Sequence[_Container] = list(self._records.containers.values())
        else:
            sandbox = self._records.sandboxes.get(sandbox_id)
            ids = sandbox.containers if sandbox is not None else ()
            containers = [self._records.containers[cid] for cid in ids]
        return [_status_view(container) for container in containers]

    async def container_status(self, container_id: str) -> ContainerStatus:
        return _status_view(self._container(container_id))

    # --- inside containers ---

    async def exec(
        self,
        container_id: str,
        command: Sequence[str],
        *,
        stdin: AsyncIterator[bytes] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the Runtime protocol's signature
    ) -> AsyncIterator[ExecOutput]:
        """Ends at once with the `exec-exit-code` annotation's code; a failing
        exec also writes one line on stderr. `stdin` is not read."""
        container = self._running(container_id, "exec in")
        code = container.behaviour.exec_exit_code
        if code != 0:
            line = f"simulated exec of {shlex.join(command)} exited with code {code}\n"
            yield ExecOutput(stream=2, data=line.encode())
        yield ExecOutput(exit_code=code)

    async def logs(
        self, container_id: str, *, follow: bool = False, tail_lines: int = 0
    ) -> AsyncIterator[bytes]:
        """One line once started; `tail_lines` <= 0 means every line. With
        `follow`, waits until the container has exited (or is removed)."""
        container = self._container(container_id)
        sent = 0
        if tail_lines > 0:
            sent = max(0, len(_log_lines(container)) - tail_lines)
        while True:
            lines = _log_lines(container)
            for line in lines[sent:]:
                yield line
            sent = len(lines)
            if not follow or self._closed or container.removed:
                return
            if container.state is ContainerState.EXITED:
                return
            if container.changed is None:
                container.changed = asyncio.Event()
            await container.changed.wait()

    async def stats(self, container_id: str) -> ContainerStats:
        container = self._container(container_id)
        now = self._clock()
        running = container.state is ContainerState.RUNNING
        return ContainerStats(
            container_id=container_id,
            timestamp=now,
            cpu_usage_ns=int(container.behaviour.cpu_millis * 1e6 * _ran_for(container, now)),
            memory_bytes=container.behaviour.memory_bytes if running else 0,
        )

    def events(self) -> AsyncIterator[ContainerEvent]:
        return self._events.read()

    async def probe(self, container_id: str, kind: str) -> bool:
        """Whether the container passes its `kind` probe now: the
        `fail-probes` annotations it was created with decide; a container
        not running fails."""
        container = self._container(container_id)
        if container.state is not ContainerState.RUNNING or container.started_at is None:
            return False
        behaviour = container.behaviour
        if kind not in behaviour.fail_probes:
            return True
        if behaviour.fail_probes_for is None:
            return False
        return self._clock() - container.started_at >= behaviour.fail_probes_for

    # --- state changes ---

    def _arm_exit_timer(self, container: _Container) -> None:
        exit_after = container.behaviour.exit_after
        if exit_after is None or container.started_at is None:
            return
        exits_at = container.started_at + exit_after
        remaining = exits_at - self._clock()
        if remaining <= 0:
            self._finish(container, container.behaviour.exit_code, finished_at=exits_at)
            return
        container.exit_timer = asyncio.get_running_loop().call_later(
            remaining, self._finish, container, container.behaviour.exit_code
        )

    def _kill(self, container: _Container) -> None:
        if container.state is not ContainerState.EXITED:
            self._finish(container, _KILLED_EXIT_CODE)

    def _finish(
        self, container: _Container, exit_code: int, *, finished_at: float | None = None
    ) -> None:
        """The container exits (a created one never ran, but exits all the same)."""
        _cancel_timer(container)
        container.state = ContainerState.EXITED
        container.finished_at = self._clock() if finished_at is None else finished_at
        container.exit_code = exit_code
        container.reason = "Completed" if exit_code == 0 else "Error"
        self._notify(container)
        self._emit(container, "exited", exit_code)
        self._changed()

    def _forget(self, container: _Container) -> None:
        _cancel_timer(container)
        container.removed = True
        del self._records.containers[container.id]
        self._notify(container)

    def _notify(self, container: _Container) -> None:
        if container.changed is not None:
            container.changed.set()
            container.changed = None

    def _emit(self, container: _Container, kind: str, exit_code: int | None = None) -> None:
        self._events.emit(
            ContainerEvent(
                container_id=container.id,
                sandbox_id=container.sandbox_id,
                kind=kind,
                exit_code=exit_code,
                labels=container.config.labels,
            )
        )

    # --- lookups ---

    def _sandbox(self, sandbox_id: str) -> _Sandbox:
        return self._records.sandbox(sandbox_id)

    def _container(self, container_id: str) -> _Container:
        return self._records.container(container_id)

    def _running(self, container_id: str, action: str) -> _Container:
        container = self._container(container_id)
        if container.state is not ContainerState.RUNNING:
            raise RuntimeError_(
                f"cannot {action} container {container_id} ({container.config.name}): it is "
                f"{container.state.value}, not running"
            )
        return container

    # --- persistence ---

    def _changed(self) -> None:
        """Schedules a write of the state file, unless one is pending."""
        if self._state_file is None or self._save_timer is not None or self._closed:
            return
        self._save_timer = asyncio.get_running_loop().call_later(SAVE_INTERVAL, self._save_soon)

    def _save_soon(self) -> None:
        try:
            self._save_now()
        except OSError:
            # The next change tries again; close() raises if it still fails.
            log.exception(
                "cannot write the simulated state file", extra={"file": str(self._state_file)}
            )

    def _save_now(self) -> None:
        self._save_timer = None
        if self._state_file is None:
            return
        state = {
            "version": _STATE_VERSION,
            "node_name": self._node_name,
            "sandboxes": [_sandbox_to_json(s) for s in self._records.sandboxes.values()],
            "containers": [_container_to_json(c) for c in self._records.containers.values()],
        }
        # Synchronous on purpose: a few milliseconds twice a second at most,
        # and a snapshot taken on the loop cannot tear.
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(self._state_file, state, compact=True)
        self._saves += 1


# --- annotations ---


def _behaviour_for(config: ContainerConfig, sandbox: PodSandboxConfig) -> _Behaviour:
    """What the pod's annotations (in `sandbox`, the sandbox's config) ask of
    the container; an init container with no exit-after of its own exits
    with success as soon as it starts."""
    prefix = f"{ANNOTATION_PREFIX}{config.name}."
    found = {
        key.removeprefix(prefix): value
        for key, value in sandbox.annotations.items()
        if key.startswith(prefix)
    }
    if config.labels.get(LABEL_CONTAINER_INIT) == "true" and "exit-after" not in found:
        found["exit-after"] = "0"
    if not found:
        return _Behaviour()
    try:
        return _parse_behaviour(found)
    except _BadAnnotation as bad:
        raise ContainerCreateError(
            f"pod {sandbox.namespace}/{sandbox.name}: annotation {prefix}{bad.field}="
            f"{found.get(bad.field, '')!r}: {bad.problem}; fix or remove the annotation"
        ) from None


class _BadAnnotation(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem


def _parse_behaviour(found: Mapping[str, str]) -> _Behaviour:
    unknown = sorted(set(found) - _ANNOTATION_FIELDS)
    if unknown:
        raise _BadAnnotation(
            unknown[0], f"unknown; known are {', '.join(sorted(_ANNOTATION_FIELDS))}"
        )
    fail_probes = frozenset(p.strip() for p in found.get("fail-probes", "").split(",") if p.strip())
    if fail_probes - _PROBE_KINDS:
        raise _BadAnnotation("fail-probes", f"probe kinds are {', '.join(sorted(_PROBE_KINDS))}")
    image_pull = found.get("image-pull", "")
    if image_pull not in ("", "fail"):
        raise _BadAnnotation("image-pull", 'the only value is "fail"')
    return _Behaviour(
        exit_after=_seconds(found, "exit-after"),
        exit_code=_int(found, "exit-code", 0, high=255),
        fail_probes=fail_probes,
        fail_probes_for=_seconds(found, "fail-probes-for"),
        image_pull_fail=image_pull == "fail",
        exec_exit_code=_int(found, "exec-exit-code", 0, high=255),
        memory_bytes=_memory(found),
        cpu_millis=_int(found, "cpu-millis", 0, high=10**9),
    )


_ANNOTATION_FIELDS: Final = frozenset(
    {
        "exit-after",
        "exit-code",
        "fail-probes",
        "fail-probes-for",
        "image-pull",
        "exec-exit-code",
        "memory",
        "cpu-millis",
    }
)


def _seconds(found: Mapping[str, str], field: str) -> float | None:
    if field not in found:
        return None
    try:
        value = float(found[field])
    except ValueError:
        raise _BadAnnotation(field, "must be a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise _BadAnnotation(field, "must be a finite number of seconds >= 0")
    return value


def _int(found: Mapping[str, str], field: str, default: int, *, high: int) -> int:
    if field not in found:
        return default
    try:
        value = int(found[field])
    except ValueError:
        raise _BadAnnotation(field, "must be an integer") from None
    if not 0 <= value <= high:
        raise _BadAnnotation(field, f"must be between 0 and {high}")
    return value


def _memory(found: Mapping[str, str]) -> int:
    if "memory" not in found:
        return _DEFAULT_MEMORY_BYTES
    try:
        value = Quantity(found["memory"]).value()
    except ValueError:
        raise _BadAnnotation("memory", 'must be a quantity such as "64Mi"') from None
    if value < 0:
        raise _BadAnnotation("memory", "must not be negative")
    return value


# --- views ---


def _sandbox_view(sandbox: _Sandbox) -> PodSandbox:
    config = sandbox.config
    return PodSandbox(
        id=sandbox.id,
        namespace=config.namespace,
        name=config.name,
        uid=config.uid,
        ip=sandbox.ip if sandbox.state is SandboxState.READY else "",
        state=sandbox.state,
        created_at=sandbox.created_at,
        labels=config.labels,
    )


def _status_view(container: _Container) -> ContainerStatus:
    config = container.config
    return ContainerStatus(
        id=container.id,
        sandbox_id=container.sandbox_id,
        name=config.name,
        attempt=config.attempt,
        image=config.image,
        state=container.state,
        created_at=container.created_at,
        started_at=container.started_at,
        finished_at=container.finished_at,
        exit_code=container.exit_code,
        reason=container.reason,
        image_id=container.image_id,
        labels=config.labels,
        log_path=config.log_path,
    )


def _log_lines(container: _Container) -> list[bytes]:
    if container.started_at is None:
        return []
    when = datetime.fromtimestamp(container.started_at, UTC).isoformat()
    return [f"simulated container {container.config.name} started at {when}\n".encode()]


def _ran_for(container: _Container, now: float) -> float:
    if container.started_at is None:
        return 0.0
    end = now if container.finished_at is None else container.finished_at
    return max(0.0, end - container.started_at)


def _cancel_timer(container: _Container) -> None:
    if container.exit_timer is not None:
        container.exit_timer.cancel()
        container.exit_timer = None


def _new_id() -> str:
    return uuid.uuid4().hex


def _image_id(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


# --- the state file ---


@dataclass(frozen=True, slots=True)
class _State:
    sandboxes: list[_Sandbox]
    containers: list[_Container]


def _sandbox_to_json(sandbox: _Sandbox) -> dict[str, Any]:
    if sandbox.config_json is None:
        sandbox.config_json = config_to_json(sandbox.config)
    return {
        "id": sandbox.id,
        "ip": sandbox.ip,
        "state": sandbox.state.value,
        "created_at": sandbox.created_at,
        "config": sandbox.config_json,
    }


def _container_to_json(container: _Container) -> dict[str, Any]:
    if container.config_json is None:
        container.config_json = config_to_json(container.config)
    return {
        "id": container.id,
        "sandbox_id": container.sandbox_id,
        "config": container.config_json,
        "image_id": container.image_id,
        "created_at": container.created_at,
        "state": container.state.value,
        "started_at": container.started_at,
        "finished_at": container.finished_at,
        "exit_code": container.exit_code,
        "reason": container.reason,
    }


def _load_state(path: Path) -> _State:
    try:
        raw = json.loads(path.read_text())
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"version {raw.get('version')!r}, expected {_STATE_VERSION}")
        sandboxes = {s.id: s for s in (_sandbox_from_json(item) for item in raw["sandboxes"])}
        orphans = [c["id"] for c in raw["containers"] if c["sandbox_id"] not in sandboxes]
        if orphans:
            raise ValueError(f"containers {orphans[:3]} name sandboxes that are not in the file")
        containers = [
            _container_from_json(item, sandboxes[item["sandbox_id"]]) for item in raw["containers"]
        ]
    except (OSError, ValueError, KeyError, TypeError, ContainerCreateError) as err:
        raise RuntimeError_(
            f"cannot recover simulated state from {path}: {err}; "
            "delete the file to start with no containers"
        ) from err
    return _State(sandboxes=list(sandboxes.values()), containers=containers)


def _sandbox_from_json(item: dict[str, Any]) -> _Sandbox:
    return _Sandbox(
        id=item["id"],
        config=sandbox_config_from_json(item["config"]),
        ip=item["ip"],
        state=SandboxState(item["state"]),
        created_at=item["created_at"],
        config_json=item["config"],
    )


def _container_from_json(item: dict[str, Any], sandbox: _Sandbox) -> _Container:
    config = container_config_from_json(item["config"])
    return _Container(
        id=item["id"],
        sandbox_id=item["sandbox_id"],
        config=config,
        behaviour=_behaviour_for(config, sandbox.config),
        image_id=item["image_id"],
        created_at=item["created_at"],
        config_json=item["config"],
        state=ContainerState(item["state"]),
        started_at=item["started_at"],
        finished_at=item["finished_at"],
        exit_code=item["exit_code"],
        reason=item["reason"],
    )

"""The process runtime: containers as local processes, pods as loopback IPs.

The default runtime where no Docker engine answers. A pod sandbox is an
address of its own on `lo` (see `_ipam`) and a record; a container is a
process group on the host, run by a small shim process (`_shim.py`) that is
not the agent's child, so containers outlive the agent and a restarted agent
finds them again. There are no images: a container runs its `command` (or
`args`) as found on the host's PATH, with its own environment, working
directory and, when it has volumes, bind mounts in a mount namespace of its
own. Limits (`cpu_limit_millis`, `memory_limit_bytes`) are not enforced.

Everything that must survive the agent lives in files under `state_dir`,
each written atomically (temporary file, then rename) by exactly one writer:

    sandboxes/<id>.json              the sandbox (the runtime)
    containers/<id>/container.json   config, sandbox IP and hostname (the runtime)
    containers/<id>/spec.json        what the shim runs (the runtime)
    containers/<id>/running.json     pids and start times, once exec worked (the shim)
    containers/<id>/exit.json        exit code and time (the shim; the runtime
                                     when the start failed or the shim vanished)
    containers/<id>/shim.log         the shim's own complaints

A container's state follows from which of these exist. Exits are learnt
without polling: the runtime holds a pidfd on each live shim and an event
loop reader on it fires when the shim exits, right after it wrote the exit
record. The shim's pid is checked against its start time (from
/proc/<pid>/stat) before it is trusted again, as pids are reused.

Pod IPs are claimed in a directory shared by every agent of the machine,
each claim naming the node and the cluster (`cluster_uid`), so that two
clusters with nodes of the same name never free each other's addresses; the
records themselves are per agent (its `state_dir`).

The runtime is asyncio-only (it uses the loop's add_reader), and not safe for
two instances on one state directory at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from kpy.agent.runtime._events import EventStream
from kpy.agent.runtime._exec import deadline_after, feed, remaining
from kpy.agent.runtime._ipam import LoopbackIPAM
from kpy.agent.runtime._records import Records, config_to_json, container_config_from_json
from kpy.agent.runtime._statefile import Json, read_json, write_json
from kpy.agent.runtime.base import (
    DEFAULT_CLUSTER_UID,
    SECURITY_FIELDS,
    ContainerConfig,
    ContainerConfigError,
    ContainerCreateError,
    ContainerEvent,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecOutput,
    PodSandbox,
    PodSandboxConfig,
    RuntimeError_,
    SandboxState,
    SecurityConfig,
    check_cluster_uid,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

log = logging.getLogger("kpy.agent.runtime.process")

SHIM = Path(__file__).with_name("_shim.py")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_ID_PREFIX = "process://"
START_ERROR_EXIT_CODE = 128
UNKNOWN_EXIT_CODE = 255
KILL_GRACE = 30.0  # seconds a SIGKILLed container may take to be reported dead
_CHUNK = 65536
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class _Running:
    """What the shim reported once the container's exec worked."""

    pid: int
    pid_start_time: int
    shim_pid: int
    shim_start_time: int
    started_at: float


@dataclass(frozen=True, slots=True)
class _Exit:
    exit_code: int
    finished_at: float
    signal: int | None = None
    # Set when the runtime, not the process, decided the outcome.
    reason: str = ""
    message: str = ""


@dataclass(eq=False)
class _Container:
    """The runtime's view of one container; the files are the truth."""

    id: str
    sandbox_id: str
    config: ContainerConfig
    ip: str
    hostname: str
    created_at: float
    directory: Path
    running: _Running | None = None
    ended: _Exit | None = None
    pidfd: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state(self) -> ContainerState:
        if self.ended is not None:
            return ContainerState.EXITED
        if self.running is not None:
            return ContainerState.RUNNING
        return ContainerState.CREATED

    @property
    def log_path(self) -> Path:
        # Without a path from the agent, the log lives and dies with the record.
        return Path(self.config.log_path) if self.config.log_path else self.directory / "log"

    def describe(self) -> str:
        return f'container {self.id} ("{self.config.name}")'


class ProcessRuntime:
    """Runs containers as local processes; see the module docstring.

    Call `start()` before anything else; `close()` stops watching (the
    containers keep running). `events()` means what `base` says. Removing
    a running container kills it first.
    """

    name = "process"
    # The shim sets the user, groups and no_new_privs before it execs. A
    # process on the host has no capability set, root filesystem or network
    # namespace of its own to change, and no seccomp filter: its default
    # (RuntimeDefault) is none, which is also Unconfined.
    security_fields = SECURITY_FIELDS - {
        "privileged",
        "capabilities",
        "readOnlyRootFilesystem",
        "sysctls",
    }

    def __init__(
        self,
        state_dir: Path,
        *,
        ip_dir: Path = Path("/run/kpy/pod-ips"),
        node_name: str,
        cluster_uid: str = DEFAULT_CLUSTER_UID,
        start_timeout: float = 30.0,
        log_poll_interval: float = 0.1,
    ) -> None:
        self.state_dir = state_dir
        self.node_name = node_name
        self.cluster_uid = check_cluster_uid(cluster_uid)
        # Claims carry the cluster too: another cluster's node of the same
        # name shares `ip_dir`, and its addresses are not ours to reclaim.
        self._ipam = LoopbackIPAM(ip_dir, node_name, cluster_uid)
        self._start_timeout = start_timeout
        self._log_poll_interval = log_poll_interval
        self._records: Records[PodSandbox, _Container] = Records(f"in {state_dir}")
        self._events = EventStream(self.name)
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Loads the records, re-attaches to live shims, marks containers
        whose shim died unwatched as exited, and releases this node's
        addresses that no ready sandbox holds."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._events.open()
        self._sandbox_dir.mkdir(parents=True, exist_ok=True)
        self._container_dir.mkdir(parents=True, exist_ok=True)
        self._records.sandboxes = {s.id: s for s in _load_sandboxes(self._sandbox_dir)}
        self._records.containers = {}
        for c in _load_containers(self._container_dir):
            self._records.containers[c.id] = c
            if c.state is ContainerState.RUNNING:
                self._watch(c, emit=False)
        ready = [s.ip for s in self._records.sandboxes.values() if s.state is SandboxState.READY]
        self._ipam.reclaim(ready)
        log.info(
            "process runtime started",
            extra={
                "sandboxes": len(self._records.sandboxes),
                "containers": len(self._records.containers),
            },
        )

    async def close(self) -> None:
        """Stops watching shims and ends `events()`; containers keep running."""
        for c in self._records.containers.values():
            self._unwatch(c)
        self._events.close()
        self._loop = None

    async def pull_image(self, image: str, policy: str) -> str:
        """There are no images: every image is "present", whatever the policy."""
        return IMAGE_ID_PREFIX + image

    async def image_user(self, image: str) -> str | None:
        """There are no images: a container runs as the agent does."""
        return str(os.geteuid())

    # -- sandboxes ---------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        self._require_started()
        sandbox_id = uuid.uuid4().hex
        ip = self._ipam.allocate(sandbox_id)
        sandbox = PodSandbox(
            id=sandbox_id,
            namespace=config.namespace,
            name=config.name,
            uid=config.uid,
            ip=ip,
            state=SandboxState.READY,
            created_at=time.time(),
            labels=dict(config.labels),
        )
        try:
            self._save_sandbox(sandbox)
        except BaseException:
            self._ipam.release(ip)
            raise
        self._records.sandboxes[sandbox_id] = sandbox
        return sandbox

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandbox(sandbox_id)
        doomed = [
            c for c in self._records.containers_of(sandbox_id) if c.state is ContainerState.RUNNING
        ]
        for c in doomed:
            self._signal_group(c, signal.SIGKILL)
        for c in doomed:
            await self._await_killed(c)
        if sandbox.state is SandboxState.READY:
            self._ipam.release(sandbox.ip)
            # A stopped sandbox has given its IP back, and says so.
            sandbox = replace(sandbox, state=SandboxState.NOT_READY, ip="")
            self._save_sandbox(sandbox)
            self._records.sandboxes[sandbox_id] = sandbox
            self._events.emit(
                ContainerEvent(sandbox_id, sandbox_id, "sandbox_stopped", None, sandbox.labels)
            )

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Stops the sandbox if needed and removes it and its containers."""
        if sandbox_id not in self._records.sandboxes:
            return
        await self.stop_pod_sandbox(sandbox_id)
        for c in self._records.containers_of(sandbox_id):
            await self.remove_container(c.id)
        (self._sandbox_dir / f"{sandbox_id}.json").unlink(missing_ok=True)
        del self._records.sandboxes[sandbox_id]

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        self._require_started()
        return sorted(self._records.sandboxes.values(), key=lambda s: s.created_at)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        return self._sandbox(sandbox_id)

    # -- containers --------------------------------------------------------

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox: PodSandboxConfig
    ) -> str:
        self._require_started()
        record = self._records.ready_sandbox(sandbox_id, config.name, sandbox)
        _check_config(config, f"{record.namespace}/{record.name}")
        container_id = uuid.uuid4().hex
        c = _Container(
            id=container_id,
            sandbox_id=sandbox_id,
            config=config,
            ip=record.ip,
            hostname=sandbox.hostname or sandbox.name,
            created_at=time.time(),
            directory=self._container_dir / container_id,
        )
        c.directory.mkdir(parents=True)
        write_json(c.directory / "container.json", _container_to_json(c))
        self._records.containers[c.id] = c
        return c.id

    async def start_container(self, container_id: str) -> None:
        """Starts the container and returns once its command was exec'd.
        Raises RuntimeError_ (reason StartError on the status) if it could
        not be, e.g. no such executable."""
        c = self._container(container_id)
        if c.state is not ContainerState.CREATED:
            raise RuntimeError_(
                f"{c.describe()} is {c.state.value}, and a container starts only once; "
                "create a new container to run it again"
            )
        sandbox = self._records.sandboxes.get(c.sandbox_id)
        if sandbox is None or sandbox.state is not SandboxState.READY:
            raise RuntimeError_(
                f"cannot start {c.describe()}: its sandbox {c.sandbox_id} is stopped or gone "
                "(its IP is released); run a new sandbox"
            )
        spec_path = c.directory / "spec.json"
        write_json(spec_path, self._shim_spec(c))
        report = await self._launch_shim(c, spec_path)
        if "error" in report:
            self._start_failed(c, str(report["error"]))
        c.running = _Running(**report)
        self._emit(c, "started")
        self._watch(c, emit=True)

    async def stop_container(
        self,
        container_id: str,
        timeout: float,  # noqa: ASYNC109 - the Runtime protocol's signature
    ) -> None:
        """Sends the config's stop signal to the container's process group,
        SIGKILL after `timeout` seconds; a no-op unless it is running."""
        c = self._container(container_id)
        if c.state is not ContainerState.RUNNING:
            return
        self._signal_group(c, _parse_signal(c.config.stop_signal))
        with anyio.move_on_after(max(timeout, 0.0)):
            await c.exited.wait()
        if not c.exited.is_set():
            await self._kill(c)

    async def remove_container(self, container_id: str) -> None:
        """Removes the records (a running container is killed first); the
        log file at the config's log_path stays: it is the agent's."""
        c = self._records.containers.get(container_id)
        if c is None:
            return
        if c.state is ContainerState.RUNNING:
            await self._kill(c)
        self._unwatch(c)
        shutil.rmtree(c.directory, ignore_errors=True)
        del self._records.containers[container_id]

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        self._require_started()
        containers = list(self._records.containers.values())
        if sandbox_id is not None:
            containers = self._records.containers_of(sandbox_id)
        return [_status(c) for c in sorted(containers, key=lambda c: c.created_at)]

    async def container_status(self, container_id: str) -> ContainerStatus:
        return _status(self._container(container_id))

    async def stats(self, container_id: str) -> ContainerStats:
        """CPU and memory of the container's process group; zero once it
        is not running."""
        c = self._container(container_id)
        cpu_ns = memory = 0
        if c.running is not None and c.ended is None:
            # A scan of /proc takes milliseconds: not on the event loop.
            cpu_ns, memory = await anyio.to_thread.run_sync(_group_usage, c.running.pid)
        return ContainerStats(container_id, time.time(), cpu_ns, memory)

    def events(self) -> AsyncIterator[ContainerEvent]:
        return self._events.read()

    # -- exec --------------------------------------------------------------

    async def exec(
        self,
        container_id: str,
        command: Sequence[str],
        *,
        stdin: AsyncIterator[bytes] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the Runtime protocol's signature
    ) -> AsyncIterator[ExecOutput]:
        """Runs `command` with the container's environment and working
        directory, in its mount namespace if it has one. A command not
        found raises RuntimeError_, like starting a container."""
        c = self._container(container_id)
        if c.state is not ContainerState.RUNNING or c.running is None:
            raise RuntimeError_(f"{c.describe()} is {c.state.value}: exec needs it running")
        process = await self._spawn_exec(c, c.running, list(command), stdin is not None)
        deadline = deadline_after(timeout)
        try:
            async for output in _exec_output(process, stdin, deadline):
                yield output
        except TimeoutError:
            raise TimeoutError(
                f"exec {list(command)!r} in {c.describe()} did not finish within {timeout}s; "
                "it was killed"
            ) from None
        finally:
            await _reap(process)

    async def _spawn_exec(
        self, c: _Container, running: _Running, command: list[str], with_stdin: bool
    ) -> asyncio.subprocess.Process:
        if not command:
            raise RuntimeError_(f"exec in {c.describe()}: the command is empty")
        env = _container_env(c)
        cwd = c.config.working_dir or "/"
        root = f"/proc/{running.pid}/root" if c.config.mounts else ""
        _check_executable(command[0], env["PATH"], cwd, root)
        # The command runs as the container's user, groups and
        # no_new_privs. setpriv (util-linux, beside nsenter) sets them after
        # the exec, so that this process never forks a copy of itself: a
        # fork in a process that runs gRPC threads can write gRPC's errors
        # into the command's output.
        identity = _identity(c.config.security)
        argv = [*_setpriv_argv(identity), *command]
        if c.config.mounts:
            # nsenter joins the mount namespace as root, then becomes the user.
            ids = [f"--setuid={identity['uid']}"] if identity["uid"] is not None else []
            ids += [f"--setgid={identity['gid']}"] if identity["gid"] is not None else []
            argv = [
                "nsenter",
                f"--target={running.pid}",
                "--mount",
                f"--wd={cwd}",
                *ids,
                "--",
                *command,
            ]
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if with_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=None if c.config.mounts else cwd,
                # Its own group, so that a timeout kills what it started too.
                start_new_session=True,
            )
        except OSError as e:
            raise RuntimeError_(f"exec {command[0]!r} in {c.describe()}: {e}") from e

    # -- logs --------------------------------------------------------------

    async def logs(
        self, container_id: str, *, follow: bool = False, tail_lines: int = 0
    ) -> AsyncIterator[bytes]:
        """The log file's bytes, from its last `tail_lines` lines if that is
        positive; with `follow`, until the container is no longer running."""
        c = self._container(container_id)
        path = c.log_path
        offset = _tail_offset(path, tail_lines) if tail_lines > 0 else 0
        while True:
            # Read before looking at the state, so that nothing written
            # before the exit is missed.
            finished = not follow or c.state is ContainerState.EXITED or self._loop is None
            for chunk in _read_from(path, offset):
                offset += len(chunk)
                yield chunk
            if finished:
                return
            # Files cannot be watched through the event loop; a short sleep
            # at EOF (cut short by the exit) is cheap for the few followers.
            with anyio.move_on_after(self._log_poll_interval):
                await c.exited.wait()

    # -- shims and exits ---------------------------------------------------

    def _shim_spec(self, c: _Container) -> Json:
        config = c.config
        return {
            "argv": [*config.command, *config.args],
            "env": _container_env(c),
            "cwd": config.working_dir,
            "mounts": [
                {
                    "host_path": m.host_path,
                    "container_path": m.container_path,
                    "read_only": m.read_only,
                }
                for m in config.mounts
            ],
            "identity": _identity(config.security),
            "log_path": str(c.log_path),
            "running_path": str(c.directory / "running.json"),
            "exit_path": str(c.directory / "exit.json"),
            "shim_log": str(c.directory / "shim.log"),
        }

    async def _launch_shim(self, c: _Container, spec_path: Path) -> Json:
        """Runs the shim until it has reported (it keeps running, detached)
        and returns its report: the running.json fields or {"error": ...}."""
        argv = [sys.executable, "-I", "-S", str(SHIM), str(spec_path)]
        try:
            # Shielded: a caller cancelled half-way would leave a running
            # container this runtime does not know of until it restarts.
            with anyio.CancelScope(shield=True), anyio.fail_after(self._start_timeout):
                done = await anyio.run_process(argv, check=False, stdin=subprocess.DEVNULL)
        except TimeoutError:
            self._start_failed(c, f"the shim did not report within {self._start_timeout}s")
        lines = done.stdout.decode("utf-8", "replace").splitlines()
        try:
            report: Json = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            stderr = done.stderr.decode("utf-8", "replace").strip()[-2000:]
            self._start_failed(
                c, f"the shim exited with {done.returncode} without a report: {stderr}"
            )
        return report

    def _start_failed(self, c: _Container, message: str) -> NoReturn:
        """Records a start that failed (exit 128, reason StartError) and raises."""
        c.ended = _Exit(
            exit_code=START_ERROR_EXIT_CODE,
            finished_at=time.time(),
            reason="StartError",
            message=message,
        )
        write_json(c.directory / "exit.json", _exit_to_json(c.ended))
        c.exited.set()
        log.warning("container start failed: %s", message, extra={"container": c.id})
        raise RuntimeError_(f"starting {c.describe()}: {message}")

    def _watch(self, c: _Container, *, emit: bool) -> None:
        """Arranges for `_shim_exited` when the shim exits (at once if it
        is already gone)."""
        assert c.running is not None
        assert self._loop is not None
        fd = _open_pidfd(c.running.shim_pid, c.running.shim_start_time)
        if fd is None:
            self._shim_exited(c, emit=emit)
            return
        c.pidfd = fd
        self._loop.add_reader(fd, self._shim_exited, c, True)

    def _unwatch(self, c: _Container) -> None:
        if c.pidfd is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(c.pidfd)
        os.close(c.pidfd)
        c.pidfd = None

    def _shim_exited(self, c: _Container, emit: bool) -> None:
        self._unwatch(c)
        c.ended = _read_exit(c.directory / "exit.json") or self._exit_unknown(c)
        c.exited.set()
        if emit:
            self._emit(c, "exited")

    def _exit_unknown(self, c: _Container) -> _Exit:
        """The shim died without a word (killed, or by the OOM killer):
        nobody knows how the container ended, and one reported exited must
        not run on unsupervised."""
        _kill_orphan(c)
        ended = _Exit(
            exit_code=UNKNOWN_EXIT_CODE,
            finished_at=time.time(),
            reason="Unknown",
            message="the container's shim exited without recording the exit code",
        )
        try:
            write_json(c.directory / "exit.json", _exit_to_json(ended))
        except OSError as e:  # still report the exit; a restart will find it again
            log.error("cannot record the exit: %s", e, extra={"container": c.id})
        return ended

    def _emit(self, c: _Container, kind: str) -> None:
        exit_code = c.ended.exit_code if c.ended is not None else None
        labels = dict(c.config.labels)
        self._events.emit(ContainerEvent(c.id, c.sandbox_id, kind, exit_code, labels))

    async def _kill(self, c: _Container) -> None:
        self._signal_group(c, signal.SIGKILL)
        await self._await_killed(c)

    async def _await_killed(self, c: _Container) -> None:
        with anyio.move_on_after(KILL_GRACE):
            await c.exited.wait()
        if not c.exited.is_set():
            raise RuntimeError_(
                f"{c.describe()} was sent SIGKILL but is not reported dead after "
                f"{KILL_GRACE}s; check its process group {c.running and c.running.pid}"
            )

    def _signal_group(self, c: _Container, sig: signal.Signals) -> None:
        if c.running is None or c.exited.is_set():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(c.running.pid, sig)

    # -- lookups and records -----------------------------------------------

    @property
    def _sandbox_dir(self) -> Path:
        return self.state_dir / "sandboxes"

    @property
    def _container_dir(self) -> Path:
        return self.state_dir / "containers"

    def _require_started(self) -> None:
        if self._loop is None:
            raise RuntimeError_("the process runtime is not started: call start() first")

    def _sandbox(self, sandbox_id: str) -> PodSandbox:
        self._require_started()
        return self._records.sandbox(sandbox_id)

    def _container(self, container_id: str) -> _Container:
        self._require_started()
        return self._records.container(container_id)

    def _save_sandbox(self, sandbox: PodSandbox) -> None:
        write_json(self._sandbox_dir / f"{sandbox.id}.json", _sandbox_to_json(sandbox))


# -- container configuration ---------------------------------------------------


def _check_config(config: ContainerConfig, pod: str) -> None:
    if not config.command and not config.args:
        raise ContainerCreateError(
            f'container "{config.name}" of pod {pod} has neither command nor args: the '
            "process runtime has no images, so no entrypoint to fall back on; set "
            "`command` in the pod spec, or run the pod with the docker runtime"
        )
    try:
        _parse_signal(config.stop_signal)
    except RuntimeError_ as e:
        raise ContainerCreateError(f'container "{config.name}" of pod {pod}: {e}') from None
    refused = _refused_security(config.security)
    if refused:
        raise ContainerConfigError(
            f'container "{config.name}" of pod {pod}: securityContext.{refused} is not '
            "supported by kpy's process runtime; run it on a Docker node"
        )


def _refused_security(security: SecurityConfig) -> str:
    """The first setting of `security` a host process cannot be given, or ""."""
    if security.privileged:
        return "privileged"
    if security.capabilities_add or security.capabilities_drop:
        return "capabilities"
    if security.read_only_root_filesystem:
        return "readOnlyRootFilesystem"
    if security.seccomp_profile not in ("", "RuntimeDefault", "Unconfined"):
        return "seccompProfile"
    return ""


def _identity(security: SecurityConfig) -> Json:
    """What the shim sets before it execs: uid, gid (None: unchanged),
    supplementary groups (None: unchanged) and no_new_privs. Without a
    runAsGroup the gid is the user's primary group on the host (0 if the
    host does not know the uid), as runc takes it from the image."""
    uid, gid = security.run_as_user, security.run_as_group
    if uid is not None and gid is None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = 0
    groups: list[int] | None = None
    if uid is not None or gid is not None or security.supplemental_groups:
        groups = list(security.supplemental_groups)
    return {"uid": uid, "gid": gid, "groups": groups, "no_new_privs": security.no_new_privileges}


def _setpriv_argv(identity: Json) -> list[str]:
    """The setpriv prefix that gives a command the identity (none if it
    sets nothing)."""
    argv: list[str] = []
    if identity["uid"] is not None:
        argv.append(f"--reuid={identity['uid']}")
    if identity["gid"] is not None:
        argv.append(f"--regid={identity['gid']}")
    if identity["groups"] is not None:
        groups = identity["groups"]
        argv.append(f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")
    if identity["no_new_privs"]:
        argv.append("--no-new-privs")
    return ["setpriv", *argv, "--"] if argv else []


def _parse_signal(name: str) -> signal.Signals:
    upper = name.upper()
    try:
        return signal.Signals[upper if upper.startswith("SIG") else "SIG" + upper]
    except KeyError:
        raise RuntimeError_(
            f"unknown stop signal {name!r}; use a name such as SIGTERM or SIGINT"
        ) from None


def _container_env(c: _Container) -> dict[str, str]:
    """The defaults a container would have, the config's env over them, and
    KPY_POD_IP always."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": c.hostname, "HOME": "/root"}
    env.update(c.config.env)
    env["KPY_POD_IP"] = c.ip
    return env


def _status(c: _Container) -> ContainerStatus:
    ended = c.ended
    reason = ""
    if ended is not None:
        reason = ended.reason or ("Completed" if ended.exit_code == 0 else "Error")
    return ContainerStatus(
        id=c.id,
        sandbox_id=c.sandbox_id,
        name=c.config.name,
        attempt=c.config.attempt,
        image=c.config.image,
        state=c.state,
        created_at=c.created_at,
        started_at=c.running.started_at if c.running is not None else None,
        finished_at=ended.finished_at if ended is not None else None,
        exit_code=ended.exit_code if ended is not None else None,
        reason=reason,
        message=ended.message if ended is not None else "",
        image_id=IMAGE_ID_PREFIX + c.config.image,
        labels=dict(c.config.labels),
        log_path=str(c.log_path),
    )


# -- records -------------------------------------------------------------------


def _sandbox_to_json(s: PodSandbox) -> Json:
    return {
        "id": s.id,
        "namespace": s.namespace,
        "name": s.name,
        "uid": s.uid,
        "ip": s.ip,
        "state": s.state.value,
        "created_at": s.created_at,
        "labels": dict(s.labels),
    }


def _sandbox_from_json(d: Json) -> PodSandbox:
    return PodSandbox(**{**d, "state": SandboxState(d["state"])})


def _container_to_json(c: _Container) -> Json:
    return {
        "id": c.id,
        "sandbox_id": c.sandbox_id,
        "ip": c.ip,
        "hostname": c.hostname,
        "created_at": c.created_at,
        "config": config_to_json(c.config),
    }


def _container_from_json(d: Json, directory: Path) -> _Container:
    c = _Container(
        id=d["id"],
        sandbox_id=d["sandbox_id"],
        config=container_config_from_json(d["config"]),
        ip=d["ip"],
        hostname=d["hostname"],
        created_at=d["created_at"],
        directory=directory,
    )
    running = read_json(directory / "running.json")
    c.running = _Running(**running) if running is not None else None
    c.ended = _read_exit(directory / "exit.json")
    if c.ended is not None:
        c.exited.set()
    return c


def _exit_to_json(e: _Exit) -> Json:
    return {
        "exit_code": e.exit_code,
        "finished_at": e.finished_at,
        "signal": e.signal,
        "reason": e.reason,
        "message": e.message,
    }


def _read_exit(path: Path) -> _Exit | None:
    d = read_json(path)
    return _Exit(**d) if d is not None else None


def _load_sandboxes(directory: Path) -> Iterator[PodSandbox]:
    for path in sorted(directory.glob("*.json")):
        try:
            yield _sandbox_from_json(read_json(path) or {})
        except (ValueError, TypeError, KeyError) as e:
            log.error("skipping unreadable sandbox record %s: %s", path, e)


def _load_containers(directory: Path) -> Iterator[_Container]:
    for record in sorted(directory.glob("*/container.json")):
        try:
            yield _container_from_json(read_json(record) or {}, record.parent)
        except (ValueError, TypeError, KeyError) as e:
            log.error("skipping unreadable container record %s: %s", record.parent, e)


# -- processes -----------------------------------------------------------------


def _proc_stat(pid: int) -> list[bytes] | None:
    """Fields 3 onwards of /proc/<pid>/stat (index 0 is the state), or None
    if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses.
    return data[data.rindex(b")") + 2 :].split()


def _open_pidfd(pid: int, start_time: int) -> int | None:
    """A pidfd on the process `pid` if it is the one that started at
    `start_time` (pids are reused) and has not exited, else None."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    # Checked after opening: from here on the fd names one process for good.
    fields = _proc_stat(pid)
    # A zombie (exited, not yet reaped by init) has exited for our purposes.
    if fields is None or int(fields[19]) != start_time or fields[0] == b"Z":
        os.close(fd)
        return None
    return fd


def _kill_orphan(c: _Container) -> None:
    """Kills the process group of a container whose shim is gone, if its
    first process still runs."""
    assert c.running is not None
    fd = _open_pidfd(c.running.pid, c.running.pid_start_time)
    if fd is None:
        return
    log.warning("killing container whose shim is gone", extra={"container": c.id})
    with contextlib.suppress(ProcessLookupError):
        os.killpg(c.running.pid, signal.SIGKILL)
    os.close(fd)


def _group_usage(pgid: int) -> tuple[int, int]:
    """(CPU ns, RSS bytes) summed over the processes of group `pgid`."""
    ticks = rss_pages = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is None or int(fields[2]) != pgid:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
        rss_pages += int(fields[21])
    return ticks * 1_000_000_000 // _CLOCK_TICKS, rss_pages * _PAGE_SIZE


def _check_executable(name: str, path_env: str, cwd: str, root: str) -> None:
    """Raises RuntimeError_ unless `name` is an executable file, searched
    like exec does, as seen under `root` (the container's mount namespace)."""
    if "/" in name:
        candidates = [os.path.join(cwd, name)]
    else:
        candidates = [os.path.join(cwd, d or ".", name) for d in path_env.split(":")]
    for candidate in candidates:
        full = root + os.path.normpath(candidate)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return
    where = "no such file or directory" if "/" in name else "executable file not found in $PATH"
    raise RuntimeError_(f'exec: "{name}": {where}')


async def _exec_output(
    process: asyncio.subprocess.Process,
    stdin: AsyncIterator[bytes] | None,
    deadline: float | None,
) -> AsyncIterator[ExecOutput]:
    """Multiplexes the command's stdout and stderr as they come, then its
    exit code. The read tasks live only while this generator does (its
    caller's `finally` reaps the process, which ends them), since a task
    group cannot span the yields of an async generator."""
    assert process.stdout is not None
    assert process.stderr is not None
    streams = {1: process.stdout, 2: process.stderr}
    reads = {asyncio.ensure_future(s.read(_CHUNK)): n for n, s in streams.items()}
    feeder = None
    if stdin is not None:
        assert process.stdin is not None
        writer = process.stdin

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        feeder = asyncio.ensure_future(feed(stdin, write, writer.close))
    try:
        while reads:
            done, _ = await asyncio.wait(
                reads, timeout=remaining(deadline), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                raise TimeoutError
            for task in done:
                n = reads.pop(task)
                if data := task.result():
                    yield ExecOutput(stream=n, data=data)
                    reads[asyncio.ensure_future(streams[n].read(_CHUNK))] = n
        with anyio.fail_after(remaining(deadline)):
            code = await process.wait()
        yield ExecOutput(exit_code=128 - code if code < 0 else code)
    finally:
        pending: list[asyncio.Future[Any]] = [*reads, *([feeder] if feeder is not None else [])]
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _reap(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


# -- log files -----------------------------------------------------------------


def _read_from(path: Path, offset: int) -> Iterator[bytes]:
    """The bytes of `path` from `offset` to its current end, in chunks."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return  # not started yet: no output
    with f:
        f.seek(offset)
        while chunk := f.read(_CHUNK):
            yield chunk


def _tail_offset(path: Path, lines: int) -> int:
    """Where the last `lines` lines of `path` begin, reading backwards from
    the end in blocks (a final line without a newline counts as a line)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return 0
    with f:
        end = pos = f.seek(0, os.SEEK_END)
        if end == 0:
            return 0
        f.seek(end - 1)
        # A newline that ends the file ends the last line, it starts none.
        wanted = lines + (1 if f.read(1) == b"\n" else 0)
        while pos > 0:
            size = min(_CHUNK, pos)
            pos -= size
            f.seek(pos)
            block = f.read(size)
            index = len(block)
            while (index := block.rfind(b"\n", 0, index)) >= 0:
                wanted -= 1
                if wanted == 0:
                    return pos + index + 1
        return 0

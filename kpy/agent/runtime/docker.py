"""The Docker runtime: pods as a pause container and its network namespace.

A pod sandbox is a small "pause" container (`PAUSE_IMAGE` running a shell
that sleeps until SIGTERM) on Docker's default bridge: its address is the
pod IP, its hostname the pod's. Every container of the pod joins the pause
container's network and IPC namespaces (`NetworkMode: container:<id>`), so
the containers of one pod reach each other on localhost, as in Kubernetes.
Mounts are bind mounts, limits are NanoCpus and Memory (MemorySwap equal to
Memory, so a container over its limit is OOM-killed rather than swapped),
logs are Docker's json-file logs, exec is Docker exec.

Docker is the only record. Every sandbox and container carries labels: the
ones the agent gave it, `io.kpy.cluster` and `io.kpy.node` (several agents,
of several clusters, may share an engine, and two clusters both have a
`kpy-node-1`: each runtime only ever lists, recovers and removes what
carries its own cluster uid and node name), and what this runtime needs to
rebuild its view after an agent restart (the sandbox of a container, its
name and attempt; a sandbox's namespace, name and uid). Docker
names follow the kubelet's dockershim, with the cluster uid added:
`k8s_<container>_<pod>_<namespace>_<uid>_<attempt>_<cluster>`, and
`k8s_POD_...` for the pause container.

The runtime keeps a view of its sandboxes and containers, loaded from Docker
by `start()` and kept current by the calls it makes and by one reader task
on Docker's event stream (start, die and destroy of this node's containers),
so that the agent's frequent listings cost no API call. The reader resumes
after a dropped stream, and each stream ends after `event_period` seconds and
is opened again (a finite timeout on both sides); every time it connects it
first lists this node's containers and inspects the ones whose state moved
while it was not watching. An observation is applied only if it is newer
than what the view holds (by start time, then created < running < exited),
so a late inspect never turns an exited container back into a running one;
"started" and "exited" events are emitted on those transitions, which is how
each is emitted once whichever path saw it first.

Images from `LOCAL_REGISTRY` (kpy.local/...) exist only on this machine,
built by `deploy/docker-engine.sh image`; no registry serves them, so policy
Always treats them as IfNotPresent.

The runtime is asyncio-only (aiodocker is). Exec timeouts kill the command
by its host pid, which needs the engine on this machine (a unix socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import math
import os
import secrets
import signal
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn

import aiodocker
import aiohttp
import anyio
from aiodocker.exceptions import DockerError

from kpy.agent.runtime._events import EventStream
from kpy.agent.runtime._exec import deadline_after, feed, remaining
from kpy.agent.runtime._records import Records
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
    ImageNeverPullError,
    ImagePullError,
    NotFoundError,
    PodSandbox,
    PodSandboxConfig,
    RuntimeError_,
    SandboxState,
    SecurityConfig,
    check_cluster_uid,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence

    from aiodocker.stream import Stream

log = logging.getLogger("kpy.agent.runtime.docker")

DEFAULT_DOCKER_HOST: Final = "unix:///run/kpy-docker/docker.sock"
ENGINE_SCRIPT: Final = "deploy/docker-engine.sh"
PAUSE_IMAGE: Final = "kpy.local/busybox:latest"
PAUSE_COMMAND: Final = ("sh", "-c", 'trap "exit 0" TERM; while :; do sleep 3600 & wait; done')
LOCAL_REGISTRY: Final = "kpy.local"
PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")

# Labels this runtime sets (the agent's labels are kept beside them).
LABEL_CLUSTER: Final = "io.kpy.cluster"
LABEL_NODE: Final = "io.kpy.node"
LABEL_TYPE: Final = "io.kpy.type"  # TYPE_SANDBOX or TYPE_CONTAINER
LABEL_SANDBOX: Final = "io.kpy.sandbox"  # a container's sandbox id
LABEL_NAME: Final = "io.kpy.container.name"
LABEL_ATTEMPT: Final = "io.kpy.attempt"
LABEL_POD_NAMESPACE: Final = "io.kpy.pod.namespace"
LABEL_POD_NAME: Final = "io.kpy.pod.name"
LABEL_POD_UID: Final = "io.kpy.pod.uid"
TYPE_SANDBOX: Final = "sandbox"
TYPE_CONTAINER: Final = "container"
_OWN_LABELS: Final = frozenset(
    {
        LABEL_CLUSTER,
        LABEL_NODE,
        LABEL_TYPE,
        LABEL_SANDBOX,
        LABEL_NAME,
        LABEL_ATTEMPT,
        LABEL_POD_NAMESPACE,
        LABEL_POD_NAME,
        LABEL_POD_UID,
    }
)

_EVENTS: Final = ("start", "die", "destroy")
_ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_HOSTNAME_MAX: Final = 63
_MIN_NANO_CPUS: Final = 10_000_000  # Docker refuses less than 0.01 CPU
_EXIT_POLL: Final = 0.01  # seconds between exec inspects once its output ended
_FOREVER: Final = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=10.0)

Json = dict[str, Any]


class DockerUnavailableError(RuntimeError_, ConnectionError):
    """No Docker engine answers where the runtime was told to look."""


def default_docker_host() -> str:
    """`DOCKER_HOST` if set, else the socket of kpy's own engine."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def docker_answers(host: str, timeout: float = 1.0) -> bool:
    """Whether a Docker engine at `host` (unix:// or tcp://) answers its
    ping within about `timeout` seconds. Blocking: for choosing a runtime
    before the event loop runs."""
    url = urllib.parse.urlsplit(host)
    try:
        if url.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX)
            address: str | tuple[str, int] = url.path
        elif url.scheme in ("tcp", "http") and url.hostname:
            sock = socket.socket(socket.AF_INET6 if ":" in url.hostname else socket.AF_INET)
            address = (url.hostname, url.port or 2375)
        else:
            return False
        with sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and reply.split(b" ")[1:2] == [b"200"]


@dataclass(frozen=True, slots=True)
class DockerStatistics:
    """What the runtime holds, and how its event stream fares."""

    sandboxes: int
    containers: int
    # Event streams opened (each lasts at most `event_period`) and dropped.
    streams: int
    drops: int
    # time.time() of the last event read, or of the last (re)connection.
    last_event_at: float


@dataclass(frozen=True, slots=True)
class _Seen:
    """The order of observations of one Docker container, and the state
    Docker last listed for it."""

    rank: tuple[float, int, float]
    docker_state: str


class DockerRuntime:
    """Runs pods in a Docker engine; see the module docstring.

    Call `start()` before anything else; `close()` stops the event reader
    and the connection (containers keep running). `events()` means what
    `base` says. Removing a running container kills it.
    """

    name = "docker"
    # Docker applies every securityContext field the agent passes on.
    security_fields = SECURITY_FIELDS

    def __init__(
        self,
        *,
        node_name: str,
        cluster_uid: str = DEFAULT_CLUSTER_UID,
        docker_host: str | None = None,
        pause_image: str = PAUSE_IMAGE,
        pull_timeout: float = 20.0,
        call_timeout: float = 120.0,
        connect_timeout: float = 20.0,
        event_period: float = 300.0,
    ) -> None:
        self.node_name = node_name
        self.cluster_uid = check_cluster_uid(cluster_uid)
        self.docker_host = docker_host or default_docker_host()
        self._pause_image = pause_image
        self._pull_timeout = pull_timeout
        self._call_timeout = call_timeout
        self._connect_timeout = connect_timeout
        self._event_period = event_period
        self._docker: aiodocker.Docker | None = None
        self._ncpu = os.cpu_count() or 1
        self._records: Records[PodSandbox, ContainerStatus] = Records(
            f"of node {node_name} (cluster {self.cluster_uid}) in the engine at {self.docker_host}"
        )
        self._seen: dict[str, _Seen] = {}
        self._events = EventStream(self.name)
        self._reader: asyncio.Task[None] | None = None
        self._streams = 0
        self._drops = 0
        self._last_event_at = 0.0

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Connects (DockerUnavailableError if no engine answers), loads this
        node's sandboxes and containers, and starts reading events."""
        if self._docker is not None:
            return
        timeout = aiohttp.ClientTimeout(
            total=self._call_timeout, sock_connect=self._connect_timeout
        )
        docker = aiodocker.Docker(url=self.docker_host, timeout=timeout)
        try:
            with anyio.fail_after(self._connect_timeout):
                info = await docker.system.info()
        except (DockerError, TimeoutError, OSError) as e:
            await docker.close()
            raise DockerUnavailableError(
                f"no Docker engine answers at {self.docker_host} ({_message(e)}); start "
                f"kpy's with `bash {ENGINE_SCRIPT} start`, or name another with --docker-host "
                "or DOCKER_HOST"
            ) from None
        self._docker = docker
        self._ncpu = int(info.get("NCPU") or self._ncpu)
        self._events.open()
        since = time.time()
        try:
            await self._load()
        except BaseException:
            self._docker = None
            with anyio.CancelScope(shield=True):
                await docker.close()
            raise
        self._reader = asyncio.create_task(self._read_events(since), name="docker events")
        log.info(
            "docker runtime started",
            extra={
                "host": self.docker_host,
                "cluster": self.cluster_uid,
                "node": self.node_name,
                "sandboxes": len(self._records.sandboxes),
                "containers": len(self._records.containers),
            },
        )

    async def _load(self) -> None:
        """The view, from this node's containers as Docker has them now."""
        self._records.sandboxes, self._records.containers, self._seen = {}, {}, {}
        for item in await self._list():
            found = await self._inspect(item["Id"])
            if found is not None:
                self._observe(found, emit=False)

    async def close(self) -> None:
        """Stops the event reader, ends `events()` and closes the connection;
        containers keep running."""
        if self._docker is None:
            return
        if self._reader is not None:
            self._reader.cancel()
            # wait() neither raises the reader's cancellation nor swallows ours.
            await asyncio.wait([self._reader])
            self._reader = None
        docker, self._docker = self._docker, None
        await docker.close()
        self._events.close()

    def statistics(self) -> DockerStatistics:
        return DockerStatistics(
            sandboxes=len(self._records.sandboxes),
            containers=len(self._records.containers),
            streams=self._streams,
            drops=self._drops,
            last_event_at=self._last_event_at,
        )

    # -- images ------------------------------------------------------------

    async def pull_image(self, image: str, policy: str) -> str:
        """Always pulls (but kpy.local images, which no registry serves);
        IfNotPresent pulls only an absent image; Never raises
        ImageNeverPullError for an absent one. A pull is bounded by
        `pull_timeout`; the engine itself joins concurrent pulls of an image."""
        if policy not in PULL_POLICIES:
            raise ImagePullError(
                f'image "{image}": unknown imagePullPolicy "{policy}"; '
                f"use one of {', '.join(PULL_POLICIES)}"
            )
        local = _is_local(image)
        if policy == "Always" and not local:
            return await self._pull(image)
        image_id = await self._image_id(image)
        if image_id is not None:
            return image_id
        if policy == "Never":
            raise ImageNeverPullError(
                f'container image "{image}" is not present with pull policy of Never'
            )
        if local:
            raise ImagePullError(
                f'failed to pull image "{image}": {LOCAL_REGISTRY} images are built on this '
                f"machine, not pulled; build it into the engine at {self.docker_host} "
                f"(`bash {ENGINE_SCRIPT} image` builds {PAUSE_IMAGE})"
            )
        return await self._pull(image)

    async def _pull(self, image: str) -> str:
        try:
            with anyio.fail_after(self._pull_timeout):
                await self._api().images.pull(image)
        except TimeoutError:
            raise ImagePullError(
                f'failed to pull image "{image}": no result within {self._pull_timeout:g}s; '
                f"check that its registry is reachable from the engine at {self.docker_host}"
            ) from None
        except DockerError as e:
            raise ImagePullError(f'failed to pull image "{image}": {_message(e)}') from None
        image_id = await self._image_id(image)
        if image_id is None:
            raise ImagePullError(f'failed to pull image "{image}": not present after the pull')
        return image_id

    async def image_user(self, image: str) -> str | None:
        """The image's `Config.User` ("" for root); ContainerConfigError if
        the image is not here."""
        try:
            info = await self._api().images.inspect(image)
        except DockerError as e:
            raise ContainerConfigError(
                f'cannot read the user of image "{image}": {_message(e)}; pull it again'
            ) from None
        return str((info.get("Config") or {}).get("User") or "")

    async def _image_id(self, image: str) -> str | None:
        try:
            info = await self._api().images.inspect(image)
        except DockerError as e:
            if e.status == 404:
                return None
            raise ImagePullError(f'cannot look up image "{image}": {_message(e)}') from None
        return str(info["Id"])

    # -- sandboxes ---------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        """Creates and starts the pod's pause container; its IP is the pod's."""
        pod = f"{config.namespace}/{config.name}"
        body = _sandbox_body(config, self._owner(), self._pause_image)
        name = _docker_name("POD", config, config.attempt, self.cluster_uid)
        # Shielded: a sandbox half made by a cancelled caller would be a
        # container the view does not know of until the next event.
        with anyio.CancelScope(shield=True):
            sandbox_id = await self._create(name, body, f"pod sandbox of {pod}", RuntimeError_)
            await self._start_or_remove(sandbox_id, f"pod sandbox of {pod}")
            await self._refresh(sandbox_id)
            sandbox = self._sandbox(sandbox_id)
            if sandbox.state is not SandboxState.READY:
                await self._remove(sandbox_id)
                raise RuntimeError_(
                    f"the pause container of pod {pod} exited at once; check that the image "
                    f"{self._pause_image} runs `{' '.join(PAUSE_COMMAND[:2])} ...`"
                )
        return sandbox

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Kills the sandbox's running containers, then stops the pause
        container (Docker takes its IP back)."""
        self._sandbox(sandbox_id)
        live = [
            c.id
            for c in self._records.containers_of(sandbox_id)
            if c.state is ContainerState.RUNNING
        ]
        await _each(self._kill, live)
        await self._kill(sandbox_id)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Stops the sandbox and removes its containers and itself."""
        if sandbox_id not in self._records.sandboxes:
            return
        await self.stop_pod_sandbox(sandbox_id)
        members = await self._list(f"{LABEL_SANDBOX}={sandbox_id}")
        await _each(self._remove, [str(item["Id"]) for item in members])
        await self._remove(sandbox_id)

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        self._api()
        return sorted(self._records.sandboxes.values(), key=lambda s: s.created_at)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        return self._sandbox(sandbox_id)

    # -- containers --------------------------------------------------------

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox: PodSandboxConfig
    ) -> str:
        self._api()
        record = self._records.ready_sandbox(sandbox_id, config.name, sandbox)
        pod = f"{record.namespace}/{record.name}"
        image_user = ""
        if config.security.run_as_group is not None and config.security.run_as_user is None:
            image_user = await self.image_user(config.image) or ""
        body = _container_body(config, sandbox_id, self._owner(), self._ncpu, image_user)
        name = _docker_name(config.name, sandbox, config.attempt, self.cluster_uid)
        what = f'container "{config.name}" of pod {pod}'
        # Shielded: Docker sends no event for a create, so a container made
        # for a cancelled caller would stay unknown until the next listing.
        with anyio.CancelScope(shield=True):
            container_id = await self._create(name, body, what, ContainerCreateError)
            self._apply(_created_status(container_id, sandbox_id, config), "created", emit=False)
        return container_id

    async def start_container(self, container_id: str) -> None:
        """Starts the container. Raises RuntimeError_ if it could not be
        (e.g. no such executable); its status is then exited, reason
        StartError, with Docker's message."""
        c = self._container(container_id)
        if c.state is not ContainerState.CREATED:
            raise RuntimeError_(
                f"{_describe(c)} is {c.state.value}, and a container starts only once; "
                "create a new container to run it again"
            )
        try:
            await self._api().containers.container(container_id).start()
        except DockerError as e:
            await self._refresh(container_id)
            raise RuntimeError_(f"starting {_describe(c)}: {_message(e)}") from None
        await self._refresh(container_id)

    async def stop_container(
        self,
        container_id: str,
        timeout: float,  # noqa: ASYNC109 - the Runtime protocol's signature
    ) -> None:
        """`docker stop` with `timeout` (rounded up to whole seconds): the
        container's stop signal, then SIGKILL; returns once it exited."""
        c = self._container(container_id)
        if c.state is ContainerState.EXITED:
            return
        await self._stop(container_id, timeout)

    async def remove_container(self, container_id: str) -> None:
        if container_id in self._records.containers:
            await self._remove(container_id)

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        self._api()
        containers = (
            list(self._records.containers.values())
            if sandbox_id is None
            else self._records.containers_of(sandbox_id)
        )
        return sorted(containers, key=lambda c: c.created_at)

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._container(container_id)

    async def stats(self, container_id: str) -> ContainerStats:
        """Docker's one-shot stats: cumulative CPU time and the working set
        (usage less inactive file pages, as kubectl top shows)."""
        c = self._container(container_id)
        try:
            data = await self._api()._query_json(
                f"containers/{container_id}/stats",
                params={"stream": "false", "one-shot": "true"},
            )
        except DockerError as e:
            _fail(e, f"reading the stats of {_describe(c)}")
        cpu = int(data.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage") or 0)
        return ContainerStats(container_id, time.time(), cpu, _working_set(data))

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
        """Docker exec, with the container's environment and working
        directory. Output is yielded as it comes, then the exit code; a
        timeout kills the command (by its host pid) and raises TimeoutError."""
        c = self._container(container_id)
        if not command:
            raise RuntimeError_(f"exec in {_describe(c)}: the command is empty")
        deadline = deadline_after(timeout)
        try:
            execution = (
                await self._api()
                .containers.container(container_id)
                .exec(list(command), stdout=True, stderr=True, stdin=stdin is not None)
            )
        except DockerError as e:
            _fail(e, f"exec {list(command)!r} in {_describe(c)}")
        stream = execution.start(detach=False)
        feeder: asyncio.Future[None] | None = None
        what = f"exec {list(command)!r} in {_describe(c)}"
        try:
            with anyio.fail_after(remaining(deadline)):
                await stream.__aenter__()
            if stdin is not None:
                feeder = asyncio.ensure_future(feed(stdin, stream.write_in, _half_closer(stream)))
            while True:
                with anyio.fail_after(remaining(deadline)):
                    message = await stream.read_out()
                if message is None:
                    break
                yield ExecOutput(stream=message.stream, data=bytes(message.data))
            yield ExecOutput(exit_code=await _exit_code(execution, deadline))
        except TimeoutError:
            with anyio.CancelScope(shield=True):
                await self._kill_exec(execution)
            raise TimeoutError(f"{what} did not finish within {timeout}s; it was killed") from None
        except DockerError as e:
            _fail(e, what)
        except aiohttp.ClientError as e:
            raise RuntimeError_(f"{what}: the engine's stream broke: {_message(e)}") from None
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.wait([feeder])
            await stream.close()

    async def _kill_exec(self, execution: aiodocker.execs.Exec) -> None:
        """Docker has no call to stop an exec: its process is killed by pid,
        which is the host's, so only where the engine runs on this machine."""
        if not self.docker_host.startswith("unix://"):
            log.warning(
                "cannot kill a timed-out exec on a remote engine", extra={"exec": execution.id}
            )
            return
        with contextlib.suppress(DockerError):
            info = await execution.inspect()
            if info.get("Running") and info.get("Pid"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(info["Pid"]), signal.SIGKILL)

    # -- logs --------------------------------------------------------------

    async def logs(
        self, container_id: str, *, follow: bool = False, tail_lines: int = 0
    ) -> AsyncIterator[bytes]:
        """Docker's logs of the container, from the last `tail_lines` lines
        if positive; with `follow`, until the container stops. Each stream
        keeps its order; Docker copies stdout and stderr apart, so lines
        written to the two within a moment may swap."""
        c = self._container(container_id)
        params = {
            "stdout": "1",
            "stderr": "1",
            "follow": "1" if follow else "0",
            "tail": str(tail_lines) if tail_lines > 0 else "all",
        }
        # aiodocker's own log reader decodes to text; logs are bytes.
        query = self._stream(f"containers/{container_id}/logs", params, _FOREVER)
        what = f"reading the logs of {_describe(c)}"
        try:
            async with query as response:
                async for frame in _frames(response.content):
                    yield frame
        except DockerError as e:
            _fail(e, what)
        except aiohttp.ClientError as e:
            raise RuntimeError_(f"{what}: the engine's stream broke: {_message(e)}") from None

    # -- Docker calls ------------------------------------------------------

    def _api(self) -> aiodocker.Docker:
        if self._docker is None:
            raise RuntimeError_("the docker runtime is not started: call start() first")
        return self._docker

    @contextlib.asynccontextmanager
    async def _stream(
        self, path: str, params: Mapping[str, str], limits: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A response read as a stream; closed on the way out (aiodocker's
        `_query` leaves that to its caller)."""
        async with self._api()._query(path, params=dict(params), timeout=limits) as response:
            try:
                yield response
            finally:
                response.close()

    def _owner(self) -> dict[str, str]:
        """The labels that make a container this runtime's (Docker ANDs
        label filters)."""
        return {LABEL_CLUSTER: self.cluster_uid, LABEL_NODE: self.node_name}

    async def _list(self, *labels: str) -> list[Json]:
        """This node's containers in this cluster (with those extra labels),
        as Docker lists them."""
        filters = {"label": [*(f"{k}={v}" for k, v in self._owner().items()), *labels]}
        params = {"all": "1", "filters": json.dumps(filters)}
        try:
            found: list[Json] = await self._api()._query_json("containers/json", params=params)
        except DockerError as e:
            _fail(e, f"listing the containers of node {self.node_name} ({self._cluster()})")
        return found

    def _cluster(self) -> str:
        return f"cluster {self.cluster_uid}"

    async def _inspect(self, docker_id: str) -> Json | None:
        try:
            info: Json = await self._api()._query_json(f"containers/{docker_id}/json")
        except DockerError as e:
            if e.status == 404:
                return None
            _fail(e, f"inspecting container {docker_id[:12]}")
        return info

    async def _refresh(self, docker_id: str) -> None:
        """Brings the view of one container up to date with Docker."""
        info = await self._inspect(docker_id)
        if info is None:
            self._forget(docker_id)
        else:
            self._observe(info, emit=True)

    async def _create(self, name: str, body: Json, what: str, error: type[RuntimeError_]) -> str:
        containers = self._api().containers
        try:
            try:
                return (await containers.create(body, name=name)).id
            except DockerError as e:
                if e.status != 409:
                    raise
                # The name is taken (a create whose answer was lost, or a
                # container left over): Docker ids, not names, are what count.
                suffix = secrets.token_hex(4)
                return (await containers.create(body, name=f"{name}_{suffix}")).id
        except DockerError as e:
            hint = ""
            if e.status == 404 and body["Image"] == self._pause_image:
                hint = f"; build the pause image with `bash {ENGINE_SCRIPT} image`"
            raise error(f"creating {what}: {_message(e)}{hint}") from None

    async def _start_or_remove(self, docker_id: str, what: str) -> None:
        container = self._api().containers.container(docker_id)
        try:
            await container.start()
        except DockerError as e:
            with contextlib.suppress(DockerError):
                await container.delete(force=True)
            raise RuntimeError_(f"starting {what}: {_message(e)}") from None

    async def _stop(self, docker_id: str, grace: float) -> None:
        try:
            await self._api().containers.container(docker_id).stop(t=math.ceil(max(grace, 0)))
        except DockerError as e:
            _fail(e, f"stopping container {docker_id[:12]}")
        await self._refresh(docker_id)

    async def _kill(self, docker_id: str) -> None:
        """Stops at once (a container already gone counts as stopped)."""
        with contextlib.suppress(NotFoundError):
            await self._stop(docker_id, 0)

    async def _remove(self, docker_id: str) -> None:
        try:
            await self._api().containers.container(docker_id).delete(force=True)
        except DockerError as e:
            if e.status != 404:
                _fail(e, f"removing container {docker_id[:12]}")
        self._forget(docker_id)

    # -- the view ----------------------------------------------------------

    def _sandbox(self, sandbox_id: str) -> PodSandbox:
        self._api()
        return self._records.sandbox(sandbox_id)

    def _container(self, container_id: str) -> ContainerStatus:
        self._api()
        return self._records.container(container_id)

    def _observe(self, info: Json, *, emit: bool) -> None:
        """Applies what Docker said of one container (its inspect), unless
        the view already holds something newer."""
        labels = info["Config"].get("Labels") or {}
        if any(labels.get(k) != v for k, v in self._owner().items()):
            return
        docker_state = str(info["State"].get("Status", ""))
        if labels.get(LABEL_TYPE) == TYPE_SANDBOX:
            sandbox = _sandbox_from_inspect(info)
            if self._newer(sandbox.id, _sandbox_rank(info), docker_state):
                before = self._records.sandboxes.get(sandbox.id)
                self._records.sandboxes[sandbox.id] = sandbox
                stopped = sandbox.state is SandboxState.NOT_READY
                if emit and stopped and before is not None and before.state is SandboxState.READY:
                    # The pause container died (killed, or the engine
                    # restarted): the pod's network namespace is gone.
                    self._events.emit(
                        ContainerEvent(
                            sandbox.id, sandbox.id, "sandbox_stopped", None, dict(sandbox.labels)
                        )
                    )
        elif labels.get(LABEL_TYPE) == TYPE_CONTAINER:
            self._apply(_status_from_inspect(info), docker_state, emit=emit)

    def _apply(self, status: ContainerStatus, docker_state: str, *, emit: bool) -> None:
        if not self._newer(status.id, _container_rank(status), docker_state):
            return
        before = self._records.containers.get(status.id)
        self._records.containers[status.id] = status
        if not emit:
            return
        was = before.state if before is not None else ContainerState.CREATED
        # A container that ran and exited between two looks still started.
        if was is ContainerState.CREATED and status.started_at is not None:
            self._emit(status, "started")
        if status.state is ContainerState.EXITED and was is not ContainerState.EXITED:
            self._emit(status, "exited")

    def _newer(self, docker_id: str, rank: tuple[float, int, float], docker_state: str) -> bool:
        seen = self._seen.get(docker_id)
        if seen is not None and seen.rank > rank:
            return False
        self._seen[docker_id] = _Seen(rank, docker_state)
        return True

    def _forget(self, docker_id: str) -> None:
        self._records.sandboxes.pop(docker_id, None)
        self._records.containers.pop(docker_id, None)
        self._seen.pop(docker_id, None)

    def _emit(self, status: ContainerStatus, kind: str) -> None:
        self._events.emit(
            ContainerEvent(
                container_id=status.id,
                sandbox_id=status.sandbox_id,
                kind=kind,
                exit_code=status.exit_code if kind == "exited" else None,
                labels=dict(status.labels),
            )
        )

    # -- the event reader --------------------------------------------------

    async def _read_events(self, since: float) -> None:
        """Follows Docker's events until cancelled, reconnecting (the engine
        may restart) with a back-off up to 5 s. Anything else is a bug: it
        ends `events()` with the error, so that the agent fails loudly."""
        delay = 0.1
        try:
            while True:
                try:
                    since = await self._follow_events(since)
                    delay = 0.1
                except (RuntimeError_, DockerError, aiohttp.ClientError, OSError, ValueError) as e:
                    self._drops += 1
                    log.warning(
                        "docker event stream dropped; reconnecting",
                        extra={"host": self.docker_host, "error": _message(e), "retry_in": delay},
                    )
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        except Exception as e:
            log.exception("docker event reader failed", extra={"host": self.docker_host})
            self._events.fail(e)

    async def _follow_events(self, since: float) -> float:
        """One event stream, from `since` for at most `event_period`
        seconds; returns where the next one should start."""
        until = time.time() + self._event_period
        filters = {
            "type": ["container"],
            "event": list(_EVENTS),
            "label": [f"{k}={v}" for k, v in self._owner().items()],
        }
        params = {"filters": json.dumps(filters), "since": f"{since:.9f}", "until": f"{until:.9f}"}
        # The engine ends the stream at `until`; a silent one ends here soon after.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout, sock_read=self._event_period + 30
        )
        async with self._stream("events", params, timeout) as response:
            self._streams += 1
            self._last_event_at = time.time()
            await self._reconcile()
            async for line in response.content:
                if line.strip():
                    self._last_event_at = time.time()
                    await self._on_event(json.loads(line))
        return min(until, time.time())

    async def _reconcile(self) -> None:
        """Catches up with what happened while no stream was open: inspects
        every container whose listed state differs from the view's."""
        listed = await self._list()
        for item in listed:
            seen = self._seen.get(item["Id"])
            if seen is None or seen.docker_state != item.get("State"):
                await self._refresh(item["Id"])
        present = {item["Id"] for item in listed}
        for docker_id in [i for i in self._seen if i not in present]:
            self._forget(docker_id)

    async def _on_event(self, event: Json) -> None:
        docker_id = str(event.get("id") or event.get("Actor", {}).get("ID", ""))
        if not docker_id:
            return
        if event.get("Action") == "destroy":
            self._forget(docker_id)
        else:
            await self._refresh(docker_id)


# -- what Docker is asked to create ----------------------------------------------


def _docker_name(container: str, sandbox: PodSandboxConfig, attempt: int, cluster: str) -> str:
    pod = f"{sandbox.name}_{sandbox.namespace}_{sandbox.uid}"
    return f"k8s_{container}_{pod}_{attempt}_{cluster}"


def _sandbox_body(config: PodSandboxConfig, owner: Mapping[str, str], image: str) -> Json:
    labels = {
        **config.labels,
        **owner,
        LABEL_TYPE: TYPE_SANDBOX,
        LABEL_POD_NAMESPACE: config.namespace,
        LABEL_POD_NAME: config.name,
        LABEL_POD_UID: config.uid,
        LABEL_ATTEMPT: str(config.attempt),
    }
    return {
        "Image": image,
        "Entrypoint": list(PAUSE_COMMAND[:1]),
        "Cmd": list(PAUSE_COMMAND[1:]),
        "Hostname": _hostname(config.hostname or config.name),
        "Labels": labels,
        "StopSignal": "SIGTERM",
        "HostConfig": {
            "IpcMode": "shareable",
            "LogConfig": {"Type": "json-file"},
            # The pod's containers join these network and IPC namespaces.
            **({"Sysctls": dict(config.sysctls)} if config.sysctls else {}),
        },
    }


def _container_body(
    config: ContainerConfig,
    sandbox_id: str,
    owner: Mapping[str, str],
    ncpu: int,
    image_user: str = "",
) -> Json:
    """What Docker is asked to create for `config` in sandbox `sandbox_id`;
    `image_user` (the image's Config.User) is needed only for a runAsGroup
    without a runAsUser."""
    labels = {
        **config.labels,
        **owner,
        LABEL_TYPE: TYPE_CONTAINER,
        LABEL_SANDBOX: sandbox_id,
        LABEL_NAME: config.name,
        LABEL_ATTEMPT: str(config.attempt),
    }
    host: Json = {
        "NetworkMode": f"container:{sandbox_id}",
        "IpcMode": f"container:{sandbox_id}",
        "Mounts": [
            {
                "Type": "bind",
                "Source": m.host_path,
                "Target": m.container_path,
                "ReadOnly": m.read_only,
            }
            for m in config.mounts
        ],
        "LogConfig": {"Type": "json-file"},
        **_security_host_config(config.security),
    }
    if config.cpu_limit_millis is not None:
        # Docker refuses more CPUs than the machine has, which Kubernetes
        # allows (and which limits nothing): capped to the machine.
        nano = config.cpu_limit_millis * 1_000_000
        host["NanoCpus"] = min(max(nano, _MIN_NANO_CPUS), ncpu * 1_000_000_000)
    if config.memory_limit_bytes is not None:
        host["Memory"] = config.memory_limit_bytes
        host["MemorySwap"] = config.memory_limit_bytes
    body: Json = {
        "Image": config.image,
        "Env": [f"{k}={v}" for k, v in config.env],
        "Labels": labels,
        "StopSignal": config.stop_signal,
        "HostConfig": host,
    }
    # As in Kubernetes: `command` replaces the image's entrypoint (and then
    # its cmd is not used), `args` replace its cmd.
    if config.command:
        body["Entrypoint"] = list(config.command)
    if config.args:
        body["Cmd"] = list(config.args)
    if config.working_dir:
        body["WorkingDir"] = config.working_dir
    user = _docker_user(config.security, image_user)
    if user:
        body["User"] = user
    return body


def _docker_user(security: SecurityConfig, image_user: str) -> str:
    """Docker's `User` for runAsUser and runAsGroup: "uid", "uid:gid", or the
    image's user with the gid; "" keeps the image's."""
    if security.run_as_user is not None:
        user = str(security.run_as_user)
    elif security.run_as_group is not None:
        user = image_user.split(":", 1)[0] or "0"
    else:
        return ""
    if security.run_as_group is not None:
        user += f":{security.run_as_group}"
    return user


def _security_host_config(security: SecurityConfig) -> Json:
    """The HostConfig fields of a container's security settings (none for
    the defaults); ContainerConfigError for a seccomp profile Docker is not
    given here (Localhost)."""
    host: Json = {}
    if security.supplemental_groups:
        host["GroupAdd"] = [str(g) for g in security.supplemental_groups]
    if security.privileged:
        host["Privileged"] = True
    if security.capabilities_add:
        host["CapAdd"] = list(security.capabilities_add)
    if security.capabilities_drop:
        host["CapDrop"] = list(security.capabilities_drop)
    if security.read_only_root_filesystem:
        host["ReadonlyRootfs"] = True
    options: list[str] = []
    if security.no_new_privileges:
        options.append("no-new-privileges")
    if security.seccomp_profile == "Unconfined":
        options.append("seccomp=unconfined")
    elif security.seccomp_profile not in ("", "RuntimeDefault"):
        raise ContainerConfigError(
            f'seccompProfile type "{security.seccomp_profile}" is not supported by kpy\'s '
            "Docker runtime; use RuntimeDefault or Unconfined"
        )
    if options:
        host["SecurityOpt"] = options
    return host


def _hostname(name: str) -> str:
    return name[:_HOSTNAME_MAX].rstrip("-.") or "pod"


def _is_local(image: str) -> bool:
    return image.split("/", 1)[0] == LOCAL_REGISTRY and "/" in image


# -- what Docker says ------------------------------------------------------------


def _user_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in _OWN_LABELS}


def _time(value: str | None) -> float | None:
    if not value or value == _ZERO_TIME:
        return None
    return datetime.datetime.fromisoformat(value).timestamp()


def _sandbox_from_inspect(info: Json) -> PodSandbox:
    labels = info["Config"].get("Labels") or {}
    running = bool(info["State"].get("Running"))
    network = info.get("NetworkSettings") or {}
    ip = network.get("IPAddress") or (network.get("Networks") or {}).get("bridge", {}).get(
        "IPAddress", ""
    )
    return PodSandbox(
        id=info["Id"],
        namespace=labels.get(LABEL_POD_NAMESPACE, ""),
        name=labels.get(LABEL_POD_NAME, ""),
        uid=labels.get(LABEL_POD_UID, ""),
        ip=ip if running else "",
        state=SandboxState.READY if running else SandboxState.NOT_READY,
        created_at=_time(info["Created"]) or 0.0,
        labels=_user_labels(labels),
    )


def _sandbox_rank(info: Json) -> tuple[float, int, float]:
    state = info["State"]
    return (_time(state.get("StartedAt")) or 0.0, 0 if state.get("Running") else 1, 0.0)


_STATES: Final = {
    "created": ContainerState.CREATED,
    "running": ContainerState.RUNNING,
    "paused": ContainerState.RUNNING,
    "restarting": ContainerState.RUNNING,
    "removing": ContainerState.EXITED,
    "exited": ContainerState.EXITED,
    "dead": ContainerState.EXITED,
}
_ORDER: Final = {
    ContainerState.UNKNOWN: -1,
    ContainerState.CREATED: 0,
    ContainerState.RUNNING: 1,
    ContainerState.EXITED: 2,
}


def _status_from_inspect(info: Json) -> ContainerStatus:
    labels = info["Config"].get("Labels") or {}
    state = info["State"]
    created_at = _time(info["Created"]) or 0.0
    status = _STATES.get(str(state.get("Status")), ContainerState.UNKNOWN)
    exit_code: int | None = None
    reason = message = ""
    finished_at = _time(state.get("FinishedAt"))
    if status is ContainerState.CREATED and state.get("Error"):
        # A failed start leaves the container "created", with Docker's
        # message and exit code (127: no such executable) but no times.
        status, reason, message = ContainerState.EXITED, "StartError", str(state["Error"])
        exit_code, finished_at = int(state.get("ExitCode") or 128), created_at
    elif status is ContainerState.EXITED:
        exit_code = int(state.get("ExitCode") or 0)
        if state.get("OOMKilled"):
            reason = "OOMKilled"
        else:
            reason = "Completed" if exit_code == 0 else "Error"
        message = str(state.get("Error") or "")
    started_at = _time(state.get("StartedAt"))
    if finished_at is not None and started_at is not None:
        # Docker takes the two times from different places: a command that
        # exits at once can seem to finish before it started.
        finished_at = max(finished_at, started_at)
    return ContainerStatus(
        id=info["Id"],
        sandbox_id=labels.get(LABEL_SANDBOX, ""),
        name=labels.get(LABEL_NAME, ""),
        attempt=int(labels.get(LABEL_ATTEMPT) or 0),
        image=str(info["Config"].get("Image", "")),
        state=status,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at if status is ContainerState.EXITED else None,
        exit_code=exit_code,
        reason=reason,
        message=message,
        image_id=str(info.get("Image", "")),
        labels=_user_labels(labels),
        log_path=str(info.get("LogPath") or ""),
    )


def _created_status(container_id: str, sandbox_id: str, config: ContainerConfig) -> ContainerStatus:
    """The view of a container just created, before anything was inspected."""
    return ContainerStatus(
        id=container_id,
        sandbox_id=sandbox_id,
        name=config.name,
        attempt=config.attempt,
        image=config.image,
        state=ContainerState.CREATED,
        created_at=time.time(),
        labels=dict(config.labels),
    )


def _container_rank(status: ContainerStatus) -> tuple[float, int, float]:
    return (status.started_at or 0.0, _ORDER[status.state], status.finished_at or 0.0)


def _working_set(stats: Json) -> int:
    memory = stats.get("memory_stats") or {}
    usage = int(memory.get("usage") or 0)
    detail = memory.get("stats") or {}
    # cgroup v1 names it total_inactive_file, v2 inactive_file.
    inactive = int(detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0)
    return max(usage - inactive, 0)


def _describe(c: ContainerStatus) -> str:
    return f'container {c.id[:12]} ("{c.name}")'


def _message(e: BaseException) -> str:
    if isinstance(e, DockerError):
        return str(e.message).strip()
    return str(e) or type(e).__name__


def _fail(e: DockerError, what: str) -> NoReturn:
    if e.status == 404:
        raise NotFoundError(f"{what}: {_message(e)}") from None
    raise RuntimeError_(f"{what}: {_message(e)}") from None


async def _each(action: Callable[[str], Awaitable[None]], ids: Iterable[str]) -> None:
    """`action` on every id at once; the first failure is raised as itself,
    not in an exception group, once all are done."""
    failures: list[RuntimeError_] = []

    async def one(docker_id: str) -> None:
        try:
            await action(docker_id)
        except RuntimeError_ as e:
            failures.append(e)

    async with anyio.create_task_group() as tg:
        for docker_id in ids:
            tg.start_soon(one, docker_id)
    if failures:
        raise failures[0]


# -- streams ---------------------------------------------------------------------


async def _frames(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The payloads of Docker's multiplexed stream (an 8-byte header: the
    stream, three zero bytes, the big-endian length; then the data)."""
    while True:
        try:
            header = await content.readexactly(8)
            data = await content.readexactly(int.from_bytes(header[4:], "big"))
        except asyncio.IncompleteReadError:
            return
        if data:
            yield data


def _half_closer(stream: Stream) -> Callable[[], None]:
    """Closes the write side of an exec's stream (the command sees end of
    file; its output still comes). aiodocker's Stream can only close both
    ways, so its transport is half-closed."""

    def close() -> None:
        response = stream._resp
        connection = response.connection if response is not None else None
        transport = connection.transport if connection is not None else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    return close


async def _exit_code(execution: aiodocker.execs.Exec, deadline: float | None) -> int:
    """The exec's exit code. Its output can end (closed, or done) a moment
    before Docker records the exit, or long before if it closed its output
    and runs on: polled until then, within the deadline."""
    pause = _EXIT_POLL
    while True:
        with anyio.fail_after(remaining(deadline)):
            info = await execution.inspect()
        if not info.get("Running"):
            return int(info.get("ExitCode") or 0)
        with anyio.fail_after(remaining(deadline)):
            await anyio.sleep(pause)
        pause = min(pause * 2, 0.5)


__all__ = [
    "DEFAULT_DOCKER_HOST",
    "LABEL_CLUSTER",
    "LABEL_NODE",
    "PAUSE_COMMAND",
    "PAUSE_IMAGE",
    "DockerRuntime",
    "DockerStatistics",
    "DockerUnavailableError",
    "default_docker_host",
    "docker_answers",
]

"""Probes and lifecycle hooks: running one action, and the probe workers.

`run_action` runs one Probe's or LifecycleHandler's action against a
container and says whether it succeeded, worded as Kubernetes words it:

- exec: through the runtime; success iff the command exits 0.
- httpGet: an HTTP/1.1 GET (`Connection: close`) to `host` (the pod IP by
  default) on a numbered or named port; a status of 200-399 is success.
  HTTPS does not verify the certificate, as Kubernetes does not.
- tcpSocket: success iff a connection opens.
- grpc: not supported, always a failure saying so.
- sleep (hooks only): sleeps that many seconds.

The whole action is bounded by `timeout` (None: unbounded, for hooks whose
bound the caller keeps). It never raises for a failed action: every failure
is an `Outcome` with `success=False` and a message a user can act on.

`ProbeManager` runs, for every container given to `add()`, one worker per
probe the container defines (startup, readiness, liveness), with
Kubernetes' timing, defaults and thresholds:

- A worker waits initialDelaySeconds (0) after `add()`, then probes every
  periodSeconds (10), each probe bounded by timeoutSeconds (1). The
  runtime's `probe()` is asked first; if it answers, that is the raw result.
- A raw result becomes the container's result only after failureThreshold
  (3) failures or successThreshold (1) successes in a row, and `on_result`
  is called each time that thresholded result changes. `on_failure`, if
  given, is called for every failed run, before thresholds (the kubelet
  records an Unhealthy event for each).
- Starting results: readiness fails (not ready), liveness succeeds, startup
  is unknown. Without a readiness probe a started container is ready;
  without a startup probe a container is started at once. A container the
  agent found running after a restart may be added with what the API last
  said of it (`started`, `ready`): those are its starting results instead,
  so an agent restart does not flip a ready pod to unready until a probe
  says so, and a started container is not put through its startup probe
  again.
- The startup probe gates the others: readiness and liveness do not probe
  until it succeeded, and it stops once it did. A startup or liveness
  failure stops that worker too: the agent restarts the container, and
  `add()` with the new container id starts afresh.

Workers are tasks of the task group that `run()` drives (a container added
before `run()` starts is probed once it does); `remove()` cancels a pod's
workers and drops its state, and no `on_result` call for them follows.
`time_scale` multiplies every delay and period (not timeouts), so
integration tests can run Kubernetes' timings fast; `clock` (a
`kpy.clock.Clock`, the loop's by default) times the periods, so unit tests
step a `FakeClock` through them instead of sleeping.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import shlex
import socket
import ssl
import string
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias

import anyio

from kpy.agent.runtime.base import RuntimeError_
from kpy.api.core.v1 import LifecycleHandler, Probe
from kpy.clock import Clock, RealClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from anyio.abc import TaskGroup, TaskStatus

    from kpy.agent.runtime.base import ExecOutput, Runtime
    from kpy.api.core.v1 import Container, HTTPGetAction, HTTPHeader, TCPSocketAction
    from kpy.api.meta.v1 import IntOrString

__all__ = [
    "PROBE_KINDS",
    "USER_AGENT",
    "OnResult",
    "Outcome",
    "ProbeManager",
    "ProbeResult",
    "ProbeStatistics",
    "run_action",
]

log = logging.getLogger("kpy.agent.probes")

USER_AGENT: Final = "kpy-probe/1.0"
# In the order a container's probes gate one another.
PROBE_KINDS: Final = ("startup", "readiness", "liveness")
# Kubernetes keeps at most this much of an exec probe's output.
_MAX_OUTPUT: Final = 10 * 1024
_PATH_SAFE: Final = string.punctuation


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one action; `message` says why it failed (or what the
    command printed)."""

    success: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A change of one probe's thresholded result for one container."""

    pod_uid: str
    container_name: str
    kind: str  # "startup" | "readiness" | "liveness"
    success: bool
    message: str
    container_id: str = ""


@dataclass(frozen=True, slots=True)
class ProbeStatistics:
    """Pods and containers the manager holds state for, and live workers."""

    pods: int
    containers: int
    workers: int


#: What `ProbeManager.add` calls on every change of a thresholded result.
OnResult: TypeAlias = Callable[[ProbeResult], None]
# Answers a container's probe of a kind ("startup", "readiness", "liveness")
# without running it: whether it passes now.
ProbeDecider: TypeAlias = Callable[[str, str], Awaitable[bool]]


class _ActionError(Exception):
    """The action cannot even be tried (bad port, bad header); its message
    is the failure's."""


# --- running one action ---


@dataclass(frozen=True, slots=True)
class _Attempt:
    """An action ready to run: `run` tries it; `on_timeout` is the failure's
    message when the timeout cuts it short."""

    run: Callable[[], Awaitable[Outcome]]
    on_timeout: str


async def run_action(
    action: Probe | LifecycleHandler,
    *,
    runtime: Runtime,
    container_id: str,
    container: Container,
    pod_ip: str,
    # A timeout is a failed action, not an exception, so it is ours to keep.
    timeout: float | None,  # noqa: ASYNC109
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Outcome:
    """Runs the action `action` sets; see the module docstring. `sleep`
    serves the sleep action (injectable for tests)."""
    try:
        attempt = _prepare(action, runtime, container_id, container, pod_ip, timeout, sleep)
    except _ActionError as err:
        return Outcome(False, str(err))
    try:
        async with asyncio.timeout(timeout):
            return await attempt.run()
    except TimeoutError:
        return Outcome(False, attempt.on_timeout)


def _prepare(
    action: Probe | LifecycleHandler,
    runtime: Runtime,
    container_id: str,
    container: Container,
    pod_ip: str,
    timeout: float | None,
    sleep: Callable[[float], Awaitable[None]],
) -> _Attempt:
    if action.HasField("exec"):
        return _prepare_exec(runtime, container_id, list(action.exec.command), timeout)
    if action.HasField("http_get"):
        return _prepare_http_get(action.http_get, container, pod_ip)
    if action.HasField("tcp_socket"):
        return _prepare_tcp_socket(action.tcp_socket, container, pod_ip)
    if isinstance(action, Probe) and action.HasField("grpc"):
        raise _ActionError("gRPC probes are not supported by kpy; use exec, httpGet or tcpSocket")
    if isinstance(action, LifecycleHandler) and action.HasField("sleep"):
        seconds = action.sleep.seconds
        return _Attempt(
            run=functools.partial(_sleep, sleep, seconds),
            on_timeout=f"sleep of {seconds}s cut short by the {_seconds(timeout)} timeout",
        )
    what = "probe" if isinstance(action, Probe) else "lifecycle handler"
    raise _ActionError(f'{what} of container "{container.name}" sets no action; set exactly one')


def _seconds(timeout: float | None) -> str:
    return "unbounded" if timeout is None else f"{timeout:g}s"


async def _sleep(sleep: Callable[[float], Awaitable[None]], seconds: float) -> Outcome:
    await sleep(seconds)
    return Outcome(True, "")


def _prepare_exec(
    runtime: Runtime, container_id: str, command: list[str], kill_after: float | None
) -> _Attempt:
    if not command:
        raise _ActionError("exec action has an empty command")
    return _Attempt(
        run=functools.partial(_exec, runtime, container_id, command, kill_after),
        on_timeout=f"command {shlex.join(command)!r} timed out after {_seconds(kill_after)}",
    )


async def _exec(
    runtime: Runtime, container_id: str, command: list[str], kill_after: float | None
) -> Outcome:
    shown = shlex.join(command)
    output = bytearray()
    exit_code: int | None = None
    # The runtime kills the command at `kill_after` and raises TimeoutError.
    stream = runtime.exec(container_id, command, timeout=kill_after)
    try:
        async for piece in stream:
            if piece.exit_code is not None:
                exit_code = piece.exit_code
            elif len(output) < _MAX_OUTPUT:
                output += piece.data[: _MAX_OUTPUT - len(output)]
    except RuntimeError_ as err:
        return Outcome(False, f"command {shown!r} could not run: {err}")
    finally:
        await _close_stream(stream)
    text = output.decode(errors="replace").strip()
    if exit_code == 0:
        return Outcome(True, text)
    ending = "ended without an exit code" if exit_code is None else f"exited with code {exit_code}"
    return Outcome(False, f"command {shown!r} {ending}" + (f": {text}" if text else ""))


async def _close_stream(stream: AsyncIterator[ExecOutput]) -> None:
    # An async generator cut short by a timeout must be closed here, in this
    # task, rather than by the garbage collector later.
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _prepare_http_get(action: HTTPGetAction, container: Container, pod_ip: str) -> _Attempt:
    port = _resolve_port(action.port, container)
    host = _host(action.host, pod_ip)
    scheme = (action.scheme or "HTTP").upper()
    if scheme not in ("HTTP", "HTTPS"):
        raise _ActionError(f'httpGet scheme "{action.scheme}" is not supported; use HTTP or HTTPS')
    path = urllib.parse.quote(action.path or "/", safe=_PATH_SAFE)
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme.lower()}://{_join_host_port(host, port)}{path}"
    request = _encode_request(path, _request_headers(action.http_headers, host, port))
    tls = _insecure_tls() if scheme == "HTTPS" else None
    return _Attempt(
        run=functools.partial(_http_get, url, host, port, tls, request),
        on_timeout=(
            f'Get "{url}": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)"
        ),
    )


async def _http_get(
    url: str, host: str, port: int, tls: ssl.SSLContext | None, request: bytes
) -> Outcome:
    try:
        status = await _fetch_status(host, port, tls, request)
    except OSError as err:
        return Outcome(False, f'Get "{url}": {_dial_error(host, port, err)}')
    except _BadResponse as err:
        return Outcome(False, f'Get "{url}": {err}')
    if 200 <= status < 400:
        return Outcome(True, "")
    return Outcome(False, f"HTTP probe failed with statuscode: {status}")


class _BadResponse(Exception):
    pass


async def _fetch_status(host: str, port: int, tls: ssl.SSLContext | None, request: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        writer.write(request)
        await writer.drain()
        line = await reader.readline()
    except ValueError:
        raise _BadResponse("the status line is longer than 64 KiB") from None
    finally:
        # Only the status line matters; no need for a graceful close.
        writer.transport.abort()
    return _parse_status_line(line)


def _parse_status_line(line: bytes) -> int:
    if not line:
        raise _BadResponse("EOF")
    parts = line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not _is_status(parts[1]):
        raise _BadResponse(f"malformed HTTP status line {line[:100].decode('latin-1')!r}")
    return int(parts[1])


def _is_status(text: str) -> bool:
    return len(text) == 3 and text.isdigit()


def _request_headers(extra: Sequence[HTTPHeader], host: str, port: int) -> list[tuple[str, str]]:
    """Kubernetes' defaults, each replaced by any header of the same name the
    probe sets; `Connection: close` always."""
    overridden = {header.name.lower() for header in extra}
    defaults = [
        ("Host", _join_host_port(host, port)),
        ("User-Agent", USER_AGENT),
        ("Accept", "*/*"),
    ]
    headers = [(name, value) for name, value in defaults if name.lower() not in overridden]
    for header in extra:
        if header.name.lower() == "connection":
            continue
        _check_header(header.name, header.value)
        headers.append((header.name, header.value))
    headers.append(("Connection", "close"))
    return headers


def _check_header(name: str, value: str) -> None:
    if not name or any(c in name for c in " \t\r\n:"):
        raise _ActionError(f"httpGet httpHeaders: invalid header name {name!r}")
    if "\r" in value or "\n" in value:
        raise _ActionError(f"httpGet httpHeaders: the value of {name!r} contains a line break")


def _encode_request(path: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


@functools.cache
def _insecure_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _prepare_tcp_socket(action: TCPSocketAction, container: Container, pod_ip: str) -> _Attempt:
    port = _resolve_port(action.port, container)
    host = _host(action.host, pod_ip)
    return _Attempt(
        run=functools.partial(_tcp_connect, host, port),
        on_timeout=f"dial tcp {_join_host_port(host, port)}: i/o timeout",
    )


async def _tcp_connect(host: str, port: int) -> Outcome:
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
    except OSError as err:
        return Outcome(False, _dial_error(host, port, err))
    transport.abort()
    return Outcome(True, "")


def _resolve_port(port: IntOrString, container: Container) -> int:
    if port.WhichOneof("value") == "str_val":
        number = _named_port(port.str_val, container)
    else:
        number = port.int_val
    if not 0 < number < 65536:
        raise _ActionError(f"invalid port number {number}: must be between 1 and 65535")
    return number


def _named_port(name: str, container: Container) -> int:
    for declared in container.ports:
        if declared.name == name:
            return declared.container_port
    raise _ActionError(
        f'port name "{name}" is not among the ports of container "{container.name}"; '
        "name it in the container's ports or give a port number"
    )


def _host(host: str, pod_ip: str) -> str:
    if host:
        return host
    if not pod_ip:
        raise _ActionError("no host to probe: the pod has no IP yet and the action sets no host")
    return pod_ip


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(host: str, port: int, err: OSError) -> str:
    """Go's wording for a failed dial, which users search for."""
    if isinstance(err, socket.gaierror):
        return f"dial tcp: lookup {host}: {err.strerror or err}"
    if isinstance(err, ssl.SSLError):
        return f"TLS handshake with {_join_host_port(host, port)}: {err.reason or err}"
    # asyncio puts its own words in strerror ("Connect call failed ..."); the errno's are Go's.
    reason = os.strerror(err.errno).lower() if err.errno else str(err) or type(err).__name__
    return f"dial tcp {_join_host_port(host, port)}: connect: {reason}"


# --- probe workers ---


@dataclass(slots=True)
class _Thresholds:
    """Kubernetes' thresholding of raw results for one probe."""

    success_threshold: int
    failure_threshold: int
    # None: unknown yet (the startup probe's start).
    result: bool | None
    last: bool | None = None
    run: int = 0

    def observe(self, success: bool) -> bool:
        """Counts one raw result; True iff the thresholded result changed."""
        if success == self.last:
            self.run += 1
        else:
            self.last, self.run = success, 1
        needed = self.success_threshold if success else self.failure_threshold
        if self.run < needed or success == self.result:
            return False
        self.result = success
        return True


@dataclass(slots=True)
class _ContainerProbes:
    """One container's probe state; dropped with the container."""

    pod_uid: str
    container: Container
    container_id: str
    pod_ip: str
    on_result: OnResult
    on_failure: OnResult | None
    added_at: float
    has_readiness: bool
    started: bool
    ready: bool = False
    started_event: anyio.Event = field(default_factory=anyio.Event)
    scopes: list[anyio.CancelScope] = field(default_factory=list)
    removed: bool = False


@dataclass(frozen=True, slots=True)
class _WorkerSpec:
    probes: _ContainerProbes
    kind: str
    probe: Probe
    scope: anyio.CancelScope


def _next_tick(start: float, period: float, not_before: float) -> float:
    """The first time `start + k * period` (k >= 0) at or after `not_before`."""
    if not_before <= start:
        return start
    # The epsilon keeps a time already on the grid (up to float error) on it.
    return start + math.ceil((not_before - start) / period - 1e-9) * period


class ProbeManager:
    """The probe workers of one agent; see the module docstring."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        time_scale: float = 1.0,
        decide: ProbeDecider | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`decide`, if given, answers every probe in place of running it
        (the simulated runtime's, whose containers run nothing)."""
        if time_scale <= 0:
            raise ValueError(f"ProbeManager: time_scale must be > 0, got {time_scale}")
        self._runtime = runtime
        self._decide = decide
        self._time_scale = time_scale
        self._clock: Clock = clock or RealClock()
        self._task_group: TaskGroup | None = None
        # Workers added before run() started; run() starts them.
        self._pending: list[_WorkerSpec] = []
        self._pods: dict[str, dict[str, _ContainerProbes]] = {}
        self._workers = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Owns every worker until cancelled, starting first those of
        containers added before it ran."""
        if self._task_group is not None:
            raise RuntimeError("ProbeManager.run: already running")
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                pending, self._pending = self._pending, []
                for spec in pending:
                    self._spawn(spec)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._task_group = None
            self._pods.clear()

    def add(
        self,
        pod_uid: str,
        container: Container,
        container_id: str,
        pod_ip: str,
        *,
        on_result: OnResult,
        on_failure: OnResult | None = None,
        started: bool = False,
        ready: bool = False,
    ) -> None:
        """Starts probing a container that has just started (once `run()`
        runs, if it does not yet). Adding the same container id again is a
        no-op; another id for the same container (it restarted) replaces the
        old workers and state. `on_failure` hears of every failed run.
        `started` and `ready` are starting results carried
        over from before an agent restart."""
        containers = self._pods.setdefault(pod_uid, {})
        current = containers.get(container.name)
        if current is not None:
            if current.container_id == container_id:
                return
            _cancel(current)
        probes = _ContainerProbes(
            pod_uid=pod_uid,
            container=container,
            container_id=container_id,
            pod_ip=pod_ip,
            on_result=on_result,
            on_failure=on_failure,
            added_at=self._clock.now(),
            has_readiness=container.HasField("readiness_probe"),
            started=started or not container.HasField("startup_probe"),
            ready=ready,
        )
        if probes.started:
            probes.started_event.set()
        containers[container.name] = probes
        for kind, probe in _probes_of(container):
            if kind == "startup" and probes.started:
                continue  # it passed before the agent restarted
            spec = _WorkerSpec(probes, kind, probe, anyio.CancelScope())
            probes.scopes.append(spec.scope)
            if self._task_group is None:
                self._pending.append(spec)
            else:
                self._spawn(spec)

    def remove(self, pod_uid: str, container_name: str | None = None) -> None:
        """Stops probing one container of the pod, or all of them, and drops
        their state; unknown names are a no-op."""
        containers = self._pods.get(pod_uid)
        if containers is None:
            return
        names = list(containers) if container_name is None else [container_name]
        for name in names:
            probes = containers.pop(name, None)
            if probes is not None:
                _cancel(probes)
        if not containers:
            del self._pods[pod_uid]

    def ready(self, pod_uid: str, name: str) -> bool:
        """The container's readiness; False for a container not added."""
        probes = self._lookup(pod_uid, name)
        if probes is None or not probes.started:
            return False
        return probes.ready if probes.has_readiness else True

    def started(self, pod_uid: str, name: str) -> bool:
        """Whether the startup probe succeeded (True without one); False for
        a container not added."""
        probes = self._lookup(pod_uid, name)
        return probes is not None and probes.started

    def statistics(self) -> ProbeStatistics:
        return ProbeStatistics(
            pods=len(self._pods),
            containers=sum(len(containers) for containers in self._pods.values()),
            workers=self._workers,
        )

    def _lookup(self, pod_uid: str, name: str) -> _ContainerProbes | None:
        return self._pods.get(pod_uid, {}).get(name)

    def _spawn(self, spec: _WorkerSpec) -> None:
        if spec.probes.removed or self._task_group is None:
            return
        name = f"probe {spec.kind} {spec.probes.pod_uid}/{spec.probes.container.name}"
        self._task_group.start_soon(self._work, spec, name=name)

    async def _work(self, spec: _WorkerSpec) -> None:
        self._workers += 1
        try:
            with spec.scope:
                await self._probe_loop(spec.probes, spec.kind, spec.probe)
        finally:
            self._workers -= 1

    async def _probe_loop(self, probes: _ContainerProbes, kind: str, probe: Probe) -> None:
        thresholds = _Thresholds(
            success_threshold=_setting(probe, "success_threshold", 1),
            failure_threshold=_setting(probe, "failure_threshold", 3),
            result={"startup": None, "readiness": probes.ready, "liveness": True}[kind],
        )
        period = _setting(probe, "period_seconds", 10) * self._time_scale
        if kind != "startup":
            await probes.started_event.wait()
        # Probes run on the period's grid from the container's start, from
        # the initial delay on, as the kubelet's ticker runs them; a tick that
        # passed while the probe waited (for the startup probe, or on a slow
        # run) is skipped, never made up in a burst.
        not_before = probes.added_at + probe.initial_delay_seconds * self._time_scale
        while True:
            next_at = _next_tick(probes.added_at, period, max(not_before, self._clock.now()))
            await self._clock.sleep_until(next_at)
            outcome = await self._probe_once(probes, kind, probe)
            if not outcome.success:
                self._report(probes, probes.on_failure, kind, outcome)
            if thresholds.observe(outcome.success):
                self._record(probes, kind, outcome)
            if _finished(kind, thresholds.result):
                return
            not_before = next_at + period

    async def _probe_once(self, probes: _ContainerProbes, kind: str, probe: Probe) -> Outcome:
        timeout = float(_setting(probe, "timeout_seconds", 1))
        try:
            if self._decide is not None:
                decided = await self._decide(probes.container_id, kind)
                message = "" if decided else f"the {self._runtime.name} runtime failed it"
                return Outcome(decided, message)
            return await run_action(
                probe,
                runtime=self._runtime,
                container_id=probes.container_id,
                container=probes.container,
                pod_ip=probes.pod_ip,
                timeout=timeout,
            )
        except Exception as err:  # a probe that errs has failed; the worker lives on
            log.warning(
                "probe errored",
                extra={"pod_uid": probes.pod_uid, "container": probes.container.name, "kind": kind},
                exc_info=True,
            )
            return Outcome(False, f"{kind} probe errored: {err}")

    def _record(self, probes: _ContainerProbes, kind: str, outcome: Outcome) -> None:
        if probes.removed:
            return
        if kind == "startup" and outcome.success:
            probes.started = True
            probes.started_event.set()
        elif kind == "readiness":
            probes.ready = outcome.success
        self._report(probes, probes.on_result, kind, outcome)

    def _report(
        self, probes: _ContainerProbes, callback: OnResult | None, kind: str, outcome: Outcome
    ) -> None:
        if callback is None or probes.removed:
            return
        result = ProbeResult(
            pod_uid=probes.pod_uid,
            container_name=probes.container.name,
            kind=kind,
            success=outcome.success,
            message=outcome.message,
            container_id=probes.container_id,
        )
        try:
            callback(result)
        except Exception:
            # One pod's broken callback must not stop every other pod's probes.
            log.exception("probe callback failed", extra={"pod_uid": probes.pod_uid, "kind": kind})


def _probes_of(container: Container) -> list[tuple[str, Probe]]:
    return [
        (kind, getattr(container, f"{kind}_probe"))
        for kind in PROBE_KINDS
        if container.HasField(f"{kind}_probe")  # type: ignore[arg-type]
    ]


def _finished(kind: str, result: bool | None) -> bool:
    """A startup probe stops once it has a result (started, or failed: the
    container restarts); a liveness probe once it failed, for the same reason."""
    if kind == "startup":
        return result is not None
    return kind == "liveness" and result is False


def _setting(probe: Probe, name: str, default: int) -> int:
    """A probe's field, or Kubernetes' default where unset or below 1."""
    value = getattr(probe, name) if probe.HasField(name) else default  # type: ignore[arg-type]
    return value if isinstance(value, int) and value >= 1 else default


def _cancel(probes: _ContainerProbes) -> None:
    probes.removed = True
    for scope in probes.scopes:
        scope.cancel()

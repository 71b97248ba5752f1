"""Probes and hooks: `run_action` against real HTTP, HTTPS and TCP servers on
127.0.0.1 and exec through the simulated runtime; `ProbeManager`'s
Kubernetes timing and thresholds with the simulated runtime deciding the
raw results (its wall clock set by the test) and `time_scale` shrinking
Kubernetes' periods to milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.agent.probes import ProbeManager, ProbeResult, ProbeStatistics, run_action
from kpy.agent.runtime.base import ContainerConfig, PodSandboxConfig
from kpy.agent.runtime.simulated import SimulatedRuntime
from kpy.api.core.v1 import (
    Container,
    ContainerPort,
    ExecAction,
    GRPCAction,
    HTTPGetAction,
    HTTPHeader,
    LifecycleHandler,
    Probe,
    SleepAction,
    TCPSocketAction,
)
from kpy.api.meta.v1 import IntOrString
from kpy.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from pathlib import Path

START = 1_700_000_000.0
LOCALHOST = "127.0.0.1"


# --- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    """An HTTP server answering GET /status/<code> with that code (200
    otherwise) and never answering GET /hang; it keeps every request head."""

    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            path = head.split(b" ")[1].decode()
            if path == "/hang":
                await reader.read()  # until the prober gives up and hangs up
                return
            status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
            writer.write(f"HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server()
    listener = await asyncio.start_server(server.handle, LOCALHOST, 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()
        # Handlers end once the prober hangs up; wait for them rather than leave them behind.
        pending = {task for task in server.handlers if not task.done()}
        if pending:
            _, still = await asyncio.wait(pending, timeout=5)
            assert not still, "server handlers still running after the probes ended"


def tls_context(directory: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate (made by the openssl tool)."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=probe-test", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
    return port


# --- run_action ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    http: int
    https: int
    refused: int


def http_get(path: str, port: int | str, **fields: object) -> Probe:
    target = IntOrString(str_val=port) if isinstance(port, str) else IntOrString(int_val=port)
    return Probe(http_get=HTTPGetAction(path=path, port=target, **fields))  # type: ignore[arg-type]


def tcp(port: int | str) -> Probe:
    target = IntOrString(str_val=port) if isinstance(port, str) else IntOrString(int_val=port)
    return Probe(tcp_socket=TCPSocketAction(port=target))


@dataclass(frozen=True)
class ActionCase:
    name: str
    action: Callable[[Ports], Probe | LifecycleHandler]
    success: bool
    # Expected in the outcome's message, after `.format(**ports)`.
    message: str = ""
    timeout: float = 2.0
    container_id: str = "ok"


ACTION_CASES = [
    ActionCase("httpGet 200", lambda p: http_get("/status/200", p.http), True),
    ActionCase("httpGet 204", lambda p: http_get("/status/204", p.http), True),
    ActionCase("httpGet 302 is success", lambda p: http_get("/status/302", p.http), True),
    ActionCase(
        "httpGet 404",
        lambda p: http_get("/status/404", p.http),
        False,
        "HTTP probe failed with statuscode: 404",
    ),
    ActionCase(
        "httpGet 500",
        lambda p: http_get("/status/500", p.http),
        False,
        "HTTP probe failed with statuscode: 500",
    ),
    ActionCase("httpGet named port", lambda p: http_get("/status/200", "web"), True),
    ActionCase(
        "httpGet unknown port name",
        lambda p: http_get("/", "metrics"),
        False,
        'port name "metrics" is not among the ports of container "app"',
    ),
    ActionCase(
        "httpGet connection refused",
        lambda p: http_get("/healthz", p.refused),
        False,
        'Get "http://127.0.0.1:{refused}/healthz": dial tcp 127.0.0.1:{refused}: '
        "connect: connection refused",
    ),
    ActionCase(
        "httpGet timeout",
        lambda p: http_get("/hang", p.http),
        False,
        'Get "http://127.0.0.1:{http}/hang": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
        timeout=0.2,
    ),
    ActionCase(
        "httpGet HTTPS skips certificate verification",
        lambda p: http_get("/status/200", p.https, scheme="HTTPS"),
        True,
    ),
    ActionCase(
        "httpGet unknown scheme",
        lambda p: http_get("/", p.http, scheme="FTP"),
        False,
        'httpGet scheme "FTP" is not supported',
    ),
    ActionCase(
        "httpGet host overrides the pod IP",
        lambda p: http_get("/status/200", p.http, host=LOCALHOST),
        True,
    ),
    ActionCase(
        "httpGet as a lifecycle hook",
        lambda p: LifecycleHandler(http_get=http_get("/status/200", p.http).http_get),
        True,
    ),
    ActionCase("tcpSocket open", lambda p: tcp(p.http), True),
    ActionCase("tcpSocket named port", lambda p: tcp("web"), True),
    ActionCase(
        "tcpSocket refused",
        lambda p: tcp(p.refused),
        False,
        "dial tcp 127.0.0.1:{refused}: connect: connection refused",
    ),
    ActionCase(
        "tcpSocket port out of range", lambda p: tcp(70000), False, "invalid port number 70000"
    ),
    ActionCase(
        "grpc is not supported",
        lambda p: Probe(grpc=GRPCAction(port=p.http)),
        False,
        "gRPC probes are not supported",
    ),
    ActionCase("exec exits 0", lambda p: Probe(exec=ExecAction(command=["true"])), True),
    ActionCase(
        "exec exits 3",
        lambda p: Probe(exec=ExecAction(command=["cat", "/tmp/ready"])),
        False,
        "command 'cat /tmp/ready' exited with code 3: simulated exec",
        container_id="failing",
    ),
    ActionCase(
        "exec in a stopped container",
        lambda p: Probe(exec=ExecAction(command=["true"])),
        False,
        "command 'true' could not run: cannot exec in container",
        container_id="stopped",
    ),
    ActionCase("exec with no command", lambda p: Probe(exec=ExecAction()), False, "empty command"),
    ActionCase(
        "no action set", lambda p: Probe(), False, 'probe of container "app" sets no action'
    ),
    ActionCase("sleep hook", lambda p: LifecycleHandler(sleep=SleepAction(seconds=0)), True),
    ActionCase(
        "sleep hook cut short by its timeout",
        lambda p: LifecycleHandler(sleep=SleepAction(seconds=5)),
        False,
        "sleep of 5s cut short by the 0.05s timeout",
        timeout=0.05,
    ),
]


@contextlib.asynccontextmanager
async def exec_runtime() -> AsyncIterator[tuple[SimulatedRuntime, dict[str, str]]]:
    """A simulated runtime with containers "ok" (exec exits 0), "failing"
    (exits 3) and "stopped"; yields it and their ids by those names."""
    runtime = SimulatedRuntime(node_name="node-a")
    ids: dict[str, str] = {}
    for name, behaviour in [
        ("ok", {}),
        ("failing", {"sim.kpy.io/app.exec-exit-code": "3"}),
        ("stopped", {}),
    ]:
        ids[name] = await start_container(runtime, name, behaviour)
    await runtime.stop_container(ids["stopped"], timeout=1)
    try:
        yield runtime, ids
    finally:
        await runtime.close()


async def start_container(
    runtime: SimulatedRuntime, pod: str, annotations: Mapping[str, str]
) -> str:
    sandbox = PodSandboxConfig(
        namespace="default", name=pod, uid=f"uid-{pod}", annotations=dict(annotations)
    )
    sandbox_id = (await runtime.run_pod_sandbox(sandbox)).id
    config = ContainerConfig(name="app", image="app:1")
    container_id = await runtime.create_container(sandbox_id, config, sandbox)
    await runtime.start_container(container_id)
    return container_id


async def test_run_action_cases(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl tool makes the HTTPS server's certificate")
    async with (
        serving() as plain,
        serving(tls_context(tmp_path)) as secure,
        exec_runtime() as (runtime, ids),
    ):
        ports = Ports(http=plain.port, https=secure.port, refused=unused_port())
        container = Container(
            name="app", image="app:1", ports=[ContainerPort(name="web", container_port=plain.port)]
        )
        for case in ACTION_CASES:
            outcome = await run_action(
                case.action(ports),
                runtime=runtime,
                container_id=ids[case.container_id],
                container=container,
                pod_ip=LOCALHOST,
                timeout=case.timeout,
            )
            assert outcome.success is case.success, f"{case.name}: {outcome}"
            expected = case.message.format(**vars(ports))
            assert expected in outcome.message, f"{case.name}: {outcome.message!r}"


@dataclass(frozen=True)
class HeaderCase:
    name: str
    headers: list[tuple[str, str]]
    want: list[str]
    unwanted: list[str] = field(default_factory=list)


HEADER_CASES = [
    HeaderCase(
        "defaults",
        [],
        [
            *("GET /healthz?full=1 HTTP/1.1", "User-Agent: kpy-probe/1.0", "Accept: */*"),
            *("Host: 127.0.0.1:{port}", "Connection: close"),
        ],
    ),
    HeaderCase(
        "probe headers are sent and override defaults by name",
        [("X-Probe", "yes"), ("user-agent", "custom/2"), ("Host", "app.example")],
        ["X-Probe: yes", "user-agent: custom/2", "Host: app.example", "Accept: */*"],
        ["kpy-probe/1.0", "Host: 127.0.0.1"],
    ),
]


@pytest.mark.parametrize("case", HEADER_CASES, ids=lambda case: case.name)
async def test_http_get_sends_headers(case: HeaderCase) -> None:
    async with serving() as server, exec_runtime() as (runtime, ids):
        headers = [HTTPHeader(name=name, value=value) for name, value in case.headers]
        action = http_get("/healthz?full=1", server.port, http_headers=headers)
        container = Container(name="app", image="app:1")
        outcome = await run_action(
            action,
            runtime=runtime,
            container_id=ids["ok"],
            container=container,
            pod_ip=LOCALHOST,
            timeout=2,
        )
        assert outcome.success, case.name
        (request,) = server.requests
        lines = request.decode().split("\r\n")
        for want in case.want:
            assert want.format(port=server.port) in lines, f"{case.name}: {want} not in {lines}"
        for unwanted in case.unwanted:
            assert unwanted not in request.decode(), f"{case.name}: {unwanted} in {lines}"


# --- ProbeManager ----------------------------------------------------------------------------
#
# Kubernetes' own timings (10 s periods) on a FakeClock that the tests step
# one second at a time: every probe runs at the second it is due, so the
# assertions are exact and nothing sleeps in real time.

UID = "uid-web-0"


@dataclass(frozen=True)
class Answer:
    at: float
    kind: str
    success: bool


class SpyRuntime(SimulatedRuntime):
    """The simulated runtime on the test's clock, keeping every probe answer
    it gives; `verdicts` overrides its answer for a kind."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(node_name="node-a", clock=clock.now)
        self.fake_clock = clock
        self.answers: list[Answer] = []
        self.verdicts: dict[str, bool] = {}

    async def probe(self, container_id: str, kind: str) -> bool:
        success = await super().probe(container_id, kind)
        success = self.verdicts.get(kind, success)
        self.answers.append(Answer(self.fake_clock.now(), kind, success))
        return success

    def kinds(self, kind: str) -> list[bool]:
        return [answer.success for answer in self.answers if answer.kind == kind]

    def times(self, kind: str) -> list[float]:
        return [answer.at - START for answer in self.answers if answer.kind == kind]


@dataclass
class Probing:
    clock: FakeClock
    runtime: SpyRuntime
    manager: ProbeManager
    # Each result with the answers given by the time it was reported.
    results: list[tuple[ProbeResult, list[Answer]]] = field(default_factory=list)
    # Every failed run, as `on_failure` heard of it.
    failures: list[ProbeResult] = field(default_factory=list)

    async def add(self, container: Container, annotations: Mapping[str, str]) -> str:
        container_id = await start_container(self.runtime, "web-0", annotations)
        self.manager.add(
            UID,
            container,
            container_id,
            LOCALHOST,
            on_result=self.record,
            on_failure=self.failures.append,
        )
        await settle()
        return container_id

    def record(self, result: ProbeResult) -> None:
        self.results.append((result, list(self.runtime.answers)))

    def reported(self) -> list[tuple[str, bool]]:
        return [(result.kind, result.success) for result, _ in self.results]

    def elapsed(self) -> float:
        return self.clock.now() - START

    async def advance(self, seconds: int) -> None:
        """Steps the clock one second at a time, letting every probe due at
        each second run before the next."""
        for _ in range(seconds):
            self.clock.advance(1)
            await settle()

    async def advance_until(self, condition: Callable[[], bool], what: str, limit: int) -> None:
        for _ in range(limit):
            if condition():
                return
            await self.advance(1)
        assert condition(), f"{what}: not within {limit} s of the fake clock"


async def settle() -> None:
    """Lets woken workers run until each waits on the clock again."""
    for _ in range(20):
        await asyncio.sleep(0)


def new_probing() -> Probing:
    clock = FakeClock(start=START)
    runtime = SpyRuntime(clock)
    manager = ProbeManager(runtime, decide=runtime.probe, clock=clock)
    return Probing(clock, runtime, manager)


@contextlib.asynccontextmanager
async def probing() -> AsyncIterator[Probing]:
    env = new_probing()
    async with anyio.create_task_group() as tasks:
        await tasks.start(env.manager.run)
        yield env
        tasks.cancel_scope.cancel()
    await env.runtime.close()


def exec_probe(**timing: int) -> Probe:
    return Probe(exec=ExecAction(command=["true"]), **timing)  # type: ignore[arg-type]


async def test_liveness_flips_once_after_failure_threshold_then_holds() -> None:
    async with probing() as env:
        container = Container(name="app", image="app:1", liveness_probe=exec_probe())
        container_id = await env.add(container, {"sim.kpy.io/app.fail-probes": "liveness"})
        await env.advance(100)

        ((result, answers),) = env.results
        assert result == ProbeResult(
            UID, "app", "liveness", False, "the simulated runtime failed it", container_id
        )
        # The default failureThreshold of 3 at the default period of 10 s,
        # then no more probes until a restart.
        assert [answer.success for answer in answers] == [False] * 3
        assert env.runtime.times("liveness") == [0, 10, 20]


async def test_readiness_needs_threshold_runs_both_ways() -> None:
    async with probing() as env:
        probe = exec_probe(period_seconds=2, success_threshold=2, failure_threshold=2)
        container = Container(name="app", image="app:1", readiness_probe=probe)
        env.runtime.verdicts["readiness"] = False
        await env.add(container, {})
        await env.advance(4)
        assert env.runtime.kinds("readiness") == [False] * 3
        assert env.results == []  # failing from the start is no change
        assert env.manager.ready(UID, "app") is False

        del env.runtime.verdicts["readiness"]  # probes pass from t=6 on
        await env.advance(4)
        # Two passes in a row (t=6, t=8) make it ready.
        ((result, answers),) = env.results
        assert (result.kind, result.success) == ("readiness", True)
        assert [a.success for a in answers[-3:]] == [False, True, True]
        assert answers[-1].at - START == 8
        assert env.manager.ready(UID, "app") is True

        env.runtime.verdicts["readiness"] = False  # failing again from t=10
        await env.advance(4)
        result, answers = env.results[1]
        assert (result.kind, result.success) == ("readiness", False)
        assert [a.success for a in answers[-3:]] == [True, False, False]
        assert answers[-1].at - START == 12
        assert env.manager.ready(UID, "app") is False


async def test_startup_probe_gates_readiness_and_liveness() -> None:
    async with probing() as env:
        container = Container(
            name="app",
            image="app:1",
            startup_probe=exec_probe(failure_threshold=1000),
            readiness_probe=exec_probe(),
            liveness_probe=exec_probe(),
        )
        annotations = {
            "sim.kpy.io/app.fail-probes": "startup",
            "sim.kpy.io/app.fail-probes-for": "50",
        }
        await env.add(container, annotations)
        await env.advance(40)
        assert env.runtime.times("startup") == [0, 10, 20, 30, 40]
        assert {answer.kind for answer in env.runtime.answers} == {"startup"}
        assert (env.manager.started(UID, "app"), env.manager.ready(UID, "app")) == (False, False)

        await env.advance(10)  # the startup probe at t=50 passes
        assert env.reported() == [("startup", True), ("readiness", True)]
        assert env.manager.started(UID, "app") is True
        assert env.manager.ready(UID, "app") is True

        await env.advance(30)
        assert env.runtime.times("startup") == [0, 10, 20, 30, 40, 50]  # it stopped on success
        # Readiness and liveness start at once after the startup, then every period.
        assert env.runtime.times("liveness") == [50, 60, 70, 80]


async def test_initial_delay_is_honoured() -> None:
    async with probing() as env:
        probe = exec_probe(initial_delay_seconds=20, period_seconds=1)
        container = Container(name="app", image="app:1", readiness_probe=probe)
        await env.add(container, {})
        await env.advance(19)
        assert env.runtime.answers == []
        assert env.manager.ready(UID, "app") is False

        await env.advance(1)
        assert env.runtime.times("readiness") == [20]
        assert env.manager.ready(UID, "app") is True


async def test_every_failed_run_is_heard_of_besides_the_thresholded_result() -> None:
    async with probing() as env:
        container = Container(name="app", image="app:1", liveness_probe=exec_probe())
        container_id = await env.add(container, {"sim.kpy.io/app.fail-probes": "liveness"})
        await env.advance(30)
        # One call per failed run (the kubelet's Unhealthy event for each),
        # the thresholded result once, after the default failureThreshold of 3.
        failed = ProbeResult(
            UID, "app", "liveness", False, "the simulated runtime failed it", container_id
        )
        assert env.failures == [failed] * 3
        assert env.reported() == [("liveness", False)]


async def test_remove_stops_probing_and_drops_state() -> None:
    async with probing() as env:
        container = Container(name="app", image="app:1", readiness_probe=exec_probe())
        await env.add(container, {})
        assert env.manager.ready(UID, "app") is True
        env.manager.remove(UID)
        await settle()
        assert env.manager.statistics().workers == 0
        answered = len(env.runtime.answers)

        await env.advance(30)
        assert len(env.runtime.answers) == answered
        assert env.manager.statistics().pods == 0
        assert (env.manager.ready(UID, "app"), env.manager.started(UID, "app")) == (False, False)
        assert env.reported() == [("readiness", True)]


async def test_without_probes_a_started_container_is_ready() -> None:
    async with probing() as env:
        await env.add(Container(name="app", image="app:1"), {})
        assert (env.manager.started(UID, "app"), env.manager.ready(UID, "app")) == (True, True)
        assert env.manager.statistics().workers == 0
        assert env.manager.ready(UID, "other") is False
        assert env.manager.ready("other-pod", "app") is False


async def test_adding_a_restarted_container_replaces_its_workers() -> None:
    async with probing() as env:
        container = Container(name="app", image="app:1", liveness_probe=exec_probe())
        first = await env.add(container, {})
        env.manager.add(UID, container, first, LOCALHOST, on_result=env.record)  # same id: no-op
        await settle()
        assert env.manager.statistics().workers == 1
        second = await env.add(container, {})  # the container restarted with a new id
        await env.advance(10)
        stats = env.manager.statistics()
        assert (stats.pods, stats.containers, stats.workers) == (1, 1, 1)
        # The new worker probes from its own start: t=0 and t=10, beside
        # the first worker's single probe at t=0.
        assert env.runtime.times("liveness") == [0, 0, 10]
        assert second != first


async def test_containers_added_before_run_are_probed_once_it_runs() -> None:
    env = new_probing()
    await env.add(Container(name="app", image="app:1", readiness_probe=exec_probe()), {})
    await env.advance(30)
    assert env.runtime.answers == []
    async with anyio.create_task_group() as tasks:
        await tasks.start(env.manager.run)
        await settle()
        assert env.manager.ready(UID, "app") is True
        tasks.cancel_scope.cancel()
    assert env.manager.statistics() == ProbeStatistics(pods=0, containers=0, workers=0)
    await env.runtime.close()

"""DockerRuntime against a real Docker engine, directly and through an agent.

The engine is the one `deploy/docker-engine.sh start` runs (or `DOCKER_HOST`);
its images come from `deploy/docker-engine.sh image`. Without an engine the
tests are skipped with that hint, except under CI (env `CI` set), where that
is a failure.

What every runtime must do is in test_runtime_conformance.py; this module
holds what is Docker's own. Every test works on a node name and a cluster
uid of its own, so it sees
only its own containers (the runtime lists by the `io.kpy.cluster` and
`io.kpy.node` labels). Clean-up is the
runtime's own (a fresh runtime removes every sandbox and container of the
node), then a sweep by label that also fails the test if anything was left.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiodocker
import anyio
import pytest

from kpy.agent.main import runtime_for_dir
from kpy.agent.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    ContainerConfig,
    ContainerEvent,
    ContainerState,
    ImageNeverPullError,
    ImagePullError,
    Mount,
    NotFoundError,
    PodSandbox,
    PodSandboxConfig,
    RuntimeError_,
    SandboxState,
)
from kpy.agent.runtime.docker import (
    LABEL_CLUSTER,
    LABEL_NODE,
    DockerRuntime,
    DockerUnavailableError,
    docker_answers,
)
from kpy.agent.runtime.process import ProcessRuntime
from kpy.api import codec
from kpy.api.core.v1 import Pod
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually
from tests.integration._runtimes import (
    EVENT_TIMEOUT,
    IMAGE,
    UNTIL_STOPPED,
    check_started_then_exited,
    docker_host_or_skip,
    remove_everything,
    sweep,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.api.core.v1 import ContainerStatus as APIContainerStatus
    from kpy.client import Client
    from tests.integration._agent import AgentHandle

SERVE = (
    "mkdir -p /www && echo hello from $(hostname) > /www/index.html "
    "&& exec httpd -f -p 8080 -h /www"
)


@pytest.fixture(scope="session")
def docker_host() -> str:
    return docker_host_or_skip()


@dataclass
class Node:
    """One agent's runtime on its own node name, with helpers for the tests."""

    host: str
    name: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    cluster: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    runtime: DockerRuntime = field(init=False)
    events: AsyncIterator[ContainerEvent] = field(init=False)

    def new_runtime(self, **options: Any) -> DockerRuntime:
        return DockerRuntime(
            node_name=self.name, cluster_uid=self.cluster, docker_host=self.host, **options
        )

    async def open(self, **options: Any) -> None:
        self.runtime = self.new_runtime(**options)
        await self.runtime.start()
        self.events = self.runtime.events()

    async def sandbox(
        self, name: str = "pod", **options: Any
    ) -> tuple[PodSandbox, PodSandboxConfig]:
        config = PodSandboxConfig(
            namespace="default",
            name=name,
            uid=f"{name}-{uuid.uuid4().hex[:8]}",
            labels={LABEL_POD_NAME: name},
            **options,
        )
        return await self.runtime.run_pod_sandbox(config), config

    async def run(
        self,
        command: list[str] | None = None,
        *,
        name: str = "c",
        pod: tuple[PodSandbox, PodSandboxConfig] | None = None,
        **config: Any,
    ) -> str:
        """Starts one container (in a new sandbox unless `pod` is given)."""
        sandbox, sandbox_config = pod or await self.sandbox()
        container_config = ContainerConfig(
            name=name,
            image=IMAGE,
            command=command or [],
            labels={LABEL_CONTAINER_NAME: name},
            **config,
        )
        container_id = await self.runtime.create_container(
            sandbox.id, container_config, sandbox_config
        )
        await self.runtime.start_container(container_id)
        return container_id

    async def next_event(self, container_id: str) -> ContainerEvent:
        with anyio.fail_after(EVENT_TIMEOUT):
            async for event in self.events:
                if event.container_id == container_id:
                    return event
        raise AssertionError("the events stream ended")

    async def exited(self, container_id: str) -> ContainerEvent:
        while (event := await self.next_event(container_id)).kind != "exited":
            pass
        return event

    async def log(self, container_id: str) -> bytes:
        return b"".join([c async for c in self.runtime.logs(container_id)])

    async def wait_for_log(self, container_id: str, text: bytes) -> bytes:
        seen = b""
        with anyio.fail_after(EVENT_TIMEOUT):
            async with aclosing(self.runtime.logs(container_id, follow=True)) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    seen += chunk
                    if text in seen:
                        return seen
        raise AssertionError(f"{text!r} never appeared in the log: {seen!r}")

    async def exec(
        self, container_id: str, command: list[str], **options: Any
    ) -> tuple[bytes, bytes, int | None]:
        out, err, code = b"", b"", None
        async for piece in self.runtime.exec(container_id, command, **options):
            if piece.exit_code is not None:
                code = piece.exit_code
            elif piece.stream == 2:
                err += piece.data
            else:
                out += piece.data
        return out, err, code


@pytest.fixture
async def node(docker_host: str) -> AsyncIterator[Node]:
    n = Node(docker_host)
    await n.open()
    try:
        yield n
    finally:
        await n.runtime.close()
        left = await remove_everything(docker_host, n.name, n.cluster)
        assert left == 0, f"{left} container(s) of node {n.name} outlived the runtime's clean-up"


# -- start, exit, events ---------------------------------------------------------


@dataclass(frozen=True)
class ExitCase:
    name: str
    script: str
    exit_code: int
    reason: str


# Plain exit codes are conformance cases; this one is the engine's own.
EXIT_CASES = [
    ExitCase("a child killed, passed on", "sleep 100 & kill -KILL $!; wait $!", 137, "Error"),
]


@pytest.mark.parametrize("case", EXIT_CASES, ids=lambda c: c.name)
async def test_exit_code_reason_and_events(node: Node, case: ExitCase) -> None:
    container_id = await node.run(["sh", "-c", case.script])

    status = await check_started_then_exited(
        node.runtime,
        node.next_event,
        container_id,
        case.exit_code,
        case.reason,
        {LABEL_CONTAINER_NAME: "c"},
    )
    assert status.image == IMAGE, case.name
    assert status.image_id.startswith("sha256:"), case.name


async def test_events_survive_stream_renewals_and_come_once(docker_host: str) -> None:
    n = Node(docker_host)
    await n.open(event_period=1.0)  # each event stream ends after a second
    try:
        container_id = await n.run(["sh", "-c", "sleep 2.5; exit 4"])
        assert (await n.next_event(container_id)).kind == "started"

        exited = await n.next_event(container_id)

        assert (exited.kind, exited.exit_code) == ("exited", 4)
        assert n.runtime.statistics().streams >= 2
        await n.runtime.stop_container(container_id, 1)  # exited: a no-op
        await anyio.sleep(1.5)  # another renewal, which lists and compares
        await n.runtime.close()
        rest = [e async for e in n.events if e.container_id == container_id]
        assert rest == [], "each container is reported started once and exited once"
    finally:
        await n.runtime.close()
        assert await remove_everything(docker_host, n.name, n.cluster) == 0


class Proxy:
    """A unix socket forwarding to the engine's, whose connections a test
    can cut and refuse for a while: a stream that drops, for real."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target.removeprefix("unix://")
        self.refusing = False
        self._open: list[anyio.abc.ByteStream] = []

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with await anyio.create_unix_listener(self.path) as listener:
            task_status.started()
            await listener.serve(self._relay)

    async def cut(self) -> None:
        for stream in self._open:
            await stream.aclose()
        self._open.clear()

    async def _relay(self, client: anyio.abc.ByteStream) -> None:
        async with client:
            if self.refusing:
                return
            async with await anyio.connect_unix(self.target) as upstream:
                self._open += [client, upstream]
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pipe, client, upstream, tg.cancel_scope)
                    await _pipe(upstream, client, tg.cancel_scope)


async def _pipe(
    source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream, scope: anyio.CancelScope
) -> None:
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        async for chunk in source:
            await sink.send(chunk)
    scope.cancel()  # either side gone: the connection is over


async def test_events_resume_after_the_stream_drops(docker_host: str, tmp_path: Path) -> None:
    proxy = Proxy(tmp_path / "engine.sock", docker_host)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.run)
        n = Node(f"unix://{proxy.path}")
        await n.open()
        try:
            container_id = await n.run(["sh", "-c", "sleep 1; exit 9"])
            assert (await n.next_event(container_id)).kind == "started"
            proxy.refusing = True
            await proxy.cut()
            await anyio.sleep(2)  # the container exits while nothing is connected
            proxy.refusing = False

            exited = await n.next_event(container_id)

            assert (exited.kind, exited.exit_code) == ("exited", 9)
            assert n.runtime.statistics().drops >= 1
        finally:
            await n.runtime.close()
            tg.cancel_scope.cancel()
    assert await remove_everything(docker_host, n.name, n.cluster) == 0


async def test_a_start_failure_is_reported(node: Node) -> None:
    with pytest.raises(RuntimeError_) as raised:
        await node.run(["nosuch-binary-kpy", "--flag"])

    assert "executable file not found" in str(raised.value)
    (status,) = await node.runtime.list_containers()
    assert status.state is ContainerState.EXITED
    assert (status.exit_code, status.reason) == (127, "StartError")
    assert "executable file not found" in status.message
    assert status.finished_at is not None, "the restart back-off counts from it"
    with pytest.raises(RuntimeError_, match="starts only once"):
        await node.runtime.start_container(status.id)


async def test_docker_names_follow_the_kubelet(node: Node) -> None:
    sandbox, config = await node.sandbox("web")
    container_id = await node.run(["sh", "-c", UNTIL_STOPPED], name="app", pod=(sandbox, config))

    async with aiodocker.Docker(url=node.host) as docker:
        pause = await docker.containers.get(sandbox.id)
        app = await docker.containers.get(container_id)

    assert pause["Name"] == f"/k8s_POD_web_default_{config.uid}_0_{node.cluster}"
    assert app["Name"] == f"/k8s_app_web_default_{config.uid}_0_{node.cluster}"
    assert app["Config"]["Labels"][LABEL_NODE] == node.name
    assert app["Config"]["Labels"][LABEL_CLUSTER] == node.cluster


# -- one pod's containers, IPs -----------------------------------------------------


async def test_containers_of_a_pod_share_localhost_and_the_pod_ip(node: Node) -> None:
    pod = await node.sandbox("web", hostname="web-host")
    sandbox = pod[0]
    server = await node.run(["sh", "-c", SERVE], name="server", pod=pod)
    fetch = "until wget -qO- http://localhost:8080/; do sleep 0.1; done; hostname"
    client = await node.run(["sh", "-c", fetch], name="client", pod=pod)

    assert (await node.exited(client)).exit_code == 0
    assert await node.log(client) == b"hello from web-host\nweb-host\n"
    assert sandbox.state is SandboxState.READY
    assert await _http_get(sandbox.ip, 8080) == b"hello from web-host\n"
    assert (await node.runtime.container_status(server)).state is ContainerState.RUNNING


async def _http_get(ip: str, port: int) -> bytes:
    """The body of GET / from the host, retried until the server listens."""
    with anyio.fail_after(EVENT_TIMEOUT):
        while True:
            try:
                stream = await anyio.connect_tcp(ip, port)
            except OSError:
                await anyio.sleep(0.1)
                continue
            async with stream:
                await stream.send(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
                data = b""
                try:
                    while True:
                        data += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
            return data.partition(b"\r\n\r\n")[2]


async def test_many_pods_at_once(node: Node) -> None:
    async def pod(i: int) -> tuple[str, str]:
        sandbox, config = await node.sandbox(f"p{i}")
        container_id = await node.run(["sh", "-c", UNTIL_STOPPED], pod=(sandbox, config))
        return sandbox.ip, container_id

    results: list[tuple[str, str]] = []

    async def one(i: int) -> None:
        results.append(await pod(i))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(one, i)

    assert len({ip for ip, _ in results}) == 8
    statuses = await node.runtime.list_containers()
    assert {s.state for s in statuses} == {ContainerState.RUNNING}
    assert len(statuses) == 8


# -- what a container sees -----------------------------------------------------------


@dataclass(frozen=True)
class CommandCase:
    name: str
    config: dict[str, Any]
    log: bytes


COMMAND_CASES = [
    CommandCase(
        "command with env and working dir",
        {"command": ["sh", "-c", "echo $FOO; pwd"], "env": [("FOO", "bar")], "working_dir": "/tmp"},
        b"bar\n/tmp\n",
    ),
    CommandCase(
        "args alone replace the image's cmd", {"args": ["echo", "from args"]}, b"from args\n"
    ),
    CommandCase("command and args", {"command": ["echo"], "args": ["a", "b"]}, b"a b\n"),
]


@pytest.mark.parametrize("case", COMMAND_CASES, ids=lambda c: c.name)
async def test_command_args_env(node: Node, case: CommandCase) -> None:
    container_id = await node.run(**case.config)

    assert (await node.exited(container_id)).exit_code == 0, case.name
    assert await node.log(container_id) == case.log, case.name


async def test_bind_mounts_read_write_and_read_only(node: Node, tmp_path: Path) -> None:
    host_rw, host_ro = tmp_path / "rw", tmp_path / "ro"
    host_rw.mkdir()
    host_ro.mkdir()
    (host_ro / "hello.txt").write_text("hello from the host\n")
    script = """
        cat /ro/hello.txt
        echo written > /rw/out.txt
        if echo nope > /ro/nope.txt; then echo ro-write-worked; else echo ro-refused; fi
    """
    mounts = [Mount(str(host_rw), "/rw"), Mount(str(host_ro), "/ro", read_only=True)]
    container_id = await node.run(["sh", "-c", script], mounts=mounts)

    await node.exited(container_id)
    log = (await node.log(container_id)).decode()
    assert "hello from the host\n" in log
    assert "ro-refused\n" in log
    assert "Read-only file system" in log
    assert (host_rw / "out.txt").read_text() == "written\n"
    assert not (host_ro / "nope.txt").exists()


CGROUP_LIMITS = """
cat /sys/fs/cgroup/cpu.max 2>/dev/null ||
  echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes
"""


async def test_limits_reach_the_cgroup(node: Node) -> None:
    container_id = await node.run(
        ["sh", "-c", CGROUP_LIMITS], cpu_limit_millis=500, memory_limit_bytes=64 * 2**20
    )

    await node.exited(container_id)
    assert (await node.log(container_id)).split() == [b"50000", b"100000", b"67108864"]


async def test_over_its_memory_limit_a_container_is_oom_killed(node: Node) -> None:
    grow = "x=a; while :; do x=$x$x; done"
    container_id = await node.run(["sh", "-c", grow], memory_limit_bytes=16 * 2**20)

    exited = await node.exited(container_id)

    status = await node.runtime.container_status(container_id)
    assert (exited.exit_code, status.exit_code, status.reason) == (137, 137, "OOMKilled")


# -- stop ------------------------------------------------------------------------


@dataclass(frozen=True)
class StopCase:
    name: str
    script: str
    stop_signal: str
    timeout: float
    exit_code: int
    took: tuple[float, float]  # seconds, at least and less than


TRAPS_TERM = "trap 'exit 0' TERM; echo ready; sleep 100 & wait"
IGNORES_TERM = "trap '' TERM; echo ready; while :; do sleep 0.1; done"
TRAPS_USR1 = "trap 'exit 7' USR1; echo ready; sleep 100 & wait"
STOP_CASES = [
    StopCase("SIGTERM handled", TRAPS_TERM, "SIGTERM", 10, 0, (0, 5)),
    StopCase(
        "SIGTERM ignored is killed after the timeout", IGNORES_TERM, "SIGTERM", 1, 137, (1, 6)
    ),
    StopCase("the config's stop signal", TRAPS_USR1, "SIGUSR1", 10, 7, (0, 5)),
]


@pytest.mark.parametrize("case", STOP_CASES, ids=lambda c: c.name)
async def test_stop(node: Node, case: StopCase) -> None:
    container_id = await node.run(["sh", "-c", case.script], stop_signal=case.stop_signal)
    await node.wait_for_log(container_id, b"ready")

    started = time.monotonic()
    await node.runtime.stop_container(container_id, case.timeout)
    took = time.monotonic() - started

    low, high = case.took
    assert low <= took < high, f"{case.name}: stop took {took:.1f}s"
    status = await node.runtime.container_status(container_id)
    assert (status.state, status.exit_code) == (ContainerState.EXITED, case.exit_code), case.name
    assert (await node.exited(container_id)).exit_code == case.exit_code, case.name
    await node.runtime.stop_container(container_id, 1)  # stopping an exited one: a no-op


# -- logs ------------------------------------------------------------------------


async def test_logs_hold_stdout_and_stderr(node: Node) -> None:
    # Docker copies the two streams apart: only the order within each is kept.
    container_id = await node.run(["sh", "-c", "echo out1; echo err1 >&2; echo out2"])
    await node.exited(container_id)

    log = await node.log(container_id)

    assert sorted(log.splitlines()) == [b"err1", b"out1", b"out2"]
    assert log.index(b"out1") < log.index(b"out2")


@dataclass(frozen=True)
class TailCase:
    name: str
    script: str
    tail_lines: int
    want: bytes


TAIL_CASES = [
    TailCase("last two lines", r"printf 'a\nb\nc\n'", 2, b"b\nc\n"),
    TailCase("more lines than there are", r"printf 'a\nb\n'", 10, b"a\nb\n"),
    TailCase("a final line without newline counts", r"printf 'a\nb\nc'", 2, b"b\nc"),
    TailCase("zero means everything", r"printf 'a\nb\n'", 0, b"a\nb\n"),
    TailCase("many lines", "seq 1 300", 100, b"".join(b"%d\n" % i for i in range(201, 301))),
]


@pytest.mark.parametrize("case", TAIL_CASES, ids=lambda c: c.name)
async def test_logs_tail(node: Node, case: TailCase) -> None:
    container_id = await node.run(["sh", "-c", case.script])
    await node.exited(container_id)

    chunks = node.runtime.logs(container_id, tail_lines=case.tail_lines)
    assert b"".join([c async for c in chunks]) == case.want, case.name


async def test_logs_follow_ends_when_the_container_exits(node: Node) -> None:
    container_id = await node.run(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"])

    with anyio.fail_after(EVENT_TIMEOUT):
        chunks = [c async for c in node.runtime.logs(container_id, follow=True)]

    assert b"".join(chunks) == b"1\n2\n3\n"


# -- exec and stats ------------------------------------------------------------------


@dataclass(frozen=True)
class ExecCase:
    name: str
    command: list[str]
    stdin: bytes | None
    want: tuple[bytes, bytes, int]


EXEC_CASES = [
    ExecCase("stdout and the exit code", ["sh", "-c", "echo hi; exit 3"], None, (b"hi\n", b"", 3)),
    ExecCase("stderr apart", ["sh", "-c", "echo oops >&2"], None, (b"", b"oops\n", 0)),
    ExecCase("stdin to its end", ["sh", "-c", "cat; echo end"], b"abc\n", (b"abc\nend\n", b"", 0)),
    ExecCase("the container's env", ["sh", "-c", "echo $FOO"], None, (b"bar\n", b"", 0)),
    ExecCase("no such command", ["nosuch-kpy"], None, (b"", b"", 126)),
]  # fmt: skip


@pytest.mark.parametrize("case", EXEC_CASES, ids=lambda c: c.name)
async def test_exec(node: Node, case: ExecCase) -> None:
    container_id = await node.run(["sh", "-c", UNTIL_STOPPED], env=[("FOO", "bar")])

    async def stdin() -> AsyncIterator[bytes]:
        assert case.stdin is not None
        yield case.stdin

    out, err, code = await node.exec(
        container_id, case.command, stdin=stdin() if case.stdin is not None else None, timeout=10
    )

    want_out, want_err, want_code = case.want
    assert code == want_code, case.name
    assert err == want_err, case.name
    if case.name == "no such command":  # Docker says why on stdout
        assert b"executable file not found" in out, case.name
    else:
        assert out == want_out, case.name


async def test_exec_timeout_kills_the_command(node: Node) -> None:
    container_id = await node.run(["sh", "-c", UNTIL_STOPPED])

    with pytest.raises(TimeoutError, match=r"within 0\.5s; it was killed"):
        await node.exec(container_id, ["sleep", "77"], timeout=0.5)

    async def sleeping() -> bool:
        out, _, _ = await node.exec(container_id, ["ps", "-o", "args"])
        return b"sleep 77" not in out

    await eventually(sleeping, timeout=5, what="the timed-out command gone")


async def test_stats_count_cpu_and_memory(node: Node) -> None:
    container_id = await node.run(["sh", "-c", "while :; do :; done"], cpu_limit_millis=200)
    first = await node.runtime.stats(container_id)
    await anyio.sleep(1.0)

    second = await node.runtime.stats(container_id)

    assert second.cpu_usage_ns > first.cpu_usage_ns > 0
    assert second.memory_bytes > 0
    assert second.timestamp > first.timestamp


# -- images ----------------------------------------------------------------------


@dataclass(frozen=True)
class PullCase:
    name: str
    image: str
    policy: str
    error: type[Exception] | None
    match: str = ""


PULL_CASES = [
    PullCase("Never, present", IMAGE, "Never", None),
    PullCase("IfNotPresent, present", IMAGE, "IfNotPresent", None),
    PullCase("Always, a kpy.local image is local", IMAGE, "Always", None),
    PullCase("Never, absent", "kpy.local/nosuch:1", "Never", ImageNeverPullError,
             'image "kpy.local/nosuch:1" is not present with pull policy of Never'),
    PullCase("IfNotPresent, an absent kpy.local image", "kpy.local/nosuch:1", "IfNotPresent",
             ImagePullError, 'failed to pull image "kpy.local/nosuch:1": .*built on this machine'),
    PullCase("IfNotPresent, no registry answers", "registry.invalid/nosuch:1", "IfNotPresent",
             ImagePullError, 'failed to pull image "registry.invalid/nosuch:1"'),
    PullCase("Always, no registry answers", "registry.invalid/x:1", "Always", ImagePullError,
             'failed to pull image "registry.invalid/x:1"'),
    PullCase("an unknown policy", IMAGE, "Sometimes", ImagePullError, "unknown imagePullPolicy"),
]  # fmt: skip


@pytest.mark.parametrize("case", PULL_CASES, ids=lambda c: c.name)
async def test_pull_image(node: Node, case: PullCase) -> None:
    started = time.monotonic()
    if case.error is None:
        image_id = await node.runtime.pull_image(case.image, case.policy)
        assert image_id.startswith("sha256:"), case.name
    else:
        with pytest.raises(case.error, match=case.match):
            await node.runtime.pull_image(case.image, case.policy)
    assert time.monotonic() - started < 20, f"{case.name}: pulls are bounded"


async def test_a_pull_that_hangs_is_cut_short(docker_host: str) -> None:
    # A "registry" that accepts connections and never answers.
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        runtime = DockerRuntime(node_name="pull-test", docker_host=docker_host, pull_timeout=1.0)
        await runtime.start()
        try:
            started = time.monotonic()
            with pytest.raises(ImagePullError, match=r"no result within 1s"):
                await runtime.pull_image(f"127.0.0.1:{port}/x:1", "IfNotPresent")
            assert time.monotonic() - started < 5
        finally:
            await runtime.close()


# -- agent restarts, nodes -------------------------------------------------------


async def test_a_new_runtime_finds_everything_again(node: Node) -> None:
    pod = await node.sandbox("kept")
    running = await node.run(["sh", "-c", UNTIL_STOPPED], name="run", pod=pod)
    done = await node.run(["sh", "-c", "exit 5"], name="done", pod=pod)
    await node.exited(done)
    dies_unwatched = await node.run(["sh", "-c", "sleep 1; exit 6"], name="late", pod=pod)
    before = {c.id: c for c in await node.runtime.list_containers()}
    await node.runtime.close()
    await anyio.sleep(1.5)  # "late" exits while no runtime watches

    await node.open()

    (sandbox,) = await node.runtime.list_pod_sandboxes()
    assert (sandbox.id, sandbox.ip, sandbox.state) == (pod[0].id, pod[0].ip, SandboxState.READY)
    assert (sandbox.namespace, sandbox.name, sandbox.uid) == ("default", "kept", pod[1].uid)
    assert sandbox.labels == {LABEL_POD_NAME: "kept"}
    after = {c.id: c for c in await node.runtime.list_containers(sandbox.id)}
    assert set(after) == {running, done, dies_unwatched}
    for cid in (running, done):
        assert after[cid].state == before[cid].state
        assert (after[cid].name, after[cid].attempt, after[cid].labels) == (
            before[cid].name,
            before[cid].attempt,
            before[cid].labels,
        )
    assert (after[dies_unwatched].state, after[dies_unwatched].exit_code) == (
        ContainerState.EXITED,
        6,
    )
    # The new runtime reports what happens from now on.
    await node.runtime.stop_container(running, 5)
    assert (await node.next_event(running)).kind == "exited"


async def test_agents_sharing_an_engine_see_only_their_own(node: Node) -> None:
    mine = await node.run(["sh", "-c", UNTIL_STOPPED])
    other = Node(node.host)
    await other.open()
    try:
        assert await other.runtime.list_pod_sandboxes() == []
        assert await other.runtime.list_containers() == []
        with pytest.raises(NotFoundError, match=f"no container {mine}"):
            await other.runtime.container_status(mine)
    finally:
        await other.runtime.close()
        assert await remove_everything(node.host, other.name, other.cluster) == 0


async def test_clusters_sharing_an_engine_and_node_names_see_only_their_own(node: Node) -> None:
    # Two clusters' kpy-node-1: same node name, different cluster uids.
    other = Node(node.host, name=node.name)
    await other.open()
    try:
        mine = await node.run(["sh", "-c", UNTIL_STOPPED], pod=await node.sandbox("mine"))
        theirs = await other.run(["sh", "-c", UNTIL_STOPPED], pod=await other.sandbox("theirs"))

        assert [s.name for s in await node.runtime.list_pod_sandboxes()] == ["mine"]
        assert [s.name for s in await other.runtime.list_pod_sandboxes()] == ["theirs"]
        assert [c.id for c in await node.runtime.list_containers()] == [mine]
        assert [c.id for c in await other.runtime.list_containers()] == [theirs]
        with pytest.raises(NotFoundError, match=f"no container {theirs} .*cluster {node.cluster}"):
            await node.runtime.container_status(theirs)

        # One cluster going down (a fresh runtime removing everything it has,
        # as `kpy down` does) leaves the other's pod running.
        await node.runtime.close()
        assert await remove_everything(node.host, node.name, node.cluster) == 0
        await node.open()
        status = await other.runtime.container_status(theirs)
        assert status.state is ContainerState.RUNNING
        async with aiodocker.Docker(url=node.host) as docker:
            assert (await docker.containers.get(theirs))["State"]["Running"]
    finally:
        await other.runtime.close()
        assert await remove_everything(other.host, other.name, other.cluster) == 0


async def test_no_engine_is_a_clear_error() -> None:
    host = "unix:///nonexistent/kpy-docker.sock"
    runtime = DockerRuntime(node_name="n", docker_host=host, connect_timeout=1.0)

    assert not docker_answers(host)
    with pytest.raises(
        DockerUnavailableError, match=r"no Docker engine answers at .*docker-engine\.sh start"
    ):
        await runtime.start()
    with pytest.raises(RuntimeError_, match="not started"):
        await runtime.list_containers()


@dataclass(frozen=True)
class AutoCase:
    name: str
    recorded: str | None
    host_answers: bool
    want: type[object]


AUTO_CASES = [
    AutoCase("an engine answers: docker", None, True, DockerRuntime),
    AutoCase("no engine: process", None, False, ProcessRuntime),
    AutoCase("chosen before: kept", "process", True, ProcessRuntime),
]


@pytest.mark.parametrize("case", AUTO_CASES, ids=lambda c: c.name)
def test_runtime_auto(docker_host: str, tmp_path: Path, case: AutoCase) -> None:
    if case.recorded is not None:
        (tmp_path / "runtime").mkdir()
        (tmp_path / "runtime" / "auto").write_text(case.recorded)
    host = docker_host if case.host_answers else "unix:///nonexistent/kpy-docker.sock"

    runtime = runtime_for_dir("auto", tmp_path, "n", tmp_path / "ips", docker_host=host)

    assert isinstance(runtime, case.want), case.name
    again = runtime_for_dir("auto", tmp_path, "n", tmp_path / "ips", docker_host=docker_host)
    assert type(again) is type(runtime), f"{case.name}: an agent keeps what auto chose"


# -- through an agent ------------------------------------------------------------


@asynccontextmanager
async def docker_agent(client: Client, root: Path, docker_host: str) -> AsyncIterator[AgentHandle]:
    """An agent on the Docker runtime; afterwards, a sweep by label checks
    that the harness's clean-up (through the runtime) left nothing."""
    node = ""
    ok = False
    try:
        async with running_agent(
            client, runtime="docker", root=root, backoff_base=1.0, probe_time_scale=0.5
        ) as agent:
            node = agent.node_name
            yield agent
        ok = True
    finally:
        left = await sweep(docker_host, node) if node else 0
    assert not ok or left == 0, f"{left} container(s) of node {node} outlived the agent's clean-up"


def make_pod(name: str, node: str, *containers: dict[str, Any], **spec: Any) -> Pod:
    body = {"nodeName": node, "terminationGracePeriodSeconds": 2, "containers": list(containers)}
    return codec.from_dict(Pod, {"metadata": {"name": name}, "spec": {**body, **spec}})


def container(name: str, script: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        **fields,
    }


async def pod_where(client: Client, name: str, check: Any, what: str, timeout: float = 30) -> Pod:  # noqa: ASYNC109
    async def seen() -> Pod | None:
        pod = await client.get(Pod, name)
        return pod if check(pod) else None

    found: Pod = await eventually(seen, timeout=timeout, what=f"pod {name}: {what}")
    return found


def status_of(pod: Pod, name: str) -> APIContainerStatus:
    found = next((s for s in pod.status.container_statuses if s.name == name), None)
    assert found is not None, f"pod {pod.metadata.name}: no status of {name}: {pod.status}"
    return found


def ready(pod: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def test_a_pod_of_two_containers_through_the_agent(
    client: Client, api_namespace: str, tmp_path: Path, docker_host: str
) -> None:
    fetch = (
        "until wget -qO- http://localhost:8080/ > /tmp/got; do sleep 0.2; done; " + UNTIL_STOPPED
    )
    async with docker_agent(client, tmp_path, docker_host) as agent:
        web = container(
            "web",
            SERVE,
            readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        )
        reader = container(
            "reader",
            fetch,
            readinessProbe={"exec": {"command": ["cat", "/tmp/got"]}, "periodSeconds": 1},
        )
        await client.create(make_pod("two", agent.node_name, web, reader, hostname="two-host"))

        pod = await pod_where(client, "two", ready, "Ready")

        assert pod.status.pod_ip
        assert await _http_get(pod.status.pod_ip, 8080) == b"hello from two-host\n"
        for name in ("web", "reader"):
            assert status_of(pod, name).container_id.startswith("docker://")
            assert status_of(pod, name).image_id.startswith("sha256:")


async def test_a_failing_liveness_probe_restarts_the_container(
    client: Client, api_namespace: str, tmp_path: Path, docker_host: str
) -> None:
    script = f"touch /tmp/healthy; (sleep 2; rm /tmp/healthy) & {UNTIL_STOPPED}"
    probe = {
        "exec": {"command": ["test", "-e", "/tmp/healthy"]},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    async with docker_agent(client, tmp_path, docker_host) as agent:
        await client.create(
            make_pod("live", agent.node_name, container("app", script, livenessProbe=probe))
        )

        pod = await pod_where(
            client,
            "live",
            lambda p: p.status.container_statuses and status_of(p, "app").restart_count > 0,
            "restarted",
        )

        app = status_of(pod, "app")
        assert app.restart_count == 1
        assert app.last_state.terminated.exit_code == 0, "stopped by its SIGTERM trap"


async def test_a_container_over_its_memory_limit_is_oom_killed(
    client: Client, api_namespace: str, tmp_path: Path, docker_host: str
) -> None:
    grow = container(
        "grow", "x=a; while :; do x=$x$x; done", resources={"limits": {"memory": "16Mi"}}
    )
    async with docker_agent(client, tmp_path, docker_host) as agent:
        await client.create(make_pod("oom", agent.node_name, grow))

        pod = await pod_where(
            client,
            "oom",
            lambda p: (
                p.status.container_statuses
                and status_of(p, "grow").last_state.HasField("terminated")
            ),
            "restarted after its OOM kill",
        )

        terminated = status_of(pod, "grow").last_state.terminated
        assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)


async def test_image_pull_failures_through_the_agent(
    client: Client, api_namespace: str, tmp_path: Path, docker_host: str
) -> None:
    never = {"name": "app", "image": "kpy.local/nosuch:1", "imagePullPolicy": "Never"}
    missing = {"name": "app", "image": "registry.invalid/x:1", "imagePullPolicy": "IfNotPresent"}
    reasons: dict[str, list[str]] = {"never": [], "missing": []}
    async with (
        docker_agent(client, tmp_path, docker_host) as agent,
        client.watch(Pod, namespace=api_namespace) as events,
    ):
        await client.create(make_pod("never", agent.node_name, never))
        await client.create(make_pod("missing", agent.node_name, missing))

        # Every status written is seen on the watch, however briefly it held.
        with anyio.fail_after(30):
            async for event in events:
                pod = event.object
                seen = reasons.get(pod.metadata.name)
                reason, _ = _waiting(pod)
                if seen is not None and reason and (not seen or seen[-1] != reason):
                    seen.append(reason)
                if reasons["never"] and "ImagePullBackOff" in reasons["missing"]:
                    break

        assert reasons["missing"][:2] == ["ErrImagePull", "ImagePullBackOff"]
        assert reasons["never"][0] == "ErrImageNeverPull"
        never_pod = await client.get(Pod, "never")
        assert "not present with pull policy of Never" in _waiting(never_pod)[1]


def _waiting(pod: Pod) -> tuple[str, str]:
    """The first container's waiting reason and message, if it waits."""
    for s in pod.status.container_statuses:
        return s.state.waiting.reason, s.state.waiting.message
    return "", ""


async def test_an_agent_restart_keeps_the_containers(
    client: Client, api_namespace: str, tmp_path: Path, docker_host: str
) -> None:
    async with docker_agent(client, tmp_path, docker_host) as agent:
        await client.create(make_pod("kept", agent.node_name, container("app", UNTIL_STOPPED)))
        before = await pod_where(client, "kept", lambda p: p.status.phase == "Running", "Running")
        container_id = status_of(before, "app").container_id

        await agent.restart()
        await anyio.sleep(2)  # the new agent has synced the pod by now

        after = await pod_where(client, "kept", lambda p: p.status.phase == "Running", "Running")
        app = status_of(after, "app")
        assert (app.container_id, app.restart_count) == (container_id, 0)
        assert app.state.HasField("running")
        assert agent.agent is not None
        running = await agent.agent.runtime.list_containers()
        assert [c.id for c in running if c.state is ContainerState.RUNNING] == [
            container_id.removeprefix("docker://")
        ]

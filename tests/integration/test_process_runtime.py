"""ProcessRuntime against real processes: start and exit, logs, environment,
pod IPs, bind mounts, stop, exec, stats, and surviving an agent restart.
What every runtime must do is in test_runtime_conformance.py; this module
holds what is the process runtime's own.

Every test works in its own tmp_path (state dir, ip dir, logs). The `node`
fixture's teardown opens a fresh runtime on the state dir, stops whatever
still runs, and checks by pid that no shim or container process is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.agent.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    ContainerConfig,
    ContainerCreateError,
    ContainerEvent,
    ContainerState,
    ExecOutput,
    Mount,
    PodSandbox,
    PodSandboxConfig,
    RuntimeError_,
    SandboxState,
)
from kpy.agent.runtime._ipam import LoopbackIPAM
from kpy.agent.runtime.process import ProcessRuntime
from tests.integration._runtimes import (
    alive,
    check_started_then_exited,
    recorded_pids,
    wait_dead,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PYTHON = sys.executable
EVENT_TIMEOUT = 10.0


@dataclass
class Node:
    """One agent's runtime over tmp_path, with helpers for the tests."""

    tmp: Path
    node_name: str = "node-a"
    runtime: ProcessRuntime = field(init=False)
    events: AsyncIterator[ContainerEvent] = field(init=False)

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    @property
    def ip_dir(self) -> Path:
        return self.tmp / "ips"

    def new_runtime(self) -> ProcessRuntime:
        return ProcessRuntime(
            self.state_dir, ip_dir=self.ip_dir, node_name=self.node_name, log_poll_interval=0.02
        )

    async def open(self) -> None:
        self.runtime = self.new_runtime()
        await self.runtime.start()
        self.events = self.runtime.events()

    async def close(self) -> None:
        await self.runtime.close()
        async for _ in self.events:  # ends at close(); drains what was left
            pass

    async def sandbox(self, name: str = "pod") -> tuple[PodSandbox, PodSandboxConfig]:
        config = PodSandboxConfig(
            namespace="default", name=name, uid=f"uid-{name}", labels={LABEL_POD_NAME: name}
        )
        return await self.runtime.run_pod_sandbox(config), config

    async def run(
        self, command: list[str], *, name: str = "c", pod: str = "pod", **config: Any
    ) -> str:
        """Creates a sandbox and starts one container in it; returns its id."""
        sandbox, sandbox_config = await self.sandbox(pod)
        container_config = ContainerConfig(
            name=name,
            image="busybox",
            command=command,
            log_path=str(self.tmp / "logs" / f"{pod}-{name}.log"),
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

    async def log(self, container_id: str) -> bytes:
        return b"".join([c async for c in self.runtime.logs(container_id)])

    async def wait_for_log(self, container_id: str, text: bytes) -> None:
        seen = b""
        with anyio.fail_after(EVENT_TIMEOUT):
            async with aclosing(self.runtime.logs(container_id, follow=True)) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    seen += chunk
                    if text in seen:
                        return
        raise AssertionError(f"{text!r} never appeared in the log: {seen!r}")

    def pids(self, container_id: str) -> dict[str, int]:
        """The shim's and the container's pids, from the shim's record."""
        record = json.loads(
            (self.state_dir / "containers" / container_id / "running.json").read_text()
        )
        return {"shim": record["shim_pid"], "container": record["pid"]}

    def all_recorded_pids(self) -> list[tuple[int, int]]:
        """(pid, start time) of every shim and container ever started here."""
        return recorded_pids(self.state_dir)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    await n.open()
    try:
        yield n
    finally:
        await n.runtime.close()
        # Whatever a test left (including containers of other runtimes on
        # this state dir) is stopped by a fresh runtime, then checked by pid.
        cleaner = n.new_runtime()
        await cleaner.start()
        for status in await cleaner.list_containers():
            await cleaner.stop_container(status.id, timeout=0)
        await cleaner.close()
        for pid, start_time in n.all_recorded_pids():
            await wait_dead(pid, start_time)
            assert not alive(pid, start_time), f"process {pid} outlived its container"


# -- start, exit, events ---------------------------------------------------------


@dataclass(frozen=True)
class ExitCase:
    name: str
    script: str
    exit_code: int
    reason: str


# Plain exit codes are conformance cases; signals are this runtime's own.
EXIT_CASES = [
    ExitCase("SIGKILL is 128+9", "kill -KILL $$", 137, "Error"),
    ExitCase("SIGTERM is 128+15", "kill -TERM $$", 143, "Error"),
]


@pytest.mark.parametrize("case", EXIT_CASES, ids=lambda c: c.name)
async def test_exit_code_and_events(node: Node, case: ExitCase) -> None:
    container_id = await node.run(["sh", "-c", case.script])

    await check_started_then_exited(
        node.runtime,
        node.next_event,
        container_id,
        case.exit_code,
        case.reason,
        {LABEL_CONTAINER_NAME: "c"},
    )


async def test_args_alone_are_the_command(node: Node) -> None:
    sandbox, sandbox_config = await node.sandbox()
    config = ContainerConfig(name="c", image="x", args=["sh", "-c", "echo from args"])
    container_id = await node.runtime.create_container(sandbox.id, config, sandbox_config)
    await node.runtime.start_container(container_id)
    await node.next_event(container_id)
    assert (await node.next_event(container_id)).exit_code == 0

    assert await node.log(container_id) == b"from args\n"


async def test_a_container_without_command_cannot_be_created(node: Node) -> None:
    sandbox, sandbox_config = await node.sandbox()
    config = ContainerConfig(name="web", image="nginx")

    with pytest.raises(ContainerCreateError, match=r'"web" .*no images.*`command`.*docker'):
        await node.runtime.create_container(sandbox.id, config, sandbox_config)


async def test_executable_not_found_fails_the_start(node: Node) -> None:
    with pytest.raises(RuntimeError_) as raised:
        await node.run(["nosuch-binary-kpy", "--flag"])

    assert 'exec: "nosuch-binary-kpy": executable file not found in $PATH' in str(raised.value)
    (status,) = await node.runtime.list_containers()
    assert status.state is ContainerState.EXITED
    assert (status.exit_code, status.reason) == (128, "StartError")
    assert "executable file not found" in status.message


# -- logs ------------------------------------------------------------------------


async def test_logs_hold_stdout_and_stderr_in_order(node: Node) -> None:
    container_id = await node.run(["sh", "-c", "echo out1; echo err1 >&2; echo out2"])
    await node.next_event(container_id)
    await node.next_event(container_id)

    assert await node.log(container_id) == b"out1\nerr1\nout2\n"


@dataclass(frozen=True)
class TailCase:
    name: str
    content: bytes
    tail_lines: int
    want: bytes


_BIG_LINE = b"x" * 1000 + b"\n"
TAIL_CASES = [
    TailCase("last two lines", b"a\nb\nc\n", 2, b"b\nc\n"),
    TailCase("more lines than the file has", b"a\nb\n", 10, b"a\nb\n"),
    TailCase("a final line without newline counts", b"a\nb\nc", 2, b"b\nc"),
    TailCase("zero means everything", b"a\nb\n", 0, b"a\nb\n"),
    TailCase("empty lines are lines", b"a\n\n\n", 2, b"\n\n"),
    TailCase("across read blocks", _BIG_LINE * 200, 100, _BIG_LINE * 100),
]


@pytest.mark.parametrize("case", TAIL_CASES, ids=lambda c: c.name)
async def test_logs_tail(node: Node, tmp_path: Path, case: TailCase) -> None:
    source = tmp_path / "content"
    source.write_bytes(case.content)
    container_id = await node.run(["cat", str(source)])
    await node.next_event(container_id)
    await node.next_event(container_id)

    chunks = node.runtime.logs(container_id, tail_lines=case.tail_lines)
    assert b"".join([c async for c in chunks]) == case.want, case.name


async def test_logs_follow_ends_when_the_container_exits(node: Node) -> None:
    container_id = await node.run(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"])

    with anyio.fail_after(EVENT_TIMEOUT):
        chunks = [c async for c in node.runtime.logs(container_id, follow=True)]

    assert b"".join(chunks) == b"1\n2\n3\n"
    assert (await node.runtime.container_status(container_id)).state is ContainerState.EXITED


# -- environment, IPs, mounts ----------------------------------------------------


async def test_env_is_exactly_the_config_plus_container_defaults(node: Node) -> None:
    container_id = await node.run(["env"], env=[("FOO", "bar"), ("HOME", "/home/app")])
    await node.next_event(container_id)
    await node.next_event(container_id)
    (sandbox,) = await node.runtime.list_pod_sandboxes()

    lines = (await node.log(container_id)).decode().splitlines()

    assert dict(line.split("=", 1) for line in lines) == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": "pod",
        "HOME": "/home/app",
        "FOO": "bar",
        "KPY_POD_IP": sandbox.ip,
    }


async def test_working_dir(node: Node, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    container_id = await node.run(["sh", "-c", "pwd"], working_dir=str(workdir))
    await node.next_event(container_id)
    await node.next_event(container_id)

    assert await node.log(container_id) == f"{workdir}\n".encode()


async def test_a_server_in_the_container_binds_the_pod_ip(node: Node) -> None:
    sandbox, sandbox_config = await node.sandbox("web")
    with socket.socket() as probe:  # a port that is free on the pod's address
        probe.bind((sandbox.ip, 0))
        port = probe.getsockname()[1]
    server = textwrap.dedent(f"""
        import os, socket
        s = socket.socket()
        s.bind((os.environ["KPY_POD_IP"], {port}))
        s.listen()
        conn, _ = s.accept()
        conn.sendall(b"hello from " + os.environ["KPY_POD_IP"].encode())
        conn.close()
    """)
    config = ContainerConfig(name="server", image="x", command=[PYTHON, "-c", server])
    container_id = await node.runtime.create_container(sandbox.id, config, sandbox_config)
    await node.runtime.start_container(container_id)

    reply = await _fetch(sandbox.ip, port)

    assert reply == f"hello from {sandbox.ip}".encode()
    await node.next_event(container_id)
    assert (await node.next_event(container_id)).exit_code == 0


async def _fetch(ip: str, port: int) -> bytes:
    with anyio.fail_after(EVENT_TIMEOUT):
        while True:
            try:
                stream = await anyio.connect_tcp(ip, port)
            except OSError:
                await anyio.sleep(0.05)  # the server is not listening yet
                continue
            async with stream:
                data = b""
                try:
                    while True:
                        data += await stream.receive()
                except anyio.EndOfStream:
                    return data


async def test_sandboxes_get_different_ips_which_are_released(node: Node) -> None:
    first, _ = await node.sandbox("one")
    second, _ = await node.sandbox("two")
    container_id = await node.run(["sleep", "100"], pod="three")
    third = next(s for s in await node.runtime.list_pod_sandboxes() if s.name == "three")

    assert len({first.ip, second.ip, third.ip}) == 3
    assert all(ip.startswith("127.") and not ip.startswith("127.0.") for ip in (first.ip, third.ip))
    assert {p.name for p in node.ip_dir.iterdir()} == {first.ip, second.ip, third.ip}

    await node.runtime.stop_pod_sandbox(third.id)
    await node.next_event(container_id)
    assert (await node.next_event(container_id)).exit_code == 137, "stopping kills"
    await node.runtime.stop_pod_sandbox(first.id)
    await node.runtime.stop_pod_sandbox(first.id)  # stopping twice is fine

    assert {p.name for p in node.ip_dir.iterdir()} == {second.ip}
    states = {s.name: s.state for s in await node.runtime.list_pod_sandboxes()}
    assert states == {
        "one": SandboxState.NOT_READY,
        "two": SandboxState.READY,
        "three": SandboxState.NOT_READY,
    }
    fourth, _ = await node.sandbox("four")
    assert fourth.ip == first.ip, "the lowest released address comes back first"
    late = ContainerConfig(name="late", image="x", command=["true"])
    with pytest.raises(ContainerCreateError, match=f"sandbox {first.id} .* is stopped"):
        await node.runtime.create_container(first.id, late, PodSandboxConfig("default", "one", "u"))

    await node.runtime.remove_pod_sandbox(third.id)
    await node.runtime.remove_pod_sandbox(third.id)  # removing twice is fine
    assert await node.runtime.list_containers() == []
    assert {s.name for s in await node.runtime.list_pod_sandboxes()} == {"one", "two", "four"}


async def test_two_agents_on_one_machine_get_different_ips(tmp_path: Path) -> None:
    a = ProcessRuntime(tmp_path / "a", ip_dir=tmp_path / "ips", node_name="node-a")
    b = ProcessRuntime(tmp_path / "b", ip_dir=tmp_path / "ips", node_name="node-b")
    await a.start()
    await b.start()
    config = PodSandboxConfig(namespace="default", name="p", uid="u")

    ips = [(await rt.run_pod_sandbox(config)).ip for rt in (a, b, a, b)]

    assert len(set(ips)) == 4
    await a.close()
    await b.close()


async def test_two_clusters_with_the_same_node_name_keep_to_their_own(tmp_path: Path) -> None:
    # Two clusters' kpy-node-1 on one machine: one pod IP directory.
    def runtime(cluster: str) -> ProcessRuntime:
        return ProcessRuntime(
            tmp_path / cluster, ip_dir=tmp_path / "ips", node_name="kpy-node-1", cluster_uid=cluster
        )

    a, b = runtime("cluster-a"), runtime("cluster-b")
    await a.start()
    await b.start()
    started: list[tuple[ProcessRuntime, str]] = []
    try:
        pods = []
        for rt, name in ((a, "mine"), (b, "theirs")):
            config = PodSandboxConfig(namespace="default", name=name, uid=f"uid-{name}")
            sandbox = await rt.run_pod_sandbox(config)
            container = ContainerConfig(
                name="c", image="busybox", command=["sleep", "100"],
                log_path=str(tmp_path / f"{name}.log"),
            )  # fmt: skip
            container_id = await rt.create_container(sandbox.id, container, config)
            await rt.start_container(container_id)
            started.append((rt, container_id))
            pods.append(sandbox)
        mine, theirs = pods

        assert mine.ip != theirs.ip
        assert [s.name for s in await a.list_pod_sandboxes()] == ["mine"]
        assert [s.name for s in await b.list_pod_sandboxes()] == ["theirs"]

        # Cluster a goes down: a fresh runtime (reclaiming stale claims on
        # start) removes everything it has, as `kpy down` does.
        await a.close()
        a = runtime("cluster-a")
        await a.start()
        for sandbox in await a.list_pod_sandboxes():
            await a.remove_pod_sandbox(sandbox.id)

        (theirs_now,) = await b.list_pod_sandboxes()
        assert theirs_now.state is SandboxState.READY
        status = await b.container_status(started[1][1])
        assert status.state is ContainerState.RUNNING
        ipam = LoopbackIPAM(tmp_path / "ips", "kpy-node-1")
        claims = {ip: claim.cluster_uid for ip, claim in ipam.claims().items()}
        assert claims == {theirs.ip: "cluster-b"}, "b's address is still b's"
        again = await a.run_pod_sandbox(PodSandboxConfig("default", "next", "uid-next"))
        assert again.ip != theirs.ip, "a never hands out b's live address"
        await a.remove_pod_sandbox(again.id)
    finally:
        for rt in (a, b):
            for s in await rt.list_pod_sandboxes():
                await rt.remove_pod_sandbox(s.id)
            await rt.close()


async def test_bind_mounts(node: Node, tmp_path: Path) -> None:
    host_rw, host_ro = tmp_path / "host-rw", tmp_path / "host-ro"
    host_rw.mkdir()
    host_ro.mkdir()
    (host_ro / "hello.txt").write_text("hello from the host\n")
    inside_rw, inside_ro = tmp_path / "inside" / "rw", tmp_path / "inside" / "ro"
    script = f"""
        cat {inside_ro}/hello.txt
        echo written > {inside_rw}/out.txt
        if echo nope > {inside_ro}/nope.txt; then echo ro-write-worked; else echo ro-refused; fi
        echo ready
        sleep 100
    """
    container_id = await node.run(
        ["sh", "-c", script],
        mounts=[Mount(str(host_rw), str(inside_rw)), Mount(str(host_ro), str(inside_ro), True)],
    )
    await node.wait_for_log(container_id, b"ready")

    log = (await node.log(container_id)).decode()
    assert "hello from the host\n" in log
    assert "ro-refused\n" in log
    assert "Read-only file system" in log
    assert (host_rw / "out.txt").read_text() == "written\n"
    assert not (host_ro / "nope.txt").exists()
    assert list(inside_ro.iterdir()) == [], "the mounts are the container's alone"

    # exec runs in the container's mount namespace
    result = await _exec(node, container_id, ["cat", f"{inside_ro}/hello.txt"])
    assert result == (b"hello from the host\n", b"", 0)


# -- stop ------------------------------------------------------------------------


async def test_stop_with_sigterm_handled(node: Node) -> None:
    script = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.05; done"
    container_id = await node.run(["sh", "-c", script])
    await node.wait_for_log(container_id, b"ready")
    assert (await node.next_event(container_id)).kind == "started"

    started = time.monotonic()
    await node.runtime.stop_container(container_id, timeout=10)

    assert time.monotonic() - started < 8  # well short of the 10 s timeout
    assert (await node.runtime.container_status(container_id)).exit_code == 0
    assert (await node.next_event(container_id)).exit_code == 0
    assert (await node.log(container_id)).endswith(b"bye\n")


async def test_stop_with_sigterm_ignored_kills_after_the_timeout(node: Node) -> None:
    script = "trap '' TERM; echo ready; while true; do sleep 0.05; done"
    container_id = await node.run(["sh", "-c", script])
    await node.wait_for_log(container_id, b"ready")
    pids = node.pids(container_id)

    started = time.monotonic()
    await node.runtime.stop_container(container_id, timeout=1.0)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 8.0, elapsed  # killed after the timeout, with room for load
    status = await node.runtime.container_status(container_id)
    assert (status.state, status.exit_code) == (ContainerState.EXITED, 137)
    await wait_dead(pids["container"])
    await wait_dead(pids["shim"])
    await node.runtime.stop_container(container_id, timeout=1.0)  # stopped: a no-op


async def test_a_container_starts_with_default_signal_dispositions(node: Node) -> None:
    """An agent started in the background inherits SIGINT ignored; its
    containers must not, or a shell's trap and a SIGINT stop signal do
    nothing (a container runtime starts every container with defaults)."""
    script = "trap 'exit 42' INT; echo ready; while true; do sleep 0.05; done"
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        container_id = await node.run(["sh", "-c", script], stop_signal="SIGINT")
    finally:
        signal.signal(signal.SIGINT, ignored)
    await node.wait_for_log(container_id, b"ready")
    await node.runtime.stop_container(container_id, timeout=10)
    assert (await node.runtime.container_status(container_id)).exit_code == 42


async def test_stop_signal_from_the_config(node: Node) -> None:
    script = "trap 'exit 42' INT; echo ready; while true; do sleep 0.05; done"
    container_id = await node.run(["sh", "-c", script], stop_signal="SIGINT")
    await node.wait_for_log(container_id, b"ready")

    await node.runtime.stop_container(container_id, timeout=10)

    assert (await node.runtime.container_status(container_id)).exit_code == 42


async def test_the_whole_process_group_dies_with_the_container(node: Node, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    container_id = await node.run(["sh", "-c", f"sleep 100 & echo $! > {pid_file}; exit 0"])
    await node.next_event(container_id)
    await node.next_event(container_id)

    await wait_dead(int(pid_file.read_text()))


# -- exec ------------------------------------------------------------------------


async def _exec(
    node: Node,
    container_id: str,
    command: list[str],
    *,
    stdin: AsyncIterator[bytes] | None = None,
) -> tuple[bytes, bytes, int | None]:
    """(stdout, stderr, exit code) of an exec, checking the exit code comes last."""
    outputs: list[ExecOutput] = []
    with anyio.fail_after(EVENT_TIMEOUT):
        async for output in node.runtime.exec(container_id, command, stdin=stdin):
            outputs.append(output)
    assert outputs, "no output at all, not even an exit code"
    assert all(o.exit_code is None for o in outputs[:-1])
    stdout = b"".join(o.data for o in outputs if o.stream == 1)
    stderr = b"".join(o.data for o in outputs if o.stream == 2)
    return stdout, stderr, outputs[-1].exit_code


async def test_exec_output_exit_code_env_and_working_dir(node: Node, tmp_path: Path) -> None:
    container_id = await node.run(
        ["sleep", "100"], env=[("GREETING", "hi")], working_dir=str(tmp_path)
    )

    result = await _exec(
        node, container_id, ["sh", "-c", "echo $GREETING; pwd; echo oops >&2; exit 5"]
    )

    assert result == (f"hi\n{tmp_path}\n".encode(), b"oops\n", 5)


async def test_exec_feeds_stdin(node: Node) -> None:
    container_id = await node.run(["sleep", "100"])

    async def lines() -> AsyncIterator[bytes]:
        for line in (b"one\n", b"two\n"):
            yield line

    assert await _exec(node, container_id, ["cat"], stdin=lines()) == (b"one\ntwo\n", b"", 0)


async def test_exec_streams_output_as_it_comes(node: Node) -> None:
    container_id = await node.run(["sleep", "100"])
    script = "echo first; sleep 0.5; echo second"
    arrivals = []
    async for output in node.runtime.exec(container_id, ["sh", "-c", script]):
        arrivals.append((time.monotonic(), output))

    first = next(t for t, o in arrivals if o.data == b"first\n")
    second = next(t for t, o in arrivals if o.data == b"second\n")
    assert second - first >= 0.4, "the first line came only with the second"


async def test_exec_timeout_kills_the_command(node: Node) -> None:
    container_id = await node.run(["sleep", "100"])
    pids = []

    async def run() -> None:
        command = ["sh", "-c", "echo $$; sleep 100"]
        async for output in node.runtime.exec(container_id, command, timeout=0.5):
            pids.append(int(output.data))

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within 0.5s; it was killed"):
        await run()

    assert time.monotonic() - started < 10  # cut at 0.5 s, far short of the 100 s sleep
    (exec_pid,) = pids
    await wait_dead(exec_pid)


async def test_exec_errors(node: Node) -> None:
    container_id = await node.run(["sleep", "100"])
    with pytest.raises(RuntimeError_, match='exec: "nosuch-kpy": executable file not found'):
        await _exec(node, container_id, ["nosuch-kpy"])
    with pytest.raises(RuntimeError_, match=r'exec: "\./nosuch-kpy": no such file'):
        await _exec(node, container_id, ["./nosuch-kpy"])
    await node.runtime.stop_container(container_id, timeout=0)

    with pytest.raises(RuntimeError_, match="is exited: exec needs it running"):
        await _exec(node, container_id, ["true"])


# -- stats -----------------------------------------------------------------------


async def test_stats_of_a_busy_container(node: Node) -> None:
    container_id = await node.run(["sh", "-c", "while :; do :; done"])

    with anyio.fail_after(EVENT_TIMEOUT):
        while (stats := await node.runtime.stats(container_id)).cpu_usage_ns < 50_000_000:  # noqa: ASYNC110 - stats are polled by design
            await anyio.sleep(0.05)

    assert stats.memory_bytes > 0
    assert stats.container_id == container_id
    later = await node.runtime.stats(container_id)
    assert later.cpu_usage_ns >= stats.cpu_usage_ns, "CPU time is cumulative"
    await node.runtime.stop_container(container_id, timeout=1)
    assert (await node.runtime.stats(container_id)).cpu_usage_ns == 0


# -- surviving the agent ---------------------------------------------------------


_WAIT_FOR_GO = "while [ ! -e {go} ]; do sleep 0.05; done; exit {code}"


async def test_a_restarted_runtime_finds_and_watches_its_containers(
    node: Node, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    container_id = await node.run(["sh", "-c", _WAIT_FOR_GO.format(go=go, code=7)], pod="p")
    (sandbox,) = await node.runtime.list_pod_sandboxes()
    await node.close()

    await node.open()  # a new runtime on the same state dir, as after an agent restart

    assert await node.runtime.list_pod_sandboxes() == [sandbox]
    assert {p.name for p in node.ip_dir.iterdir()} == {sandbox.ip}, "the IP stays claimed"
    (status,) = await node.runtime.list_containers(sandbox.id)
    assert (status.id, status.state) == (container_id, ContainerState.RUNNING)
    assert status.labels == {LABEL_CONTAINER_NAME: "c"}
    go.touch()
    event = await node.next_event(container_id)
    assert (event.kind, event.exit_code) == ("exited", 7)


_CREATOR = """
import asyncio, sys
from pathlib import Path
from kpy.agent.runtime import ContainerConfig, PodSandboxConfig, LABEL_CONTAINER_NAME
from kpy.agent.runtime.process import ProcessRuntime

async def main(state_dir, ip_dir, script):
    runtime = ProcessRuntime(Path(state_dir), ip_dir=Path(ip_dir), node_name="node-a")
    await runtime.start()
    pod = PodSandboxConfig(namespace="default", name="p", uid="u")
    sandbox = await runtime.run_pod_sandbox(pod)
    config = ContainerConfig(
        name="c", image="x", command=["sh", "-c", script], labels={LABEL_CONTAINER_NAME: "c"}
    )
    container_id = await runtime.create_container(sandbox.id, config, pod)
    await runtime.start_container(container_id)
    await runtime.close()
    print(container_id)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_containers_outlive_the_process_that_started_them(node: Node, tmp_path: Path) -> None:
    await node.close()
    go = tmp_path / "go"
    script = _WAIT_FOR_GO.format(go=go, code=9)
    creator = await anyio.run_process(
        [PYTHON, "-c", _CREATOR, str(node.state_dir), str(node.ip_dir), script],
        cwd=Path(__file__).parents[2],
    )
    container_id = creator.stdout.decode().strip()
    # run_process returned: the creator has exited; its container has not.
    assert alive(node.pids(container_id)["container"])

    await node.open()

    (status,) = await node.runtime.list_containers()
    assert (status.id, status.state) == (container_id, ContainerState.RUNNING)
    go.touch()
    event = await node.next_event(container_id)
    assert (event.kind, event.exit_code) == ("exited", 9)


async def test_a_container_that_died_unwatched_is_reported_exited(
    node: Node, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    container_id = await node.run(["sh", "-c", _WAIT_FOR_GO.format(go=go, code=4)])
    pids = node.pids(container_id)
    await node.close()
    go.touch()
    await wait_dead(pids["shim"])

    await node.open()

    status = await node.runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 4, "Error")


async def test_a_container_whose_shim_was_killed_is_unknown(node: Node) -> None:
    container_id = await node.run(["sleep", "100"])
    pids = node.pids(container_id)
    await node.close()
    os.kill(pids["shim"], signal.SIGKILL)
    await wait_dead(pids["shim"])

    await node.open()

    status = await node.runtime.container_status(container_id)
    assert status.state is ContainerState.EXITED
    assert (status.exit_code, status.reason) == (255, "Unknown")
    await wait_dead(pids["container"])  # not left running unsupervised


async def test_a_restart_reclaims_ips_of_sandboxes_that_are_gone(node: Node) -> None:
    sandbox, _ = await node.sandbox()
    await node.close()
    (node.state_dir / "sandboxes" / f"{sandbox.id}.json").unlink()  # as if lost in a crash

    await node.open()

    assert list(node.ip_dir.iterdir()) == []

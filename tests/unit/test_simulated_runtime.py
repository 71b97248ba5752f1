"""The simulated runtime: annotation behaviours (read from the sandbox's
config, as a pod's annotations), events, sandbox IPs, the state file and
scale. Wall time is a settable clock; exit timers run on the
event loop with delays of a few tens of milliseconds."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.agent.runtime.base import (
    LABEL_CONTAINER_INIT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerCreateError,
    ContainerEvent,
    ContainerState,
    ImageNeverPullError,
    ImagePullError,
    NotFoundError,
    PodSandboxConfig,
    RuntimeError_,
    SandboxState,
)
from kpy.agent.runtime.simulated import PULL_ERROR_MARKER, SAVE_INTERVAL, SimulatedRuntime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

START = 1_700_000_000.0


class WallClock:
    """Wall-clock seconds that move only when a test sets them."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sandbox_config(
    name: str = "web-0", annotations: Mapping[str, str] | None = None
) -> PodSandboxConfig:
    return PodSandboxConfig(
        namespace="default",
        name=name,
        uid=f"uid-{name}",
        labels={LABEL_POD_UID: f"uid-{name}"},
        annotations=dict(annotations or {}),
    )


def container_config(name: str = "app", *, init: bool = False) -> ContainerConfig:
    labels = {LABEL_CONTAINER_NAME: name}
    if init:
        labels[LABEL_CONTAINER_INIT] = "true"
    return ContainerConfig(name=name, image="registry.example/app:1", labels=labels)


@pytest.fixture
async def runtime() -> AsyncIterator[SimulatedRuntime]:
    rt = SimulatedRuntime(node_name="node-a")
    await rt.start()
    yield rt
    await rt.close()


async def run_container(
    rt: SimulatedRuntime,
    annotations: Mapping[str, str] | None = None,
    *,
    pod: str = "web-0",
    name: str = "app",
    start: bool = True,
    init: bool = False,
) -> tuple[str, str]:
    """A sandbox (of a pod with `annotations`) with one container (started
    unless told); their ids."""
    sandbox = await rt.run_pod_sandbox(sandbox_config(pod, annotations))
    container_id = await rt.create_container(
        sandbox.id, container_config(name, init=init), sandbox_config(pod, annotations)
    )
    if start:
        await rt.start_container(container_id)
    return sandbox.id, container_id


async def next_events(stream: AsyncIterator[ContainerEvent], count: int) -> list[ContainerEvent]:
    got: list[ContainerEvent] = []
    with anyio.fail_after(5):
        async for event in stream:
            got.append(event)
            if len(got) == count:
                break
    return got


# --- annotations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeCase:
    name: str
    annotations: dict[str, str]
    seconds_after_start: float
    want: dict[str, bool]


PROBE_CASES = [
    ProbeCase(
        "no annotation: every probe passes",
        {},
        0,
        dict.fromkeys(("startup", "readiness", "liveness"), True),
    ),
    ProbeCase(
        "listed kinds always fail",
        {"sim.kpy.io/app.fail-probes": "readiness, liveness"},
        3600,
        {"startup": True, "readiness": False, "liveness": False},
    ),
    ProbeCase(
        "fail-probes-for: failing inside the window",
        {"sim.kpy.io/app.fail-probes": "startup", "sim.kpy.io/app.fail-probes-for": "30"},
        29.9,
        {"startup": False, "readiness": True, "liveness": True},
    ),
    ProbeCase(
        "fail-probes-for: passing once the window is over",
        {"sim.kpy.io/app.fail-probes": "startup", "sim.kpy.io/app.fail-probes-for": "30"},
        30,
        {"startup": True, "readiness": True, "liveness": True},
    ),
    ProbeCase(
        "another container's annotation does not apply",
        {"sim.kpy.io/sidecar.fail-probes": "liveness"},
        0,
        {"startup": True, "readiness": True, "liveness": True},
    ),
]


@pytest.mark.parametrize("case", PROBE_CASES, ids=lambda case: case.name)
async def test_probe_answers_from_annotations(case: ProbeCase) -> None:
    clock = WallClock()
    rt = SimulatedRuntime(node_name="node-a", clock=clock)
    _, container_id = await run_container(rt, case.annotations)
    clock.now += case.seconds_after_start
    got = {kind: await rt.probe(container_id, kind) for kind in case.want}
    assert got == case.want, case.name
    await rt.close()


async def test_probe_of_a_container_not_running_fails(runtime: SimulatedRuntime) -> None:
    _, created = await run_container(runtime, start=False)
    assert await runtime.probe(created, "liveness") is False
    with pytest.raises(NotFoundError, match="no simulated container nope"):
        await runtime.probe("nope", "liveness")


@dataclass(frozen=True)
class BadAnnotationCase:
    name: str
    key: str
    value: str
    problem: str


BAD_ANNOTATION_CASES = [
    BadAnnotationCase("exit-after not a number", "exit-after", "soon", "number of seconds"),
    BadAnnotationCase("exit-after negative", "exit-after", "-1", ">= 0"),
    BadAnnotationCase("exit-code out of range", "exit-code", "256", "between 0 and 255"),
    BadAnnotationCase("unknown probe kind", "fail-probes", "readyness", "probe kinds are"),
    BadAnnotationCase("image-pull other than fail", "image-pull", "maybe", '"fail"'),
    BadAnnotationCase("memory not a quantity", "memory", "lots", "quantity"),
    BadAnnotationCase("unknown field", "exit-afterr", "1", "unknown"),
]


@pytest.mark.parametrize("case", BAD_ANNOTATION_CASES, ids=lambda case: case.name)
async def test_bad_annotation_fails_create_naming_it(
    runtime: SimulatedRuntime, case: BadAnnotationCase
) -> None:
    key = f"sim.kpy.io/app.{case.key}"
    with pytest.raises(ContainerCreateError) as raised:
        await run_container(runtime, {key: case.value})
    message = str(raised.value)
    assert key in message, case.name
    assert case.problem in message, case.name
    assert "default/web-0" in message, case.name


async def test_image_pull_failures(runtime: SimulatedRuntime) -> None:
    assert (await runtime.pull_image("registry.example/app:1", "Always")).startswith("sha256:")
    broken = f"registry.example/{PULL_ERROR_MARKER}:1"
    with pytest.raises(ImagePullError, match=broken) as pulled:
        await runtime.pull_image(broken, "IfNotPresent")
    assert type(pulled.value) is ImagePullError
    with pytest.raises(ImageNeverPullError, match="not present with pull policy of Never"):
        await runtime.pull_image(broken, "Never")
    with pytest.raises(ImagePullError, match=r'image "registry.example/app:1" failed') as created:
        await run_container(runtime, {"sim.kpy.io/app.image-pull": "fail"})
    assert created.value.reason == "ErrImagePull"


async def test_exec_exit_code_from_annotation(runtime: SimulatedRuntime) -> None:
    _, plain = await run_container(runtime, pod="plain")
    _, failing = await run_container(runtime, {"sim.kpy.io/app.exec-exit-code": "3"}, pod="failing")
    assert [out.exit_code async for out in runtime.exec(plain, ["true"])] == [0]
    outputs = [out async for out in runtime.exec(failing, ["cat", "/ready"])]
    assert outputs[-1].exit_code == 3
    assert b"exited with code 3" in outputs[0].data
    await runtime.stop_container(plain, timeout=1)
    with pytest.raises(RuntimeError_, match="exited, not running"):
        [out async for out in runtime.exec(plain, ["true"])]


async def test_stats_report_annotated_memory_and_cpu() -> None:
    clock = WallClock()
    rt = SimulatedRuntime(node_name="node-a", clock=clock)
    _, default = await run_container(rt, pod="default")
    annotations = {"sim.kpy.io/app.memory": "64Mi", "sim.kpy.io/app.cpu-millis": "250"}
    _, busy = await run_container(rt, annotations, pod="busy")
    clock.now += 2
    plain_stats, busy_stats = await rt.stats(default), await rt.stats(busy)
    assert (plain_stats.memory_bytes, plain_stats.cpu_usage_ns) == (4 * 1024 * 1024, 0)
    # 250 millicores for 2 s is half a second of CPU.
    assert (busy_stats.memory_bytes, busy_stats.cpu_usage_ns) == (64 * 1024 * 1024, 500_000_000)
    await rt.stop_container(busy, timeout=1)
    clock.now += 5
    stopped = await rt.stats(busy)
    assert (stopped.memory_bytes, stopped.cpu_usage_ns) == (0, 500_000_000)
    await rt.close()


# --- lifecycle and events --------------------------------------------------------------------


async def test_exit_after_exits_with_code_and_reports_it(runtime: SimulatedRuntime) -> None:
    stream = runtime.events()
    annotations = {"sim.kpy.io/app.exit-after": "0.05", "sim.kpy.io/app.exit-code": "2"}
    sandbox_id, container_id = await run_container(runtime, annotations)
    started, exited = await next_events(stream, 2)
    assert (started.kind, started.container_id, started.sandbox_id) == (
        "started",
        container_id,
        sandbox_id,
    )
    assert started.labels[LABEL_CONTAINER_NAME] == "app"
    assert (exited.kind, exited.exit_code) == ("exited", 2)
    status = await runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 2, "Error")


async def test_exit_after_zero_starts_then_exits(runtime: SimulatedRuntime) -> None:
    stream = runtime.events()
    _, container_id = await run_container(runtime, {"sim.kpy.io/app.exit-after": "0"})
    events = await next_events(stream, 2)
    assert [(event.kind, event.exit_code) for event in events] == [("started", None), ("exited", 0)]
    status = await runtime.container_status(container_id)
    assert (status.state, status.reason) == (ContainerState.EXITED, "Completed")
    assert status.started_at == status.finished_at


async def test_stop_exits_zero_at_once_and_only_once(runtime: SimulatedRuntime) -> None:
    stream = runtime.events()
    _, container_id = await run_container(runtime, {"sim.kpy.io/app.exit-after": "0.05"})
    await runtime.stop_container(container_id, timeout=30)
    await runtime.stop_container(container_id, timeout=30)  # a no-op once exited
    status = await runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (
        ContainerState.EXITED,
        0,
        "Completed",
    )
    await anyio.sleep(0.1)  # past exit-after: its timer must not fire a second exit
    await runtime.close()
    events = [(event.kind, event.exit_code) async for event in stream]
    assert events == [("started", None), ("exited", 0)]


async def test_events_are_kept_from_start_not_from_the_call(runtime: SimulatedRuntime) -> None:
    # The agent reads events only after its workers may have started (and
    # seen exit) containers: what happened since start() must reach it.
    _, before = await run_container(runtime, {"sim.kpy.io/app.exit-after": "0"}, pod="before")
    stream = runtime.events()
    events = await next_events(stream, 2)
    assert [(event.kind, event.container_id) for event in events] == [
        ("started", before),
        ("exited", before),
    ]


async def test_init_containers_exit_at_once_unless_annotated(runtime: SimulatedRuntime) -> None:
    _, init = await run_container(runtime, pod="a", init=True)
    _, annotated = await run_container(
        runtime, {"sim.kpy.io/app.exit-after": "30"}, pod="b", init=True
    )
    assert (await runtime.container_status(init)).state is ContainerState.EXITED
    assert (await runtime.container_status(annotated)).state is ContainerState.RUNNING


async def test_container_starts_once(runtime: SimulatedRuntime) -> None:
    _, container_id = await run_container(runtime)
    with pytest.raises(RuntimeError_, match="starts only once; create a new one"):
        await runtime.start_container(container_id)


async def test_stopping_the_sandbox_kills_its_containers_and_frees_its_ip(
    runtime: SimulatedRuntime,
) -> None:
    sandbox_id, container_id = await run_container(runtime)
    await runtime.stop_pod_sandbox(sandbox_id)
    status = await runtime.container_status(container_id)
    assert (status.state, status.exit_code) == (ContainerState.EXITED, 137)
    (sandbox,) = await runtime.list_pod_sandboxes()
    assert (sandbox.state, sandbox.ip) == (SandboxState.NOT_READY, "")
    with pytest.raises(RuntimeError_, match="the sandbox is stopped"):
        await runtime.create_container(sandbox_id, container_config(), sandbox_config())
    await runtime.remove_pod_sandbox(sandbox_id)
    assert await runtime.list_pod_sandboxes() == []
    assert await runtime.list_containers() == []


async def test_exited_container_keeps_status_until_removed(runtime: SimulatedRuntime) -> None:
    sandbox_id, container_id = await run_container(runtime)
    await runtime.stop_container(container_id, timeout=1)
    (status,) = await runtime.list_containers(sandbox_id)
    assert (status.id, status.state, status.name) == (container_id, ContainerState.EXITED, "app")
    await runtime.remove_container(container_id)
    await runtime.remove_container(container_id)  # a no-op once gone
    assert await runtime.list_containers(sandbox_id) == []
    with pytest.raises(NotFoundError):
        await runtime.container_status(container_id)


# --- logs --------------------------------------------------------------------------------------


async def test_logs_one_line_per_start_with_tail_and_follow(runtime: SimulatedRuntime) -> None:
    _, container_id = await run_container(runtime, start=False)
    assert [line async for line in runtime.logs(container_id)] == []
    followed: list[bytes] = []

    async def follow() -> None:
        async for line in runtime.logs(container_id, follow=True):
            followed.append(line)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(follow)
            await anyio.sleep(0.01)
            await runtime.start_container(container_id)
            await anyio.sleep(0.01)
            assert len(followed) == 1  # still following: the container runs
            await runtime.stop_container(container_id, timeout=1)
    (line,) = followed
    assert line.startswith(b"simulated container app started at 20")
    assert line.endswith(b"\n")
    assert [line async for line in runtime.logs(container_id, tail_lines=1)] == [line]
    assert [line async for line in runtime.logs(container_id, follow=True)] == [line]


async def test_close_ends_log_followers_and_the_event_stream() -> None:
    rt = SimulatedRuntime(node_name="node-a")
    _, container_id = await run_container(rt)
    stream = rt.events()
    lines: list[bytes] = []

    async def follow() -> None:
        lines.extend([line async for line in rt.logs(container_id, follow=True)])

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(follow)
            await anyio.sleep(0.01)
            await rt.close()
        assert [event async for event in stream] == []
    assert len(lines) == 1
    # The container still runs (in the state a next instance would recover).
    assert (await rt.container_status(container_id)).state is ContainerState.RUNNING


# --- sandbox IPs -------------------------------------------------------------------------------


async def test_sandbox_ips_are_unique_and_released() -> None:
    rt = SimulatedRuntime(node_name="node-a")
    sandboxes = [await rt.run_pod_sandbox(sandbox_config(f"p{i}")) for i in range(65534)]
    ips = {sandbox.ip for sandbox in sandboxes}
    assert len(ips) == len(sandboxes)
    prefixes = {ip.rsplit(".", 2)[0] for ip in ips}
    assert len(prefixes) == 1
    with pytest.raises(RuntimeError_, match="no free sandbox IP"):
        await rt.run_pod_sandbox(sandbox_config("one-too-many"))
    freed = sandboxes[1234]
    await rt.stop_pod_sandbox(freed.id)
    again = await rt.run_pod_sandbox(sandbox_config("again"))
    assert again.ip == freed.ip
    await rt.close()


async def test_nodes_get_different_ip_ranges() -> None:
    first = await SimulatedRuntime(node_name="node-a").run_pod_sandbox(sandbox_config())
    second = await SimulatedRuntime(node_name="node-b").run_pod_sandbox(sandbox_config())
    assert first.ip.startswith("10.")
    assert first.ip.split(".")[1] != second.ip.split(".")[1]


# --- the state file ----------------------------------------------------------------------------


@dataclass
class Recorded:
    forever: str = ""
    exits_soon: str = ""
    exits_while_down: str = ""
    exited: str = ""
    sandbox_ip: str = ""
    labels: dict[str, str] = field(default_factory=dict)


async def record_state(path: Path, clock: WallClock) -> Recorded:
    rt = SimulatedRuntime(node_name="node-a", state_file=path, clock=clock)
    await rt.start()
    recorded = Recorded()
    # One pod: its annotations name the container each is for.
    kept = sandbox_config(
        "kept",
        {
            "sim.kpy.io/soon.exit-after": "10",
            "sim.kpy.io/down.exit-after": "5",
            "sim.kpy.io/down.exit-code": "4",
        },
    )
    sandbox = await rt.run_pod_sandbox(kept)
    recorded.sandbox_ip = sandbox.ip

    async def create(name: str) -> str:
        container_id = await rt.create_container(sandbox.id, container_config(name), kept)
        await rt.start_container(container_id)
        return container_id

    recorded.forever = await create("forever")
    recorded.exits_soon = await create("soon")
    recorded.exits_while_down = await create("down")
    recorded.exited = await create("done")
    await rt.stop_container(recorded.exited, timeout=1)
    await rt.close()
    return recorded


async def test_state_file_recovery_continues_exit_timers(tmp_path: Path) -> None:
    path = tmp_path / "sim-state.json"
    clock = WallClock()
    recorded = await record_state(path, clock)
    assert path.exists()
    assert not path.with_name(path.name + ".tmp").exists()

    clock.now = START + 9.95  # 50 ms before "soon" is due
    rt = SimulatedRuntime(node_name="node-a", state_file=path, clock=clock)
    stream = rt.events()
    await rt.start()
    (exited_down,) = await next_events(stream, 1)
    assert (exited_down.container_id, exited_down.exit_code) == (recorded.exits_while_down, 4)
    down = await rt.container_status(recorded.exits_while_down)
    assert down.finished_at == START + 5  # when it would have exited
    statuses = {status.name: status for status in await rt.list_containers()}
    assert statuses["forever"].state is ContainerState.RUNNING
    assert statuses["soon"].state is ContainerState.RUNNING
    assert statuses["done"].exit_code == 0
    assert statuses["soon"].labels == {LABEL_CONTAINER_NAME: "soon"}

    (exited_soon,) = await next_events(stream, 1)  # 50 ms, not the full 10 s
    assert exited_soon.container_id == recorded.exits_soon
    assert (await rt.probe(recorded.forever, "liveness")) is True
    other = await rt.run_pod_sandbox(sandbox_config("new"))
    assert other.ip != recorded.sandbox_ip  # the recovered sandbox keeps its IP
    await rt.close()


async def test_unreadable_state_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "sim-state.json"
    path.write_text("{not json")
    rt = SimulatedRuntime(node_name="node-a", state_file=path)
    with pytest.raises(
        RuntimeError_, match=r"cannot recover simulated state from .*delete the file"
    ):
        await rt.start()


# --- scale -----------------------------------------------------------------------------------


async def test_five_thousand_containers_with_coalesced_saves(tmp_path: Path) -> None:
    count = 5000
    path = tmp_path / "sim-state.json"
    rt = SimulatedRuntime(node_name="node-a", state_file=path)
    await rt.start()
    began = time.monotonic()
    stream = rt.events()
    ids: list[str] = []
    for i in range(count):
        _, container_id = await run_container(rt, pod=f"p{i}")
        ids.append(container_id)
    assert rt.statistics().running == count
    for container_id in ids:
        await rt.stop_container(container_id, timeout=30)
    events = await next_events(stream, 2 * count)
    assert sum(event.kind == "exited" for event in events) == count
    await rt.close()
    stats = rt.statistics()
    assert (stats.sandboxes, stats.containers, stats.running) == (count, count, 0)
    # 20,000 changes, written at most once per interval (and on close), not per change.
    assert 1 <= stats.saves <= 2 + (time.monotonic() - began) / SAVE_INTERVAL
    saved = json.loads(path.read_text())
    assert len(saved["containers"]) == count
    assert {c["state"] for c in saved["containers"]} == {"exited"}


async def test_a_state_file_from_before_the_shared_config_form_loads(tmp_path: Path) -> None:
    # Earlier versions stored the pod's annotations and an init flag in each
    # container's config; they are read from the sandbox's config now.
    annotations = {"sim.kpy.io/app.exit-after": "5"}
    sandbox = {"namespace": "default", "name": "old", "uid": "u", "annotations": annotations}
    config = {
        "name": "app",
        "image": "app:1",
        "command": [],
        "args": [],
        "env": [["A", "1"]],
        "mounts": [{"host_path": "/h", "container_path": "/c", "read_only": True}],
        "labels": {LABEL_CONTAINER_NAME: "app"},
        "annotations": annotations,
        "init": False,
    }
    path = tmp_path / "sim-state.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "node_name": "node-a",
                "sandboxes": [
                    {
                        "id": "s1",
                        "ip": "10.1.0.1",
                        "state": "ready",
                        "created_at": START,
                        "config": sandbox,
                    }
                ],
                "containers": [
                    {
                        "id": "c1",
                        "sandbox_id": "s1",
                        "config": config,
                        "image_id": "sha256:x",
                        "created_at": START,
                        "state": "running",
                        "started_at": START,
                        "finished_at": None,
                        "exit_code": None,
                        "reason": "",
                    }
                ],
            }
        )
    )
    clock = WallClock(START + 10)  # past exit-after: it exits on recovery
    rt = SimulatedRuntime(node_name="node-a", state_file=path, clock=clock)
    await rt.start()
    status = await rt.container_status("c1")
    assert (status.state, status.finished_at) == (ContainerState.EXITED, START + 5)
    await rt.close()

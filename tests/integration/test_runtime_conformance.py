"""The runtime contract (kpy/agent/runtime/base.py), case for case against
every runtime: process and simulated always, Docker where kpy's engine
answers (and always under CI, where a missing engine fails).

What only one runtime does (Docker names and labels, OOM kills, pull
policies, the process runtime's mount namespaces and shims, the simulated
runtime's annotations) is tested in that runtime's own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from kpy.agent.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    ContainerCreateError,
    ContainerEvent,
    ContainerState,
    NotFoundError,
    RuntimeError_,
    SandboxState,
)
from tests.integration._runtimes import (
    KINDS,
    RUNS_UNTIL_KILLED,
    RUNS_UNTIL_STOPPED,
    RuntimeUnderTest,
    check_started_then_exited,
    docker_host_or_skip,
    exits,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture(params=KINDS)
async def rt(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RuntimeUnderTest]:
    kind = request.param
    host = docker_host_or_skip() if kind == "docker" else ""
    under_test = RuntimeUnderTest(kind, tmp_path, docker_host=host)
    await under_test.open()
    try:
        yield under_test
    finally:
        await under_test.clean_up()


# -- sandboxes --------------------------------------------------------------------------


async def test_a_sandbox_lives_stops_and_goes(rt: RuntimeUnderTest) -> None:
    first, _ = await rt.sandbox("one")
    second, config = await rt.sandbox("two")

    assert (first.state, second.state) == (SandboxState.READY, SandboxState.READY)
    assert first.ip
    assert second.ip
    assert first.ip != second.ip
    assert (second.namespace, second.name, second.uid) == ("default", "two", config.uid)
    assert second.labels == {LABEL_POD_NAME: "two"}
    assert [s.id for s in await rt.runtime.list_pod_sandboxes()] == [first.id, second.id]

    await rt.runtime.stop_pod_sandbox(second.id)
    await rt.runtime.stop_pod_sandbox(second.id)  # stopping twice is fine

    states = {s.name: (s.state, s.ip) for s in await rt.runtime.list_pod_sandboxes()}
    assert states == {"one": (SandboxState.READY, first.ip), "two": (SandboxState.NOT_READY, "")}
    late = rt.container_config("late", exits(0))
    with pytest.raises(ContainerCreateError, match="is stopped"):
        await rt.runtime.create_container(second.id, late, config)

    await rt.runtime.remove_pod_sandbox(second.id)
    await rt.runtime.remove_pod_sandbox(second.id)  # removing twice is fine
    assert [s.name for s in await rt.runtime.list_pod_sandboxes()] == ["one"]


async def test_stopping_a_sandbox_kills_its_containers(rt: RuntimeUnderTest) -> None:
    sandbox, container_id = await rt.run(RUNS_UNTIL_KILLED)
    assert (await rt.next_event(container_id)).kind == "started"

    await rt.runtime.stop_pod_sandbox(sandbox.id)

    exited = await rt.next_event(container_id)
    assert (exited.kind, exited.exit_code) == ("exited", 137), "stopping a sandbox kills"
    status = await rt.runtime.container_status(container_id)
    assert status.state is ContainerState.EXITED
    assert status.exit_code == exited.exit_code
    await rt.runtime.remove_pod_sandbox(sandbox.id)
    assert await rt.runtime.list_containers() == []
    assert await rt.runtime.list_containers(sandbox.id) == []


async def test_a_stopped_sandbox_is_reported_once(rt: RuntimeUnderTest) -> None:
    sandbox, config = await rt.sandbox("pod")
    assert (await rt.runtime.pod_sandbox_status(sandbox.id)).state is SandboxState.READY

    await rt.runtime.stop_pod_sandbox(sandbox.id)
    await rt.runtime.stop_pod_sandbox(sandbox.id)  # already stopped: nothing to report

    stopped = await rt.next_event(sandbox.id)
    assert (stopped.kind, stopped.sandbox_id) == ("sandbox_stopped", sandbox.id)
    assert dict(stopped.labels) == dict(config.labels), "the agent routes it by its labels"
    now = await rt.runtime.pod_sandbox_status(sandbox.id)
    assert (now.state, now.ip) == (SandboxState.NOT_READY, "")
    # The second stop said nothing: the next event is another sandbox's.
    other, _ = await rt.sandbox("other")
    await rt.runtime.stop_pod_sandbox(other.id)
    with anyio.fail_after(10):
        async for event in rt.events:
            assert event.container_id != sandbox.id, f"reported again: {event}"
            if event.container_id == other.id:
                break
    with pytest.raises(NotFoundError):
        await rt.runtime.pod_sandbox_status("nope")


# -- containers -------------------------------------------------------------------------


async def test_a_container_from_created_to_removed(rt: RuntimeUnderTest) -> None:
    sandbox, container_id = await rt.create(RUNS_UNTIL_STOPPED, name="app")

    created = await rt.runtime.container_status(container_id)
    assert (created.state, created.sandbox_id, created.name) == (
        ContainerState.CREATED,
        sandbox.id,
        "app",
    )
    assert created.labels == {LABEL_CONTAINER_NAME: "app"}
    assert [c.id for c in await rt.runtime.list_containers(sandbox.id)] == [container_id]

    await rt.runtime.start_container(container_id)
    started = await rt.next_event(container_id)
    running = await rt.runtime.container_status(container_id)
    await rt.stoppable(container_id)
    assert (started.kind, started.sandbox_id, started.exit_code) == ("started", sandbox.id, None)
    assert started.labels == {LABEL_CONTAINER_NAME: "app"}
    assert running.state is ContainerState.RUNNING
    assert running.started_at is not None

    await rt.runtime.stop_container(container_id, 10)
    await rt.runtime.stop_container(container_id, 10)  # a no-op once exited

    exited = await rt.next_event(container_id)
    status = await rt.runtime.container_status(container_id)
    assert (exited.kind, exited.exit_code) == ("exited", 0)
    assert (status.state, status.exit_code, status.reason) == (
        ContainerState.EXITED,
        0,
        "Completed",
    )
    assert status.finished_at is not None
    assert status.finished_at >= running.started_at
    with pytest.raises(RuntimeError_, match="starts only once"):
        await rt.runtime.start_container(container_id)

    await rt.runtime.remove_container(container_id)
    await rt.runtime.remove_container(container_id)  # removing twice is fine
    with pytest.raises(NotFoundError, match=f"no .*container {container_id}"):
        await rt.runtime.container_status(container_id)
    assert await rt.runtime.list_containers(sandbox.id) == []


@pytest.mark.parametrize(
    ("code", "reason"), [(0, "Completed"), (3, "Error")], ids=["exit 0", "exit 3"]
)
async def test_exit_code_reason_and_events(rt: RuntimeUnderTest, code: int, reason: str) -> None:
    _, container_id = await rt.run(exits(code))

    await check_started_then_exited(
        rt.runtime, rt.next_event, container_id, code, reason, {LABEL_CONTAINER_NAME: "c"}
    )


async def test_unknown_ids(rt: RuntimeUnderTest) -> None:
    with pytest.raises(NotFoundError):
        await rt.runtime.container_status("nope")
    with pytest.raises(NotFoundError):
        await rt.runtime.stop_pod_sandbox("nope")
    with pytest.raises(NotFoundError):
        await rt.runtime.stop_container("nope", 1)
    await rt.runtime.remove_container("nope")  # a no-op
    await rt.runtime.remove_pod_sandbox("nope")  # a no-op
    assert await rt.runtime.list_containers("nope") == []


# -- events -----------------------------------------------------------------------------


async def test_events_are_kept_from_start_until_read(rt: RuntimeUnderTest) -> None:
    # The agent starts its runtime, then its pod workers, and reads events
    # only then: an exit in between must reach it.
    await rt.runtime.close()
    runtime = rt.runtime = rt.new_runtime()
    await runtime.start()
    _, container_id = await rt.run(exits(4))
    with anyio.fail_after(15):
        while (await runtime.container_status(container_id)).state is not ContainerState.EXITED:  # noqa: ASYNC110 - no stream is read yet, on purpose
            await anyio.sleep(0.02)

    stream = rt.events = runtime.events()

    started = await rt.next_event(container_id, stream)
    exited = await rt.next_event(container_id, stream)
    assert [(e.kind, e.exit_code) for e in (started, exited)] == [("started", None), ("exited", 4)]


async def test_events_asked_for_before_start(rt: RuntimeUnderTest) -> None:
    await rt.runtime.close()
    runtime = rt.runtime = rt.new_runtime()
    stream = rt.events = runtime.events()
    await runtime.start()

    _, container_id = await rt.run(exits(0))

    assert (await rt.next_event(container_id, stream)).kind == "started"
    assert (await rt.next_event(container_id, stream)).kind == "exited"


async def test_close_ends_the_stream_after_what_was_kept(rt: RuntimeUnderTest) -> None:
    _, container_id = await rt.run(RUNS_UNTIL_STOPPED)
    await rt.runtime.stop_container(container_id, 10)
    await rt.runtime.close()

    with anyio.fail_after(5):
        kept: list[ContainerEvent] = [e async for e in rt.events]

    assert [(e.kind, e.container_id) for e in kept] == [
        ("started", container_id),
        ("exited", container_id),
    ]


# -- restarts ---------------------------------------------------------------------------


async def test_a_new_runtime_finds_everything_again(rt: RuntimeUnderTest) -> None:
    sandbox, running = await rt.run(RUNS_UNTIL_STOPPED, name="run", pod="kept")
    _, done = await rt.run(exits(5), name="done", pod="gone")
    assert (await rt.next_event(done)).kind == "started"
    assert (await rt.next_event(done)).exit_code == 5
    before = {c.id: c for c in await rt.runtime.list_containers()}
    await rt.runtime.close()

    await rt.open()

    sandboxes = {s.id: s for s in await rt.runtime.list_pod_sandboxes()}
    assert (sandboxes[sandbox.id].state, sandboxes[sandbox.id].ip) == (
        SandboxState.READY,
        sandbox.ip,
    )
    assert sandboxes[sandbox.id].labels == {LABEL_POD_NAME: "kept"}
    after = {c.id: c for c in await rt.runtime.list_containers()}
    assert set(after) == {running, done}
    for cid in (running, done):
        assert (after[cid].state, after[cid].exit_code, after[cid].labels) == (
            before[cid].state,
            before[cid].exit_code,
            before[cid].labels,
        )
    # The new runtime reports what happens from now on.
    await rt.runtime.stop_container(running, 10)
    assert (await rt.next_event(running)).kind == "exited"


# -- inside containers ------------------------------------------------------------------


async def test_exec_logs_and_stats_of_a_running_container(rt: RuntimeUnderTest) -> None:
    _, container_id = await rt.run(RUNS_UNTIL_STOPPED)

    outputs = [o async for o in rt.runtime.exec(container_id, ["true"], timeout=10)]
    stats = await rt.runtime.stats(container_id)
    logs = [chunk async for chunk in rt.runtime.logs(container_id)]

    assert outputs[-1].exit_code == 0
    assert all(o.exit_code is None for o in outputs[:-1])
    assert stats.container_id == container_id
    assert stats.cpu_usage_ns >= 0
    assert stats.memory_bytes >= 0
    assert all(isinstance(chunk, bytes) for chunk in logs)


async def test_exec_needs_a_running_container(rt: RuntimeUnderTest) -> None:
    _, container_id = await rt.run(exits(0))
    await rt.next_event(container_id)
    await rt.next_event(container_id)

    with pytest.raises(RuntimeError_, match="running"):
        async for _ in rt.runtime.exec(container_id, ["true"]):
            pass

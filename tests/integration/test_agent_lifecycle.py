"""The node agent's pod lifecycle, as a user sees it through the API.

One suite for every runtime: a test takes the `kit` fixture (every runtime
in KITS) or `real_kit` (only runtimes whose containers are processes running
their commands: what needs volumes, env seen by a process, hooks writing
files or signals).

Pods are built from behaviours (`runs`, `exits`, `checked`), each giving both
a command and the `sim.kpy.io/` annotations that make the simulated runtime
behave alike; a runtime reads the half it understands. Commands use busybox
applets only (sh, sleep, echo, cat, test, touch, tr), so a Docker runtime can
run them in a busybox image: give it a `Kit` in KITS, whose `http_server` is
busybox's `httpd -f -p <port> -h <dir>`.

Every check reads what a user reads: the pod's status, its events, its logs,
exec, and files a hostPath volume shares with the host. The pods of one test
run side by side on one agent, so a test waits for its slowest pod rather
than the sum of them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.agent.runtime import ContainerState
from kpy.agent.runtime.docker import default_docker_host, docker_answers
from kpy.api import codec, errors
from kpy.api.core.v1 import ConfigMap, Event, Pod, Secret
from kpy.api.core.v1 import ContainerStatus as APIContainerStatus
from kpy.api.scheme import scheme
from tests.integration._agent import running_agent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from kpy.client import Client
    from kpy.storage import Store
    from tests.integration._agent import AgentHandle

SIM = "sim.kpy.io/"
IMAGE = "kpy.local/busybox:latest"  # built by deploy/docker-engine.sh; ignored elsewhere
BACKOFF_BASE = 1.0  # seconds: restarts wait 0, 1, 2, 4, 8 s
PROBE_TIME_SCALE = 0.5  # periodSeconds 1 probes every 0.5 s
GRACE = 2  # terminationGracePeriodSeconds of the suite's pods
PORT = 8080  # every pod has an address of its own, so they can share it
TIMEOUT = 30.0  # seconds any one wait may take (a loaded machine starts containers slowly)
# Mount paths: under /tmp, which a busybox image has, as has the host (where
# the process runtime makes its mount points).
MOUNTS = "/tmp/kpy-lifecycle"
PROBE_DIR = f"{MOUNTS}/probe"
HOST_DIR = f"{MOUNTS}/host"
HOST_MOUNT = {"name": "host", "mountPath": HOST_DIR}
# Runs until stopped and exits 0 at once on SIGTERM (a shell that is pid 1
# of a container would ignore it otherwise).
UNTIL_STOPPED = "trap 'exit 0' TERM; sleep 3600 & wait"
FAST_PROBE = {"periodSeconds": 1, "failureThreshold": 1}


@dataclass(frozen=True)
class Kit:
    """What differs between runtimes, for this suite."""

    runtime: str
    # Whether containers are processes that run their commands.
    real: bool
    # The probe actions worth a case each: all of them where the agent runs
    # the probes; one where the runtime decides the results itself.
    probe_actions: tuple[str, ...]
    # A shell command serving directory `root` over HTTP on `port`, in the
    # foreground (it is `exec`ed).
    http_server: Callable[[int, str], str]
    # Whether a container's $$ is its pid on this host (no pid namespace).
    host_pids: bool = True


def _python_http_server(port: int, root: str) -> str:
    # The host has python3, not busybox. Bound to the pod's own address:
    # the process runtime's pods share the host's network.
    return f"python3 -m http.server {port} --bind $POD_IP --directory {root}"


def _busybox_http_server(port: int, root: str) -> str:
    return f"httpd -f -p {port} -h {root}"


KITS = {
    "process": Kit("process", True, ("exec", "httpGet", "tcpSocket"), _python_http_server),
    "simulated": Kit("simulated", False, ("exec",), _python_http_server),
}
# The Docker runtime where kpy's engine runs (deploy/docker-engine.sh), and
# always in CI, where a missing engine must fail the suite, not thin it.
if os.environ.get("CI") or docker_answers(default_docker_host()):
    KITS["docker"] = Kit(
        "docker", True, ("exec", "httpGet", "tcpSocket"), _busybox_http_server, host_pids=False
    )


@pytest.fixture(params=list(KITS))
def kit(request: pytest.FixtureRequest) -> Kit:
    return KITS[request.param]


@pytest.fixture(params=[name for name, kit in KITS.items() if kit.real])
def real_kit(request: pytest.FixtureRequest) -> Kit:
    return KITS[request.param]


@asynccontextmanager
async def agent_for(client: Client, kit: Kit, tmp_path: Path) -> AsyncIterator[AgentHandle]:
    async with running_agent(
        client,
        runtime=kit.runtime,
        root=tmp_path,
        backoff_base=BACKOFF_BASE,
        probe_time_scale=PROBE_TIME_SCALE,
    ) as agent:
        yield agent


# -- building pods -----------------------------------------------------------------


@dataclass
class Part:
    """A container, and what it needs of its pod."""

    container: dict[str, Any]
    annotations: dict[str, str] = field(default_factory=dict)
    volumes: list[dict[str, Any]] = field(default_factory=list)


def runs(name: str, before: str = "", **fields: Any) -> Part:
    """Runs shell `before`, then until stopped; `fields` are the container's."""
    script = f"{before}; {UNTIL_STOPPED}" if before else UNTIL_STOPPED
    return Part({"name": name, "image": IMAGE, "command": ["sh", "-c", script], **fields})


def shell(name: str, script: str, **fields: Any) -> Part:
    """Runs shell `script` and exits as it does (on the real runtimes)."""
    return Part({"name": name, "image": IMAGE, "command": ["sh", "-c", script], **fields})


def exits(name: str, *, after: float, code: int) -> Part:
    """Exits with `code` `after` seconds after it started."""
    part = shell(name, f"sleep {after}; exit {code}" if after else f"exit {code}")
    part.annotations = {f"{SIM}{name}.exit-after": str(after), f"{SIM}{name}.exit-code": str(code)}
    return part


def checked(
    kit: Kit,
    name: str,
    action: str,
    *,
    healthy_after: float | None,
    probes: dict[str, dict[str, Any]],
) -> Part:
    """A container whose health check (an exec, httpGet or tcpSocket
    `action`) passes from `healthy_after` seconds after its start on (None:
    never), probed by `probes` (probe kind -> its timing fields)."""
    script, check = _health_check(kit, action, healthy_after)
    container: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "command": ["sh", "-c", script],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "volumeMounts": [{"name": "probe", "mountPath": PROBE_DIR}],
    }
    for kind, timing in probes.items():
        container[f"{kind}Probe"] = {**check, **timing}
    annotations = {f"{SIM}{name}.fail-probes": ",".join(probes)}
    if healthy_after is not None:
        annotations[f"{SIM}{name}.fail-probes-for"] = str(healthy_after)
    return Part(container, annotations, [{"name": "probe", "emptyDir": {}}])


def _health_check(kit: Kit, action: str, after: float | None) -> tuple[str, dict[str, Any]]:
    """(the container's script, a probe action passing from `after` s on)."""
    serve = f"exec {kit.http_server(PORT, PROBE_DIR)}"
    becomes_ok = f"(sleep {after}; touch {PROBE_DIR}/ok) & " if after is not None else ""
    if action == "exec":
        return becomes_ok + UNTIL_STOPPED, {"exec": {"command": ["test", "-e", f"{PROBE_DIR}/ok"]}}
    if action == "httpGet":  # 404 until the file is there
        return becomes_ok + serve, {"httpGet": {"path": "/ok", "port": PORT}}
    if action == "tcpSocket":  # refused until the server listens
        script = UNTIL_STOPPED if after is None else f"sleep {after}; {serve}"
        return script, {"tcpSocket": {"port": PORT}}
    raise ValueError(f"unknown probe action {action!r}")


def make_pod(
    name: str,
    node: str,
    *parts: Part,
    init: Sequence[Part] = (),
    restart_policy: str = "Always",
    grace: int = GRACE,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    volumes: Sequence[dict[str, Any]] = (),
) -> Pod:
    all_annotations = dict(annotations or {})
    all_volumes = {v["name"]: v for v in volumes}
    for part in (*init, *parts):
        all_annotations.update(part.annotations)
        all_volumes.update({v["name"]: v for v in part.volumes})
    spec: dict[str, Any] = {
        "nodeName": node,
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": grace,
        "initContainers": [p.container for p in init],
        "containers": [p.container for p in parts],
        "volumes": list(all_volumes.values()),
    }
    metadata = {"name": name, "labels": labels or {}, "annotations": all_annotations}
    return codec.from_dict(Pod, {"metadata": metadata, "spec": spec})


def host_volume(path: Path) -> dict[str, Any]:
    return {"name": "host", "hostPath": {"path": str(path), "type": "DirectoryOrCreate"}}


async def create(client: Client, *pods: Pod) -> None:
    for pod in pods:
        await client.create(pod)


# -- reading what a user reads ---------------------------------------------------------


def find(pod: Pod, name: str) -> APIContainerStatus | None:
    for s in (*pod.status.init_container_statuses, *pod.status.container_statuses):
        if s.name == name:
            return s
    return None


def status(pod: Pod, name: str) -> APIContainerStatus:
    found = find(pod, name)
    if found is None:
        raise AssertionError(f"pod {pod.metadata.name}: no status of {name}: {summary(pod)}")
    return found


def condition(pod: Pod, kind: str) -> str:
    return next((c.status for c in pod.status.conditions if c.type == kind), "")


def terminated(s: APIContainerStatus, *, last: bool = False) -> tuple[int, str]:
    state = s.last_state if last else s.state
    return state.terminated.exit_code, state.terminated.reason


def summary(pod: Pod) -> str:
    """The pod's status on one line, for failure messages."""
    parts = [f"{pod.metadata.name}: {pod.status.phase or '-'}, Ready={condition(pod, 'Ready')}"]
    for s in (*pod.status.init_container_statuses, *pod.status.container_statuses):
        state = "no state"
        if s.state.HasField("waiting"):
            state = f"waiting {s.state.waiting.reason} {s.state.waiting.message!r}"
        elif s.state.HasField("running"):
            state = "running"
        elif s.state.HasField("terminated"):
            state = "terminated {}/{}".format(*terminated(s))
        parts.append(
            f"{s.name} {state} restarts={s.restart_count} started={s.started} ready={s.ready}"
        )
    return "; ".join(parts)


async def until(client: Client, name: str, check: Callable[[Pod], object], what: str) -> Pod:
    """The pod once `check` holds for it (waiting for it to exist too)."""
    deadline = time.monotonic() + TIMEOUT
    last = "absent"
    while True:
        try:
            pod = await client.get(Pod, name)
        except errors.NotFound:
            pass
        else:
            if check(pod):
                return pod
            last = summary(pod)
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name}: {what} not seen within {TIMEOUT} s; last: {last}")
        await anyio.sleep(0.05)


def running(container: str) -> Callable[[Pod], bool]:
    def check(pod: Pod) -> bool:
        s = find(pod, container)
        return s is not None and s.state.HasField("running")

    return check


def waiting(container: str, reason: str) -> Callable[[Pod], bool]:
    def check(pod: Pod) -> bool:
        s = find(pod, container)
        return s is not None and s.state.waiting.reason == reason

    return check


def restarted(container: str, times: int = 1) -> Callable[[Pod], bool]:
    def check(pod: Pod) -> bool:
        s = find(pod, container)
        return s is not None and s.restart_count >= times

    return check


def phase(value: str) -> Callable[[Pod], bool]:
    return lambda pod: pod.status.phase == value


def ready(pod: Pod) -> bool:
    return condition(pod, "Ready") == "True"


async def gone(client: Client, name: str) -> None:
    with anyio.fail_after(TIMEOUT):
        while True:
            try:
                await client.get(Pod, name)
            except errors.NotFound:
                return
            await anyio.sleep(0.05)


async def event(client: Client, pod: str, reason: str, text: str) -> Event:
    """The pod's event of `reason` whose message contains `text`."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        listed = (await client.list(Event, namespace=client.namespace)).items
        mine = [e for e in listed if e.involved_object.name == pod]
        for e in mine:
            if e.reason == reason and text in e.message:
                return e
        if time.monotonic() > deadline:
            seen = [(e.reason, e.message) for e in mine]
            raise AssertionError(f"pod {pod}: no {reason} event saying {text!r}; events: {seen}")
        await anyio.sleep(0.1)


async def counted(client: Client, pod: str, reason: str, text: str, times: int) -> Event:
    """The pod's one Event of `reason` whose message contains `text`, once
    its count reached `times`: repeats count up on it, as in Kubernetes,
    rather than making more Events."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        listed = (await client.list(Event, namespace=client.namespace)).items
        mine = [
            e
            for e in listed
            if e.involved_object.name == pod and e.reason == reason and text in e.message
        ]
        assert len(mine) <= 1, f"pod {pod}: {len(mine)} {reason} Events, not one counting up"
        if mine and mine[0].count >= times:
            return mine[0]
        if time.monotonic() > deadline:
            seen = [(e.message, e.count) for e in mine]
            raise AssertionError(f"pod {pod}: no {reason} event counted {times} times: {seen}")
        await anyio.sleep(0.1)


async def logs_with(client: Client, pod: str, text: str, container: str = "") -> str:
    """The container's log, once it contains `text`."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        out = b"".join([c async for c in client.logs(pod, container=container)]).decode()
        if text in out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {pod}: {text!r} not in its log within {TIMEOUT} s: {out!r}")
        await anyio.sleep(0.1)


def labelled(log: str) -> dict[str, str]:
    """`label=value` lines as a dict."""
    return dict(line.split("=", 1) for line in log.splitlines())


async def exec_out(client: Client, pod: str, command: list[str]) -> tuple[int, str]:
    out = bytearray()
    code = -1
    async for response in client.exec(pod, command):
        out += response.stdout + response.stderr
        if response.HasField("exit_code"):
            code = response.exit_code
    return code, out.decode()


# -- init containers -------------------------------------------------------------------


async def test_init_containers_run_in_order_each_to_success(
    client: Client, api_namespace: str, tmp_path: Path, real_kit: Kit
) -> None:
    work = {"name": "work", "mountPath": f"{MOUNTS}/work"}
    order = f"{MOUNTS}/work/order"
    # Each insists that those before it finished: run together or out of
    # order, one would fail and show a restart.
    i2 = f'test "$(cat {order})" = i1 && sleep 1 && echo i2 >> {order}'
    i3 = f'test "$(tr "\\n" " " < {order})" = "i1 i2 " && echo i3 >> {order}'
    init = [
        shell("i1", f"sleep 0.5; echo i1 >> {order}", volumeMounts=[work]),
        shell("i2", i2, volumeMounts=[work]),
        shell("i3", i3, volumeMounts=[work]),
    ]
    app = runs("app", f"cat {order}", volumeMounts=[work])
    async with agent_for(client, real_kit, tmp_path) as agent:
        volumes = [{"name": "work", "emptyDir": {}}]
        await create(client, make_pod("inits", agent.node_name, app, init=init, volumes=volumes))

        midway = await until(client, "inits", running("i2"), "i2 running")
        assert terminated(status(midway, "i1")) == (0, "Completed"), summary(midway)
        assert status(midway, "i3").state.waiting.reason == "PodInitializing", summary(midway)
        assert status(midway, "app").state.waiting.reason == "PodInitializing", summary(midway)
        assert not status(midway, "app").container_id, f"app started early: {summary(midway)}"
        assert (midway.status.phase, condition(midway, "Initialized")) == ("Pending", "False")

        done = await until(client, "inits", running("app"), "app running")
        assert condition(done, "Initialized") == "True", summary(done)
        for name in ("i1", "i2", "i3"):
            s = status(done, name)
            assert (*terminated(s), s.restart_count) == (0, "Completed", 0), summary(done)
        assert await logs_with(client, "inits", "i3", container="app") == "i1\ni2\ni3\n"


async def test_failing_init_container(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    policies = {"never": "Never", "on-failure": "OnFailure", "always": "Always"}
    async with agent_for(client, kit, tmp_path) as agent:
        for name, policy in policies.items():
            failing = [exits("init", after=0.2, code=1)]
            await create(
                client,
                make_pod(name, agent.node_name, runs("app"), init=failing, restart_policy=policy),
            )

        async def retried(name: str) -> None:
            await until(client, name, waiting("init", "CrashLoopBackOff"), "init backing off")
            pod = await until(client, name, restarted("init", 2), "init restarted twice")
            assert terminated(status(pod, "init"), last=True) == (1, "Error"), summary(pod)
            app = status(pod, "app")
            assert app.state.waiting.reason == "PodInitializing", summary(pod)
            assert (app.container_id, app.restart_count) == ("", 0), f"app ran: {summary(pod)}"
            assert pod.status.phase == "Pending", summary(pod)

        async with anyio.create_task_group() as tg:
            tg.start_soon(retried, "on-failure")
            tg.start_soon(retried, "always")
        # Meanwhile the pod that may not restart failed, and stayed so.
        never = await until(client, "never", phase("Failed"), "phase Failed")
        init = status(never, "init")
        assert (*terminated(init), init.restart_count) == (1, "Error", 0), summary(never)
        assert not status(never, "app").container_id, f"app ran: {summary(never)}"


# -- restarts --------------------------------------------------------------------------


async def test_crash_loop_back_off_doubles(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    async with agent_for(client, kit, tmp_path) as agent:
        crash = await client.create(make_pod("crash", agent.node_name, exits("c", after=0, code=1)))
        # As the kubelet: the first restart is at once (no back-off is ever
        # shown before it, and restart count 0 may be too brief to be seen);
        # restart n > 1 comes base * 2^(n-2) after the exit before it. As the
        # container runs for an instant, that is also the time between two
        # moves of the restart count. The machine may be loaded: a restart
        # may come late, never early. Early is judged on the agent's own
        # times (each attempt's start and finish, whole seconds): when we
        # see a status depends on when the agent got to write it. Late is
        # judged on when we saw it, with slack.
        moved: dict[int, float] = {}
        attempts: dict[int, tuple[int, int]] = {}  # restart count: (started, finished)
        back_offs: dict[int, set[str]] = {}
        deadline = time.monotonic() + 30
        pod = Pod()
        while 4 not in attempts and time.monotonic() < deadline:
            pod = await client.get(Pod, "crash")
            s = find(pod, "c")
            if s is not None and s.container_id:
                moved.setdefault(s.restart_count, time.monotonic())
                if s.state.waiting.reason == "CrashLoopBackOff":
                    said = s.state.waiting.message.split(" restarting")[0]
                    back_offs.setdefault(s.restart_count, set()).add(said)
                    assert terminated(s, last=True) == (1, "Error"), summary(pod)
                    ended = s.last_state.terminated
                    attempts.setdefault(
                        s.restart_count, (ended.started_at.seconds, ended.finished_at.seconds)
                    )
            await anyio.sleep(0.02)
        assert {1, 2, 3, 4} <= moved.keys(), f"restart counts seen: {sorted(moved)}; {summary(pod)}"
        assert {1, 2, 3, 4} <= attempts.keys(), f"exits seen: {sorted(attempts)}; {summary(pod)}"
        # No back-off before the first restart; then 1, 2, 4 s (the 4th exit
        # may already show its 8 s).
        assert {n: back_offs.get(n) for n in (0, 1, 2, 3)} == {
            0: None,
            1: {"back-off 1s"},
            2: {"back-off 2s"},
            3: {"back-off 4s"},
        }, summary(pod)
        gaps = [round(moved[n] - moved[n - 1], 2) for n in (2, 3, 4)]
        waits = [attempts[n][0] - attempts[n - 1][1] for n in (2, 3, 4)]
        for gap, waited, delay in zip(gaps, waits, (1, 2, 4), strict=True):
            # whole seconds: a wait of 1.0 s may read as 0 s (0.9 -> 1.9)
            assert waited >= delay - 1, f"the agent waited {waits} s, not 1, 2, 4 s"
            assert gap <= delay + 3.0, f"restarts 1-4 seen {gaps} s apart, not 1, 2, 4 s"
        assert pod.status.phase == "Running", summary(pod)
        # One Warning per back-off waited, counted on one Event.
        said = f"Back-off restarting failed container c in pod crash_{api_namespace}("
        backoff = await counted(client, "crash", "BackOff", said, times=3)
        assert (backoff.type, backoff.message) == (
            "Warning",
            f"{said}{crash.metadata.uid})",
        )


async def test_restart_policy(client: Client, api_namespace: str, tmp_path: Path, kit: Kit) -> None:
    # pod: (restartPolicy, exit code, restarted?, phase after the exit)
    cases = {
        "never-fails": ("Never", 1, False, "Failed"),
        "never-succeeds": ("Never", 0, False, "Succeeded"),
        "on-failure-fails": ("OnFailure", 1, True, "Running"),
        "on-failure-succeeds": ("OnFailure", 0, False, "Succeeded"),
        "always-succeeds": ("Always", 0, True, "Running"),
    }
    async with agent_for(client, kit, tmp_path) as agent:
        for name, (policy, code, _, _) in cases.items():
            c = exits("c", after=0.3, code=code)
            await create(client, make_pod(name, agent.node_name, c, restart_policy=policy))
        reason = {0: "Completed", 1: "Error"}
        for name, (_, code, again, _) in cases.items():
            if again:
                pod = await until(client, name, restarted("c"), "a restart")
                assert terminated(status(pod, "c"), last=True) == (code, reason[code]), summary(pod)
        # Those that restart did: the others had the time to, and must not have.
        for name, (_, code, again, end) in cases.items():
            pod = await until(client, name, phase(end), f"phase {end}")
            s = status(pod, "c")
            if not again:
                assert (*terminated(s), s.restart_count) == (code, reason[code], 0), summary(pod)
                assert condition(pod, "Ready") == "False", summary(pod)


# -- probes ----------------------------------------------------------------------------


async def test_readiness_probe_flips_ready_without_restart(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    async with agent_for(client, kit, tmp_path) as agent:
        for action in kit.probe_actions:
            c = checked(kit, "c", action, healthy_after=2.5, probes={"readiness": FAST_PROBE})
            await create(client, make_pod(action.lower(), agent.node_name, c))

        async def flips(name: str) -> None:
            def running_unready(pod: Pod) -> bool:
                return running("c")(pod) and condition(pod, "Ready") == "False"

            before = status(await until(client, name, running_unready, "running, unready"), "c")
            assert (before.started, before.ready) == (True, False), name
            pod = await until(client, name, ready, "Ready")
            after = status(pod, "c")
            assert after.ready, summary(pod)
            assert (after.container_id, after.restart_count) == (before.container_id, 0), summary(
                pod
            )
            assert condition(pod, "ContainersReady") == "True", summary(pod)

        async with anyio.create_task_group() as tg:
            for action in kit.probe_actions:
                tg.start_soon(flips, action.lower())


async def test_liveness_probe_failure_restarts(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    async with agent_for(client, kit, tmp_path) as agent:
        for action in kit.probe_actions:
            c = checked(kit, "c", action, healthy_after=None, probes={"liveness": FAST_PROBE})
            await create(client, make_pod(action.lower(), agent.node_name, c))
        for action in kit.probe_actions:
            name = action.lower()
            pod = await until(client, name, restarted("c"), "a restart")
            assert status(pod, "c").last_state.HasField("terminated"), summary(pod)
            await event(client, name, "Unhealthy", "Liveness probe failed")
            await event(client, name, "Killing", "failed liveness probe, will be restarted")


async def test_startup_probe_gates_and_restarts(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    action = kit.probe_actions[0]
    # Its liveness probe fails until its startup probe passes: probing it
    # before would restart the container.
    startup = {"periodSeconds": 1, "failureThreshold": 30}
    gated = checked(
        kit, "c", action, healthy_after=2.5, probes={"startup": startup, "liveness": FAST_PROBE}
    )
    startup = {"periodSeconds": 1, "failureThreshold": 2}
    never = checked(kit, "c", action, healthy_after=None, probes={"startup": startup})
    async with agent_for(client, kit, tmp_path) as agent:
        await create(client, make_pod("gated", agent.node_name, gated))
        await create(client, make_pod("never", agent.node_name, never))

        def running_not_started(pod: Pod) -> bool:
            return running("c")(pod) and not status(pod, "c").started

        before = await until(client, "gated", running_not_started, "running, not started")
        assert (status(before, "c").ready, condition(before, "Ready")) == (False, "False")
        pod = await until(client, "gated", lambda p: status(p, "c").started, "started")
        after = status(pod, "c")
        assert after.ready, summary(pod)
        first = status(before, "c").container_id
        assert (after.container_id, after.restart_count) == (first, 0), summary(pod)

        pod = await until(client, "never", restarted("c"), "a restart")
        assert not status(pod, "c").ready, summary(pod)
        await event(client, "never", "Unhealthy", "Startup probe failed")


async def test_probe_failures_count_up_on_one_event(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    never = checked(
        kit, "c", kit.probe_actions[0], healthy_after=None, probes={"readiness": FAST_PROBE}
    )
    async with agent_for(client, kit, tmp_path) as agent:
        await create(client, make_pod("unready", agent.node_name, never))
        # An Unhealthy Warning per failed probe, as the kubelet records them,
        # though readiness never changed (it starts failed).
        unhealthy = await counted(client, "unready", "Unhealthy", "Readiness probe failed", 3)
        assert unhealthy.type == "Warning"
        assert unhealthy.last_timestamp.ToNanoseconds() > unhealthy.first_timestamp.ToNanoseconds()
        pod = await client.get(Pod, "unready")
        assert (running("c")(pod), ready(pod), status(pod, "c").restart_count) == (
            True,
            False,
            0,
        ), summary(pod)


# -- hooks and stopping ----------------------------------------------------------------


async def test_post_start_hook_runs_before_running(
    client: Client, api_namespace: str, tmp_path: Path, real_kit: Kit
) -> None:
    host = tmp_path / "host"
    log = host / "log"
    hook = {"exec": {"command": ["sh", "-c", f"sleep 1.5; echo hook >> {HOST_DIR}/log"]}}
    hooked = runs(
        "c",
        f"echo started >> {HOST_DIR}/log",
        volumeMounts=[HOST_MOUNT],
        lifecycle={"postStart": hook},
    )
    failing = runs("c", lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "exit 3"]}}})
    async with agent_for(client, real_kit, tmp_path) as agent:
        await create(
            client, make_pod("hooked", agent.node_name, hooked, volumes=[host_volume(host)])
        )
        await create(client, make_pod("failing", agent.node_name, failing))

        def up_unreported(pod: Pod) -> bool:
            # The log is read after the status: once the hook wrote, it is Running.
            return not running("c")(pod) and log.exists() and log.read_text() == "started\n"

        await until(client, "hooked", up_unreported, "the container up while its hook runs")
        pod = await until(client, "hooked", running("c"), "running")
        assert log.read_text() == "started\nhook\n", (
            f"Running before its hook ended: {summary(pod)}"
        )

        await event(client, "failing", "FailedPostStartHook", "exited with code 3")
        pod = await until(client, "failing", restarted("c"), "a restart after the failed hook")
        assert status(pod, "c").last_state.HasField("terminated"), summary(pod)


async def test_pre_stop_hook_runs_before_sigterm(
    client: Client, api_namespace: str, tmp_path: Path, real_kit: Kit
) -> None:
    host = tmp_path / "host"
    order = f"{HOST_DIR}/order"
    pre_stop = {"exec": {"command": ["sh", "-c", f"echo prestop >> {order}; sleep 0.5"]}}
    c = shell(
        "c",
        f"trap 'echo term >> {order}; exit 0' TERM; sleep 3600 & wait",
        volumeMounts=[HOST_MOUNT],
        lifecycle={"preStop": pre_stop},
    )
    async with agent_for(client, real_kit, tmp_path) as agent:
        pod = make_pod("stopped", agent.node_name, c, grace=10, volumes=[host_volume(host)])
        await create(client, pod)
        await until(client, "stopped", running("c"), "running")
        await client.delete(Pod, "stopped")
        await gone(client, "stopped")
        assert (host / "order").read_text() == "prestop\nterm\n"


async def test_sigterm_then_sigkill_after_the_grace_period(
    client: Client, api_namespace: str, tmp_path: Path, real_kit: Kit
) -> None:
    ignores = "trap '' TERM; while true; do sleep 0.2; done"
    # pod: (script, the pod's grace, the delete request's, seconds it takes to go).
    # The lower bounds are the grace periods honoured; the upper ones only
    # need to fall well short of the 30 s a wrong grace would take, with room
    # for a starved Docker engine on a loaded machine.
    cases = {
        "obeys": (UNTIL_STOPPED, 30, None, (0.0, 12.0)),
        "ignores": (ignores, 2, None, (2.0, 15.0)),
        "ignores-request-wins": (ignores, 30, 1, (1.0, 15.0)),
    }
    async with agent_for(client, real_kit, tmp_path) as agent:
        for name, (script, grace, _, _) in cases.items():
            await create(client, make_pod(name, agent.node_name, shell("c", script), grace=grace))
        for name in cases:
            await until(client, name, running("c"), "running")
        took: dict[str, float] = {}

        async def delete(name: str, grace: int | None) -> None:
            started = time.monotonic()
            await client.delete(Pod, name, grace_period_seconds=grace)
            await gone(client, name)
            took[name] = time.monotonic() - started

        async with anyio.create_task_group() as tg:
            for name, (_, _, request_grace, _) in cases.items():
                tg.start_soon(delete, name, request_grace)
        for name, (_, _, _, (low, high)) in cases.items():
            assert low <= took[name] <= high, f"{name} went in {took[name]:.2f} s, not {low}-{high}"


# -- what containers are given ---------------------------------------------------------


async def test_downward_api_env_and_files(
    client: Client, api_namespace: str, tmp_path: Path, real_kit: Kit
) -> None:
    fields = {
        "NAME": "metadata.name",
        "NAMESPACE": "metadata.namespace",
        "UID": "metadata.uid",
        "LABEL": "metadata.labels['k']",
        "ANNOTATION": "metadata.annotations['a']",
        "NODE": "spec.nodeName",
        "POD_IP": "status.podIP",
        "HOST_IP": "status.hostIP",
    }
    resources = {"CPU_LIMIT": ("limits.cpu", "1m"), "MEMORY_REQUEST": ("requests.memory", "1")}
    env = [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields.items()]
    env += [
        {"name": k, "valueFrom": {"resourceFieldRef": {"resource": r, "divisor": d}}}
        for k, (r, d) in resources.items()
    ]
    cpu = {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}
    files = [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "cpu_limit", "resourceFieldRef": cpu},
    ]
    info = f"{MOUNTS}/info"
    script = "; ".join(
        [
            *(f'echo "env {k}=${k}"' for k in [*fields, *resources]),
            *(f'echo "file {f}=$(cat {info}/{f})"' for f in ("name", "labels", "cpu_limit")),
            f'echo "file annotations=$(cat {info}/annotations)"',
        ]
    )
    c = runs(
        "c",
        script,
        env=env,
        resources={
            "limits": {"cpu": "500m", "memory": "64Mi"},
            "requests": {"cpu": "250m", "memory": "32Mi"},
        },
        volumeMounts=[{"name": "info", "mountPath": info}],
    )
    async with agent_for(client, real_kit, tmp_path) as agent:
        await create(
            client,
            make_pod(
                "downward",
                agent.node_name,
                c,
                labels={"k": "v1"},
                annotations={"a": "x y"},
                volumes=[{"name": "info", "downwardAPI": {"items": files}}],
            ),
        )
        pod = await until(client, "downward", running("c"), "running")
        out = await logs_with(client, "downward", "file annotations=")
    assert (bool(pod.status.pod_ip), bool(pod.status.host_ip)) == (True, True), summary(pod)
    assert labelled(out) == {
        "env NAME": "downward",
        "env NAMESPACE": api_namespace,
        "env UID": pod.metadata.uid,
        "env LABEL": "v1",
        "env ANNOTATION": "x y",
        "env NODE": agent.node_name,
        "env POD_IP": pod.status.pod_ip,
        "env HOST_IP": pod.status.host_ip,
        "env CPU_LIMIT": "500",
        "env MEMORY_REQUEST": str(32 * 2**20),
        "file name": "downward",
        "file labels": 'k="v1"',
        "file cpu_limit": "500",
        "file annotations": 'a="x y"',
    }, out


async def test_config_map_and_secret_as_env_and_volumes(
    client: Client, api_namespace: str, tmp_path: Path, real_kit: Kit
) -> None:
    data = {"greeting": "hello", "color": "blue"}
    await client.create(codec.from_dict(ConfigMap, {"metadata": {"name": "cfg"}, "data": data}))
    password = base64.b64encode(b"s3cret").decode()
    secret = {"metadata": {"name": "sec"}, "data": {"password": password}}
    await client.create(codec.from_dict(Secret, secret))
    cfg, sec = f"{MOUNTS}/cfg", f"{MOUNTS}/sec"
    names = ("GREETING", "PASSWORD", "CM_greeting", "CM_color", "SEC_password")
    script = "; ".join(
        [
            *(f'echo "env {n}=${n}"' for n in names),
            f'echo "file greeting=$(cat {cfg}/greeting)"',
            f'echo "file password=$(cat {sec}/password)"',
        ]
    )
    c = runs(
        "c",
        script,
        env=[
            {
                "name": "GREETING",
                "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}},
            },
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        ],
        envFrom=[
            {"configMapRef": {"name": "cfg"}, "prefix": "CM_"},
            {"secretRef": {"name": "sec"}, "prefix": "SEC_"},
        ],
        volumeMounts=[{"name": "cfg", "mountPath": cfg}, {"name": "sec", "mountPath": sec}],
    )
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
    ]
    async with agent_for(client, real_kit, tmp_path) as agent:
        await create(client, make_pod("consumer", agent.node_name, c, volumes=volumes))
        await until(client, "consumer", running("c"), "running")
        out = await logs_with(client, "consumer", "file password=")
        assert labelled(out) == {
            "env GREETING": "hello",
            "env PASSWORD": "s3cret",
            "env CM_greeting": "hello",
            "env CM_color": "blue",
            "env SEC_password": "s3cret",
            "file greeting": "hello",
            "file password": "s3cret",
        }, out

        await client.patch(ConfigMap, "cfg", {"data": {"greeting": "bonjour"}}, patch_type="merge")
        deadline = time.monotonic() + TIMEOUT
        while (read := await exec_out(client, "consumer", ["cat", f"{cfg}/greeting"])) != (
            0,
            "bonjour",
        ):
            assert time.monotonic() < deadline, f"the volume missed the ConfigMap's update: {read}"
            await anyio.sleep(0.1)


async def test_missing_config_map_holds_the_container_until_created(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    from_env = runs(
        "c",
        'echo "V=$V"',
        env=[{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "v"}}}],
    )
    from_volume = runs("c", volumeMounts=[{"name": "late", "mountPath": f"{MOUNTS}/late"}])
    volumes = [{"name": "late", "configMap": {"name": "late"}}]
    # pod: (the container's waiting reason, the event saying why)
    cases = {
        "env": ("CreateContainerConfigError", "Failed"),
        "volume": ("ContainerCreating", "FailedMount"),
    }
    async with agent_for(client, kit, tmp_path) as agent:
        await create(client, make_pod("env", agent.node_name, from_env))
        await create(client, make_pod("volume", agent.node_name, from_volume, volumes=volumes))
        for name, (reason, event_reason) in cases.items():
            pod = await until(client, name, waiting("c", reason), f"waiting with {reason}")
            assert "late" in status(pod, "c").state.waiting.message, summary(pod)
            await event(client, name, event_reason, '"late"')
        data = {"metadata": {"name": "late"}, "data": {"v": "here"}}
        await client.create(codec.from_dict(ConfigMap, data))
        for name in cases:
            await until(client, name, running("c"), "running once the ConfigMap exists")
        if kit.real:
            assert await logs_with(client, "env", "V=") == "V=here\n"


# -- the agent owns its pods' status, whatever is stored -------------------------------


async def test_the_agent_puts_its_pods_status_back(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    async with agent_for(client, kit, tmp_path) as agent:
        await create(client, make_pod("owned", agent.node_name, runs("c")))

        def up(pod: Pod) -> bool:
            return running("c")(pod) and ready(pod)

        before = await until(client, "owned", up, "running and Ready")
        evil = {
            "phase": "Failed",
            "reason": "Evil",
            "message": "written by another client",
            "podIP": "10.6.6.6",
            "qosClass": "Guaranteed",
            "conditions": [{"type": "Ready", "status": "False"}],
        }
        patched = await client.patch(
            Pod, "owned", {"status": evil}, patch_type="merge", subresource="status"
        )
        assert (patched.status.phase, patched.status.reason) == ("Failed", "Evil")
        started = time.monotonic()
        after = await until(
            client, "owned", lambda p: p.status.phase == "Running", "phase Running again"
        )
        took = time.monotonic() - started
        assert took < 5.0, f"the status was put back only after {took:.1f} s"
        # Everything the other client wrote, and only that, is put back: the
        # container runs on, the transition times are the agent's.
        assert codec.to_dict(after.status) == codec.to_dict(before.status), summary(after)
        # Nothing changed since: the agent writes nothing (no write loop).
        version = after.metadata.resource_version
        await anyio.sleep(2.0)
        assert (await client.get(Pod, "owned")).metadata.resource_version == version


async def test_the_agent_makes_a_pod_ready_again_after_the_node_controller(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    """The node lifecycle controller sets Ready=False on the pods of a node
    it lost (MarkPodsNotReady: the whole status written back, one condition
    changed); the agent, still running them, puts Ready=True back."""
    async with agent_for(client, kit, tmp_path) as agent:
        await create(client, make_pod("survivor", agent.node_name, runs("c")))

        def up(pod: Pod) -> bool:
            return running("c")(pod) and ready(pod)

        before = await until(client, "survivor", up, "running and Ready")
        marked = await client.get(Pod, "survivor")
        for c in marked.status.conditions:
            if c.type == "Ready":
                c.status = "False"
                c.last_transition_time.FromNanoseconds(time.time_ns())
        marked = await client.update_status(marked)
        assert condition(marked, "Ready") == "False", summary(marked)
        started = time.monotonic()
        after = await until(client, "survivor", ready, "Ready again")
        took = time.monotonic() - started
        assert took < 5.0, f"Ready was put back only after {took:.1f} s"
        assert codec.to_dict(after.status) == codec.to_dict(before.status), summary(after)


async def test_a_pod_deleted_while_its_status_is_being_written_is_stopped(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod deleted while the agent writes its status (as when a frozen
    agent wakes up to find the node controller's Ready=False and the
    eviction at once): the sync is cut short, the pod stopped and removed,
    and the agent goes on handling pods.

    The status write is held in flight, and answers its cancellation as
    grpc.aio answers a cancelled call: with a CancelledError of its own."""
    writes = client.patch
    in_flight = anyio.Event()
    held: list[str] = []

    async def patch(kind: type[Any], name: str, body: Any, **options: Any) -> Any:
        if name == "doomed" and options.get("subresource") == "status" and not held:
            held.append(name)
            in_flight.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.get_running_loop().create_future()  # never answered
            raise asyncio.CancelledError  # grpc.aio's, with no trace of the cause
        return await writes(kind, name, body, **options)

    async def mark_not_ready(name: str) -> None:
        """As the node lifecycle controller does (MarkPodsNotReady)."""
        pod = await client.get(Pod, name)
        for c in pod.status.conditions:
            if c.type == "Ready":
                c.status = "False"
                c.last_transition_time.FromNanoseconds(time.time_ns())
        await client.update_status(pod)

    async with agent_for(client, kit, tmp_path) as agent:
        node = agent.node_name
        await create(client, make_pod("doomed", node, runs("c")), make_pod("kept", node, runs("c")))
        for name in ("doomed", "kept"):
            await until(client, name, ready, "running and Ready")
        monkeypatch.setattr(client, "patch", patch)
        await mark_not_ready("doomed")
        with anyio.fail_after(TIMEOUT):
            await in_flight.wait()
        await client.delete(Pod, "doomed")
        await gone(client, "doomed")
        # The agent goes on: it puts the other pod's Ready back, and runs a
        # new pod.
        await mark_not_ready("kept")
        await until(client, "kept", ready, "Ready again")
        await create(client, make_pod("later", node, runs("c")))
        await until(client, "later", running("c"), "running after the deletion")


async def test_a_pod_the_agent_cannot_run_fails_alone(
    client: Client, api_namespace: str, tmp_path: Path, store: Store, kit: Kit
) -> None:
    """Pods stored before the API server checked what it now refuses (or
    by anything writing etcd directly) reach the agent as they are. Such a
    pod reports what is wrong with it; the agent and its other pods go on."""
    pods = scheme.for_message(Pod)
    async with agent_for(client, kit, tmp_path) as agent:
        node = agent.node_name
        # Created valid and on no node, then stored with their flaw on the
        # agent's node, as the API server would not take them.
        for name in ("quantity", "volume"):
            await client.create(make_pod(name, "", runs("c")))
        quantity = await client.get(Pod, "quantity")
        quantity.spec.node_name = node
        quantity.spec.containers[0].resources.limits["cpu"].string = "lots"
        await store.update(pods, quantity)
        volume = await client.get(Pod, "volume")
        volume.spec.node_name = node
        odd = volume.spec.volumes.add(name="odd")
        odd.host_path.path, odd.host_path.type = "/tmp/kpy-odd\x00path", "DirectoryOrCreate"
        volume.spec.containers[0].volume_mounts.add(name="odd", mount_path=f"{MOUNTS}/odd")
        await store.update(pods, volume)
        await create(client, make_pod("fine", node, runs("c")))

        await until(client, "fine", running("c"), "running beside the broken pods")
        # A flaw the agent checks for: named with its field, as a config
        # error. (The API server refuses any status for this pod, as it
        # validates the whole pod on a status write: events are all it has.)
        said = "spec.containers[0].resources.limits.cpu: 'lots' is not a quantity"
        await event(client, "quantity", "Failed", said)
        await event(client, "quantity", "FailedSync", 'Pod "quantity" is invalid')
        # One it does not foresee: the sync's error, on the pod, retried.
        pod = await until(client, "volume", waiting("c", "CreateContainerError"), "a sync error")
        assert "embedded null byte" in status(pod, "c").state.waiting.message, summary(pod)
        await counted(client, "volume", "FailedSync", "embedded null byte", 2)
        # The agent lives on: a pod made now runs, and the broken ones go
        # when deleted.
        await create(client, make_pod("later", node, runs("c")))
        await until(client, "later", running("c"), "running after the broken pods")
        for name in ("quantity", "volume"):
            await client.delete(Pod, name)
            await gone(client, name)


# -- static pods -----------------------------------------------------------------------


def static_manifest(namespace: str, *, says: str) -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: {namespace}
spec:
  terminationGracePeriodSeconds: {GRACE}
  containers:
  - name: c
    image: {IMAGE}
    command: ["sh", "-c", "echo {says}; {UNTIL_STOPPED}"]
"""


MIRROR = "kubernetes.io/config.mirror"


async def test_static_pod_and_its_mirror(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    async with agent_for(client, kit, tmp_path) as agent:
        name = f"web-{agent.node_name}"
        manifest = agent.manifests / "web.yaml"
        manifest.write_text(static_manifest(api_namespace, says="one"))

        def mirror_running(pod: Pod) -> bool:
            return MIRROR in pod.metadata.annotations and pod.status.phase == "Running"

        first = await until(client, name, mirror_running, "a Running mirror pod")
        c = status(first, "c")
        assert (c.state.HasField("running"), c.ready) == (True, True), summary(first)
        assert first.spec.node_name == agent.node_name

        # Anyone may delete a mirror pod, as in Kubernetes: the agent makes
        # it again, and the static pod's container runs on.
        await client.delete(Pod, name)

        def remade(pod: Pod) -> bool:
            return mirror_running(pod) and pod.metadata.uid != first.metadata.uid

        again = await until(client, name, remade, "a new mirror pod, Running")
        assert not again.metadata.HasField("deletion_timestamp"), summary(again)
        assert status(again, "c").container_id == c.container_id, summary(again)
        # An agent may delete only the pods of its own node.
        with pytest.raises(errors.Forbidden, match="can only delete pods bound to itself"):
            await client.delete(Pod, name, as_node="another-node")

        manifest.write_text(static_manifest(api_namespace, says="two"))

        def replaced(pod: Pod) -> bool:
            s = find(pod, "c")
            return (
                mirror_running(pod)
                and pod.metadata.annotations[MIRROR] != first.metadata.annotations[MIRROR]
                and s is not None
                and s.container_id != c.container_id
            )

        second = await until(client, name, replaced, "the edited pod Running, in a new mirror")
        assert "echo two" in second.spec.containers[0].command[2]

        manifest.unlink()
        await gone(client, name)
        assert agent.agent is not None
        live = [
            c
            for c in await agent.agent.runtime.list_containers()
            if c.state is ContainerState.RUNNING
        ]
        assert not live, f"containers still run after their manifest went: {live}"


# -- the agent restarting --------------------------------------------------------------


async def test_agent_restart_keeps_containers(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    host = tmp_path / "host"
    kept = runs(
        "c",
        f"echo $$$$ >> {HOST_DIR}/pids",  # $$ is an escaped $ in a command
        volumeMounts=[HOST_MOUNT],
        readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1},
    )
    async with agent_for(client, kit, tmp_path) as agent:
        await create(client, make_pod("kept", agent.node_name, kept, volumes=[host_volume(host)]))
        before = status(await until(client, "kept", ready, "Ready"), "c")
        readiness: list[str] = []

        async def record_readiness() -> None:
            while True:
                readiness.append(condition(await client.get(Pod, "kept"), "Ready"))
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(record_readiness)
            await agent.restart()
            # A new pod runs once the new agent syncs pods.
            await create(client, make_pod("after", agent.node_name, runs("c")))
            await until(client, "after", running("c"), "running, by the restarted agent")
            # Two readiness periods: time for the new agent to have probed,
            # or to have wrongly reported the pod unready before it did.
            await anyio.sleep(2 * PROBE_TIME_SCALE)
            tg.cancel_scope.cancel()
        assert set(readiness) == {"True"}, f"Ready went {readiness} across the restart"

        pod = await until(client, "kept", ready, "Ready")
        after = status(pod, "c")
        assert (after.container_id, after.restart_count) == (before.container_id, 0), summary(pod)
        assert after.state.running.started_at == before.state.running.started_at, summary(pod)
        assert pod.status.phase == "Running", summary(pod)
        pid = None
        if kit.real:
            pids = (host / "pids").read_text().split()
            assert len(pids) == 1, f"the container's command ran again: pids {pids}"
        if kit.real and kit.host_pids:
            pid = Path(f"/proc/{pids[0]}")
            assert pid.exists(), f"the container's process {pids[0]} is gone"

        await client.delete(Pod, "kept")
        await gone(client, "kept")
        assert pid is None or not pid.exists(), f"the container's process {pid} outlived its pod"


async def _kill_sandbox_behind_the_agents_back(agent: AgentHandle, kit: Kit, uid: str) -> str:
    """Stops the pod's sandbox as a crash would: for Docker its pause
    container killed through Docker itself, else through the runtime's own
    API on the agent's runtime (the agent is not told). Returns its id."""
    assert agent.agent is not None
    runtime = agent.agent.runtime
    sandbox = next(s for s in await runtime.list_pod_sandboxes() if s.uid == uid)
    if kit.runtime == "docker":
        import aiodocker

        async with aiodocker.Docker(url=default_docker_host()) as docker:
            await docker.containers.container(sandbox.id).kill()
    else:
        await runtime.stop_pod_sandbox(sandbox.id)
    return sandbox.id


async def test_a_dead_sandbox_is_replaced_and_its_pod_runs_again(
    client: Client, api_namespace: str, tmp_path: Path, kit: Kit
) -> None:
    """As the kubelet: a pod whose sandbox died runs again in a new one
    (SandboxChanged, its init container run again, its container restarted
    once); a Never pod is not run
    again: it ends with its killed container."""
    async with agent_for(client, kit, tmp_path) as agent:
        node = agent.node_name
        await create(
            client,
            make_pod("again", node, runs("web"), init=[exits("init", after=0, code=0)]),
            make_pod("never", node, runs("web"), restart_policy="Never"),
        )
        pods = {n: await until(client, n, running("web"), "running") for n in ("again", "never")}
        for pod in pods.values():
            await _kill_sandbox_behind_the_agents_back(agent, kit, pod.metadata.uid)

        def again(pod: Pod) -> bool:
            return running("web")(pod) and restarted("web")(pod)

        pod = await until(client, "again", again, "running again in a new sandbox")
        web = status(pod, "web")
        assert (web.restart_count, pod.status.phase) == (1, "Running"), summary(pod)
        assert web.container_id != status(pods["again"], "web").container_id, summary(pod)
        assert pod.status.pod_ip, summary(pod)
        assert [i.ip for i in pod.status.pod_ips] == [pod.status.pod_ip], summary(pod)
        init = status(pod, "init")  # run again first, in the new sandbox
        assert (*terminated(init), init.restart_count) == (0, "Completed", 1), summary(pod)
        await event(client, "again", "SandboxChanged", "it will be killed and re-created")

        # Its container was stopped (how it exits, on a kill, is the
        # runtime's and the command's): the pod is over, not run again.
        never = await until(
            client, "never", lambda p: p.status.phase in ("Succeeded", "Failed"), "finished"
        )
        assert status(never, "web").restart_count == 0, summary(never)
        assert status(never, "web").state.HasField("terminated"), summary(never)
